//! Why a remote attempt did not produce a reply, in the terms the job decides on: the
//! host is unreachable or broke off, the source is at fault, the host does not speak our
//! extension, or an authenticated conversation could not be trusted.

use std::fmt;

use crate::conn::ConnError;

/// Why a remote attempt did not produce a reply.
#[derive(Debug)]
pub enum AttemptError {
    /// Could not resolve or connect to the host.
    Connect(String),
    /// The conversation failed (timeout, reset, truncated or malformed reply).
    Conn(ConnError),
    /// The local preprocessor failed: the source is at fault, not the host. The local
    /// compile will report the same error.
    Preprocess(String),
    /// The host closed on our extension request: it is not (or no longer) a swarmccd
    /// that speaks it. Retry in plain distcc.
    NoExtension(String),
    /// Authentication with a `,auth` host failed, or its reply could not be trusted.
    Auth(AuthFailure),
    /// A REAPI engine failed the job (`client::reapi`); the text names the call.
    Engine(String),
}

/// Why an authenticated attempt failed.
#[derive(Debug)]
pub enum AuthFailure {
    /// No usable key here (the message names the key file), or no randomness.
    Local(String),
    /// The handshake broke off: closed, garbled or timed out. A plain distccd does this
    /// when it receives `SWAU`.
    Handshake(String),
    /// The server said no (`SWNO`), and why: wrong key, authentication not enabled, or
    /// a request that failed its integrity check.
    Refused(String),
    /// The server's `SWOK` proof is wrong: it does not hold our key.
    ServerProof,
    /// The reply's MAC is missing or wrong: the reply is discarded.
    Reply(String),
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::Local(e) => write!(f, "cannot authenticate: {e}"),
            AuthFailure::Handshake(e) => write!(
                f,
                "authentication handshake failed ({e}); ,auth works only with swarmccd \
                 hosts started with --auth-key-file"
            ),
            AuthFailure::Refused(reason) => {
                write!(f, "authentication refused by the server: {reason}")
            }
            AuthFailure::ServerProof => write!(
                f,
                "authentication failed: the server did not prove it holds our key \
                 (different key files, or not the server we meant)"
            ),
            AuthFailure::Reply(why) => {
                write!(f, "reply failed its integrity check ({why}); discarded")
            }
        }
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Connect(e) => write!(f, "cannot connect: {e}"),
            AttemptError::Conn(e) => write!(f, "{e}"),
            AttemptError::Preprocess(e) => write!(f, "preprocessing failed: {e}"),
            AttemptError::NoExtension(e) => {
                write!(f, "the host does not speak swarmcc's extension ({e})")
            }
            AttemptError::Auth(e) => write!(f, "{e}"),
            AttemptError::Engine(e) => write!(f, "{e}"),
        }
    }
}

impl From<AuthFailure> for AttemptError {
    fn from(e: AuthFailure) -> Self {
        AttemptError::Auth(e)
    }
}
