//! The distcc wire protocol (versions 1, 2 and 3), as pure data transformations.
//!
//! This module knows nothing of sockets, files, processes, clocks or threads: it turns
//! messages into bytes and bytes into messages. `conn` owns the sockets and feeds this
//! module; a test (`tests/protocol_purity.rs`) fails if anything here imports I/O.
//!
//! Layers, bottom up:
//! * [`frame`]: the 12-byte packet header (4-letter token + 8 hex digits) and bodies;
//! * [`lzo`]: LZO1X block compression for protocol 2/3 bodies;
//! * [`message`]: request/reply encoders and incremental decoders that validate the
//!   token sequence and enforce [`Limits`] before allocating anything;
//! * [`auth`]: the messages of swarmcc's authentication extension (`SWAU`…`SWMC`),
//!   which wrap a distcc request and reply between swarmcc and swarmccd;
//! * [`ext`]: swarmcc's negotiated extension (zstd bodies, compiler identity,
//!   keep-alives), announced by swarmccd after a plain reply;
//! * [`cache`]: the farm cache's key and answer (`SWCK`, `SWCH`, `SWCM`), negotiated
//!   with the extension's feature `cache`;
//! * [`rustc`]: the messages of a rustc job (request, blobs, reply), negotiated with
//!   the extension's feature `rustc`;
//! * [`socks`]: the SOCKSv5 `CONNECT` a client sends to a proxy (Gentoo's
//!   network-sandbox) before any distcc byte.
//!
//! Encoders append to a caller's `Vec<u8>` and leave it untouched when they fail.
//! Decoders are incremental: `decode(&buf)` returns `Ok(None)` when more bytes are
//! needed, `Ok(Some((event, used)))` when one event was decoded from the first `used`
//! bytes of `buf`, and `Err` when the bytes can never form a valid message.

pub mod auth;
pub mod cache;
pub mod error;
pub mod ext;
pub mod frame;
pub mod lzo;
pub mod message;
pub mod rustc;
pub mod socks;

pub use error::Error;
pub use message::{
    encode_file_entry, encode_files, encode_precompressed_file, encode_reply,
    encode_request_header, encode_source, encode_source_header, FileEntry, Limits, Reply,
    ReplyDecoder, ReplyEvent, RequestDecoder, RequestEvent, Version,
};
