//! The Remote Execution API (REAPI v2) client: one compile as an Action run by an
//! engine (BuildGrid, Buildbarn, NativeLink, BuildBuddy, buildbox-casd…), through the
//! standard services. It knows nothing of processes or of swarmcc's jobs: it is given
//! a command line, a source and an output name, and returns the compiler's exit code,
//! its output and the object (`client::reapi` makes the job into that).
//!
//! The flow of [`compile`]: `Capabilities` (sha256, execution enabled, the batch
//! limit) → `ActionCache.GetActionResult` → on a hit, the outputs are read; on a miss
//! `FindMissingBlobs`, `BatchUpdateBlobs` or ByteStream `Write` for what is missing,
//! `Execution.Execute` (resumed by `WaitExecution` if the stream breaks), and the
//! outputs are read (`BatchReadBlobs`, ByteStream `Read` for large ones). Every blob
//! read is checked against its digest. Any failure is an [`Error`] with the call and
//! the engine's answer: the caller compiles locally instead.
//!
//! The generated messages and clients are in `proto` (build.rs, from the vendored
//! protos); `digest` names blobs; `action` builds the Action (sans-IO); `session` is
//! the connection and the engine's capabilities; `cas` and `exec` are the services.

pub mod action;
mod cas;
pub mod digest;
mod exec;
pub mod proto;
mod session;

use std::fmt;
use std::time::Duration;

pub use action::Job;
pub use session::{judge as judge_capabilities, Caps};

use proto::build::bazel::remote::execution::v2::{ActionResult, Digest};
use session::Session;

/// Where an engine is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The REAPI instance name (may be empty).
    pub instance: String,
    /// TLS (`reapis://`), checked against `ca_pem` or else the system's and the
    /// webpki roots.
    pub tls: bool,
    pub ca_pem: Option<Vec<u8>>,
    /// Sent as `authorization: Bearer TOKEN` with every call.
    pub token: Option<String>,
}

/// How long each part may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect: Duration,
    /// Each call to the CAS, the action cache and capabilities.
    pub io: Duration,
    /// The execution, from `Execute` to its result.
    pub execute: Duration,
}

/// Where a compile is, for monitors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connect,
    /// Uploading what the engine lacks.
    Send,
    /// Waiting for the engine to run the action.
    Compile,
    /// Reading the outputs.
    Receive,
}

/// Where the result came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// `GetActionResult` had it: nothing ran.
    ActionCache,
    /// `Execute` ran it as this operation (`cached`: the engine found it in its own
    /// cache meanwhile).
    Executed {
        operation: String,
        cached: bool,
        uploaded: usize,
    },
}

/// The compile's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The object (empty when the compile failed).
    pub object: Vec<u8>,
    pub served: Served,
    /// The action's digest, the key the engine caches the result under.
    pub action: String,
}

/// Why a compile could not be done on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    text: String,
    /// Nothing failed: the engine only serves its cache, and it had no result.
    miss: bool,
}

impl Error {
    pub fn new(text: impl Into<String>) -> Error {
        Error {
            text: text.into(),
            miss: false,
        }
    }

    /// A cache-only engine without the result: not the engine's fault.
    pub fn is_miss(&self) -> bool {
        self.miss
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Error {}

/// Runs `job` on the engine at `ep`, telling `observe` each step as it begins.
pub fn compile(
    ep: &Endpoint,
    limits: &Limits,
    job: Job<'_>,
    observe: &mut dyn FnMut(Step),
) -> Result<Outcome, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("cannot start the gRPC runtime: {e}")))?;
    runtime.block_on(flow(ep, limits, job, observe))
}

/// Connects to the engine and reports what it offers (for `--check-hosts`).
pub fn probe(ep: &Endpoint, limits: &Limits) -> Result<Caps, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("cannot start the gRPC runtime: {e}")))?;
    runtime.block_on(async { Session::open(ep, limits).await.map(|s| s.caps) })
}

async fn flow(
    ep: &Endpoint,
    limits: &Limits,
    mut job: Job<'_>,
    observe: &mut dyn FnMut(Step),
) -> Result<Outcome, Error> {
    observe(Step::Connect);
    let s = Session::open(ep, limits).await?;
    job.output_paths = s.caps.output_paths;
    let prepared = action::prepare(&job);
    let key = digest::show(&prepared.action);
    let mut skip_cache_lookup = false;
    match exec::cached(&s, &prepared.action, job.output_name).await? {
        Some(r) if r.exit_code != 0 => {
            // A failure may be the worker's (a missing header, a killed compiler), and
            // a local retry follows any: run it again rather than trust the record.
            log::debug!(
                "reapi: action cache has {key} with exit {}; executing again",
                r.exit_code
            );
            skip_cache_lookup = true;
        }
        Some(r) => {
            observe(Step::Receive);
            match outputs(&s, &r, job.output_name).await {
                Ok(o) => {
                    log::debug!("reapi: action cache hit for {key}");
                    return Ok(o.into_outcome(Served::ActionCache, key));
                }
                Err(e) => {
                    log::debug!("reapi: action cache hit for {key} unusable ({e}); executing")
                }
            }
        }
        None => log::debug!("reapi: action cache miss for {key}"),
    }
    if !s.caps.exec {
        return Err(Error {
            miss: true,
            ..Error::new(format!(
                "the engine has no result for action {key} and does not execute actions"
            ))
        });
    }
    observe(Step::Send);
    let uploaded = cas::upload_missing(&s, &prepared.blobs).await?;
    log::debug!(
        "reapi: {uploaded} of {} blobs were missing",
        prepared.blobs.len()
    );
    observe(Step::Compile);
    let done = exec::execute(&s, &prepared.action, skip_cache_lookup, limits.execute).await?;
    observe(Step::Receive);
    let o = outputs(&s, &done.result, job.output_name).await?;
    log::debug!(
        "reapi: operation {} done, exit {}{}",
        done.operation,
        o.exit_code,
        if done.cached { " (engine's cache)" } else { "" }
    );
    let served = Served::Executed {
        operation: done.operation,
        cached: done.cached,
        uploaded,
    };
    Ok(o.into_outcome(served, key))
}

/// The outputs of a result, read and checked.
struct Outputs {
    exit_code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    object: Vec<u8>,
}

impl Outputs {
    fn into_outcome(self, served: Served, action: String) -> Outcome {
        Outcome {
            exit_code: self.exit_code,
            stdout: self.stdout,
            stderr: self.stderr,
            object: self.object,
            served,
            action,
        }
    }
}

/// Reads the object (when the compile succeeded), stdout and stderr of `r`: inline
/// where the engine put them there, else from the CAS.
async fn outputs(s: &Session, r: &ActionResult, output: &str) -> Result<Outputs, Error> {
    let file = r.output_files.iter().find(|f| f.path == output);
    let object_digest = match (r.exit_code, file) {
        (0, None) => {
            return Err(Error::new(format!(
                "the action succeeded but has no output {output}"
            )))
        }
        (0, Some(f)) => Some(
            f.digest
                .clone()
                .ok_or_else(|| Error::new(format!("output {output} has no digest")))?,
        ),
        _ => None,
    };
    let inline = |raw: &[u8], d: &Option<Digest>| -> Option<Vec<u8>> {
        match d {
            Some(d) if d.size_bytes > 0 && raw.is_empty() => None,
            Some(d) if digest::verify(d, raw).is_err() => None,
            _ => Some(raw.to_vec()),
        }
    };
    let object_inline = match (&object_digest, file) {
        (Some(d), Some(f)) if !f.contents.is_empty() || d.size_bytes == 0 => {
            inline(&f.contents, &object_digest)
        }
        _ => None,
    };
    let stdout_inline = inline(&r.stdout_raw, &r.stdout_digest);
    let stderr_inline = inline(&r.stderr_raw, &r.stderr_digest);
    let mut wanted = Vec::new();
    for (have, d) in [
        (&object_inline, &object_digest),
        (&stdout_inline, &r.stdout_digest),
        (&stderr_inline, &r.stderr_digest),
    ] {
        if let (None, Some(d)) = (have, d) {
            wanted.push(d.clone());
        }
    }
    let got = cas::download(s, &wanted).await?;
    let pick = |have: Option<Vec<u8>>, d: &Option<Digest>| -> Vec<u8> {
        have.or_else(|| d.as_ref().and_then(|d| got.get(&d.hash).cloned()))
            .unwrap_or_default()
    };
    Ok(Outputs {
        exit_code: r.exit_code,
        object: pick(object_inline, &object_digest),
        stdout: pick(stdout_inline, &r.stdout_digest),
        stderr: pick(stderr_inline, &r.stderr_digest),
    })
}
