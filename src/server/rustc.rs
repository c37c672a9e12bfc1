//! rustc jobs (`protocol::rustc`, feature `rustc`): this swarmccd does not serve them
//! yet, and says so in the extension's own terms — the features it accepts (without
//! `rustc`) and a refusal with the reason — so that a client asking for one runs rustc
//! locally at once, instead of reading a protocol error into a closed connection.

use crate::conn::Conn;
use crate::exit::ExitCode;
use crate::protocol::ext::{self, Preamble};
use crate::protocol::rustc;

use super::record::{JobResult, RejectReason, Summary};
use super::reply::write_prelude;

/// Why a rustc job is refused, as the client (and the job log) sees it.
pub(super) const NOT_SERVED: &str = "rustc jobs are not served by this swarmccd";

/// Whether an extension request asks for a rustc job.
pub(super) fn wanted(p: &Preamble) -> bool {
    p.has(rustc::FEATURE)
}

/// Answers a rustc job's preamble: no `rustc` among the accepted features, then the
/// refusal. The request that may follow is not read.
pub(super) fn refuse(conn: &Conn) -> Summary {
    let mut bytes = Vec::new();
    let encoded = ext::encode_accepted(&[], &mut bytes)
        .and_then(|()| rustc::encode_refused(NOT_SERVED, &mut bytes));
    let summary = Summary::new(JobResult::Other, 0, ExitCode::AccessDenied.code())
        .because(NOT_SERVED)
        .rejected(RejectReason::NotDistributable);
    if encoded.is_ok() && !write_prelude(conn.stream(), &bytes) {
        return summary.because(format!("{NOT_SERVED}; the client left before hearing so"));
    }
    summary
}
