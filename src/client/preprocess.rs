//! The local preprocessing step of a remote job: started in the background before the
//! connection is opened (so both overlap), waited for when the request body is due, and
//! kept across attempts so that a second host does not cost a second run.
//!
//! Runs the driver, or `cc1 -E` itself where `direct_cpp` learnt how, under one of the
//! `--localslots_cpp` slots; the monitor shows it as `localhost` in phase Preprocess.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use tempfile::TempPath;

use crate::agent::LocalKind;
use crate::args::RemoteJob;
use crate::client::direct_cpp::{CppPlans, DryRun, Learning, Lookup, Names};
use crate::client::lease::{Held, Scheduler};
use crate::client::local::CompilerCommand;
use crate::state::Phase;

/// The preprocessed translation unit, kept across attempts so that a second host does
/// not cost a second preprocessing run.
#[derive(Debug)]
pub struct Preprocessed {
    /// Where the text is: the preprocessor's temp file, or the user's own `.i`.
    path: PathBuf,
    /// Removes the temp file when the job is over (`None`: not ours to remove).
    _temp: Option<TempPath>,
    /// The text, once something needed it in memory (compression, a MAC); a plain
    /// protocol-1 body goes from the file to the socket without it (`sendfile`).
    text: Option<Vec<u8>>,
    /// The preprocessor's own diagnostics (e.g. `#warning`), shown only if the remote
    /// result is accepted — a local fallback prints its own.
    pub stderr: Vec<u8>,
    /// The dependency file the preprocessor wrote, waiting to be moved into place.
    pub deps: Option<TempPath>,
}

impl Preprocessed {
    /// The text in memory, read from its file the first time.
    pub fn text(&mut self) -> Result<&[u8], String> {
        if self.text.is_none() {
            let text = std::fs::read(&self.path)
                .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
            self.text = Some(text);
        }
        Ok(self.text.as_deref().unwrap_or_default())
    }

    /// The text's file, open, and its length.
    pub(crate) fn open(&self) -> Result<(std::fs::File, u64), String> {
        let fail = |e: std::io::Error| format!("cannot read {}: {e}", self.path.display());
        let file = std::fs::File::open(&self.path).map_err(fail)?;
        let len = file.metadata().map_err(fail)?.len();
        Ok((file, len))
    }
}

enum CppState {
    Idle,
    Running(Box<RunningCpp>),
    Done(Result<Preprocessed, String>),
}

struct RunningCpp {
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
    i_file: TempPath,
    deps: Option<TempPath>,
    /// The local preprocessing slot, held until the preprocessor exits.
    _slot: Option<Held>,
    way: CppWay,
    /// The driver's arguments, to run it again if the run without it failed.
    args: Vec<OsString>,
}

/// How the preprocessor was started (see `direct_cpp`).
enum CppWay {
    Driver,
    /// `cc1 -E` itself, from a learnt plan.
    Direct,
    /// The driver, recording its stage for the plan of this command's shape; with
    /// the environment the driver runs with, which the plan is relative to.
    Learn(Box<Learning>, Option<DryRun>, Vec<(OsString, OsString)>),
}

/// The local preprocessing step of one job.
pub struct Preprocessor<'a> {
    job: &'a RemoteJob,
    compiler: &'a CompilerCommand<'a>,
    tmpdir: &'a Path,
    save_temps: bool,
    sched: &'a Scheduler,
    /// `--localslots_cpp`: how many preprocessors may run here at once. There is no
    /// load gate here (make's `-l` gates local compiles only): make applied `-l` when
    /// it started this job, and holding its preprocessor back again on a busy machine
    /// leaves remote slots idle — distcc does not either.
    cpp_limit: u32,
    /// Learnt preprocessor command lines; `None`: always run the driver.
    plans: Option<&'a CppPlans>,
    state: CppState,
}

impl<'a> Preprocessor<'a> {
    pub fn new(
        job: &'a RemoteJob,
        compiler: &'a CompilerCommand<'a>,
        tmpdir: &'a Path,
        save_temps: bool,
        sched: &'a Scheduler,
        cpp_limit: u32,
    ) -> Self {
        Preprocessor {
            job,
            compiler,
            tmpdir,
            save_temps,
            sched,
            cpp_limit,
            plans: None,
            state: CppState::Idle,
        }
    }

    /// Lets the preprocessor run without its driver where `plans` knows how.
    pub fn with_plans(mut self, plans: Option<&'a CppPlans>) -> Self {
        self.plans = plans;
        self
    }

    fn names<'n>(&'n self, i_file: &'n str, deps: Option<&'n str>) -> Names<'n> {
        Names {
            input: &self.job.input,
            output: &self.job.output,
            i_file,
            deps,
        }
    }

    /// Starts the preprocessor in the background (no-op if already started).
    pub fn start(&mut self) {
        if !matches!(self.state, CppState::Idle) {
            return;
        }
        self.state = match self.spawn() {
            Ok(state) => state,
            Err(e) => CppState::Done(Err(e)),
        };
    }

    fn spawn(&mut self) -> Result<CppState, String> {
        if self.job.preprocessed_input {
            return Ok(CppState::Done(Ok(Preprocessed {
                path: PathBuf::from(&self.job.input),
                _temp: None,
                text: None,
                stderr: Vec::new(),
                deps: None,
            })));
        }
        let (i_file, deps) = self.temp_outputs()?;
        let i_str = i_file.to_string_lossy().into_owned();
        let d_str = deps.as_ref().map(|d| d.to_string_lossy().into_owned());
        let argv = self.job.cpp_argv(&i_str, d_str.as_deref());
        let args: Vec<OsString> = argv.iter().skip(1).map(OsString::from).collect();
        log::debug!("preprocessing: {}", shell_words::join(&argv));
        let slot = self.take_slot();
        let names = self.names(&i_str, d_str.as_deref());
        let (mut cmd, way) = self.choose_way(&argv, &args, &names);
        let (child, stderr) = spawn_cpp(&mut cmd)
            .map_err(|e| format!("cannot run {}: {e}", self.compiler.program.display()))?;
        Ok(CppState::Running(Box::new(RunningCpp {
            child,
            stderr,
            i_file,
            deps,
            _slot: slot,
            way,
            args,
        })))
    }

    /// The files the preprocessor writes: its text, and the dependency file if the
    /// job makes one (beside the final `.d`, so that installing it is a rename).
    fn temp_outputs(&self) -> Result<(TempPath, Option<TempPath>), String> {
        let i_file = tempfile::Builder::new()
            .prefix("swarmcc_")
            .suffix(self.job.preprocessed_ext)
            .tempfile_in(self.tmpdir)
            .map_err(|e| {
                format!(
                    "cannot create a temporary file in {}: {e}",
                    self.tmpdir.display()
                )
            })?
            .into_temp_path();
        let deps = match &self.job.dep_file {
            Some(d) => Some(deps_temp(Path::new(d))?),
            None => None,
        };
        Ok((i_file, deps))
    }

    /// Many remote slots must not mean as many local preprocessors: like distcc, a
    /// job preprocesses only while holding one of the --localslots_cpp slots.
    fn take_slot(&self) -> Option<Held> {
        let slot = self
            .sched
            .local(LocalKind::Preprocess, self.cpp_limit, None);
        if let Some(st) = self.sched.state() {
            // As distcc: the local preprocessor shows as localhost and its local slot.
            st.phase_on(
                Phase::Preprocess,
                "localhost",
                slot.as_ref().map_or(0, |s| s.slot),
            );
        }
        slot
    }

    /// The command that preprocesses: `cc1 -E` as learnt, the driver recording its
    /// stage for a plan, or the plain driver.
    fn choose_way(
        &self,
        argv: &[String],
        args: &[OsString],
        names: &Names<'_>,
    ) -> (Command, CppWay) {
        let (lookup, env) = match self.plans {
            Some(plans) => {
                let env = self.compiler.driver_env();
                let lookup = plans.lookup(self.compiler.program, argv, names, &env);
                (lookup, env)
            }
            None => (Lookup::Driver, Vec::new()),
        };
        match lookup {
            Lookup::Direct(cmd) => {
                let line: Vec<_> = std::iter::once(cmd.get_program())
                    .chain(cmd.get_args())
                    .map(|a| a.to_string_lossy())
                    .collect();
                log::debug!(
                    "preprocessing without the driver, as learnt: {}",
                    shell_words::join(line)
                );
                (cmd, CppWay::Direct)
            }
            Lookup::Driver => (self.compiler.command_with(args), CppWay::Driver),
            Lookup::Learn(learning) => {
                let mut cmd = self.compiler.command_with(args);
                let dry = learning.prepare(&mut cmd, self.compiler.command_with(&[]), argv, names);
                (cmd, CppWay::Learn(Box::new(learning), dry, env))
            }
        }
    }

    /// Waits for the preprocessor and returns its output.
    pub fn wait(&mut self) -> Result<&mut Preprocessed, String> {
        self.start();
        if let CppState::Running(_) = self.state {
            let CppState::Running(running) = std::mem::replace(&mut self.state, CppState::Idle)
            else {
                unreachable!()
            };
            let result = self.finish(*running);
            self.state = CppState::Done(result);
        }
        match &mut self.state {
            CppState::Done(Ok(p)) => Ok(p),
            CppState::Done(Err(e)) => Err(e.clone()),
            _ => unreachable!("preprocessor state after wait"),
        }
    }

    /// The run's result, once it (and, if needed, the driver after it) has exited.
    fn finish(&self, running: RunningCpp) -> Result<Preprocessed, String> {
        let RunningCpp {
            mut child,
            stderr,
            i_file,
            deps,
            _slot,
            way,
            args,
        } = running;
        let mut status = child.wait();
        let mut err_text = stderr.join().unwrap_or_default();
        let ok = matches!(&status, Ok(s) if s.success());
        if self.learn_from(way, ok, &i_file, deps.as_ref()) {
            log::debug!("the preprocessor did not succeed that way; running the driver");
            match spawn_cpp(&mut self.compiler.command_with(&args)) {
                Ok((mut child, stderr)) => {
                    status = child.wait();
                    err_text = stderr.join().unwrap_or_default();
                }
                Err(e) => status = Err(e),
            }
        }
        drop(_slot);
        let (path, temp) = if self.save_temps {
            match i_file.keep() {
                Ok(path) => (path, None),
                Err(e) => (e.path.to_path_buf(), Some(e.path)),
            }
        } else {
            (i_file.to_path_buf(), Some(i_file))
        };
        let text = Preprocessed {
            path,
            _temp: temp,
            text: None,
            stderr: err_text,
            deps,
        };
        self.verdict(status, text)
    }

    /// Finishes a learning run (a plan is written or not), and says whether the driver
    /// must run again because this way of preprocessing did not succeed.
    fn learn_from(
        &self,
        way: CppWay,
        ok: bool,
        i_file: &TempPath,
        deps: Option<&TempPath>,
    ) -> bool {
        match way {
            CppWay::Driver => false,
            CppWay::Direct => !ok,
            CppWay::Learn(learning, dry, env) => {
                // A driver that refused `-wrapper` never reached the recorder.
                let refused = !ok && !learning.recorded();
                let i_str = i_file.to_string_lossy();
                let d_str = deps.map(|d| d.to_string_lossy());
                let names = self.names(&i_str, d_str.as_deref());
                match learning.finish(ok, dry, &names, &env) {
                    Some(told) => log::debug!(
                        "learnt how {} preprocesses commands of this shape: {told}",
                        self.compiler.program.display()
                    ),
                    None => log::debug!("nothing learnt from this preprocessing run"),
                }
                refused
            }
        }
    }

    /// The text if the preprocessor succeeded, else why not (with its diagnostics).
    fn verdict(
        &self,
        status: std::io::Result<ExitStatus>,
        text: Preprocessed,
    ) -> Result<Preprocessed, String> {
        match status {
            Ok(s) if s.success() => Ok(text),
            Ok(s) => Err(format!(
                "{} exited with {}{}",
                self.compiler.program.display(),
                s,
                if text.stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {}", String::from_utf8_lossy(&text.stderr).trim_end())
                }
            )),
            Err(e) => Err(format!("waiting for the preprocessor: {e}")),
        }
    }
}

impl Drop for Preprocessor<'_> {
    fn drop(&mut self) {
        if let CppState::Running(running) = &mut self.state {
            // Waited for, not killed: killing the gcc driver leaves its cc1 running,
            // which then writes the dependency file after its temporary name was
            // removed, leaving `.swarmcc-*.d.tmp` beside the user's objects (seen when
            // a connection failed at once and the job fell back).
            let _ = running.child.wait();
        }
    }
}

/// Starts a preprocessor with its diagnostics collected by a thread.
fn spawn_cpp(cmd: &mut Command) -> std::io::Result<(Child, JoinHandle<Vec<u8>>)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut pipe = child.stderr.take().expect("stderr was piped");
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    });
    Ok((child, stderr))
}

/// A temporary file beside the final `.d`, so that moving it into place is a rename.
fn deps_temp(final_path: &Path) -> Result<TempPath, String> {
    let dir = match final_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(".swarmcc-")
        .suffix(".d.tmp")
        .tempfile_in(&dir)
        .map(|f| f.into_temp_path())
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))
}
