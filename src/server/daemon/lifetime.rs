//! How long the server lives: SIGTERM, SIGINT and SIGHUP set its shutdown flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Set by the signal handler; copied into the server's shutdown flag by a watcher.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// SIGTERM, SIGINT and SIGHUP stop the server cleanly (the pid file is removed).
pub(super) fn install_signal_handlers(shutdown: Arc<AtomicBool>) {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only performs an atomic store; a zeroed sigaction with
        // the handler set and an empty mask is valid.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    thread::spawn(move || loop {
        if SIGNALLED.load(Ordering::SeqCst) {
            log::info!("signal received: shutting down");
            shutdown.store(true, Ordering::SeqCst);
            return;
        }
        thread::sleep(Duration::from_millis(100));
    });
}
