//! The only code that reads and writes protocol connections (a `transport::Stream`:
//! TCP, a UNIX socket, or pipes): it feeds bytes to the pure `protocol` decoders and
//! enforces timeouts.
//!
//! It knows the protocol only through the decoders' `decode` method, and nothing of
//! compilers, hosts or files.
//!
//! A connection can carry a *tap* (see [`Conn::start_tap`]): a running MAC that sees
//! every byte sent, or every byte a decoder consumed, while it is set. Authenticated
//! sessions (`auth`) use it to MAC a request or reply exactly as it crossed the wire,
//! without re-encoding anything.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::auth::Transcript;
use crate::protocol::auth::{AuthDecoder, AuthMessage};
use crate::protocol::cache::{Answer as CacheAnswer, AnswerDecoder, KeyDecoder};
use crate::protocol::ext::{AdvertDecoder, Opening, OpeningDecoder, PreludeDecoder, ReplyPrelude};
use crate::protocol::rustc::{
    BlobDecoder, RustcRequest, RustcRequestDecoder, ServerMsg, ServerMsgDecoder,
};
use crate::protocol::{self, ReplyDecoder, ReplyEvent, RequestDecoder, RequestEvent};
use crate::transport::Stream;

/// Size of one socket read. Large enough that a typical object arrives in a few reads.
/// Room made for each read. The buffer grows by doubling beyond it, and keeps its
/// zeroed bytes between reads: zeroing a fresh 256 KiB region per read once cost
/// more server CPU than the rest of a tiny job's handling.
const READ_CHUNK: usize = 16 * 1024;

/// Something that decodes events from the front of a byte buffer.
pub trait Decode {
    type Event;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(Self::Event, usize)>, protocol::Error>;
}

impl Decode for RequestDecoder {
    type Event = RequestEvent;
    fn decode_next(
        &mut self,
        buf: &[u8],
    ) -> Result<Option<(RequestEvent, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for ReplyDecoder {
    type Event = ReplyEvent;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(ReplyEvent, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for AuthDecoder {
    type Event = AuthMessage;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(AuthMessage, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for OpeningDecoder {
    type Event = Opening;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(Opening, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for AdvertDecoder {
    type Event = bool;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(bool, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for PreludeDecoder {
    type Event = ReplyPrelude;
    fn decode_next(
        &mut self,
        buf: &[u8],
    ) -> Result<Option<(ReplyPrelude, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for KeyDecoder {
    type Event = String;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(String, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for AnswerDecoder {
    type Event = CacheAnswer;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(CacheAnswer, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for RustcRequestDecoder {
    type Event = RustcRequest;
    fn decode_next(
        &mut self,
        buf: &[u8],
    ) -> Result<Option<(RustcRequest, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for BlobDecoder {
    type Event = Vec<u8>;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

impl Decode for ServerMsgDecoder {
    type Event = ServerMsg;
    fn decode_next(&mut self, buf: &[u8]) -> Result<Option<(ServerMsg, usize)>, protocol::Error> {
        self.decode(buf)
    }
}

/// Which bytes a tap sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapDirection {
    /// Everything passed to [`Conn::send`].
    Sent,
    /// Everything a decoder consumed in [`Conn::next_event`] (not bytes merely read
    /// ahead: those belong to whatever is decoded next).
    Received,
}

/// Why a conversation stopped.
#[derive(Debug)]
pub enum ConnError {
    /// No byte moved for longer than the allowed wait.
    Timeout {
        waited: Duration,
        during: &'static str,
    },
    /// The peer closed the connection; `mid_message` if it did so inside a packet.
    Eof {
        mid_message: bool,
    },
    /// The bytes cannot form a valid message.
    Protocol(protocol::Error),
    Io(io::Error),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Timeout { waited, during } => {
                write!(f, "timed out after {:.1}s {during}", waited.as_secs_f64())
            }
            ConnError::Eof { mid_message: true } => write!(f, "connection closed mid-message"),
            ConnError::Eof { mid_message: false } => {
                write!(f, "connection closed without an answer")
            }
            ConnError::Protocol(e) => write!(f, "protocol error: {e}"),
            ConnError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConnError {}

impl From<protocol::Error> for ConnError {
    fn from(e: protocol::Error) -> Self {
        ConnError::Protocol(e)
    }
}

/// A protocol connection: a stream (`transport`) plus the bytes received but not yet
/// decoded.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    /// Received bytes are `buf[start..end]`; `buf[end..]` is room for the next read.
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by the decoder.
    start: usize,
    /// End of the bytes received.
    end: usize,
    /// Longest allowed silence while a message is in flight.
    io_timeout: Duration,
    /// An overall bound on receiving, however steadily bytes trickle in.
    deadline: Option<Instant>,
    /// The running MAC of one direction, while an authenticated session needs it.
    tap: Option<(TapDirection, Transcript)>,
}

impl Conn {
    pub fn new(stream: Stream, io_timeout: Duration) -> Self {
        // Small packets (headers) must not wait for Nagle; the request header is sent
        // while the preprocessor still runs, so latency matters.
        stream.set_nodelay();
        Conn {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            io_timeout,
            deadline: None,
            tap: None,
        }
    }

    /// Bounds every later receive by `deadline` as well as by the silence timeouts;
    /// `None` lifts it. A peer that sends one byte just before each silence timeout
    /// would otherwise hold the connection as long as it likes.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Feeds every later byte of `direction` to `transcript`, until [`Conn::stop_tap`].
    pub fn start_tap(&mut self, direction: TapDirection, transcript: Transcript) {
        self.tap = Some((direction, transcript));
    }

    /// Removes the tap and returns its transcript (`None` if there was none).
    pub fn stop_tap(&mut self) -> Option<Transcript> {
        self.tap.take().map(|(_, t)| t)
    }

    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Tells the peer nothing more will be written; reading goes on.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown_write();
    }

    pub fn set_io_timeout(&mut self, t: Duration) {
        self.io_timeout = t;
    }

    /// Writes all of `bytes`, failing if the peer accepts nothing for `io_timeout`.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.stream
            .set_write_timeout(Some(nonzero(self.io_timeout)))
            .map_err(ConnError::Io)?;
        if let Some((TapDirection::Sent, t)) = &mut self.tap {
            t.update(bytes);
        }
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) if is_timeout(&e) => Err(ConnError::Timeout {
                waited: self.io_timeout,
                during: "sending",
            }),
            Err(e) => Err(ConnError::Io(e)),
        }
    }

    /// Whether an authenticated session's MAC is following what is sent (such bytes
    /// must pass through [`Conn::send`]).
    pub fn tapping(&self) -> bool {
        matches!(self.tap, Some((TapDirection::Sent, _)))
    }

    /// Sends the first `len` bytes of `file` without copying them through user memory
    /// (`sendfile(2)`; std's `io::copy` does not use it for sockets). Fails if the file
    /// is shorter, or under the same timeouts as [`Conn::send`]; not for a tapped
    /// direction.
    pub fn send_file(&mut self, file: &std::fs::File, len: u64) -> Result<(), ConnError> {
        debug_assert!(!self.tapping(), "a tapped connection must see the bytes");
        self.stream
            .set_write_timeout(Some(nonzero(self.io_timeout)))
            .map_err(ConnError::Io)?;
        let mut offset: libc::off_t = 0;
        let mut left = len;
        while left > 0 {
            let chunk = left.min(1 << 30) as usize;
            let n = match self.stream.send_file_chunk(file, &mut offset, chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => {
                    return Err(ConnError::Timeout {
                        waited: self.io_timeout,
                        during: "sending",
                    })
                }
                Err(e) => return Err(ConnError::Io(e)),
            };
            if n == 0 {
                return Err(ConnError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ended after {} of {len} bytes", len - left),
                )));
            }
            left -= n as u64;
        }
        Ok(())
    }

    /// Decodes the next event. `first_wait` bounds the wait for the first byte when no
    /// partial message is buffered (e.g. the compile time before a reply starts);
    /// afterwards every silence is bounded by `io_timeout`.
    pub fn next_event<D: Decode>(
        &mut self,
        decoder: &mut D,
        first_wait: Option<Duration>,
    ) -> Result<D::Event, ConnError> {
        loop {
            if let Some((event, used)) = decoder.decode_next(&self.buf[self.start..self.end])? {
                if let Some((TapDirection::Received, t)) = &mut self.tap {
                    t.update(&self.buf[self.start..self.start + used]);
                }
                self.start += used;
                self.compact();
                return Ok(event);
            }
            let pending = self.end > self.start;
            let (wait, during) = match first_wait {
                Some(w) if !pending => (w, "waiting for the reply"),
                _ => (self.io_timeout, "receiving"),
            };
            self.fill(wait, during)?;
        }
    }

    /// Reads at least one more byte into the buffer.
    fn fill(&mut self, wait: Duration, during: &'static str) -> Result<(), ConnError> {
        let mut deadline = Instant::now() + wait;
        let (mut wait, mut during) = (wait, during);
        if let Some(overall) = self.deadline {
            if overall < deadline {
                deadline = overall;
                wait = overall.saturating_duration_since(Instant::now());
                during = "receiving (overall time limit)";
            }
        }
        self.make_room();
        let old_len = self.end;
        let result = loop {
            let now = Instant::now();
            if now >= deadline {
                break Err(ConnError::Timeout {
                    waited: wait,
                    during,
                });
            }
            if let Err(e) = self.stream.set_read_timeout(Some(nonzero(deadline - now))) {
                break Err(ConnError::Io(e));
            }
            match self.stream.read(&mut self.buf[old_len..]) {
                Ok(0) => {
                    break Err(ConnError::Eof {
                        mid_message: old_len > self.start,
                    })
                }
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) => continue,
                Err(e) => break Err(ConnError::Io(e)),
            }
        };
        match result {
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Leaves at least `READ_CHUNK` bytes of room after `end`, moving the unconsumed
    /// bytes to the front when that suffices and growing the buffer otherwise.
    fn make_room(&mut self) {
        if self.buf.len() - self.end >= READ_CHUNK {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            let want = (self.end + READ_CHUNK).max(self.buf.len() * 2);
            self.buf.resize(want, 0);
        }
    }

    fn compact(&mut self) {
        // Everything consumed: the next read starts at the front, without a copy.
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads and drops everything the peer still sends, until it closes, stays silent
    /// for the I/O timeout, or the overall deadline passes. Reuses the buffer it has.
    pub fn discard_rest(&mut self) {
        self.start = 0;
        self.end = 0;
        while self.fill(self.io_timeout, "discarding").is_ok() {
            self.end = 0;
        }
    }

    /// Ends a request that will not be completed (its source could not be made): says
    /// so with a FIN rather than a reset — closing a socket with unread bytes (a
    /// swarmccd's keep-alives) resets it, which the server would log as a network
    /// fault — and drops what the server sent so far, without waiting for more.
    pub fn close_unsent(&mut self) {
        let _ = self.stream.shutdown_write();
        self.stream.drain_nonblocking();
    }

    /// Bytes received beyond the last decoded event.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    pub fn into_stream(self) -> Stream {
        self.stream
    }
}

fn nonzero(d: Duration) -> Duration {
    // A zero timeout means "block forever" to std; never let a rounding do that.
    d.max(Duration::from_millis(1))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (Conn, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (Conn::new(Stream::Tcp(a), Duration::from_secs(5)), b)
    }

    #[test]
    fn send_file_sends_the_files_first_bytes_and_refuses_a_short_file() {
        let (mut conn, mut peer) = pair();
        let mut file = tempfile::tempfile().unwrap();
        let text: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        file.write_all(&text).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        conn.send_file(&file, 200_000).unwrap();
        let short = conn.send_file(&file, 400_000);
        assert!(
            matches!(&short, Err(ConnError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof),
            "{short:?}"
        );
        drop(conn);
        let got = reader.join().unwrap();
        // The first call's 200 000 bytes, then the whole file (the second call sent
        // everything there was before finding it short).
        assert_eq!(&got[..200_000], &text[..200_000]);
        assert_eq!(&got[200_000..], &text[..]);
    }

    #[test]
    fn replies_split_across_many_reads_decode_whole_through_a_reused_buffer() {
        use crate::protocol::{encode_reply, Limits, Reply, ReplyDecoder, ReplyEvent, Version};
        let (mut conn, mut peer) = pair();
        let objects: Vec<Vec<u8>> = [100_000usize, 10, 70_000]
            .iter()
            .map(|&n| (0..n).map(|i| (i % 253) as u8).collect())
            .collect();
        let mut bytes = Vec::new();
        for object in &objects {
            let reply = Reply {
                object: object.clone(),
                ..Reply::default()
            };
            encode_reply(Version::V1, &reply, &mut bytes).unwrap();
        }
        // Dribbled in odd-sized pieces, so that messages straddle reads and the buffer
        // has to move and grow.
        let writer = std::thread::spawn(move || {
            for piece in bytes.chunks(7_777) {
                peer.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        for object in &objects {
            let mut decoder = ReplyDecoder::new(Version::V1, Limits::default(), false);
            let got = loop {
                match conn
                    .next_event(&mut decoder, Some(Duration::from_secs(5)))
                    .unwrap()
                {
                    ReplyEvent::Object(o) => break o,
                    _ => continue,
                }
            };
            assert!(&got == object, "object of {} bytes", object.len());
        }
        writer.join().unwrap();
        assert_eq!(conn.pending(), 0);
    }
}
