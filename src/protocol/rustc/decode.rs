//! The decoders of a rustc job's messages: incremental, resumable across reads, and
//! bounded by [`Limits`] from each header before its body is waited for.

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

use super::{
    check_path, parse_env, parse_flag, parse_job_file, parse_needed, JobFile, Limits, OutputFile,
    RustcReply, RustcRequest, ServerMsg, RARC, RARG, RBLB, RCWD, RDON, RENC, RENV, RERL, RFIL,
    RFLC, RHIT, RNED, ROUC, ROUT, RREF, RROT, RSER, RSOU, SWKA, SWOP,
};
use crate::protocol::ext;
use crate::protocol::frame::{decode_string, parse_header, HEADER_LEN};
use crate::protocol::Error;

/// The largest zstd frame that can hold `max` bytes (zstd's compress bound, rounded
/// up), as a wire length.
pub(super) fn frame_bound(max: u64) -> u32 {
    let bound = max.saturating_add(max >> 8).saturating_add(1024);
    u32::try_from(bound).unwrap_or(u32::MAX)
}

/// Decompresses a blob, refusing to produce more than `max` bytes whatever the
/// frame claims.
fn unpack(frame: &[u8], max: u64) -> Result<Vec<u8>, Error> {
    let zstd_error = |e: &dyn std::fmt::Display| Error::Zstd(e.to_string());
    if frame.is_empty() {
        return Err(Error::Zstd("empty RBLB body".into()));
    }
    // Streamed through a fixed chunk: the frame's own content size is the sender's
    // claim, so it can neither size the allocation nor bound the output.
    let mut decoder = Decoder::new().map_err(|e| zstd_error(&e))?;
    let mut input = InBuffer::around(frame);
    let mut chunk = vec![0u8; 128 << 10];
    let mut data = Vec::new();
    loop {
        let before = input.pos();
        let mut out = OutBuffer::around(&mut chunk[..]);
        let left = decoder
            .run(&mut input, &mut out)
            .map_err(|e| zstd_error(&e))?;
        let n = out.pos();
        if (data.len() + n) as u64 > max {
            return Err(Error::TooLarge {
                what: "RBLB (decompressed)",
                got: (data.len() + n) as u64,
                limit: max,
            });
        }
        data.extend_from_slice(&chunk[..n]);
        let stalled = n == 0 && input.pos() == before;
        if (input.pos() == frame.len() && n < chunk.len()) || stalled {
            // `left` is 0 only at the end of a frame: anything else is a cut frame.
            if left != 0 {
                return Err(Error::Zstd("truncated zstd frame".into()));
            }
            return Ok(data);
        }
    }
}

/// How far a decoder got through the message at the front of the caller's buffer.
///
/// Decoders keep one across calls: after `Ok(None)` the caller only appends to the
/// buffer (`Conn` does), so the packets already parsed need not be parsed (nor
/// decompressed) again on every read. A buffer shorter than the cursor means the
/// caller broke that contract; the decoder then starts over.
#[derive(Debug, Default)]
struct Cursor {
    at: usize,
}

impl Cursor {
    /// The header at the cursor, checked to be `token`.
    fn value(&self, buf: &[u8], token: [u8; 4], what: &'static str) -> Result<Option<u32>, Error> {
        let Some(h) = parse_header(&buf[self.at..])? else {
            return Ok(None);
        };
        if h.token != token {
            return Err(Error::UnexpectedToken {
                expected: what,
                got: h.token,
            });
        }
        Ok(Some(h.value))
    }

    /// A packet whose value is a count or status, at most `limit`.
    fn count(
        &mut self,
        buf: &[u8],
        token: [u8; 4],
        what: &'static str,
        limit: u32,
    ) -> Result<Option<u32>, Error> {
        let Some(n) = self.value(buf, token, what)? else {
            return Ok(None);
        };
        if n > limit {
            return Err(Error::TooLarge {
                what,
                got: u64::from(n),
                limit: u64::from(limit),
            });
        }
        self.at += HEADER_LEN;
        Ok(Some(n))
    }

    /// A packet with a body of at most `limit` bytes: the limit is checked as soon as
    /// the header is in, before the body is waited for.
    fn body<'a>(
        &mut self,
        buf: &'a [u8],
        token: [u8; 4],
        what: &'static str,
        limit: u32,
    ) -> Result<Option<&'a [u8]>, Error> {
        let Some(len) = self.value(buf, token, what)? else {
            return Ok(None);
        };
        if len > limit {
            return Err(Error::TooLarge {
                what,
                got: u64::from(len),
                limit: u64::from(limit),
            });
        }
        let start = self.at + HEADER_LEN;
        let Some(body) = buf.get(start..start.saturating_add(len as usize)) else {
            return Ok(None);
        };
        self.at = start + body.len();
        Ok(Some(body))
    }

    fn text(
        &mut self,
        buf: &[u8],
        token: [u8; 4],
        what: &'static str,
        limit: u32,
    ) -> Result<Option<String>, Error> {
        let before = self.at;
        let Some(body) = self.body(buf, token, what, limit)? else {
            return Ok(None);
        };
        let text = decode_string(body, what);
        if text.is_err() {
            self.at = before;
        }
        text.map(Some)
    }

    /// A blob, decompressed within `max` bytes.
    fn blob(&mut self, buf: &[u8], max: u64) -> Result<Option<Vec<u8>>, Error> {
        match self.body(buf, RBLB, "RBLB", frame_bound(max))? {
            Some(frame) => unpack(frame, max).map(Some),
            None => Ok(None),
        }
    }
}

/// Unwraps a step's `Ok(Some)`, or returns "not complete yet" from the `advance` it is in.
macro_rules! step {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(false),
        }
    };
}

/// Room reserved for a declared count: enough for real jobs, never the declared
/// count itself (a header alone must not allocate much).
fn reserve(n: u32) -> usize {
    n.min(1024) as usize
}

#[derive(Debug, Default)]
struct RequestScan {
    cur: Cursor,
    cwd: Option<String>,
    argc: Option<u32>,
    args: Vec<String>,
    envc: Option<u32>,
    env: Vec<(String, String)>,
    filec: Option<u32>,
    files: Vec<JobFile>,
}

impl RequestScan {
    /// Parses as many packets as `buf` holds; true once the request is complete.
    fn advance(&mut self, buf: &[u8], l: &Limits) -> Result<bool, Error> {
        if buf.len() < self.cur.at {
            *self = RequestScan::default();
        }
        if self.cwd.is_none() {
            let cwd = step!(self.cur.text(buf, RCWD, "RCWD", l.max_text));
            check_path(&cwd, "RCWD")?;
            self.cwd = Some(cwd);
        }
        if self.argc.is_none() {
            let n = step!(self.cur.count(buf, RARC, "RARC", l.max_args));
            self.args.reserve(reserve(n));
            self.argc = Some(n);
        }
        while self.args.len() < self.argc.unwrap_or(0) as usize {
            let arg = step!(self.cur.text(buf, RARG, "RARG", l.max_text));
            self.args.push(arg);
        }
        if self.envc.is_none() {
            let n = step!(self.cur.count(buf, RENC, "RENC", l.max_env));
            self.env.reserve(reserve(n));
            self.envc = Some(n);
        }
        while self.env.len() < self.envc.unwrap_or(0) as usize {
            let var = step!(self.cur.text(buf, RENV, "RENV", l.max_text));
            self.env.push(parse_env(var)?);
        }
        if self.filec.is_none() {
            let n = step!(self.cur.count(buf, RFLC, "RFLC", l.max_files));
            self.files.reserve(reserve(n));
            self.filec = Some(n);
        }
        while self.files.len() < self.filec.unwrap_or(0) as usize {
            let line = step!(self.cur.text(buf, RFIL, "RFIL", l.max_text));
            self.files.push(parse_job_file(&line, l.max_blob)?);
        }
        Ok(true)
    }
}

/// The server's decoder for a client's [`RustcRequest`] (after the preamble).
///
/// Contract with the caller: after `Ok(Some((_, used)))` drop exactly `used` bytes
/// from the front of the buffer; after `Ok(None)` only append to it.
#[derive(Debug)]
pub struct RustcRequestDecoder {
    limits: Limits,
    scan: RequestScan,
}

impl RustcRequestDecoder {
    pub fn new(limits: Limits) -> Self {
        RustcRequestDecoder {
            limits,
            scan: RequestScan::default(),
        }
    }

    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(RustcRequest, usize)>, Error> {
        let done = self.scan.advance(buf, &self.limits);
        if !done.inspect_err(|_| self.scan = RequestScan::default())? {
            return Ok(None);
        }
        let s = std::mem::take(&mut self.scan);
        let request = RustcRequest {
            cwd: s.cwd.unwrap_or_default(),
            args: s.args,
            env: s.env,
            files: s.files,
        };
        Ok(Some((request, s.cur.at)))
    }
}

/// The server's decoder for one `RBLB` (a file's content), decompressed.
#[derive(Debug)]
pub struct BlobDecoder {
    max: u64,
}

impl BlobDecoder {
    /// `max`: the most bytes the content may have (e.g. the file's declared size).
    pub fn new(max: u64) -> Self {
        BlobDecoder { max }
    }

    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, Error> {
        let mut cur = Cursor::default();
        Ok(cur.blob(buf, self.max)?.map(|data| (data, cur.at)))
    }
}

#[derive(Debug, Default)]
struct ReplyScan {
    cur: Cursor,
    /// An early part (`RERL`), not the reply (`RDON`).
    early: bool,
    status: Option<u32>,
    stdout: Option<Vec<u8>>,
    stderr: Option<Vec<u8>>,
    root: Option<String>,
    outc: Option<u32>,
    outputs: Vec<OutputFile>,
    /// An output's `ROUT` while its `RBLB` is still arriving.
    pending: Option<(String, bool)>,
    /// Decompressed bytes of the outputs so far.
    total: u64,
}

impl ReplyScan {
    fn advance(&mut self, buf: &[u8], l: &Limits) -> Result<bool, Error> {
        if buf.len() < self.cur.at {
            *self = ReplyScan {
                early: self.early,
                ..ReplyScan::default()
            };
        }
        let max_bytes = u32::try_from(l.max_blob).unwrap_or(u32::MAX);
        if self.status.is_none() {
            let status = if self.early {
                step!(self.cur.count(buf, RERL, "RERL", 0))
            } else {
                step!(self.cur.count(buf, RDON, "RDON", 255))
            };
            self.status = Some(status);
        }
        if self.stdout.is_none() {
            let out = step!(self.cur.body(buf, RSOU, "RSOU", max_bytes));
            self.stdout = Some(out.to_vec());
        }
        if self.stderr.is_none() {
            let err = step!(self.cur.body(buf, RSER, "RSER", max_bytes));
            self.stderr = Some(err.to_vec());
        }
        if self.root.is_none() {
            let root = step!(self.cur.text(buf, RROT, "RROT", l.max_text));
            check_path(&root, "RROT")?;
            self.root = Some(root);
        }
        if self.outc.is_none() {
            let n = step!(self.cur.count(buf, ROUC, "ROUC", l.max_files));
            self.outputs.reserve(reserve(n));
            self.outc = Some(n);
        }
        while self.outputs.len() < self.outc.unwrap_or(0) as usize {
            if self.pending.is_none() {
                let line = step!(self.cur.text(buf, ROUT, "ROUT", l.max_text));
                self.pending = Some(parse_output(&line)?);
            }
            let data = step!(self.cur.blob(buf, l.max_blob - self.total));
            self.total += data.len() as u64;
            let (path, executable) = self.pending.take().unwrap_or_default();
            self.outputs.push(OutputFile {
                path,
                executable,
                data,
            });
        }
        Ok(true)
    }

    fn finish(self) -> RustcReply {
        RustcReply {
            status: self.status.unwrap_or_default(),
            stdout: self.stdout.unwrap_or_default(),
            stderr: self.stderr.unwrap_or_default(),
            root: self.root.unwrap_or_default(),
            outputs: self.outputs,
        }
    }
}

fn parse_output(line: &str) -> Result<(String, bool), Error> {
    let Some((mode, path)) = line.split_once(' ') else {
        return Err(Error::BadString {
            what: "ROUT",
            why: "not \"<x|-> <path>\"",
        });
    };
    let executable = parse_flag(mode, "ROUT")?;
    check_path(path, "ROUT")?;
    Ok((path.to_owned(), executable))
}

/// The client's decoder for everything a server sends after the preamble.
///
/// Same contract with the caller as [`RustcRequestDecoder`]: a reply is parsed (and
/// its outputs decompressed) once, however many reads it takes to arrive.
#[derive(Debug)]
pub struct ServerMsgDecoder {
    limits: Limits,
    reply: Option<ReplyScan>,
}

impl ServerMsgDecoder {
    pub fn new(limits: Limits) -> Self {
        ServerMsgDecoder {
            limits,
            reply: None,
        }
    }

    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(ServerMsg, usize)>, Error> {
        if self.reply.is_some() {
            return self.continue_reply(buf);
        }
        let Some(h) = parse_header(buf)? else {
            return Ok(None);
        };
        let l = &self.limits;
        let mut cur = Cursor::default();
        let msg = match h.token {
            SWKA => {
                cur.at = HEADER_LEN;
                Some(ServerMsg::KeepAlive)
            }
            RHIT => {
                if h.value != 0 {
                    return Err(Error::BadString {
                        what: "RHIT",
                        why: "value is not 0",
                    });
                }
                cur.at = HEADER_LEN;
                Some(ServerMsg::CacheHit)
            }
            SWOP => cur
                .text(buf, SWOP, "SWOP", ext::MAX_TEXT)?
                .map(|t| ServerMsg::Accepted(t.split_whitespace().map(str::to_owned).collect())),
            RREF => cur
                .text(buf, RREF, "RREF", l.max_text)?
                .map(ServerMsg::Refused),
            RNED => {
                let limit = u64::from(l.max_files).saturating_mul(11);
                let limit = u32::try_from(limit).unwrap_or(u32::MAX);
                match cur.text(buf, RNED, "RNED", limit)? {
                    Some(t) => Some(ServerMsg::Needed(parse_needed(&t, l.max_files)?)),
                    None => None,
                }
            }
            RDON | RERL => {
                self.reply = Some(ReplyScan {
                    early: h.token == RERL,
                    ..ReplyScan::default()
                });
                return self.continue_reply(buf);
            }
            got => {
                return Err(Error::UnexpectedToken {
                    expected: "SWOP, SWKA, RREF, RNED, RHIT, RERL or RDON",
                    got,
                })
            }
        };
        Ok(msg.map(|m| (m, cur.at)))
    }

    fn continue_reply(&mut self, buf: &[u8]) -> Result<Option<(ServerMsg, usize)>, Error> {
        let Some(scan) = &mut self.reply else {
            return Ok(None);
        };
        match scan.advance(buf, &self.limits) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let scan = self.reply.take().unwrap_or_default();
                let used = scan.cur.at;
                let msg = if scan.early {
                    ServerMsg::Early(scan.finish())
                } else {
                    ServerMsg::Reply(scan.finish())
                };
                Ok(Some((msg, used)))
            }
            Err(e) => {
                self.reply = None;
                Err(e)
            }
        }
    }
}
