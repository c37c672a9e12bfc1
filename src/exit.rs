//! Exit codes: the distcc-compatible table (100–120) in one place.
//!
//! A compiler's own exit status is passed through unchanged; these codes are only for
//! swarmcc's own failures, numbered as distcc numbers them so scripts keep working.

/// swarmcc's own exit codes, numbered exactly as distcc's `exitcode.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// General failure.
    Distcc = 100,
    /// Bad arguments (e.g. an unknown swarmcc option).
    BadArguments = 101,
    /// The server could not bind its port.
    BindFailed = 102,
    ConnectFailed = 103,
    CompilerCrashed = 104,
    OutOfMemory = 105,
    /// A host list that cannot be parsed.
    BadHostSpec = 106,
    IoError = 107,
    Truncated = 108,
    ProtocolError = 109,
    /// The compiler was not found, or is not allowed on the server.
    CompilerMissing = 110,
    /// swarmcc invoked itself.
    RecursiveCall = 111,
    SetuidFailed = 112,
    AccessDenied = 113,
    Busy = 114,
    NoSuchFile = 115,
    /// No host could take the job and fallback is disabled.
    NoHosts = 116,
    Gone = 117,
    Timeout = 118,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_distcc() {
        assert_eq!(ExitCode::Distcc.code(), 100);
        assert_eq!(ExitCode::BadHostSpec.code(), 106);
        assert_eq!(ExitCode::CompilerMissing.code(), 110);
        assert_eq!(ExitCode::RecursiveCall.code(), 111);
        assert_eq!(ExitCode::NoHosts.code(), 116);
        assert_eq!(ExitCode::Timeout.code(), 118);
    }
}
