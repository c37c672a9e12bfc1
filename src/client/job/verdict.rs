//! What one attempt on a host came to, in the terms the job decides on: a result to
//! use, a host to leave (backed off or not), a host to ask again in plain distcc, or a
//! source that did not preprocess. The reasons are logged here, where they are known.

use crate::args::RemoteJob;
use crate::client::local;
use crate::client::remote::{AttemptError, FarmCache};
use crate::exit::ExitCode;
use crate::hosts::HostSpec;
use crate::protocol::Reply;

/// What the job does after an attempt on one host.
pub(super) enum Attempted {
    /// The host compiled the job, or the compile failed there (or its farm cache had
    /// the result): the reply is the result.
    Answered(Reply, FarmCache),
    /// The host produced no result: try the next one. `back_off`: the host is at fault
    /// and is skipped by other jobs for the backoff period.
    Failed { reason: String, back_off: bool },
    /// The host is not (or no longer) a swarmccd: ask it again in plain distcc.
    NotExtended,
    /// The source failed to preprocess: no host can help, the local compile reports it.
    PreprocessFailed,
}

/// Judges the outcome of an attempt of `job` on `host`.
pub(super) fn judge(
    outcome: Result<(Reply, FarmCache), AttemptError>,
    host: &HostSpec,
    job: &RemoteJob,
) -> Attempted {
    match outcome {
        Ok((reply, _)) if is_refusal(&reply) => {
            // A policy answer, not a failure of the host: no backoff, try the next
            // host (whose whitelist may differ), then compile here.
            let reason = String::from_utf8_lossy(&reply.stderr).trim().to_string();
            log::warn!("{} refused {}: {reason}", host.spec, job.input);
            Attempted::Failed {
                reason,
                back_off: false,
            }
        }
        Ok((reply, _)) if is_server_fault(&reply) => {
            // The server cannot do the job: try elsewhere, and back it off so that
            // other jobs do not upload their sources to it first.
            let reason = String::from_utf8_lossy(&reply.stderr).trim().to_string();
            log::warn!("{} failed {}: {reason}", host.spec, job.input);
            Attempted::Failed {
                reason,
                back_off: true,
            }
        }
        Ok((reply, farm)) => Attempted::Answered(reply, farm),
        Err(AttemptError::NoExtension(e)) => {
            log::info!(
                "{}: closed on swarmcc's extension ({e}): not a swarmccd; using plain distcc",
                host.spec
            );
            Attempted::NotExtended
        }
        Err(AttemptError::Preprocess(e)) => {
            log::debug!("{e}");
            log::info!(
                "job {}: local (preprocessing failed; the local compile reports the error)",
                job.input
            );
            Attempted::PreprocessFailed
        }
        Err(e) => {
            log::warn!("failed to distribute {} to {}: {e}", job.input, host.spec);
            Attempted::Failed {
                reason: e.to_string(),
                back_off: true,
            }
        }
    }
}

/// swarmccd answers a policy refusal with exit 110 and a reason starting `swarmccd: `,
/// rather than closing the connection, so it can be told apart from a compile error.
fn is_refusal(reply: &Reply) -> bool {
    reply.status != 0
        && local::exit_code_from_wait(reply.status) == ExitCode::CompilerMissing.code()
        && reply.stderr.starts_with(b"swarmccd: ")
}

/// swarmccd answers what makes it unable to do a job (full disk, no job directory, a
/// compiler that is not ours…) with exit 107 and a reason starting `swarmccd: `: the
/// host is no use for now, unlike after a policy refusal.
fn is_server_fault(reply: &Reply) -> bool {
    reply.status != 0
        && local::exit_code_from_wait(reply.status) == ExitCode::IoError.code()
        && reply.stderr.starts_with(b"swarmccd: ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_is_told_apart_from_a_compile_error() {
        let refusal = Reply {
            status: 110 << 8,
            stderr: b"swarmccd: compiler \"tcc\" is not in the whitelist\n".to_vec(),
            ..Reply::default()
        };
        assert!(is_refusal(&refusal));
        let compile_error = Reply {
            status: 1 << 8,
            stderr: b"x.c:1:1: error: expected\n".to_vec(),
            ..Reply::default()
        };
        assert!(!is_refusal(&compile_error));
        assert!(!is_server_fault(&compile_error) && !is_server_fault(&refusal));
        let full_disk = Reply {
            status: 107 << 8,
            stderr: b"swarmccd: cannot write /tmp/swarmccd_x/a.i: No space left\n".to_vec(),
            ..Reply::default()
        };
        assert!(is_server_fault(&full_disk) && !is_refusal(&full_disk));
    }
}
