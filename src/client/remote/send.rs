//! The request's bytes, in order: the extension's preamble and the request header (sent
//! while the preprocessor still runs), the source, and on an authenticated session the
//! request's MAC.

use crate::client::preprocess::Preprocessed;
use crate::conn::{Conn, ConnError};
use crate::protocol::auth as wire;
use crate::protocol::ext::{self, Preamble};
use crate::protocol::{self, Version};

use super::conversation::Dialect;
use super::error::AttemptError;
use super::Target;

/// Level 1: zstd's fastest, already smaller than LZO; the link is rarely the limit.
const ZSTD_LEVEL: i32 = 1;

/// A message our encoder refused to make (an argument or body over the protocol's
/// limits).
fn unencodable(e: protocol::Error) -> AttemptError {
    AttemptError::Conn(ConnError::Protocol(e))
}

/// Sends the extension's preamble (features and our compiler's identity, so that the
/// server refuses a different compiler) if we speak it and it has not gone out
/// already (before a farm cache's key), then the request header.
pub(super) fn request_header(
    conn: &mut Conn,
    target: &Target<'_>,
    dialect: Dialect,
    remote_argv: &[String],
    preamble_sent: bool,
) -> Result<(), AttemptError> {
    let mut out = Vec::with_capacity(1024);
    if dialect.ext && !preamble_sent {
        encode_preamble(target, dialect, false, &mut out)?;
    }
    protocol::encode_request_header(dialect.wire, None, remote_argv, &mut out)
        .map_err(unencodable)?;
    conn.send(&out).map_err(|e| dialect.failed(e))
}

/// Sends the preamble asking for the farm cache alone: the server answers it before
/// anything else is sent.
pub(super) fn cache_preamble(
    conn: &mut Conn,
    target: &Target<'_>,
    dialect: Dialect,
) -> Result<(), AttemptError> {
    let mut out = Vec::with_capacity(256);
    encode_preamble(target, dialect, true, &mut out)?;
    conn.send(&out).map_err(|e| dialect.failed(e))
}

/// Sends the job's key, once the server accepted the farm cache.
pub(super) fn cache_key(conn: &mut Conn, key: &str) -> Result<(), AttemptError> {
    let mut out = Vec::with_capacity(76);
    crate::protocol::cache::encode_key(key, &mut out).map_err(unencodable)?;
    conn.send(&out).map_err(AttemptError::Conn)
}

fn encode_preamble(
    target: &Target<'_>,
    dialect: Dialect,
    cache: bool,
    out: &mut Vec<u8>,
) -> Result<(), AttemptError> {
    let mut features = vec![ext::KEEPALIVE.to_owned()];
    if dialect.zstd {
        features.push(ext::ZSTD.into());
    }
    if cache {
        features.push(ext::CACHE.into());
    }
    let preamble = Preamble {
        features,
        identity: target.ext.map(|i| i.get().to_owned()).unwrap_or_default(),
    };
    ext::encode_preamble(&preamble, out).map_err(unencodable)
}

/// Sends the preprocessed source: a plain protocol-1 body straight from its file to the
/// socket (no copy of the text in memory), anything else from memory.
pub(super) fn source(
    conn: &mut Conn,
    dialect: Dialect,
    pre: &mut Preprocessed,
) -> Result<(), AttemptError> {
    if dialect.wire == Version::V1 && !dialect.zstd && !conn.tapping() {
        let (file, len) = pre.open().map_err(AttemptError::Preprocess)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(16);
        protocol::encode_source_header(len, &mut out).map_err(unencodable)?;
        conn.send(&out).map_err(|e| dialect.failed(e))?;
        conn.send_file(&file, len as u64)
            .map_err(|e| dialect.failed(e))
    } else {
        source_in_memory(conn, dialect, pre)
    }
}

/// Sends the source from memory: compressed (zstd for the extension, LZO for protocol
/// 2), or under an authenticated session's MAC, which must see the bytes.
fn source_in_memory(
    conn: &mut Conn,
    dialect: Dialect,
    pre: &mut Preprocessed,
) -> Result<(), AttemptError> {
    let text = pre.text().map_err(AttemptError::Preprocess)?;
    let packed;
    let body: &[u8] = if dialect.zstd {
        packed = zstd::bulk::compress(text, ZSTD_LEVEL)
            .map_err(|e| AttemptError::Conn(ConnError::Io(e)))?;
        &packed
    } else {
        text
    };
    let mut out = Vec::with_capacity(1024);
    let encoded = if dialect.wire == Version::V1 {
        // Sent as it is: the header, then the body itself, without copying it.
        protocol::encode_source_header(body.len(), &mut out)
    } else {
        // Protocol 2: LZO packs it into `out`.
        protocol::encode_source(dialect.wire, body, &mut out)
    };
    encoded.map_err(unencodable)?;
    conn.send(&out).map_err(|e| dialect.failed(e))?;
    if dialect.wire == Version::V1 {
        conn.send(body).map_err(|e| dialect.failed(e))?;
    }
    Ok(())
}

/// The request's MAC follows it on an authenticated session; the tap saw every byte.
pub(super) fn request_mac(conn: &mut Conn) -> Result<(), AttemptError> {
    if let Some(request_mac) = conn.stop_tap() {
        let mut out = Vec::with_capacity(wire::MAC_LEN + 12);
        wire::encode_mac(&request_mac.finish(), &mut out);
        conn.send(&out).map_err(AttemptError::Conn)?;
    }
    Ok(())
}
