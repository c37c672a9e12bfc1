//! Compile slots lent to a rustc job as jobserver tokens for its codegen threads, and
//! taken back as they come free: a job started while slots were idle codegens in
//! parallel, and a job arriving later takes a token the moment rustc returns one
//! (between two codegen units), instead of waiting for that whole compile to end.
//! Every thread a job runs holds a slot, so `-j` bounds them all.
//!
//! The jobserver is a named pipe in the job's directory (GNU make 4.4's
//! `--jobserver-auth=fifo:PATH`, which rustc reads from `CARGO_MAKEFLAGS`): rustc opens
//! it by name, so the server's own descriptor can be non-blocking without changing
//! rustc's.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Permit, Semaphore};

/// The running loans.
#[derive(Debug, Default)]
pub(crate) struct Lending {
    /// (loan id, the server's end of its pipe, slots still lent to it).
    loans: Mutex<Vec<(u64, Arc<File>, usize)>>,
    next: AtomicU64,
}

/// One job's loan; its slots go back to the pool when dropped (after rustc exited).
pub(crate) struct Loan<'a> {
    lending: &'a Lending,
    slots: &'a Semaphore,
    id: u64,
}

impl Lending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Arc<File>, usize)>> {
        self.loans.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lends up to `max` of the slots free right now, as tokens in a new named pipe at
    /// `fifo`.
    pub(crate) fn lend<'a>(
        &'a self,
        slots: &'a Semaphore,
        max: usize,
        fifo: &Path,
    ) -> io::Result<Loan<'a>> {
        let path = CString::new(fifo.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the path"))?;
        // SAFETY: a NUL-terminated path and a mode.
        if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Read and write: opening does not wait for a peer, and the pipe never ends.
        let mut end = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)?;
        let lent = slots.take_free(max);
        if let Err(e) = end.write_all(&vec![b'+'; lent]) {
            slots.give_back(lent);
            return Err(e);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, Arc::new(end), lent));
        Ok(Loan {
            lending: self,
            slots,
            id,
        })
    }

    /// A slot taken back from a running job, if one of its tokens is free now.
    pub(crate) fn reclaim<'a>(&'a self, slots: &'a Semaphore) -> Option<Permit<'a>> {
        let mut loans = self.lock();
        for (_, end, lent) in loans.iter_mut().filter(|(_, _, lent)| *lent > 0) {
            let mut byte = [0u8];
            if matches!((&**end).read(&mut byte), Ok(1)) {
                *lent -= 1;
                return Some(slots.adopt());
            }
        }
        None
    }
}

/// `CARGO_MAKEFLAGS` for rustc: the jobserver at `fifo` as rustc sees its path.
pub(crate) fn makeflags(fifo_as_seen: &str) -> String {
    format!("-j --jobserver-auth=fifo:{fifo_as_seen}")
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        let mut loans = self.lending.lock();
        if let Some(i) = loans.iter().position(|(id, _, _)| *id == self.id) {
            let (_, _, lent) = loans.swap_remove(i);
            // Whatever rustc still held when it ended is ours again by count.
            self.slots.give_back(lent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lent_slots_are_reclaimed_one_by_one_and_returned_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("jobserver");
        let slots = Semaphore::new(4);
        let lending = Lending::default();
        let own = slots.acquire_timeout(Duration::ZERO).unwrap();
        let loan = lending.lend(&slots, 3, &fifo).unwrap();
        assert!(slots.acquire_timeout(Duration::ZERO).is_none(), "all lent");
        // rustc's side: it opens the pipe by name and takes one token.
        let mut rustc = File::options().read(true).write(true).open(&fifo).unwrap();
        let mut token = [0u8];
        rustc.read_exact(&mut token).unwrap();
        let a = lending.reclaim(&slots).expect("a free token");
        let b = lending.reclaim(&slots).expect("another");
        assert!(lending.reclaim(&slots).is_none(), "the last one is in use");
        rustc.write_all(&token).unwrap();
        drop(loan);
        // The one left lent comes back with the loan; a and b are permits of their own.
        let c = slots.acquire_timeout(Duration::ZERO).expect("returned");
        assert!(slots.acquire_timeout(Duration::ZERO).is_none());
        drop((a, b, c, own));
        assert_eq!(slots.take_free(10), 4, "nothing lost, nothing made");
        assert_eq!(makeflags("/j/x"), "-j --jobserver-auth=fifo:/j/x");
    }
}
