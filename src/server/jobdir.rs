//! A job's private directory and what is named in it: the temp input and output
//! names, the compiler's command line for them, and its environment. Preparing it is
//! the step between the policy's [`Admitted`] job and running it.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::args::filename;
use crate::conn::Conn;
use crate::exit::ExitCode;
use crate::transport::Peer;

use super::decide::Admitted;
use super::dialect::Dialect;
use super::record::{JobResult, RejectReason, Summary};
use super::reply::{answer_refusal, server_fault};
use super::request::{unpack_source, Feed, PendingSource};
use super::{Permit, Shared};

/// A private directory per job, removed on drop unless temps are saved.
pub(super) struct JobDir {
    dir: Option<tempfile::TempDir>,
}

impl JobDir {
    pub(super) fn create(shared: &Shared) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("swarmccd_")
            .tempdir_in(&shared.cfg.tmpdir)?;
        let mut me = JobDir { dir: Some(dir) };
        if shared.cfg.save_temps {
            if let Some(d) = me.dir.take() {
                log::info!("DISTCC_SAVE_TEMPS: keeping {}", d.path().display());
                let _ = d.keep();
            }
        }
        Ok(me)
    }
}

/// A job's directory, ready for its compiler.
pub(super) struct Workspace {
    /// Removes the directory when dropped (unless temps are saved).
    pub(super) _cleanup: JobDir,
    pub(super) dir: PathBuf,
    /// Where the source is written when it is not piped to the compiler.
    pub(super) input: PathBuf,
    pub(super) output: PathBuf,
    pub(super) program: PathBuf,
    /// The compiler's command line (argv[0] as the client sent it).
    pub(super) argv: Vec<String>,
    pub(super) env: Vec<(OsString, OsString)>,
    /// Set when the source goes to the compiler's standard input, in this language.
    pub(super) stdin_language: Option<&'static str>,
    /// The sha256 of the source, when the result is to be cached under its key.
    pub(super) source_sha256: Option<String>,
}

impl Workspace {
    /// The driver, as the client asked for it, run in the job directory.
    pub(super) fn driver(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.argv[1..])
            .current_dir(&self.dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// The source of a prepared job: unpacked already, or still on the connection.
pub(super) enum Source<'a> {
    Ready(Vec<u8>),
    Pending(PendingSource, Permit<'a>),
}

/// Creates the job directory and decides how the compiler is called in it. An `Err`
/// is the job's summary (the client has been answered).
pub(super) fn prepare<'a>(
    conn: &mut Conn,
    peer: Peer,
    shared: &Shared,
    dialect: &Dialect,
    admitted: &Admitted,
    feed: Feed<'a>,
) -> Result<(Workspace, Source<'a>), Summary> {
    let guard = JobDir::create(shared).map_err(|e| {
        let why = format!(
            "cannot create a job directory in {}: {e}",
            shared.cfg.tmpdir.display()
        );
        server_fault(conn, peer, shared, dialect, why, ExitCode::IoError)
    })?;
    let dir = match &guard.dir {
        Some(d) => d.path().to_owned(),
        None => return Err(Summary::new(JobResult::Other, 0, 0)),
    };
    let job = &admitted.job;
    let input_name = filename::job_input_name(&job.input, job.preprocessed_ext);
    // Named relative to the job directory (the compiler's cwd), so that the stages a
    // gcc driver runs for this command line mention nothing of this job in particular.
    let output_name = filename::job_output_name(&job.output);
    let source = match feed {
        Feed::Ready(packed) => match unpack_source(shared, dialect, packed) {
            Ok(source) => Source::Ready(source),
            Err(refusal) => {
                return Err(answer_refusal(
                    conn,
                    shared,
                    dialect,
                    &refusal,
                    RejectReason::TooLarge,
                ))
            }
        },
        Feed::Pending(pending, early) => Source::Pending(pending, early),
    };
    let source_sha256 = match &source {
        Source::Ready(text) if dialect.caching() => Some(crate::blobs::sha256_hex(text)),
        _ => None,
    };
    let stdin_language = stdin_language(&input_name, &source);
    let input = dir.join(&input_name);
    let mut argv = match stdin_language {
        Some(lang) => job.server_argv_stdin(lang, &output_name),
        None => job.server_argv(&path_str(&input), &output_name),
    };
    if !argv.iter().any(|a| a == "-pipe") {
        // The assembler reads the compiler's output from a pipe rather than a temp
        // file: the same object, about 2 ms sooner for a small file (gcc and clang).
        argv.insert(1, "-pipe".to_owned());
    }
    log::debug!(
        "client {peer}: compiling {} as: {} {}",
        job.input,
        admitted.program.display(),
        argv[1..].join(" ")
    );
    // The compiler's own temporary files go to the job directory too: the only
    // place it may write when confined.
    let mut env = shared.job_env.clone();
    env.push(("TMPDIR".into(), dir.clone().into_os_string()));
    let workspace = Workspace {
        _cleanup: guard,
        output: dir.join(&output_name),
        input,
        dir,
        program: admitted.program.clone(),
        argv,
        env,
        stdin_language,
        source_sha256,
    };
    Ok((workspace, source))
}

/// The language to name when the source goes to the compiler's standard input. It
/// goes there when it is still on its way, and when it names its own file (line
/// markers), so that a pipe changes nothing; the language then has to be said, since
/// there is no file name to tell it.
fn stdin_language(input_name: &str, source: &Source<'_>) -> Option<&'static str> {
    filename::Language::from_path(input_name)
        .and_then(|l| l.preprocessed_x_name())
        .filter(|_| match source {
            Source::Ready(s) => s.starts_with(b"# 0 \"") || s.starts_with(b"# 1 \""),
            Source::Pending(..) => true,
        })
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
