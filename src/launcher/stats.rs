//! The build's counters, from the scheduling agent: asked lazily, never waited on, and
//! quiet when the agent is missing or broken (the build's output must stay clean).

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::agent::{Agent, BuildStats};
use crate::config::ClientConfig;

/// How long the final statistics may take to settle (wrappers report to the agent as
/// they exit; the last reports can trail the command's exit by a moment).
const SETTLE_TIME: Duration = Duration::from_secs(2);

/// The agent, reached lazily; after one failure it is not asked again (the build must
/// never wait on it). A panic inside the agent code counts as a failure too.
pub(super) struct StatsSource {
    distcc_dir: PathBuf,
    self_exe: PathBuf,
    build: String,
    agent: Option<Agent>,
    error: Option<String>,
}

impl StatsSource {
    pub(super) fn new(cfg: &ClientConfig, self_exe: &Path, build: &str) -> StatsSource {
        StatsSource {
            distcc_dir: cfg.distcc_dir.clone(),
            self_exe: self_exe.to_path_buf(),
            build: build.to_string(),
            agent: None,
            error: None,
        }
    }

    pub(super) fn poll(&mut self) -> Option<BuildStats> {
        if self.error.is_some() {
            return None;
        }
        if self.agent.is_none() {
            let (dir, exe) = (&self.distcc_dir, &self.self_exe);
            match quietly(|| Agent::connect(dir, exe, None)) {
                Ok(a) => self.agent = Some(a),
                Err(e) => {
                    self.error = Some(format!("cannot reach the scheduling agent: {e}"));
                    return None;
                }
            }
        }
        let agent = self.agent.as_ref()?;
        match quietly(|| agent.build_stats(&self.build)) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error = Some(format!("the scheduling agent gave no statistics: {e}"));
                self.agent = None;
                None
            }
        }
    }

    /// The final counters: polled until no job of the build is running any more (the
    /// last wrappers' reports can arrive just after the command exits), at most
    /// [`SETTLE_TIME`].
    pub(super) fn settle(mut self) -> (Option<BuildStats>, Option<String>) {
        let deadline = Instant::now() + SETTLE_TIME;
        let mut last = None;
        while let Some(s) = self.poll() {
            let idle = s.running_remote == 0 && s.running_local == 0;
            last = Some(s);
            if idle || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        match last {
            Some(s) => (Some(s), None),
            None => (None, self.error.take()),
        }
    }
}

thread_local! {
    static QUIET_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic into an error without printing the panic message (the
/// agent may be unimplemented or broken; the build's output must stay clean).
fn quietly<T>(f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANIC.with(|q| q.get()) {
                prev(info);
            }
        }));
    });
    QUIET_PANIC.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET_PANIC.with(|q| q.set(false));
    match r {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            Err(io::Error::other(msg))
        }
    }
}
