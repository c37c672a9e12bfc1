//! Running a rustc job: a compile slot (and, beside it, up to [`MAX_EXTRA_TOKENS`] more
//! free slots lent to rustc as jobserver tokens for its codegen threads, see
//! `server::codegen`), the private root with the inputs in place, and rustc confined
//! to its job directory, its paths mapped below the root and back.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::args::rustc::{self as rustc_args, RustcJob};
use crate::conn::Conn;
use crate::exec::{self, End};
use crate::exit::ExitCode;
use crate::namespace;
use crate::protocol::rustc::{RustcReply, RustcRequest};
use crate::sandbox;
use crate::transport::Peer;

use super::super::record::{RejectReason, Summary};
use super::super::reply::{keep_alive, write_prelude};
use super::super::{codegen, Permit, Shared};
use super::early::Watch;
use super::{inputs, outputs, Service, Stop};

/// At most this many slots beyond its own go to one job's codegen threads: enough for
/// a big crate's parallel codegen, without starving the jobs queued behind it.
const MAX_EXTRA_TOKENS: usize = 3;

/// What the job runs.
pub(super) struct Job<'a> {
    pub(super) program: &'a Path,
    pub(super) request: &'a RustcRequest,
    pub(super) job: &'a RustcJob,
    pub(super) service: &'a Service,
    /// The client takes the early metadata part (see `early`).
    pub(super) early: bool,
}

/// Runs the job to its reply (whatever rustc's exit status), and how long rustc ran.
pub(super) fn run(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    job: Job<'_>,
    last_sign: &mut Instant,
) -> Result<(RustcReply, Duration), Stop> {
    let slot = wait_for_slot(conn, shared, last_sign)?;
    let fault = |what: &str, e: &dyn std::fmt::Display| server_fault(peer, what, e);
    let place = Place::create(shared, &job, fault)?;
    let fifo = place.tmp.join("jobserver");
    let loan = shared
        .lending
        .lend(&shared.compile_slots, MAX_EXTRA_TOKENS, &fifo)
        .map_err(|e| fault("creating the codegen jobserver", &e))?;
    let confinement = if shared.cfg.sandbox {
        sandbox::prepare(place.dir.path()).map_err(|e| fault("sandbox", &e))?
    } else {
        None
    };
    let opts = exec::Options {
        capture_dir: Some(place.dir.path().to_owned()),
        deadline: shared.cfg.job_lifetime.map(|l| Instant::now() + l),
        // Often enough that cargo hears of the metadata soon after rustc wrote it.
        poll_interval: Duration::from_millis(if job.early { 40 } else { 250 }),
        ..exec::Options::default()
    };
    let start = |mut cmd: Command, in_view: bool| {
        // rustc opens the jobserver by name: inside the view, below `/`.
        let seen = if in_view {
            format!("{JOB_TMP}/jobserver")
        } else {
            fifo.to_string_lossy().into_owned()
        };
        cmd.env("CARGO_MAKEFLAGS", codegen::makeflags(&seen));
        if in_view {
            // Mounting comes first, which a confined thread may not do.
            if let Some(c) = &confinement {
                sandbox::confine_in_child(c, &mut cmd);
            }
            exec::spawn(&mut cmd, &opts, false)
        } else {
            sandbox::spawn_confined(confinement.as_ref(), || exec::spawn(&mut cmd, &opts, false))
        }
    };
    let (running, in_view) = start_somehow(peer, shared, &job, &place, start)
        .map_err(|e| fault(&format!("starting {}", job.program.display()), &e))?;
    let dep_info = rustc_args::dep_info_path(job.job, &job.request.cwd);
    let mut watch = match running.stderr_file() {
        Ok(f) if job.early => Some(Watch::new(f, &place.root, in_view, dep_info)),
        _ => None,
    };
    let mut cancel = || {
        if let Some(part) = watch.as_mut().and_then(Watch::ready) {
            send_early(conn, peer, &part);
        }
        let alive = keep_alive(conn.stream(), last_sign);
        shared.stopping() || !alive || conn.stream().peer_closed()
    };
    let finished = running
        .wait(&opts, &mut cancel)
        .map_err(|e| fault("waiting for rustc", &e))?;
    drop(loan);
    drop(slot);
    reply_of(peer, &job, &place, finished, in_view)
}

/// The reply to a finished rustc: its status, messages and outputs (or why there is
/// none); inputs rustc wrote to are dropped from the store.
fn reply_of(
    peer: Peer,
    job: &Job<'_>,
    place: &Place,
    finished: exec::Finished,
    in_view: bool,
) -> Result<(RustcReply, Duration), Stop> {
    for hash in place.placed.damaged() {
        log::warn!("client {peer}: rustc job wrote to its input {hash}; dropped from the store");
        job.service.blobs.remove(hash);
    }
    let status = status_of(&finished)?;
    let limit = crate::protocol::rustc::Limits::default().max_blob;
    let files = outputs::collect(&place.root, &place.out_dirs, &place.placed, limit)
        .map_err(|e| Stop::Refuse(e, RejectReason::TooLarge))?;
    let root = if in_view {
        "/".to_string()
    } else {
        place.root_text()
    };
    let reply = RustcReply {
        status,
        stdout: finished.stdout,
        stderr: finished.stderr,
        root,
        outputs: files,
    };
    Ok((reply, finished.elapsed))
}

/// Sends the early metadata part, straight to the socket as keep-alives are.
fn send_early(conn: &Conn, peer: Peer, part: &RustcReply) {
    let mut bytes = Vec::new();
    match crate::protocol::rustc::encode_early(part, &mut bytes) {
        Ok(()) if write_prelude(conn.stream(), &bytes) => {
            log::debug!("client {peer}: rustc metadata sent ahead of the reply");
        }
        Ok(()) => {}
        Err(e) => log::debug!("client {peer}: no early metadata: {e}"),
    }
}

fn server_fault(peer: Peer, what: &str, e: &dyn std::fmt::Display) -> Stop {
    log::error!("client {peer}: rustc job: {what}: {e}");
    Stop::Refuse(
        format!("server error: {what}: {e}"),
        RejectReason::ServerError,
    )
}

/// The job's directory: its root with the inputs placed, its temporary directory and
/// its output directories.
struct Place {
    dir: tempfile::TempDir,
    root: PathBuf,
    tmp: PathBuf,
    placed: inputs::Placed,
    out_dirs: Vec<String>,
}

impl Place {
    fn create(
        shared: &Shared,
        job: &Job<'_>,
        fault: impl Fn(&str, &dyn std::fmt::Display) -> Stop,
    ) -> Result<Place, Stop> {
        let dir = tempfile::Builder::new()
            .prefix("swarmccd_rustc_")
            .tempdir_in(&shared.cfg.tmpdir)
            .map_err(|e| fault("creating the job directory", &e))?;
        let root = dir.path().join("root");
        fs::create_dir(&root).map_err(|e| fault("creating the job directory", &e))?;
        let placed = inputs::place(&job.service.blobs, job.request, &root)?;
        let tmp = root.join(JOB_TMP.trim_start_matches('/'));
        fs::create_dir(&tmp).map_err(|e| fault("creating the job directory", &e))?;
        let out_dirs = rustc_args::output_dirs(job.job, &job.request.cwd);
        for d in out_dirs.iter().chain([&job.request.cwd]) {
            fs::create_dir_all(inputs::under(&root, d))
                .map_err(|e| fault("creating an output directory", &e))?;
        }
        Ok(Place {
            dir,
            root,
            tmp,
            placed,
            out_dirs,
        })
    }

    fn root_text(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }
}

/// Starts rustc at the client's paths where it can, else below the root with its
/// paths remapped; says which.
fn start_somehow(
    peer: Peer,
    shared: &Shared,
    job: &Job<'_>,
    place: &Place,
    start: impl Fn(Command, bool) -> std::io::Result<exec::Running>,
) -> std::io::Result<(exec::Running, bool)> {
    let remapped = || command(shared, job, &place.root_text(), &place.tmp);
    let Some(cmd) = view_command(shared, job, &place.root) else {
        return Ok((start(remapped(), false)?, false));
    };
    match start(cmd, true) {
        Ok(running) => {
            log::debug!(
                "client {peer}: rustc {} at the client's paths",
                job.job.crate_name
            );
            Ok((running, true))
        }
        Err(e) => {
            log::warn!(
                "client {peer}: rustc at the client's paths did not start ({e}); running \
                 rustc jobs below their job root, paths remapped, from now on"
            );
            job.service.views_fail();
            Ok((start(remapped(), false)?, false))
        }
    }
}

/// rustc's exit status as the reply gives it, or why there is none.
fn status_of(finished: &exec::Finished) -> Result<u32, Stop> {
    match finished.end {
        End::Exited => {}
        End::TimedOut => {
            return Err(Stop::Refuse(
                "rustc ran past the server's --job-lifetime".into(),
                RejectReason::ServerError,
            ))
        }
        End::Cancelled => {
            return Err(Stop::Gone(Summary::disconnected(
                ExitCode::IoError,
                "client left during the compile",
            )))
        }
    }
    Ok(
        match (
            exec::exit_code(finished.status),
            exec::signal(finished.status),
        ) {
            (_, Some(sig)) => 128 + sig as u32,
            (Some(code), None) => code as u32,
            (None, None) => 255,
        },
    )
}

/// The job's temporary directory, inside its root (a path no client file has).
const JOB_TMP: &str = "/.swarmccd-tmp";

/// rustc as the client would run it, in a view of the root at `/` (see `namespace`),
/// or `None` where there can be no such view.
fn view_command(shared: &Shared, job: &Job<'_>, root: &Path) -> Option<Command> {
    if !job.service.views_work() {
        return None;
    }
    // The toolchain's whole directory: rustc finds its libraries and sysroot there.
    let sysroot = job.program.parent()?.parent()?.to_owned();
    let view = match namespace::prepare(root, Path::new(&job.request.cwd), &[sysroot]) {
        Ok(view) => view,
        Err(why) => {
            log::debug!(
                "rustc {}: no view at the client's paths: {why}",
                job.job.crate_name
            );
            return None;
        }
    };
    let mut cmd = Command::new(job.program);
    cmd.args(&job.request.args).env_clear();
    base_env(shared, &mut cmd, Path::new(JOB_TMP));
    cmd.envs(job.request.env.iter().map(|(k, v)| (k, v)));
    view.configure(&mut cmd);
    Some(cmd)
}

fn base_env(shared: &Shared, cmd: &mut Command, tmp: &Path) {
    for (k, v) in &shared.job_env {
        if k == "PATH" || k == crate::compiler::SAFEGUARD_VAR {
            cmd.env(k, v);
        }
    }
    cmd.env("TMPDIR", tmp).env("LC_ALL", "C");
}

/// rustc with the client's arguments, paths moved below the root, and the client's
/// environment (its paths moved too) on a minimal one of ours.
fn command(shared: &Shared, job: &Job<'_>, root: &str, tmp: &Path) -> Command {
    let below = |p: &str| format!("{root}{p}");
    let args = rustc_args::map_paths(&job.request.args, &below);
    let mut cmd = Command::new(job.program);
    cmd.args(args)
        // Every path rustc records (debug info, panics, file!()) as the client's.
        .arg(format!("--remap-path-prefix={root}/=/"))
        .current_dir(inputs::under(Path::new(root), &job.request.cwd))
        .env_clear();
    base_env(shared, &mut cmd, tmp);
    for (name, value) in &job.request.env {
        if rustc_args::mapped_env(name) && value.starts_with('/') {
            cmd.env(name, below(value));
        } else {
            cmd.env(name, value);
        }
    }
    cmd
}

/// Waits for a compile slot, keeping the client informed, and noticing it leave.
fn wait_for_slot<'a>(
    conn: &Conn,
    shared: &'a Shared,
    last_sign: &mut Instant,
) -> Result<Permit<'a>, Stop> {
    let _queued = shared.stats.queued();
    loop {
        let wait = Duration::from_millis(250);
        if let Some(permit) = shared.compile_slots.acquire_timeout(wait) {
            return Ok(permit);
        }
        if let Some(permit) = shared.lending.reclaim(&shared.compile_slots) {
            return Ok(permit);
        }
        let alive = keep_alive(conn.stream(), last_sign);
        if shared.stopping() || !alive || conn.stream().peer_closed() {
            return Err(Stop::Gone(Summary::disconnected(
                ExitCode::IoError,
                "client left while waiting for a slot",
            )));
        }
    }
}
