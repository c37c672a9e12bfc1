//! Authentication (`swarmccd --auth-key-file`, the `,auth` host option) end to end, with
//! real processes, real gcc and loopback sockets: swarmcc ↔ swarmccd with the right and
//! a wrong key, Debian's real `distcc` client against a server that requires
//! authentication (refused, and served from an `--allow-unauthenticated` address),
//! swarmcc `,auth` against a real `distccd`, a tampered request on a raw socket, and
//! the key-file checks at startup.

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use swarmcc::auth::{load_key_file, Key, Session};
use swarmcc::protocol::auth::{
    encode_hello, encode_mac, encode_response, AuthDecoder, AuthMessage, Expect,
};
use swarmcc::protocol::{
    encode_request_header, encode_source, Limits, ReplyDecoder, ReplyEvent, Version,
};

const SOURCE: &str = "int scale(int x) { return x * 3 + 1; }\n";

/// A directory with a source, its local object, and key files.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(p.join("x.c"), SOURCE).unwrap();
        let out = run(Command::new("gcc")
            .current_dir(p)
            .args(["-c", "x.c", "-o", "ref.o"]));
        assert_success(&out, "local reference compile");
        Setup { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A new key file made by `swarmccd --gen-auth-key`.
    fn key(&self, name: &str) -> PathBuf {
        let path = self.path().join(name);
        let out = run(Command::new(SWARMCCD).arg("--gen-auth-key").arg(&path));
        assert_success(&out, "swarmccd --gen-auth-key");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        path
    }

    fn reference(&self) -> Vec<u8> {
        fs::read(self.path().join("ref.o")).unwrap()
    }

    /// `swarmcc gcc -c x.c -o OUT` with `hosts` and `key` as the client's key file, verbose.
    fn swarmcc(&self, hosts: &str, key: &Path, out: &str, env: &[(&str, &str)]) -> Output {
        let ddir = self.path().join(format!("ddir-{out}"));
        let _reaper = AgentReaper(ddir.clone());
        let mut cmd = swarmcc(&ddir, hosts);
        cmd.current_dir(self.path())
            .args(["gcc", "-c", "x.c", "-o", out])
            .env("SWARMCC_AUTH_KEY_FILE", key)
            .env("DISTCC_VERBOSE", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }

    /// Debian's real `distcc gcc -c x.c -o OUT`.
    fn distcc(&self, port: u16, out: &str, env: &[(&str, &str)]) -> Output {
        let ddir = self.path().join(format!("ddir-{out}"));
        fs::create_dir_all(&ddir).unwrap();
        let mut cmd = Command::new("distcc");
        cmd.current_dir(self.path())
            .args(["gcc", "-c", "x.c", "-o", out])
            .env("DISTCC_HOSTS", format!("127.0.0.1:{port}/2"))
            .env("DISTCC_DIR", &ddir)
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG")
            .env_remove("DISTCC_FALLBACK");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    }

    fn object(&self, name: &str) -> Vec<u8> {
        fs::read(self.path().join(name)).unwrap_or_default()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn server_with_key(s: &Setup, key: &Path, extra: &[&str]) -> Swarmccd {
    let mut args = vec!["--auth-key-file", key.to_str().unwrap()];
    args.extend_from_slice(extra);
    start_swarmccd(s.path(), &args)
}

/// The server's job lines (`client: … RESULT …`), which it writes after each
/// connection, less the one of the probe that saw it listening: once there are `want`
/// of them, or as they are after [`PATIENCE`] (the caller's assertion shows them).
fn job_lines(server: &Swarmccd, want: usize) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let lines: Vec<String> = server
            .log_text()
            .lines()
            .filter(|l| l.contains("] client: ") && !l.contains("closed without sending"))
            .map(str::to_string)
            .collect();
        if lines.len() >= want || Instant::now() > deadline {
            return lines;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn right_key_compiles_remotely_and_matches_a_local_compile() {
    let s = Setup::new();
    let key = s.key("server.key");
    let server = server_with_key(&s, &key, &[]);
    let hosts = format!("127.0.0.1:{}/2,lzo,auth", server.port);
    let out = s.swarmcc(&hosts, &key, "r.o", &[("DISTCC_FALLBACK", "0")]);
    assert_success(&out, "swarmcc with the right key");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("remote on 127.0.0.1:{}", server.port)),
        "{err}"
    );
    assert_eq!(s.object("r.o"), s.reference(), "same object as local gcc");
    let lines = job_lines(&server, 1);
    assert!(
        lines.len() == 1 && lines[0].contains("COMPILE_OK") && lines[0].contains("(authenticated)"),
        "{lines:?}\n{}",
        server.log_text()
    );
}

#[test]
fn wrong_key_falls_back_locally_and_nothing_is_compiled() {
    let s = Setup::new();
    let server_key = s.key("server.key");
    let client_key = s.key("client.key");
    let stats_port = free_port();
    let sp = stats_port.to_string();
    let server = server_with_key(&s, &server_key, &["--stats", "--stats-port", &sp]);
    let hosts = format!("127.0.0.1:{}/2,auth", server.port);
    let out = s.swarmcc(&hosts, &client_key, "w.o", &[]);
    assert_success(&out, "swarmcc with a wrong key (local fallback)");
    let err = stderr(&out);
    assert!(
        err.contains("fallback to local") && err.contains("wrong key"),
        "{err}"
    );
    assert_eq!(s.object("w.o"), s.reference());
    let lines = job_lines(&server, 1);
    let log = server.log_text();
    assert!(
        log.contains("client 127.0.0.1:") && log.contains("authentication failed: wrong key"),
        "the warning names the peer:\n{log}"
    );
    assert!(
        lines.len() == 1 && lines[0].contains("(authentication failed: wrong key)"),
        "{lines:?}"
    );
    assert!(
        !log.contains("COMPILE_OK") && !log.contains("compiling"),
        "{log}"
    );
    // Counted as an authentication refusal.
    let metrics = http_get(stats_port, "/metrics");
    assert!(
        metrics.contains("swarmccd_rejects_total{reason=\"auth\"} 1\n"),
        "{metrics}"
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

#[test]
fn real_distcc_client_is_refused_with_the_reason_and_compiles_locally() {
    let s = Setup::new();
    let key = s.key("server.key");
    // An exemption for another address must not let 127.0.0.1 in.
    let server = server_with_key(&s, &key, &["--allow-unauthenticated", "127.0.0.2"]);
    let out = s.distcc(server.port, "d.o", &[]);
    assert_success(&out, "distcc against a server requiring authentication");
    assert_eq!(s.object("d.o"), s.reference(), "compiled locally");
    let lines = job_lines(&server, 1);
    assert!(
        lines.len() == 1
            && lines[0].contains("exit:110")
            && lines[0].contains("authentication required"),
        "{lines:?}\n{}",
        server.log_text()
    );
    assert!(!server.log_text().contains("COMPILE_OK"));
}

#[test]
fn real_distcc_client_from_an_unauthenticated_address_is_served() {
    let s = Setup::new();
    let key = s.key("server.key");
    let server = server_with_key(&s, &key, &["--allow-unauthenticated", "127.0.0.0/8"]);
    let out = s.distcc(server.port, "u.o", &[("DISTCC_FALLBACK", "0")]);
    assert_success(&out, "distcc from an --allow-unauthenticated address");
    assert_eq!(s.object("u.o"), s.reference());
    let lines = job_lines(&server, 1);
    assert!(
        lines.len() == 1
            && lines[0].contains("COMPILE_OK")
            && lines[0].contains("unauthenticated, allowed by --allow-unauthenticated"),
        "{lines:?}"
    );
}

#[test]
fn auth_host_against_real_distccd_falls_back_and_says_why() {
    let s = Setup::new();
    let key = s.key("client.key");
    let distccd = start_distccd(s.path());
    let hosts = format!("127.0.0.1:{}/2,auth", distccd.port);
    let started = Instant::now();
    // distccd does not close on SWAU: it waits for more bytes to quote in its error
    // message. The client gives up after the connect timeout.
    let out = s.swarmcc(&hosts, &key, "a.o", &[("SWARMCC_CONNECT_TIMEOUT", "1")]);
    assert_success(&out, "swarmcc ,auth against distccd (local fallback)");
    // Not distccd's 300 s IO timeout (the bound leaves a loaded machine room).
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "no long wait: {:?}",
        started.elapsed()
    );
    let err = stderr(&out);
    assert!(
        err.contains("fallback to local") && err.contains("authentication handshake failed"),
        "{err}"
    );
    assert_eq!(s.object("a.o"), s.reference());
}

#[test]
fn server_without_a_key_tells_an_auth_client_why() {
    let s = Setup::new();
    let key = s.key("client.key");
    let server = start_swarmccd(s.path(), &[]);
    let hosts = format!("127.0.0.1:{}/2,auth", server.port);
    let out = s.swarmcc(&hosts, &key, "n.o", &[]);
    assert_success(&out, "swarmcc ,auth against a swarmccd without a key");
    let err = stderr(&out);
    assert!(
        err.contains("authentication not enabled on this server"),
        "{err}"
    );
    assert_eq!(s.object("n.o"), s.reference());
    let lines = job_lines(&server, 1);
    assert!(
        lines.len() == 1 && lines[0].contains("no --auth-key-file"),
        "{lines:?}"
    );
}

// ---------------------------------------------------------------------------------
// Raw protocol: the handshake by hand, so that the request can be altered in flight.

/// A raw connection that runs the client's half of the handshake.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads until `decode` yields something, or the server closes (`None`).
    fn next<T>(&mut self, mut decode: impl FnMut(&[u8]) -> Option<(T, usize)>) -> Option<T> {
        loop {
            if let Some((v, used)) = decode(&self.buf) {
                self.buf.drain(..used);
                return Some(v);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn auth(&mut self, expect: Expect) -> Option<AuthMessage> {
        self.next(|b| AuthDecoder::new(expect).decode(b).unwrap())
    }

    /// SWAU, SWCH, SWRS, SWOK: returns the session, and the SWRS sent.
    fn handshake(&mut self, key: &Key) -> (Session, Vec<u8>) {
        let mut out = Vec::new();
        encode_hello(&mut out);
        self.send(&out);
        let Some(AuthMessage::Challenge { server_nonce: ns }) = self.auth(Expect::Challenge) else {
            panic!("no challenge")
        };
        let nc = [0x5au8; 32];
        out.clear();
        encode_response(&nc, &key.client_proof(&ns, &nc), &mut out);
        self.send(&out);
        match self.auth(Expect::Verdict) {
            Some(AuthMessage::Accept { mac }) => {
                assert!(key.verify_server_proof(&ns, &nc, &mac), "server proof")
            }
            other => panic!("not accepted: {other:?}"),
        }
        (key.session(&ns, &nc), out)
    }
}

fn request_bytes(source: &[u8]) -> Vec<u8> {
    let argv: Vec<String> = ["gcc", "-c", "x.c", "-o", "x.o"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = Vec::new();
    encode_request_header(Version::V1, None, &argv, &mut out).unwrap();
    encode_source(Version::V1, source, &mut out).unwrap();
    out
}

fn preprocessed(s: &Setup) -> Vec<u8> {
    let out = run(Command::new("gcc")
        .current_dir(s.path())
        .args(["-E", "x.c"]));
    assert_success(&out, "gcc -E");
    out.stdout
}

#[test]
fn raw_session_reply_carries_a_valid_mac_and_a_replayed_response_fails() {
    let s = Setup::new();
    let key_path = s.key("server.key");
    let key = load_key_file(&key_path).unwrap();
    let server = server_with_key(&s, &key_path, &[]);

    let mut raw = Raw::connect(server.port);
    let (session, response) = raw.handshake(&key);
    let request = request_bytes(&preprocessed(&s));
    let mut t = session.transcript();
    t.update(&request);
    let mut out = request.clone();
    encode_mac(&t.finish(), &mut out);
    raw.send(&out);
    // The reply, then its MAC over exactly the reply's bytes.
    let mut dec = ReplyDecoder::new(Version::V1, Limits::default(), false);
    let mut reply_mac = session.transcript();
    let mut object = Vec::new();
    while !dec.is_complete() {
        let event = raw
            .next(|b| {
                let got = dec.decode(b).unwrap();
                if let Some((_, used)) = &got {
                    reply_mac.update(&b[..*used]);
                }
                got
            })
            .expect("a whole reply");
        if let ReplyEvent::Object(o) = event {
            object = o;
        }
    }
    let Some(AuthMessage::Mac { mac }) = raw.auth(Expect::Mac) else {
        panic!("no reply MAC")
    };
    assert!(reply_mac.verify(&mac), "reply MAC");
    assert_eq!(object, s.reference());

    // A recorded SWRS is worthless on a new connection: the server's nonce changed.
    let mut again = Raw::connect(server.port);
    let mut hello = Vec::new();
    encode_hello(&mut hello);
    again.send(&hello);
    assert!(matches!(
        again.auth(Expect::Challenge),
        Some(AuthMessage::Challenge { .. })
    ));
    again.send(&response);
    match again.auth(Expect::Verdict) {
        Some(AuthMessage::Refuse { reason }) => assert!(reason.contains("wrong key"), "{reason}"),
        other => panic!("replayed response accepted: {other:?}"),
    }
}

#[test]
fn tampered_request_is_refused_and_not_compiled() {
    let s = Setup::new();
    let key_path = s.key("server.key");
    let key = load_key_file(&key_path).unwrap();
    let server = server_with_key(&s, &key_path, &[]);

    let mut raw = Raw::connect(server.port);
    let (session, _) = raw.handshake(&key);
    let original = request_bytes(&preprocessed(&s));
    let mut t = session.transcript();
    t.update(&original);
    let mac = t.finish();
    // A man in the middle changes the program (`* 3` becomes `* 4`), keeping the MAC.
    let mut tampered = original.clone();
    let at = tampered
        .windows(3)
        .position(|w| w == b"* 3")
        .expect("source in the request");
    tampered[at + 2] = b'4';
    encode_mac(&mac, &mut tampered);
    raw.send(&tampered);
    match raw.auth(Expect::ReplyStart) {
        Some(AuthMessage::Refuse { reason }) => {
            assert!(reason.contains("integrity"), "{reason}")
        }
        other => panic!("tampered request not refused: {other:?}"),
    }
    // The server closes after refusing.
    assert!(raw.next(|_| None::<((), usize)>).is_none());
    let lines = job_lines(&server, 1);
    let log = server.log_text();
    assert!(
        lines.len() == 1 && lines[0].contains("MAC mismatch"),
        "{lines:?}\n{log}"
    );
    assert!(
        !log.contains("compiling") && !log.contains("COMPILE_OK"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------
// Key files at startup.

/// Runs swarmccd expecting it to refuse to start; returns its stderr.
fn refused_start(dir: &Path, key: &Path) -> String {
    let port = free_port().to_string();
    let mut guard = spawn_group(
        Command::new(SWARMCCD)
            .args(["--no-detach", "--listen", "127.0.0.1", "--port", &port])
            .arg("--auth-key-file")
            .arg(key)
            .env("TMPDIR", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        "swarmccd",
    );
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = guard.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "swarmccd started with {key:?}");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut err = String::new();
    guard
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

#[test]
fn bad_key_files_stop_the_server_with_a_message_naming_the_file() {
    let s = Setup::new();
    let key = s.key("open.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = refused_start(s.path(), &key);
    assert!(
        err.contains(key.to_str().unwrap()) && err.contains("0644") && err.contains("chmod 600"),
        "{err}"
    );

    let missing = s.path().join("missing.key");
    let err = refused_start(s.path(), &missing);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");

    let short = s.path().join("short.key");
    fs::write(&short, "00112233\n").unwrap();
    fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
    let err = refused_start(s.path(), &short);
    assert!(
        err.contains(short.to_str().unwrap()) && err.contains("at least 32"),
        "{err}"
    );

    // --gen-auth-key never overwrites a key.
    let before = fs::read(&key).unwrap();
    let out = run(Command::new(SWARMCCD).arg("--gen-auth-key").arg(&key));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(fs::read(&key).unwrap(), before);
}
