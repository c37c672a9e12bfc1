//! rustc jobs (`protocol::rustc`, extension feature `rustc`), served when swarmccd was
//! started with `--rustc`: the toolchain is found by the client's `rustc -vV`
//! identity, the inputs the server lacks arrive once and stay in a content-addressed
//! store (`blobs`), and the job runs on a private root that holds each client path `P`
//! at `ROOT/P`: in a namespace where `ROOT` is `/` (`namespace`), so that rustc sees and
//! records the client's own paths, or, where that is not allowed, below `ROOT` with
//! `--remap-path-prefix`. Every file rustc wrote in the job's output directories goes
//! back at its client path.
//!
//! Steps: `farm` (the request looked up in the farm cache: a hit is the reply at
//! once) → `inputs` (the request, the files it needs, the job root) → `execute` (a
//! compile slot and the codegen tokens beside it, the sandboxed run; `early`, the
//! metadata ahead of the reply) → `outputs` (what rustc wrote) → the reply (and, for a
//! success, the farm cache's entry). Without
//! `--rustc`, or for another toolchain, the job is refused in the extension's own terms
//! — the features accepted (without `rustc`) and the reason — so that the client runs
//! rustc locally at once.

mod early;
mod execute;
mod farm;
mod inputs;
mod outputs;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::args::rustc as rustc_args;
use crate::blobs::BlobStore;
use crate::conn::Conn;
use crate::exec;
use crate::exit::ExitCode;
use crate::protocol::ext::{self, Preamble};
use crate::protocol::rustc::{self, RustcReply};
use crate::toolchain::rustc::Toolchains;
use crate::transport::Peer;

use super::record::{JobResult, Names, RejectReason, Summary};
use super::reply::write_prelude;
use super::request::read_failure;
use super::Shared;

use crate::protocol::rustc::{NOT_SERVED, NO_TOOLCHAIN};

/// `--rustc` and what goes with it.
#[derive(Debug, Clone)]
pub struct RustcConfig {
    /// The store of input files by content (`--rustc-cache`); `None`: in the job
    /// directory's parent, named for the user the server runs as.
    pub cache_dir: Option<PathBuf>,
    /// Its bound in bytes (`--rustc-cache-size`).
    pub cache_bytes: u64,
    /// rustc programs to offer besides rustup's toolchains (`--rustc-toolchain`).
    pub toolchains: Vec<PathBuf>,
}

/// What a server that serves rustc jobs holds for them.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) toolchains: Toolchains,
    pub(crate) blobs: BlobStore,
    /// A view at the client's paths could not be entered (no user namespaces here):
    /// no more are tried.
    no_views: AtomicBool,
}

impl Service {
    /// Finds the toolchains and opens the store; says what it found, once, at start.
    pub(crate) fn start(cfg: &RustcConfig, tmpdir: &std::path::Path) -> std::io::Result<Service> {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        let dir = cfg
            .cache_dir
            .clone()
            .unwrap_or_else(|| tmpdir.join(format!("swarmccd-rustc-cache-{uid}")));
        let blobs = BlobStore::open(&dir, cfg.cache_bytes)?;
        own_private(&dir)?;
        let home = crate::toolchain::rustc::rustup_home();
        let toolchains = Toolchains::discover(&cfg.toolchains, home.as_deref());
        for p in &toolchains.problems {
            log::warn!("rustc toolchains: {p}");
        }
        if let (Some(why), true) = (
            &toolchains.rustup_unreadable,
            toolchains.identities().is_empty(),
        ) {
            log::warn!("rustc toolchains: {why}; give --rustc-toolchain");
        }
        let (bytes, files) = blobs.usage();
        log::info!(
            "serving rustc jobs for {} (input cache {}: {files} files, {} MiB of {} MiB)",
            describe(&toolchains),
            dir.display(),
            bytes >> 20,
            cfg.cache_bytes >> 20
        );
        Ok(Service {
            toolchains,
            blobs,
            no_views: AtomicBool::new(false),
        })
    }
}

/// The store must be ours alone: whoever can write to it chooses what rustc reads.
fn own_private(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} belongs to another user", dir.display()),
        ));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

impl Service {
    /// Whether rustc jobs can still run at their client's paths (see `namespace`).
    fn views_work(&self) -> bool {
        !self.no_views.load(Ordering::Relaxed)
    }

    fn views_fail(&self) {
        self.no_views.store(true, Ordering::Relaxed);
    }
}

fn describe(t: &Toolchains) -> String {
    let ids = t.identities();
    if ids.is_empty() {
        "no toolchain (none found: every rustc job will be refused)".into()
    } else {
        ids.join(", ")
    }
}

/// Whether an extension request asks for a rustc job.
pub(super) fn wanted(p: &Preamble) -> bool {
    p.has(rustc::FEATURE)
}

/// Serves (or refuses) the rustc job whose preamble was just read.
pub(super) fn serve(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    preamble: &Preamble,
    names: &mut Names,
) -> Summary {
    names.compiler = "rustc".into();
    let Some(service) = &shared.rustc else {
        return refuse_before(conn, NOT_SERVED, RejectReason::NotDistributable);
    };
    let Some(program) = service.toolchains.find(&preamble.identity) else {
        let why = format!(
            "{NO_TOOLCHAIN} {:?} here (this swarmccd has: {})",
            preamble.identity,
            describe(&service.toolchains)
        );
        return refuse_before(conn, &why, RejectReason::CompilerMismatch);
    };
    let early = preamble.has(rustc::EARLY_METADATA);
    // Hits are marked only for a client that said it reads the mark.
    let mark = shared.cache.is_some() && preamble.has(rustc::FARM_CACHE);
    let features: Vec<&str> = [
        Some(rustc::FEATURE),
        early.then_some(rustc::EARLY_METADATA),
        mark.then_some(rustc::FARM_CACHE),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut accepted = Vec::new();
    if ext::encode_accepted(&features, &mut accepted).is_err()
        || !write_prelude(conn.stream(), &accepted)
    {
        return Summary::disconnected(ExitCode::IoError, "client left before its job");
    }
    let limits = rustc::Limits::default();
    let request = match conn.next_event(&mut rustc::RustcRequestDecoder::new(limits), None) {
        Ok(r) => r,
        Err(e) => return read_failure(e),
    };
    let job = match checked(&request) {
        Ok(job) => job,
        Err(why) => return refuse_job(conn, &why),
    };
    names.input = job.crate_name.clone();
    let cache = shared.cache.as_ref();
    let cached = farm::Cached::of(cache, &preamble.identity, &request, &job, mark);
    if let Some(done) = cached.as_ref().and_then(|c| c.answer(conn, peer)) {
        return done;
    }
    if let Err(e) = inputs::receive(conn, &service.blobs, &request) {
        return e.summary(conn);
    }
    let mut last_sign = Instant::now();
    let ran = execute::run(
        conn,
        peer,
        shared,
        execute::Job {
            program,
            request: &request,
            job: &job,
            service,
            early,
        },
        &mut last_sign,
    );
    match ran {
        Ok((reply, took)) => {
            if let Some(c) = &cached {
                c.store(peer, &job.crate_name, &reply);
            }
            answer(conn, reply, took)
        }
        Err(e) => e.summary(conn),
    }
}

/// The job the request asks for, if this server may run it.
fn checked(request: &rustc::RustcRequest) -> Result<rustc_args::RustcJob, String> {
    let job =
        rustc_args::classify(&request.args).map_err(|why| format!("not distributable: {why}"))?;
    match request
        .env
        .iter()
        .find(|(n, _)| !rustc_args::allowed_on_server(n))
    {
        Some((name, _)) => Err(format!("environment variable {name} is not a job's")),
        None => Ok(job),
    }
}

/// Sends the reply, and says what it was.
fn answer(conn: &mut Conn, reply: RustcReply, took: std::time::Duration) -> Summary {
    let raw = exec::exit_status(reply.status.min(255) as u8);
    let result = if reply.status == 0 {
        JobResult::CompileOk
    } else {
        JobResult::CompileError
    };
    let mut bytes = Vec::new();
    if let Err(e) = rustc::encode_reply(&reply, &mut bytes) {
        return refuse_job(conn, &format!("the reply cannot be sent: {e}"));
    }
    match conn.send(&bytes) {
        Ok(()) => Summary::new(result, raw, 0).compiled_for(took),
        Err(e) => Summary::disconnected(ExitCode::IoError, format!("sending the reply: {e}"))
            .compiled_for(took),
    }
}

/// Why a job stopped before its reply, and how to tell the client.
#[derive(Debug)]
pub(super) enum Stop {
    /// Told to the client (`RREF`), which then runs rustc itself.
    Refuse(String, RejectReason),
    /// The connection failed or the client left: nobody to tell.
    Gone(Summary),
}

impl Stop {
    fn summary(self, conn: &mut Conn) -> Summary {
        match self {
            Stop::Refuse(why, reason) => refuse_job(conn, &why).rejected(reason),
            Stop::Gone(summary) => summary,
        }
    }
}

/// Refuses before accepting: no `rustc` among the accepted features, then the reason.
/// The request that may follow is not read.
fn refuse_before(conn: &Conn, why: &str, reason: RejectReason) -> Summary {
    let mut bytes = Vec::new();
    let encoded =
        ext::encode_accepted(&[], &mut bytes).and_then(|()| rustc::encode_refused(why, &mut bytes));
    let summary = Summary::new(JobResult::Other, 0, ExitCode::AccessDenied.code())
        .because(why.to_string())
        .rejected(reason);
    if encoded.is_ok() && !write_prelude(conn.stream(), &bytes) {
        return summary.because(format!("{why}; the client left before hearing so"));
    }
    summary
}

/// Refuses an accepted job: the client runs it locally.
fn refuse_job(conn: &mut Conn, why: &str) -> Summary {
    log::warn!("rustc job refused: {why}");
    let mut bytes = Vec::new();
    let _ = rustc::encode_refused(why, &mut bytes);
    let _ = conn.send(&bytes);
    Summary::new(JobResult::Other, 0, ExitCode::AccessDenied.code())
        .because(why.to_string())
        .rejected(RejectReason::NotDistributable)
}
