//! The policy, applied to a request that has been read: protocol version, compiler
//! admission (`whitelist`), forbidden options, the client's argument scan, and the
//! extension's compiler identity. Its answer is an [`Admitted`] job or a refusal.

use std::path::PathBuf;

use crate::args::{self, Decision, RemoteJob};
use crate::exit::ExitCode;
use crate::protocol::Version;

use super::record::{Names, RejectReason};
use super::request::Request;
use super::whitelist::{check_arguments, Refusal};
use super::Shared;

/// A job the policy lets through: what to compile, and the compiler that may do it.
pub(super) struct Admitted {
    pub(super) job: RemoteJob,
    pub(super) program: PathBuf,
}

/// The policy, in order: protocol version, compiler admission, forbidden options, and
/// the same argument scan as the client (one C-family input, `-c`/`-S`, one output…).
/// Records the input's name in `names` for the job log as soon as it is known.
pub(super) fn decide(
    req: &Request,
    shared: &Shared,
    names: &mut Names,
    client_identity: Option<&str>,
) -> Result<Admitted, (RejectReason, Refusal)> {
    let decision = args::classify(&req.argv);
    if let Decision::Remote(job) = &decision {
        names.input = job.input.clone();
    }
    if req.version == Version::V3 {
        return Err((
            RejectReason::Pump,
            Refusal::new(
                ExitCode::ProtocolError,
                "pump mode (protocol 3, ,cpp) is not supported by this server; \
                 list it without ,cpp to send preprocessed sources",
            ),
        ));
    }
    let Some(argv0) = req.argv.first() else {
        return Err((
            RejectReason::BadRequest,
            Refusal::new(ExitCode::BadArguments, "empty command line"),
        ));
    };
    let program = shared
        .cfg
        .admission
        .admit_compiler(argv0)
        .map_err(|r| (RejectReason::Whitelist, r))?;
    check_arguments(&req.argv).map_err(|r| (RejectReason::ForbiddenOption, r))?;
    if let Some(theirs) = client_identity.filter(|i| !i.is_empty()) {
        // The extension's promise: never a silently different compiler.
        let mismatch = |why: String| {
            Err((
                RejectReason::CompilerMismatch,
                Refusal::new(ExitCode::CompilerMissing, why),
            ))
        };
        match shared.identities.get(&program) {
            Ok(ours) if ours == theirs => {}
            Ok(ours) => {
                return mismatch(format!(
                    "compiler mismatch: {argv0} here is \"{ours}\", the client's is \"{theirs}\""
                ))
            }
            Err(e) => {
                return mismatch(format!(
                    "compiler mismatch: cannot tell which compiler {} is: {e}",
                    program.display()
                ))
            }
        }
    }
    match decision {
        Decision::Remote(job) => Ok(Admitted { job, program }),
        Decision::Local(reason) => Err((
            RejectReason::NotDistributable,
            Refusal::new(
                ExitCode::BadArguments,
                format!("cannot compile this command remotely: {reason}"),
            ),
        )),
    }
}
