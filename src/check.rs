//! `swarmcc --check-hosts`: is each configured host usable, and does it compile exactly
//! like this machine?
//!
//! For every host of the list (the client's own sources: `DISTCC_HOSTS`, then the host
//! files), in parallel:
//! 1. **connect**: a plain TCP connect, timed (`SWARMCC_CONNECT_TIMEOUT`), through
//!    the SOCKS proxy when `DISTCC_SOCKS_PROXY` names one; for an ssh host, the ssh
//!    command line (each request starts ssh, as a build's job does);
//! 2. **server**: a request for a compiler name no server has (`IDENTIFY_COMPILER`):
//!    swarmccd answers every refusal with its reason (`swarmccd: …`), distccd closes the
//!    connection without a word — so the answer tells which server it is;
//! 3. **per compiler** (gcc and g++ by default): a probe source exercising code
//!    generation (arithmetic, a loop, a switch, floating point) compiled at `-O2`
//!    through the same path as a real job — preprocessed here, sent with the same
//!    command line a build would send ([`compiler::rewrite_for_remote`]), over
//!    [`remote::attempt`] (so `,lzo` and `,auth` are exercised too) — and the object
//!    compared byte for byte with a local compile of the same preprocessed text, run the
//!    way swarmccd runs it. A difference is explained by ELF section (`.text` differs,
//!    the compilers' `.comment` identification strings).
//!
//! Then one verdict per host (OK, DIFFERENT COMPILER, REFUSED, UNREACHABLE, FAILED,
//! SKIPPED) with its reason, a summary line, and exit status 0 only when
//! every host is OK (or deliberately `,down`).
//!
//! Nothing is changed: no backoff file is written or cleared, no slot of a running build
//! is taken (the preprocessor runs under a private lock directory).

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::args::{self, filename, Decision, RemoteJob};
use crate::backoff;
use crate::client::lease::Scheduler;
use crate::client::local::{self, CompilerCommand};
use crate::client::remote::{self, Answer, AttemptError, Preprocessor, Timeouts};
use crate::compiler;
use crate::config::ClientConfig;
use crate::conn::ConnError;
use crate::exit::ExitCode;
use crate::hosts::HostSpec;
use crate::protocol::Version;
use crate::transport::{Dialer, Route};

/// The compilers checked when `--check-hosts` names none (those installed here).
pub const DEFAULT_COMPILERS: &[&str] = &["gcc", "g++"];

/// A compiler name no server has: the answer to it tells swarmccd from distccd.
pub const IDENTIFY_COMPILER: &str = "swarmcc-check-hosts-identify";

/// The probe compile's options: optimisation makes code generation matter.
const PROBE_FLAGS: &[&str] = &["-O2"];

/// The C probe: integer arithmetic, a loop, a switch and floating point, so that a
/// different optimiser, code generator or version shows in the object.
pub const PROBE_C: &str = r#"/* swarmcc --check-hosts probe: the same compiler must give the same object. */
static const int table[8] = {3, 1, 4, 1, 5, 9, 2, 6};

int swarmcc_probe_mix(int n, int k)
{
    int acc = 0;
    for (int i = 0; i < n; i++) {
        switch ((i ^ k) & 7) {
        case 0: acc += i * 7; break;
        case 1: acc -= table[i & 7]; break;
        case 2: acc ^= acc << 3; break;
        case 3: acc = acc / 3 + i; break;
        case 5: acc += table[(i + k) & 7] * k; break;
        default: acc += 1;
        }
    }
    return acc;
}

static inline double swarmcc_probe_poly(double x)
{
    return ((0.5 * x - 1.25) * x + 3.0) * x - 0.125;
}

double swarmcc_probe_float(const double *v, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += swarmcc_probe_poly(v[i]) / (1.0 + (double)(i & 3));
    return s;
}
"#;

/// The C++ probe: the C one plus a template and a class with a virtual function.
pub const PROBE_CXX: &str = r#"// swarmcc --check-hosts probe: the same compiler must give the same object.
static const int table[8] = {3, 1, 4, 1, 5, 9, 2, 6};

template <typename T> static T poly(T x) { return ((T(0.5) * x - T(1.25)) * x + T(3)) * x; }

struct Shape {
    virtual ~Shape() {}
    virtual double area(double k) const = 0;
};
struct Square : Shape {
    double side;
    explicit Square(double s) : side(s) {}
    double area(double k) const override { return poly(side) * k; }
};

int swarmcc_probe_mix(int n, int k)
{
    int acc = 0;
    for (int i = 0; i < n; i++) {
        switch ((i ^ k) & 7) {
        case 0: acc += i * 7; break;
        case 1: acc -= table[i & 7]; break;
        case 2: acc ^= acc << 3; break;
        case 5: acc += table[(i + k) & 7] * k; break;
        default: acc += 1;
        }
    }
    return acc;
}

double swarmcc_probe_float(const Shape &s, int n)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += s.area(1.0 + i) / (1.0 + (i & 3));
    return sum + poly(2.5f);
}

Shape *swarmcc_probe_make(double side) { return new Square(side); }
"#;

/// The verdict on one host, worst first in [`Verdict::rank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    /// `,down`: listed but never used; not a problem.
    Skipped,
    Refused,
    Failed,
    Unreachable,
    /// The object differs from a local compile: jobs sent there would silently give a
    /// different build.
    Different,
}

impl Verdict {
    /// Whether this verdict makes `--check-hosts` fail.
    pub fn is_problem(self) -> bool {
        !matches!(self, Verdict::Ok | Verdict::Skipped)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::Skipped => "SKIPPED",
            Verdict::Refused => "REFUSED",
            Verdict::Failed => "FAILED",
            Verdict::Unreachable => "UNREACHABLE",
            Verdict::Different => "DIFFERENT COMPILER",
        })
    }
}

/// One compiler's probe, prepared once here and sent to every host.
struct Probe {
    /// The name as the user gave it (`gcc`).
    name: String,
    /// The job as a build would run it: `gcc -O2 -c DIR/swarmcc_probe.c -o DIR/….o`.
    argv: Vec<String>,
    job: RemoteJob,
    /// The real compiler here, for the local preprocessing.
    program: PathBuf,
    /// What the server is sent (`x86_64-linux-gnu-gcc -O2 -c …`).
    remote_argv: Vec<String>,
    /// The preprocessed text, as made here.
    preprocessed: Vec<u8>,
    /// The object of a local compile of `preprocessed`, run as swarmccd runs it.
    reference: Vec<u8>,
}

/// What the check found for one host.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// The host as listed.
    pub spec: String,
    /// (label, text) lines, in order.
    pub lines: Vec<(String, String)>,
    pub verdict: Verdict,
    /// Why, when not OK (empty for OK).
    pub reason: String,
}

impl HostReport {
    fn new(spec: &str) -> HostReport {
        HostReport {
            spec: spec.to_owned(),
            lines: Vec::new(),
            verdict: Verdict::Ok,
            reason: String::new(),
        }
    }

    fn line(&mut self, label: &str, text: impl Into<String>) {
        self.lines.push((label.to_owned(), text.into()));
    }

    /// Records a problem: the verdict becomes the worst seen, the reasons accumulate.
    fn problem(&mut self, verdict: Verdict, reason: impl Into<String>) {
        self.verdict = self.verdict.max(verdict);
        let reason = reason.into();
        if !self.reason.is_empty() {
            self.reason.push_str("; ");
        }
        self.reason.push_str(&reason);
    }
}

impl fmt::Display for HostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.spec)?;
        for (label, text) in &self.lines {
            writeln!(f, "  {label:<9} {text}")?;
        }
        if self.reason.is_empty() {
            writeln!(f, "  {:<9} {}", "verdict", self.verdict)
        } else {
            writeln!(f, "  {:<9} {}: {}", "verdict", self.verdict, self.reason)
        }
    }
}

/// The summary line: `3 hosts: 1 OK, 1 DIFFERENT COMPILER, 1 UNREACHABLE`.
pub fn summary(reports: &[HostReport]) -> String {
    let mut counts: Vec<(Verdict, usize)> = Vec::new();
    for r in reports {
        match counts.iter_mut().find(|(v, _)| *v == r.verdict) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.verdict, 1)),
        }
    }
    counts.sort_by_key(|(v, _)| *v);
    let parts: Vec<String> = counts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    let n = reports.len();
    format!(
        "{n} host{}: {}",
        if n == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// `swarmcc --check-hosts[=COMPILERS]`: prints the report and returns the exit code
/// (0 all OK, 1 a host is not, 106 no usable host list, 110 a named compiler is not
/// installed here, 107 the local reference compile failed).
pub fn run(compilers: Option<&str>, cfg: &ClientConfig) -> i32 {
    let (list, source) = match crate::client::host_warnings::load_some(cfg) {
        Ok(x) => x,
        Err(why) => {
            eprintln!("swarmcc: {why}: nothing to check");
            return ExitCode::BadHostSpec.code();
        }
    };
    let (names, explicit) = match compilers {
        Some(text) => (parse_compiler_list(text), true),
        None => (
            DEFAULT_COMPILERS.iter().map(|s| s.to_string()).collect(),
            false,
        ),
    };
    if names.is_empty() {
        eprintln!(
            "swarmcc: --check-hosts=COMPILERS names no compiler (e.g. --check-hosts=gcc,clang)"
        );
        return ExitCode::BadArguments.code();
    }
    let work = match tempfile::Builder::new()
        .prefix("swarmcc-check-")
        .tempdir_in(&cfg.tmpdir)
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "swarmcc: cannot create a temporary directory in {}: {e}",
                cfg.tmpdir.display()
            );
            return ExitCode::IoError.code();
        }
    };
    let sched = Scheduler::lock_files(work.path().join("lock"));
    let self_exe = std::env::current_exe().unwrap_or_default();
    let mut probes = Vec::new();
    let mut notes = Vec::new();
    for name in &names {
        let program = match compiler::find_real_compiler(name, &cfg.path, &self_exe) {
            Ok(p) => p,
            Err(e) if explicit => {
                eprintln!("swarmcc: --check-hosts: {name} is not installed here ({e}): nothing to compare with");
                return ExitCode::CompilerMissing.code();
            }
            Err(_) => {
                notes.push(format!("{name}: not installed here, not checked"));
                continue;
            }
        };
        match prepare_probe(name, program, work.path(), cfg, &sched) {
            Ok(p) => probes.push(p),
            Err(e) => {
                eprintln!("swarmcc: --check-hosts: {name}: {e}");
                return ExitCode::IoError.code();
            }
        }
    }
    if probes.is_empty() {
        eprintln!(
            "swarmcc: --check-hosts: none of {} is installed here; name the compilers: --check-hosts=cc,clang",
            names.join(", ")
        );
        return ExitCode::CompilerMissing.code();
    }

    let described: Vec<String> = probes
        .iter()
        .map(|p| {
            if p.remote_argv[0] == p.name {
                p.name.clone()
            } else {
                format!("{} (sent as {})", p.name, p.remote_argv[0])
            }
        })
        .collect();
    println!(
        "checking {} host{} from {source} with {} (probe compiled at {}, objects compared with this machine's)",
        list.hosts.len(),
        if list.hosts.len() == 1 { "" } else { "s" },
        described.join(", "),
        PROBE_FLAGS.join(" ")
    );
    for n in &notes {
        println!("note: {n}");
    }
    println!();

    // A probe compiles in well under a second: a server silent for longer than these
    // is reported, not waited for as a build would.
    let timeouts = Timeouts {
        connect: cfg.connect_timeout,
        io: cfg.io_timeout.min(Duration::from_secs(15)),
        compile: cfg.compile_timeout.min(Duration::from_secs(30)),
        stall: cfg.stall_timeout.min(Duration::from_secs(15)),
    };
    let reports: Vec<HostReport> = std::thread::scope(|s| {
        let handles: Vec<_> = list
            .hosts
            .iter()
            .map(|h| {
                let probes = &probes;
                let work = work.path();
                s.spawn(move || check_host(h, probes, cfg, timeouts, work))
            })
            .collect();
        handles
            .into_iter()
            .zip(&list.hosts)
            .map(|(t, h)| {
                t.join().unwrap_or_else(|_| {
                    let mut r = HostReport::new(&h.spec);
                    r.problem(Verdict::Failed, "the check itself crashed");
                    r
                })
            })
            .collect()
    });
    for r in &reports {
        println!("{r}");
    }
    println!("{}", summary(&reports));
    if reports.iter().any(|r| r.verdict.is_problem()) {
        1
    } else {
        0
    }
}

/// `gcc, g++ ,clang` → `["gcc", "g++", "clang"]`, without duplicates.
pub fn parse_compiler_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !out.iter().any(|o| o == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// Whether a compiler name is a C++ driver (`g++`, `clang++-15`, `c++`), which gets the
/// C++ probe.
pub fn is_cxx_name(name: &str) -> bool {
    filename::basename(name).contains("++")
}

/// Writes the probe source for `name`, preprocesses it and compiles the reference
/// object here, as swarmccd would compile what it is sent.
fn prepare_probe(
    name: &str,
    program: PathBuf,
    work: &Path,
    cfg: &ClientConfig,
    sched: &Scheduler,
) -> Result<Probe, String> {
    let dir = work.join(format!("probe-{}", sanitize(name)));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (file, text) = if is_cxx_name(name) {
        ("swarmcc_probe.cpp", PROBE_CXX)
    } else {
        ("swarmcc_probe.c", PROBE_C)
    };
    let source = dir.join(file);
    fs::write(&source, text).map_err(|e| format!("cannot write {}: {e}", source.display()))?;
    let object = dir.join("swarmcc_probe.o");
    let mut argv = vec![name.to_owned()];
    argv.extend(PROBE_FLAGS.iter().map(|s| s.to_string()));
    argv.extend([
        "-c".to_owned(),
        source.to_string_lossy().into_owned(),
        "-o".to_owned(),
        object.to_string_lossy().into_owned(),
    ]);
    let job = match args::classify(&argv) {
        Decision::Remote(job) => job,
        Decision::Local(why) => return Err(format!("the probe would not be distributed ({why})")),
    };
    let remote_argv = compiler::rewrite_for_remote(
        &job.remote_argv(),
        &compiler::native_triple(),
        !cfg.no_rewrite_cross,
        &|n| compiler::exists_on_path(n, &cfg.path),
        &|n| compiler::resolve_generic(n, &cfg.path),
    );
    let argv_os: Vec<OsString> = argv.iter().map(OsString::from).collect();
    let cmd = CompilerCommand {
        program: &program,
        argv: &argv_os,
        path: &cfg.path,
        safeguard_level: 1,
    };
    let mut cpp = Preprocessor::new(&job, &cmd, work, false, sched, 8);
    let preprocessed = cpp
        .wait()
        .map_err(|e| format!("preprocessing the probe failed here: {e}"))?
        .text()
        .map_err(|e| format!("preprocessing the probe failed here: {e}"))?
        .to_vec();
    drop(cpp);
    let reference = compile_here(&remote_argv, &preprocessed, &dir.join("reference"), cfg)?;
    Ok(Probe {
        name: name.to_owned(),
        argv,
        job,
        program,
        remote_argv,
        preprocessed,
        reference,
    })
}

/// Compiles `preprocessed` here the way swarmccd compiles a request `remote_argv`: the
/// compiler found by the sent name, the input saved under the client's base name with
/// the preprocessed extension, the output in the same directory, which is also the
/// working directory and `TMPDIR`. Returns the object.
fn compile_here(
    remote_argv: &[String],
    preprocessed: &[u8],
    dir: &Path,
    cfg: &ClientConfig,
) -> Result<Vec<u8>, String> {
    let job = match args::classify(remote_argv) {
        Decision::Remote(job) => job,
        Decision::Local(why) => {
            return Err(format!("the probe command is not a remote job ({why})"))
        }
    };
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let base = filename::basename(&job.input);
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    let ext = filename::preprocessed_ext(&job.input).unwrap_or(job.preprocessed_ext);
    let input = dir.join(format!("{stem}{ext}"));
    let output = dir.join(format!("{stem}.o"));
    fs::write(&input, preprocessed)
        .map_err(|e| format!("cannot write {}: {e}", input.display()))?;
    let argv = job.server_argv(&input.to_string_lossy(), &output.to_string_lossy());
    let self_exe = std::env::current_exe().unwrap_or_default();
    let program = compiler::find_real_compiler(&argv[0], &cfg.path, &self_exe)
        .map_err(|e| format!("cannot compile the reference object here: {e}"))?;
    let out = Command::new(&program)
        .args(&argv[1..])
        .current_dir(dir)
        .env("TMPDIR", dir)
        .env("PATH", &cfg.path)
        .env(compiler::SAFEGUARD_VAR, "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the local reference compile ({} {}) failed with {}: {}",
            program.display(),
            argv[1..].join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    fs::read(&output).map_err(|e| format!("cannot read {}: {e}", output.display()))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Which server answered the identification request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Server {
    /// swarmccd: it answered a refusal with its reason.
    Swarmccd,
    /// It closed the connection without a reply, as distccd does when it refuses.
    Distccd,
    /// Something else answered (a distccd run with --enable-tcp-insecure…).
    Other(String),
    /// Could not tell (the conversation failed).
    Unknown(String),
}

fn check_host(
    host: &HostSpec,
    probes: &[Probe],
    cfg: &ClientConfig,
    timeouts: Timeouts,
    work: &Path,
) -> HostReport {
    let mut report = HostReport::new(&host.spec);
    let Some(route) = remote::route_of(host) else {
        report.line(
            "where",
            "this machine (localhost: no daemon, jobs run here)",
        );
        return report;
    };
    if host.down {
        report.verdict = Verdict::Skipped;
        report.reason = "listed with ,down: never used".into();
        return report;
    }
    if backoff::is_backed_off(
        &cfg.lock_dir(),
        &host.lock_name(),
        cfg.backoff_period,
        SystemTime::now(),
    ) {
        report.line(
            "backoff",
            format!(
                "backed off after a recent failure: builds skip it until DISTCC_BACKOFF_PERIOD ({}s) has passed since then",
                cfg.backoff_period.as_secs()
            ),
        );
    }

    // 1. Connect (over ssh, each request below starts ssh: its failure shows there).
    match route {
        Route::Tcp { host: name, port } => {
            match timed_connect(&cfg.dialer, name, port, timeouts.connect) {
                Ok((addr, took)) => {
                    report.line("connect", format!("{} ({addr})", format_duration(took)))
                }
                Err(why) => {
                    report.problem(Verdict::Unreachable, why);
                    return report;
                }
            }
        }
        Route::Ssh { .. } => report.line("connect", cfg.dialer.describe(route)),
    }

    // 2. Protocol, and which server.
    let version = if host.protocol() == 1 {
        Version::V1
    } else {
        Version::V2
    };
    let mut proto = match version {
        Version::V1 => "1 (plain)".to_owned(),
        _ => "2 (,lzo: LZO-compressed)".to_owned(),
    };
    if host.cpp {
        proto.push_str("; ,cpp (pump mode) is not supported: jobs use protocol 2");
    }
    if host.wants_auth() {
        proto.push_str(&format!(
            "; ,auth: authenticated with {}",
            cfg.auth_key_file.display()
        ));
    }
    report.line("protocol", proto);
    let target = remote::Target {
        route,
        dialer: &cfg.dialer,
        version,
        slot: 0,
        state: None,
        auth_key: host.wants_auth().then_some(cfg.auth_key_file.as_path()),
        // Plain distcc, as every server understands it: the objects are compared here
        // rather than by the server.
        ext: None,
    };
    let sched = Scheduler::lock_files(work.join("lock"));
    let first = &probes[0];
    let mut identify_argv = first.remote_argv.clone();
    identify_argv[0] = IDENTIFY_COMPILER.to_owned();
    let server = match attempt(&target, &identify_argv, first, cfg, &sched, timeouts) {
        Ok((a, _)) if a.reply.stderr.starts_with(b"swarmccd: ") => Server::Swarmccd,
        Ok((a, _)) => Server::Other(first_line(&a.reply.stderr)),
        Err(AttemptError::Conn(ConnError::Eof { mid_message: false })) => Server::Distccd,
        Err(e) => Server::Unknown(e.to_string()),
    };
    report.line(
        "server",
        match &server {
            Server::Swarmccd => {
                "swarmccd (it answered a request for an unknown compiler with its reason)".into()
            }
            Server::Distccd => {
                "distccd or compatible (it closed the connection on a request for an unknown compiler, without a reason)".into()
            }
            Server::Other(text) => format!(
                "distcc-compatible; an unknown compiler was answered with: {text}"
            ),
            Server::Unknown(e) => format!("could not tell ({e})"),
        },
    );
    if let Server::Unknown(e) = &server {
        // The conversation itself fails: the compile probes would say the same.
        report.problem(
            classify_error_verdict(e),
            format!("the server does not complete a request: {e}"),
        );
        return report;
    }

    // 3. Each compiler.
    let mut offers_ext = false;
    for probe in probes {
        let started = Instant::now();
        let outcome = attempt(&target, &probe.remote_argv, probe, cfg, &sched, timeouts);
        let took = started.elapsed();
        let label = probe.name.as_str();
        let sent = &probe.remote_argv[0];
        if matches!(&outcome, Ok((a, _)) if a.offers_ext) {
            offers_ext = true;
        }
        match outcome.map(|(a, text)| (a.reply, text)) {
            Ok((reply, text)) if reply.status == 0 => {
                if text != probe.preprocessed {
                    report.line(
                        label,
                        "note: preprocessing here gave a different text than for the reference",
                    );
                }
                if reply.object == probe.reference {
                    report.line(
                        label,
                        format!(
                            "same object as here ({sent}: {} bytes, {})",
                            reply.object.len(),
                            format_duration(took)
                        ),
                    );
                } else {
                    let why = explain_difference(&probe.reference, &reply.object);
                    report.line(label, format!("DIFFERENT object from {sent}: {why}"));
                    report.problem(
                        Verdict::Different,
                        format!("{label}: its {sent} produces a different object than this machine's, so jobs sent there would not build what a local compile builds"),
                    );
                }
            }
            Ok((reply, _)) => {
                let code = local::exit_code_from_wait(reply.status);
                let text = first_line(&reply.stderr);
                if reply.stderr.starts_with(b"swarmccd: ") {
                    let verdict = if code == ExitCode::CompilerMissing.code() {
                        Verdict::Refused
                    } else {
                        Verdict::Failed
                    };
                    report.line(label, format!("{verdict}: {text}"));
                    report.problem(verdict, format!("{label}: {}", strip_server(&text)));
                } else if code == ExitCode::CompilerMissing.code() {
                    let why =
                        format!(
                        "{sent} cannot be run there (exit 110: not installed, or not allowed){}",
                        if text.is_empty() { String::new() } else { format!(": {text}") }
                    );
                    report.line(label, format!("REFUSED: {why}"));
                    report.problem(Verdict::Refused, format!("{label}: {why}"));
                } else {
                    let why = format!(
                        "the probe failed to compile there (exit {code}) but compiles here{}",
                        if text.is_empty() {
                            String::new()
                        } else {
                            format!(": {text}")
                        }
                    );
                    report.line(label, format!("FAILED: {why}"));
                    report.problem(Verdict::Failed, format!("{label}: {why}"));
                }
            }
            Err(AttemptError::Conn(ConnError::Eof { mid_message: false })) => {
                let (why, short) = match server {
                    Server::Swarmccd => (
                        "the server closed the connection without an answer (swarmccd answers refusals with a reason, so this machine is probably not in its --allow list)".to_owned(),
                        "closed without an answer (this machine not in its --allow list?)".to_owned(),
                    ),
                    _ => (
                        format!(
                            "the server closed the connection without an answer: distccd does this when {sent} is not in its whitelist (/usr/lib/distcc/{sent}, or its DISTCC_CMDLIST) or this machine is not in its --allow list (its log says which)"
                        ),
                        format!("refused without a reason ({sent} not whitelisted there, or this machine not allowed)"),
                    ),
                };
                report.line(label, format!("REFUSED: {why}"));
                report.problem(Verdict::Refused, format!("{label}: {short}"));
            }
            Err(e) => {
                let text = e.to_string();
                let verdict = classify_error_verdict(&text);
                report.line(label, format!("{verdict}: {text}"));
                report.problem(verdict, format!("{label}: {text}"));
            }
        }
    }
    if offers_ext {
        report.line(
            "extension",
            "offered: swarmcc jobs use its negotiated protocol with this host",
        );
    }
    report
}

/// A verdict for an attempt that did not produce a reply.
fn classify_error_verdict(text: &str) -> Verdict {
    if text.starts_with("cannot connect") {
        Verdict::Unreachable
    } else if text.contains("authentication refused") || text.contains("did not prove") {
        Verdict::Refused
    } else {
        Verdict::Failed
    }
}

/// One remote attempt for `probe` with `remote_argv`, preprocessing locally as a job
/// does; returns the reply and the preprocessed text that was sent.
fn attempt(
    target: &remote::Target<'_>,
    remote_argv: &[String],
    probe: &Probe,
    cfg: &ClientConfig,
    sched: &Scheduler,
    timeouts: Timeouts,
) -> Result<(Answer, Vec<u8>), AttemptError> {
    let argv_os: Vec<OsString> = probe.argv.iter().map(OsString::from).collect();
    let cmd = CompilerCommand {
        program: &probe.program,
        argv: &argv_os,
        path: &cfg.path,
        safeguard_level: 1,
    };
    let tmp = probe_tmpdir(&probe.job);
    let mut cpp = Preprocessor::new(&probe.job, &cmd, &tmp, false, sched, 8);
    let answer = remote::attempt(target, remote_argv, &mut cpp, timeouts)?;
    let text = cpp
        .wait()
        .and_then(|p| p.text().map(<[u8]>::to_vec))
        .unwrap_or_default();
    Ok((answer, text))
}

/// Where a probe's preprocessed file goes: beside its source (the check's private
/// temporary directory).
fn probe_tmpdir(job: &RemoteJob) -> PathBuf {
    Path::new(&job.input)
        .parent()
        .map_or_else(std::env::temp_dir, Path::to_path_buf)
}

/// Connects once, timed; the address that answered (or the proxy that connected), or
/// why none did.
fn timed_connect(
    dialer: &Dialer,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(String, Duration), String> {
    if let Some(proxy) = &dialer.socks {
        let proxy = proxy.as_ref().map_err(String::clone)?;
        let started = Instant::now();
        proxy.connect(host, port, timeout)?;
        return Ok((
            format!("through the SOCKS proxy {proxy}"),
            started.elapsed(),
        ));
    }
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} has no address");
    for addr in &addrs {
        let started = Instant::now();
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(_) => return Ok((addr.to_string(), started.elapsed())),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!(
                    "no answer from {addr} within {}s (SWARMCC_CONNECT_TIMEOUT): host down or port filtered",
                    timeout.as_secs_f64()
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = format!("connection refused by {addr}: nothing listens on port {port} there (server not running, or another port)");
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The first non-empty line of a server's message, trimmed.
fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned()
}

fn strip_server(text: &str) -> &str {
    text.strip_prefix("swarmccd: ").unwrap_or(text)
}

/// Why two objects differ, in words: the ELF sections that differ and, when the
/// compilers' identification strings (`.comment`) differ, both of them; else sizes and
/// the first differing byte.
pub fn explain_difference(here: &[u8], there: &[u8]) -> String {
    let basic = || {
        let first = here
            .iter()
            .zip(there)
            .position(|(a, b)| a != b)
            .unwrap_or(here.len().min(there.len()));
        format!(
            "{} bytes here, {} there, first difference at byte {first:#x}",
            here.len(),
            there.len()
        )
    };
    let (Some(a), Some(b)) = (elf_sections(here), elf_sections(there)) else {
        return basic();
    };
    let mut differing: Vec<String> = Vec::new();
    for (name, data) in &a {
        match b.iter().find(|(n, _)| n == name) {
            Some((_, other)) if other == data => {}
            Some(_) => differing.push(name.clone()),
            None => differing.push(format!("{name} (only here)")),
        }
    }
    for (name, _) in &b {
        if !a.iter().any(|(n, _)| n == name) {
            differing.push(format!("{name} (only there)"));
        }
    }
    if differing.is_empty() {
        return basic();
    }
    let mut out = format!("sections {} differ", differing.join(", "));
    let comment = |s: &[(String, Vec<u8>)]| {
        s.iter()
            .find(|(n, _)| n == ".comment")
            .map(|(_, d)| {
                d.split(|&b| b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default()
    };
    let (ca, cb) = (comment(&a), comment(&b));
    if ca != cb {
        out.push_str(&format!("; compiler here: \"{ca}\", there: \"{cb}\""));
    } else if !ca.is_empty() {
        out.push_str(&format!(
            "; both say \"{ca}\", so the options or the compiler's configuration differ there"
        ));
    }
    out
}

/// The named sections of an ELF relocatable object with their contents (empty for
/// sections without file data), in header order. `None` if `obj` is not ELF or is
/// malformed.
pub fn elf_sections(obj: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    if obj.len() < 0x34 || &obj[..4] != b"\x7fELF" {
        return None;
    }
    let wide = match obj[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match obj[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let rd = |at: usize, n: usize| -> Option<u64> {
        let b = obj.get(at..at.checked_add(n)?)?;
        let mut v: u64 = 0;
        for i in 0..n {
            let byte = if le { b[n - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (rd(0x28, 8)?, rd(0x3a, 2)?, rd(0x3c, 2)?, rd(0x3e, 2)?)
    } else {
        (rd(0x20, 4)?, rd(0x2e, 2)?, rd(0x30, 2)?, rd(0x32, 2)?)
    };
    let header = |i: u64| -> Option<(u64, u64, u64, u64)> {
        let at = usize::try_from(shoff.checked_add(i.checked_mul(shentsize)?)?).ok()?;
        if wide {
            Some((rd(at, 4)?, rd(at + 4, 4)?, rd(at + 24, 8)?, rd(at + 32, 8)?))
        } else {
            Some((rd(at, 4)?, rd(at + 4, 4)?, rd(at + 16, 4)?, rd(at + 20, 4)?))
        }
    };
    let data = |kind: u64, off: u64, size: u64| -> Option<&[u8]> {
        const SHT_NOBITS: u64 = 8;
        if kind == SHT_NOBITS {
            return Some(&[]);
        }
        let start = usize::try_from(off).ok()?;
        obj.get(start..start.checked_add(usize::try_from(size).ok()?)?)
    };
    if shnum > 4096 {
        return None;
    }
    let (_, st_kind, st_off, st_size) = header(shstrndx)?;
    let strtab = data(st_kind, st_off, st_size)?;
    let mut out = Vec::new();
    for i in 1..shnum {
        let (name_at, kind, off, size) = header(i)?;
        let name_bytes = strtab.get(usize::try_from(name_at).ok()?..)?;
        let end = name_bytes.iter().position(|&b| b == 0)?;
        let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
        out.push((name, data(kind, off, size)?.to_vec()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_lists() {
        assert_eq!(
            parse_compiler_list("gcc, g++ ,,gcc,clang"),
            ["gcc", "g++", "clang"]
        );
        assert!(parse_compiler_list(" , ").is_empty());
        assert!(is_cxx_name("g++") && is_cxx_name("/usr/bin/clang++-15") && is_cxx_name("c++"));
        assert!(!is_cxx_name("gcc") && !is_cxx_name("cc"));
    }

    #[test]
    fn verdicts_rank_the_worst_first_and_summarise() {
        let mut r = HostReport::new("h");
        r.problem(Verdict::Refused, "g++: not whitelisted");
        r.problem(Verdict::Different, "gcc: differs");
        r.problem(Verdict::Failed, "x");
        assert_eq!(r.verdict, Verdict::Different);
        assert_eq!(r.reason, "g++: not whitelisted; gcc: differs; x");
        let ok = HostReport::new("a");
        let mut down = HostReport::new("b");
        down.verdict = Verdict::Skipped;
        assert!(!ok.verdict.is_problem() && !down.verdict.is_problem());
        assert_eq!(
            summary(&[ok.clone(), r, ok, down]),
            "4 hosts: 2 OK, 1 SKIPPED, 1 DIFFERENT COMPILER"
        );
        assert!(format!("{}", HostReport::new("x")).contains("verdict   OK"));
    }

    #[test]
    fn non_elf_objects_are_compared_by_bytes() {
        let why = explain_difference(b"abcdef", b"abXdefg");
        assert_eq!(why, "6 bytes here, 7 there, first difference at byte 0x2");
        assert!(elf_sections(b"\x7fELF").is_none());
        assert!(elf_sections(&[0u8; 100]).is_none());
    }

    /// A real object from the machine's gcc: sections parse, and a changed `.comment`
    /// and `.text` are named.
    #[test]
    fn elf_sections_of_a_real_object() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("p.c");
        fs::write(&src, PROBE_C).unwrap();
        let obj = dir.path().join("p.o");
        let ok = Command::new("gcc")
            .args(["-O2", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: no working gcc");
            return;
        }
        let bytes = fs::read(&obj).unwrap();
        let sections = elf_sections(&bytes).expect("gcc's object is ELF");
        let names: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&".text") && names.contains(&".symtab"),
            "{names:?}"
        );
        // Another compile of another optimisation level: .text differs.
        let o0 = dir.path().join("p0.o");
        assert!(Command::new("gcc")
            .args(["-O0", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(&o0)
            .status()
            .unwrap()
            .success());
        let why = explain_difference(&bytes, &fs::read(&o0).unwrap());
        assert!(why.contains(".text"), "{why}");
        assert!(why.contains("both say \"GCC"), "{why}");
        // A different compiler identification is quoted.
        if let Some(at) = bytes.windows(4).position(|w| w == b"GCC:") {
            let mut other = bytes.clone();
            other[at + 5] ^= 0x20;
            let why = explain_difference(&bytes, &other);
            assert!(
                why.contains(".comment") && why.contains("compiler here:"),
                "{why}"
            );
        }
    }
}
