//! The probe: one compiler's source written, preprocessed and compiled here once (the
//! reference object), then sent to each host the way a build's job is sent. Judging the
//! answers is left to [`super::host`].

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::args::{self, filename, Decision, RemoteJob};
use crate::client::lease::Scheduler;
use crate::client::local::CompilerCommand;
use crate::client::remote::{self, Answer, AttemptError, Preprocessor, Timeouts};
use crate::compiler;
use crate::config::ClientConfig;

/// The probe compile's options: optimisation makes code generation matter.
pub(super) const PROBE_FLAGS: &[&str] = &["-O2"];

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

/// One compiler's probe, prepared once here and sent to every host.
pub(super) struct Probe {
    /// The name as the user gave it (`gcc`).
    pub(super) name: String,
    /// The job as a build would run it: `gcc -O2 -c DIR/swarmcc_probe.c -o DIR/….o`.
    pub(super) argv: Vec<String>,
    pub(super) job: RemoteJob,
    /// The real compiler here, for the local preprocessing.
    pub(super) program: PathBuf,
    /// What the server is sent (`x86_64-linux-gnu-gcc -O2 -c …`).
    pub(super) remote_argv: Vec<String>,
    /// The preprocessed text, as made here.
    pub(super) preprocessed: Vec<u8>,
    /// The object of a local compile of `preprocessed`, run as swarmccd runs it.
    pub(super) reference: Vec<u8>,
}

/// Whether a compiler name is a C++ driver (`g++`, `clang++-15`, `c++`), which gets the
/// C++ probe.
pub fn is_cxx_name(name: &str) -> bool {
    filename::basename(name).contains("++")
}

/// Writes the probe source for `name`, preprocesses it and compiles the reference
/// object here, as swarmccd would compile what it is sent.
pub(super) fn prepare_probe(
    name: &str,
    program: PathBuf,
    work: &Path,
    cfg: &ClientConfig,
    sched: &Scheduler,
) -> Result<Probe, String> {
    let dir = work.join(format!("probe-{}", sanitize(name)));
    let argv = write_source(name, &dir)?;
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
    let preprocessed = preprocess_here(&argv, &program, &job, work, cfg, sched)?;
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

/// Writes the C or C++ probe into `dir` and returns the command line a build would
/// run for it: `NAME -O2 -c DIR/swarmcc_probe.c -o DIR/swarmcc_probe.o`.
fn write_source(name: &str, dir: &Path) -> Result<Vec<String>, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
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
    Ok(argv)
}

/// Preprocesses the probe here once, as a job does: the text every host's answer and
/// the reference object are made from.
fn preprocess_here(
    argv: &[String],
    program: &Path,
    job: &RemoteJob,
    work: &Path,
    cfg: &ClientConfig,
    sched: &Scheduler,
) -> Result<Vec<u8>, String> {
    let argv_os: Vec<OsString> = argv.iter().map(OsString::from).collect();
    let cmd = CompilerCommand {
        program,
        argv: &argv_os,
        path: &cfg.path,
        safeguard_level: 1,
    };
    let mut cpp = Preprocessor::new(job, &cmd, work, false, sched, 8);
    let preprocessed = cpp
        .wait()
        .map_err(|e| format!("preprocessing the probe failed here: {e}"))?
        .text()
        .map_err(|e| format!("preprocessing the probe failed here: {e}"))?
        .to_vec();
    Ok(preprocessed)
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

/// One remote attempt for `probe` with `remote_argv`, preprocessing locally as a job
/// does; returns the reply and the preprocessed text that was sent.
pub(super) fn attempt(
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
