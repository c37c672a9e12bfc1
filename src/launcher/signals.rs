//! The launcher's signal handling: while the command runs, SIGINT/SIGTERM/SIGHUP are
//! caught and passed on to it, so the launcher outlives it and still reports.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The last SIGINT/SIGTERM/SIGHUP received (0: none), and whether it was sent to this
/// process alone (by `kill`) rather than by the terminal to the whole foreground group.
static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNAL_FROM_KILL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // Async-signal-safe: two atomic stores.
    // SAFETY: the kernel passes a valid siginfo with SA_SIGINFO.
    let code = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_code }
    };
    // si_code <= 0: sent by kill/sigqueue/tgkill (SI_USER, SI_QUEUE, SI_TKILL); a
    // terminal's ^C is SI_KERNEL and already reached the command too.
    SIGNAL_FROM_KILL.store(code <= 0, Ordering::SeqCst);
    PENDING_SIGNAL.store(sig, Ordering::SeqCst);
}

const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// While alive, SIGINT/SIGTERM/SIGHUP do not kill the launcher: it forwards them to the
/// command (when they were sent to the launcher alone), waits for it, and still prints
/// the summary and stops the embedded server. The previous handlers come back on drop.
pub(super) struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    pub(super) fn install() -> SignalGuard {
        PENDING_SIGNAL.store(0, Ordering::SeqCst);
        let mut old = Vec::new();
        for sig in FORWARDED {
            // SAFETY: a zeroed sigaction with a valid handler and an empty mask.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &sa, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        SignalGuard { old }
    }

    /// A signal to pass on to the command, if one came since the last call.
    pub(super) fn take_forward(&self) -> Option<libc::c_int> {
        let sig = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
        (sig != 0 && SIGNAL_FROM_KILL.load(Ordering::SeqCst)).then_some(sig)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restoring a sigaction obtained from sigaction().
            unsafe {
                libc::sigaction(*sig, prev, std::ptr::null_mut());
            }
        }
    }
}
