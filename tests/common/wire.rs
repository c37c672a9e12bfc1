//! Raw distcc conversations for the server tests: build a request, send it, read
//! everything until the server closes, decode the reply.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use swarmcc::protocol::{
    encode_files, encode_request_header, encode_source, FileEntry, Limits, ReplyDecoder,
    ReplyEvent, Version,
};

/// The wait status of a refusal: exit 110.
pub const REFUSED: u32 = 0x6e00;

pub fn request(version: Version, argv: &[&str], source: &[u8]) -> Vec<u8> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    encode_request_header(version, Some("/tmp"), &argv, &mut out).unwrap();
    if version == Version::V3 {
        let files = [FileEntry::File {
            name: "/tmp/x.c".into(),
            contents: source.to_vec(),
        }];
        encode_files(&files, &mut out).unwrap();
    } else {
        encode_source(version, source, &mut out).unwrap();
    }
    out
}

/// Sends `bytes` and reads until the server closes (a reset counts as a close).
pub fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = s.write_all(bytes);
    read_to_close(&mut s)
}

/// Everything the peer sends until it closes, resets, or is silent for the read timeout.
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[derive(Debug, Default)]
pub struct Reply {
    pub status: u32,
    pub stderr: String,
    pub stdout: Vec<u8>,
    pub object: Vec<u8>,
}

/// Decodes one whole reply; panics if it is incomplete or followed by more bytes than
/// swarmccd's advertisement.
pub fn decode_reply(version: Version, bytes: &[u8]) -> Reply {
    try_decode_reply(version, bytes)
        .unwrap_or_else(|| panic!("incomplete reply: {:?}", String::from_utf8_lossy(bytes)))
}

/// Decodes one whole reply, `None` if the bytes are not one.
pub fn try_decode_reply(version: Version, bytes: &[u8]) -> Option<Reply> {
    let mut dec = ReplyDecoder::new(version, Limits::default(), false);
    let mut reply = Reply::default();
    let mut at = 0;
    while !dec.is_complete() {
        let (event, used) = dec.decode(&bytes[at..]).ok()??;
        at += used;
        match event {
            ReplyEvent::Started | ReplyEvent::Deps(_) => {}
            ReplyEvent::Status(s) => reply.status = s,
            ReplyEvent::Stderr(e) => reply.stderr = String::from_utf8_lossy(&e).into_owned(),
            ReplyEvent::Stdout(o) => reply.stdout = o,
            ReplyEvent::Object(o) => reply.object = o,
        }
    }
    // swarmccd offers its extension after a plain reply (12 bytes distcc never reads).
    let rest = &bytes[at..];
    (rest.is_empty() || rest == b"SWXT00000001").then_some(reply)
}

pub fn compile(port: u16, version: Version, argv: &[&str], source: &[u8]) -> Reply {
    let bytes = exchange(port, &request(version, argv, source));
    decode_reply(version, &bytes)
}
