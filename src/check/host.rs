//! One host checked: reachable (a timed connect), which server answers (swarmccd or
//! distccd, told apart by a request for a compiler no server has), and for each probe
//! whether its object is the one this machine makes. The probes are made by
//! [`super::probe`]; the wording of the result is [`super::report`]'s.

use std::net::{TcpStream, ToSocketAddrs};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::compare::explain_difference;
use super::probe::{attempt, Probe};
use super::report::{first_line, format_duration, strip_server, HostReport, Verdict};
use super::IDENTIFY_COMPILER;
use crate::backoff;
use crate::client::lease::Scheduler;
use crate::client::local;
use crate::client::remote::{self, Answer, AttemptError, Timeouts};
use crate::config::ClientConfig;
use crate::conn::ConnError;
use crate::exit::ExitCode;
use crate::hosts::{HostKind, HostSpec, ReapiHost};
use crate::protocol::{Reply, Version};
use crate::transport::{Dialer, Route};

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

impl Server {
    /// The report's `server` line.
    fn describe(&self) -> String {
        match self {
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
        }
    }
}

/// What every request to one host is sent with.
struct Session<'a> {
    target: remote::Target<'a>,
    cfg: &'a ClientConfig,
    sched: Scheduler,
    timeouts: Timeouts,
}

/// Checks one host: each step adds its lines to the report and may end the check.
pub(super) fn check_host(
    host: &HostSpec,
    probes: &[Probe],
    cfg: &ClientConfig,
    timeouts: Timeouts,
    work: &Path,
) -> HostReport {
    let mut report = HostReport::new(&host.spec);
    if let HostKind::Reapi(engine) = &host.kind {
        return check_engine(report, host, engine, cfg);
    }
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
    note_backoff(&mut report, host, cfg);
    if connect(&mut report, route, cfg, timeouts).is_break() {
        return report;
    }
    let version = describe_protocol(&mut report, host, cfg);
    let session = Session {
        // No cache: a probe is about what the host's compiler makes.
        target: remote::Target {
            cache_key: None,
            route,
            dialer: &cfg.dialer,
            version,
            slot: 0,
            state: None,
            auth_key: host.wants_auth().then_some(cfg.auth_key_file.as_path()),
            // Plain distcc, as every server understands it: the objects are compared
            // here rather than by the server.
            ext: None,
        },
        cfg,
        sched: Scheduler::lock_files(work.join("lock")),
        timeouts,
    };
    let Some(first) = probes.first() else {
        return report;
    };
    let server = identify(&session, first);
    report.line("server", server.describe());
    if let Server::Unknown(e) = &server {
        // The conversation itself fails: the compile probes would say the same.
        report.problem(
            classify_error_verdict(e),
            format!("the server does not complete a request: {e}"),
        );
        return report;
    }
    let mut offers_ext = false;
    for probe in probes {
        offers_ext |= check_compiler(&mut report, &session, probe, &server);
    }
    if offers_ext {
        report.line(
            "extension",
            "offered: swarmcc jobs use its negotiated protocol with this host",
        );
    }
    report
}

/// A REAPI engine: reachable, and what its capabilities say (sha256, execution, the
/// batch limit). No probe compile: an engine runs what it is given on its workers,
/// which `integration/reapi-engine.sh` and the README say must have our compilers.
fn check_engine(
    mut report: HostReport,
    host: &HostSpec,
    engine: &ReapiHost,
    cfg: &ClientConfig,
) -> HostReport {
    if host.down {
        report.verdict = Verdict::Skipped;
        report.reason = "listed with ,down: never used".into();
        return report;
    }
    note_backoff(&mut report, host, cfg);
    match crate::client::reapi::probe(engine, cfg) {
        Ok(found) => report.line("engine", found),
        Err(e) if e.contains("cannot connect") => report.problem(Verdict::Unreachable, e),
        Err(e) => report.problem(Verdict::Failed, e),
    }
    report
}

/// Probes a rustc job on the host (after the C checks, whatever they found).
pub(super) fn check_rustc(
    report: &mut HostReport,
    host: &HostSpec,
    rustc: &Path,
    cfg: &ClientConfig,
    dir: &Path,
) {
    if host.down || remote::route_of(host).is_none() {
        return;
    }
    match crate::client::rustc::probe::check(cfg, rustc, host, dir) {
        Ok(found) => report.line("rustc", found),
        Err(why) => report.problem(Verdict::Failed, format!("rustc: {why}")),
    }
}

/// Says so when builds skip the host for a recent failure: the check itself ignores
/// the backoff and changes nothing.
fn note_backoff(report: &mut HostReport, host: &HostSpec, cfg: &ClientConfig) {
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
}

/// Step 1, connect: a TCP host unreachable ends the check. Over ssh each request below
/// starts ssh, so its failure shows there.
fn connect(
    report: &mut HostReport,
    route: Route<'_>,
    cfg: &ClientConfig,
    timeouts: Timeouts,
) -> ControlFlow<()> {
    match route {
        Route::Tcp { host: name, port } => {
            match timed_connect(&cfg.dialer, name, port, timeouts.connect) {
                Ok((addr, took)) => {
                    report.line("connect", format!("{} ({addr})", format_duration(took)))
                }
                Err(why) => {
                    report.problem(Verdict::Unreachable, why);
                    return ControlFlow::Break(());
                }
            }
        }
        Route::Ssh { .. } => report.line("connect", cfg.dialer.describe(route)),
    }
    ControlFlow::Continue(())
}

/// Step 2, the protocol the host's options choose, in the report's words.
fn describe_protocol(report: &mut HostReport, host: &HostSpec, cfg: &ClientConfig) -> Version {
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
    version
}

/// Step 2, which server: the first probe sent under a compiler name no server has.
fn identify(session: &Session<'_>, first: &Probe) -> Server {
    let mut identify_argv = first.remote_argv.clone();
    identify_argv[0] = IDENTIFY_COMPILER.to_owned();
    match send(session, &identify_argv, first) {
        Ok((a, _)) if a.reply.stderr.starts_with(b"swarmccd: ") => Server::Swarmccd,
        Ok((a, _)) => Server::Other(first_line(&a.reply.stderr)),
        Err(AttemptError::Conn(ConnError::Eof { mid_message: false })) => Server::Distccd,
        Err(e) => Server::Unknown(e.to_string()),
    }
}

/// One attempt of the session.
fn send(
    session: &Session<'_>,
    remote_argv: &[String],
    probe: &Probe,
) -> Result<(Answer, Vec<u8>), AttemptError> {
    attempt(
        &session.target,
        remote_argv,
        probe,
        session.cfg,
        &session.sched,
        session.timeouts,
    )
}

/// Step 3, one compiler: its probe sent and the answer judged. Returns whether the
/// server offered swarmcc's extension.
fn check_compiler(
    report: &mut HostReport,
    session: &Session<'_>,
    probe: &Probe,
    server: &Server,
) -> bool {
    let started = Instant::now();
    let outcome = send(session, &probe.remote_argv, probe);
    let took = started.elapsed();
    let label = probe.name.as_str();
    let offers_ext = matches!(&outcome, Ok((a, _)) if a.offers_ext);
    match outcome.map(|(a, text)| (a.reply, text)) {
        Ok((reply, text)) if reply.status == 0 => {
            compare_object(report, probe, &reply, &text, took)
        }
        Ok((reply, _)) => judge_failure(report, probe, &reply),
        Err(AttemptError::Conn(ConnError::Eof { mid_message: false })) => {
            judge_silence(report, probe, server)
        }
        Err(e) => {
            let text = e.to_string();
            let verdict = classify_error_verdict(&text);
            report.line(label, format!("{verdict}: {text}"));
            report.problem(verdict, format!("{label}: {text}"));
        }
    }
    offers_ext
}

/// The compile succeeded there: is its object the one made here?
fn compare_object(
    report: &mut HostReport,
    probe: &Probe,
    reply: &Reply,
    text: &[u8],
    took: Duration,
) {
    let label = probe.name.as_str();
    let sent = &probe.remote_argv[0];
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

/// The compile failed there (it compiles here): refused by the server, a compiler not
/// runnable there, or a real failure.
fn judge_failure(report: &mut HostReport, probe: &Probe, reply: &Reply) {
    let label = probe.name.as_str();
    let sent = &probe.remote_argv[0];
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
        let why = format!(
            "{sent} cannot be run there (exit 110: not installed, or not allowed){}",
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
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

/// The server closed the connection without an answer: a refusal, explained by which
/// server it is.
fn judge_silence(report: &mut HostReport, probe: &Probe, server: &Server) {
    let label = probe.name.as_str();
    let sent = &probe.remote_argv[0];
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
