//! The embedded swarmccd: a server on loopback inside the launcher's process for one
//! build, whose whitelist is the masquerade folder; stopped when the build ends (or
//! when the launcher returns early or panics).

use std::io;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use crate::config::ClientConfig;
use crate::server::{self, whitelist, Admission, AllowList, ServerConfig};

/// A swarmccd running on loopback inside this process for one build.
pub(super) struct Embedded {
    pub(super) port: u16,
    pub(super) jobs: usize,
    shutdown: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

impl Embedded {
    pub(super) fn start(shim_dir: &Path, cfg: &ClientConfig) -> io::Result<Embedded> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on 127.0.0.1: {e}")))?;
        let port = listener.local_addr()?.port();
        let dirs = vec![shim_dir.to_path_buf()];
        let search = whitelist::compiler_search_path(None, Some(&cfg.path), &dirs);
        let mut scfg =
            ServerConfig::new(AllowList::loopback(), Admission::whitelist(&dirs, search));
        scfg.tmpdir = cfg.tmpdir.clone();
        let jobs = scfg.jobs;
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = shutdown.clone();
        let thread = thread::Builder::new()
            .name("embedded-swarmccd".into())
            .spawn(move || server::run(listener, scfg, flag))?;
        Ok(Embedded {
            port,
            jobs,
            shutdown,
            thread: Some(thread),
        })
    }

    pub(super) fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("swarmcc: the embedded swarmccd failed: {e}"),
                Err(_) => eprintln!("swarmcc: the embedded swarmccd panicked"),
            }
        }
    }
}

impl Drop for Embedded {
    /// Also on early returns and panics: the server never outlives the build.
    fn drop(&mut self) {
        self.shutdown_now();
    }
}
