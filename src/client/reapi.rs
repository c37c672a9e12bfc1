//! A job on a REAPI engine (`reapi://`, `reapis://` hosts): the preprocessed source
//! and the compiler invocation made into what `crate::reapi` runs, the monitor's
//! phases as it goes, and its outcome as the reply a distcc host would have sent, so
//! that the job ends as any remote job does (`job::finish`: the object written, the
//! diagnostics shown once, a compile error retried here).
//!
//! The command the engine runs is the one swarmccd would run (`args`' server argv on
//! the input root's file, with `-pipe`), the compiler named by its absolute path on our
//! `PATH` (REAPI has no compiler check: workers must have the same compiler there),
//! with `PATH=/usr/bin:/bin`, `LC_ALL=C` and our compiler's identity in
//! `SWARMCC_COMPILER`, so that the engine's action cache keys on the toolchain too.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use crate::args::{self, filename, Decision, RemoteJob};
use crate::config::ClientConfig;
use crate::hosts::ReapiHost;
use crate::protocol::Reply;
use crate::reapi::{self, Endpoint, Limits, Outcome, Served, Step};
use crate::state::{Phase, StateFile};
use crate::toolchain::LazyIdentity;

use super::remote::Preprocessor;

/// Why an attempt on an engine gave no reply.
#[derive(Debug)]
pub enum Failure {
    /// The source did not preprocess: the local compile reports it.
    Preprocess(String),
    /// The engine (or what swarmcc needs to reach it) failed; the text says which step.
    Engine(String),
    /// A cache-only engine had no result: try elsewhere, without blaming it.
    Miss(String),
}

/// Where the attempt reports to: the state file, as `label[slot]`.
pub struct Place<'a> {
    pub state: Option<&'a StateFile>,
    pub label: &'a str,
    pub slot: u32,
}

/// The job as the engine is to run it.
pub struct Request<'a> {
    pub job: &'a RemoteJob,
    /// The command a distcc host would run (`args`' remote argv, cross names applied).
    pub remote_argv: &'a [String],
    /// The `PATH` the compiler is looked up in: the job's, without swarmcc's own
    /// masquerade directory (a worker has our compilers, not our shims).
    pub path: &'a OsStr,
    pub identity: &'a LazyIdentity<'a>,
}

/// Runs the request on the engine `host`. The reply is `Ok` whether the compile
/// succeeded or failed there; with it, where the result came from.
pub fn attempt(
    host: &ReapiHost,
    cfg: &ClientConfig,
    request: &Request<'_>,
    cpp: &mut Preprocessor<'_>,
    place: &Place<'_>,
) -> Result<(Reply, Served), Failure> {
    let Request {
        job,
        remote_argv,
        path,
        identity,
    } = *request;
    let ep = endpoint(host, cfg).map_err(Failure::Engine)?;
    // Named as swarmccd names them, for the same objects (gcc names some symbols
    // after its input).
    let input_name = filename::job_input_name(&job.input, job.preprocessed_ext);
    let output_name = filename::job_output_name(&job.output);
    let argv = command(remote_argv, &input_name, &output_name, path).map_err(Failure::Engine)?;
    cpp.start();
    let pre = cpp.wait().map_err(Failure::Preprocess)?;
    let source = pre.text().map_err(Failure::Preprocess)?;
    let mut env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("LC_ALL".to_string(), "C".to_string()),
    ];
    let id = identity.get();
    if !id.is_empty() {
        env.push(("SWARMCC_COMPILER".to_string(), id.to_string()));
    }
    log::debug!("reapi command: {}", shell_words::join(&argv));
    let rjob = reapi::Job {
        argv,
        env,
        input_name: &input_name,
        input: source,
        output_name: &output_name,
        output_paths: true,
    };
    let mut observe = |step: Step| {
        if let Some(st) = place.state {
            let phase = match step {
                Step::Connect => Phase::Connect,
                Step::Send => Phase::Send,
                Step::Compile => Phase::Compile,
                Step::Receive => Phase::Receive,
            };
            st.phase_on(phase, place.label, place.slot);
        }
    };
    let outcome = reapi::compile(&ep, &limits(cfg), rjob, &mut observe).map_err(|e| {
        if e.is_miss() {
            Failure::Miss(e.to_string())
        } else {
            Failure::Engine(e.to_string())
        }
    })?;
    log_outcome(job, place.label, &outcome);
    Ok(reply_of(outcome))
}

/// What `--check-hosts` says of an engine: its capabilities, or why there are none.
pub fn probe(host: &ReapiHost, cfg: &ClientConfig) -> Result<String, String> {
    let ep = endpoint(host, cfg)?;
    let caps = reapi::probe(&ep, &limits(cfg)).map_err(|e| e.to_string())?;
    Ok(format!(
        "REAPI {} at {}:{}, instance \"{}\": sha256, batches up to {} bytes, {}",
        if caps.output_paths {
            "2.1 or later"
        } else {
            "2.0"
        },
        host.host,
        host.port,
        host.instance,
        caps.max_batch,
        if caps.exec {
            "executes actions"
        } else {
            "no execution: only its action cache serves jobs"
        }
    ))
}

fn log_outcome(job: &RemoteJob, label: &str, o: &Outcome) {
    match &o.served {
        Served::ActionCache => log::info!(
            "job {}: reapi {label}: action cache hit (action {})",
            job.input,
            o.action
        ),
        Served::Executed {
            operation,
            cached,
            uploaded,
        } => log::info!(
            "job {}: reapi {label}: executed remotely as operation {operation}{} \
             (action {}, {uploaded} blobs uploaded, exit {})",
            job.input,
            if *cached {
                " from the engine's cache"
            } else {
                ""
            },
            o.action,
            o.exit_code
        ),
    }
}

/// The engine's outcome as a distcc reply (the exit code in wait(2) form).
fn reply_of(o: Outcome) -> (Reply, Served) {
    let status = ((o.exit_code as u32) & 0xff) << 8;
    let reply = Reply {
        status,
        stderr: o.stderr,
        stdout: o.stdout,
        object: if o.exit_code == 0 {
            o.object
        } else {
            Vec::new()
        },
        deps: None,
    };
    (reply, o.served)
}

/// The job's timeouts: `SWARMCC_CONNECT_TIMEOUT` to connect, `DISTCC_IO_TIMEOUT` for
/// each call, `SWARMCC_COMPILE_TIMEOUT` for the execution.
fn limits(cfg: &ClientConfig) -> Limits {
    Limits {
        connect: cfg.connect_timeout.max(Duration::from_millis(100)),
        io: cfg.io_timeout,
        execute: cfg.compile_timeout,
    }
}

/// Where the engine is, with the token and CA certificates read from their files.
pub fn endpoint(host: &ReapiHost, cfg: &ClientConfig) -> Result<Endpoint, String> {
    let token_file = host
        .token_file
        .as_deref()
        .map(Path::new)
        .or(cfg.reapi_token_file.as_deref());
    let token = match token_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the REAPI token file {}: {e}", p.display()))?;
            let token = text.trim().to_string();
            if token.is_empty() {
                return Err(format!("the REAPI token file {} is empty", p.display()));
            }
            Some(token)
        }
        None => None,
    };
    let ca_pem = match &host.ca_file {
        Some(p) => {
            Some(std::fs::read(p).map_err(|e| format!("cannot read the REAPI CA file {p}: {e}"))?)
        }
        None => None,
    };
    Ok(Endpoint {
        host: host.host.clone(),
        port: host.port,
        instance: host.instance.clone(),
        tls: host.tls,
        ca_pem,
        token,
    })
}

/// The engine's command line: the job's command on `input` writing `output`, with
/// `-pipe` (no temporary files in the sandbox), the compiler by its absolute path.
fn command(
    remote_argv: &[String],
    input: &str,
    output: &str,
    path: &OsStr,
) -> Result<Vec<String>, String> {
    let Decision::Remote(job) = args::classify(remote_argv) else {
        return Err("the remote command line does not classify as a compile".into());
    };
    let mut argv = job.server_argv(input, output);
    if !argv.iter().any(|a| a == "-pipe") {
        argv.insert(1, "-pipe".to_string());
    }
    let name = &argv[0];
    if !name.starts_with('/') {
        let found = which::which_in(name, Some(path), "/")
            .map_err(|e| format!("cannot find {name} on PATH to name it to the engine: {e}"))?;
        argv[0] = found.to_string_lossy().into_owned();
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_runs_the_compile_on_the_input_root() {
        let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let argv = command(
            &v("gcc -O2 -DX=1 -c src/main.c -o obj/main.o"),
            "main.i",
            "output.o",
            OsStr::new("/usr/bin:/bin"),
        )
        .unwrap();
        assert!(
            argv[0].starts_with('/') && argv[0].ends_with("gcc"),
            "{argv:?}"
        );
        assert_eq!(argv[1..], v("-pipe -O2 -DX=1 -c main.i -o output.o")[..]);
        assert!(command(
            &v("gcc -O2 -c a.c -o a.o"),
            "a.i",
            "output.o",
            OsStr::new("/nonexistent")
        )
        .is_err());
    }

    #[test]
    fn failures_keep_the_exit_code() {
        let o = Outcome {
            exit_code: 1,
            stdout: vec![],
            stderr: b"x.c:1: error\n".to_vec(),
            object: b"junk".to_vec(),
            served: Served::ActionCache,
            action: "a/1".into(),
        };
        let (reply, _) = reply_of(o);
        assert_eq!(reply.status, 1 << 8);
        assert!(reply.object.is_empty());
    }
}
