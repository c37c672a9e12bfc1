//! swarmccd `--rustc` spoken to directly, byte by byte (`protocol::rustc`), by a client
//! that is honest, mistaken or hostile: a real job comes back with its outputs, and
//! each bad request is refused with its reason (or the connection closed) while the
//! server goes on serving.

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use swarmcc::blobs::sha256_hex;
use swarmcc::protocol::ext::{self, Preamble};
use swarmcc::protocol::rustc::{
    self, JobFile, Limits, RustcReply, RustcRequest, ServerMsg, ServerMsgDecoder,
};

/// A swarmccd serving rustc jobs, and the identity of its toolchain (the client's).
struct Server {
    server: Swarmccd,
    identity: String,
}

fn start(dir: &Path) -> Server {
    start_with(dir, &["--cache-dir", farm_cache_dir(dir).to_str().unwrap()])
}

/// Where [`start`]'s farm cache is: in a directory the unprivileged user swarmccd
/// switches to (tests run as root) can create it in.
fn farm_cache_dir(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let parent = dir.join("cachebox");
    fs::create_dir_all(&parent).unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o1777)).unwrap();
    parent.join("farm")
}

fn start_with(dir: &Path, extra: &[&str]) -> Server {
    // The input store is the default one, in the server's TMPDIR (see `cache_files`).
    let mut args: Vec<String> = ["--allow", "127.0.0.1", "--rustc"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    if let Some(rustc) = server_toolchain(dir) {
        args.push("--rustc-toolchain".into());
        args.push(rustc.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start_swarmccd(dir, &args);
    let identity = swarmcc::toolchain::rustc::identity(&client_rustc()).expect("rustc -vV");
    Server { server, identity }
}

/// A one-file library crate in `dir/pkg`, and the request that compiles it.
fn tiny_crate(dir: &Path, source: &str) -> (RustcRequest, Vec<u8>) {
    let pkg = dir.join("pkg");
    fs::create_dir_all(pkg.join("src")).unwrap();
    fs::write(pkg.join("src/lib.rs"), source).unwrap();
    let out = pkg.join("out");
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let args = [
        "--crate-name",
        "tiny",
        "--edition=2021",
        "src/lib.rs",
        "--crate-type",
        "lib",
        "--emit=dep-info,metadata,link",
        "-C",
        "metadata=t",
        "--out-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([text(&out)])
    .collect();
    let data = source.as_bytes().to_vec();
    let request = RustcRequest {
        cwd: text(&pkg),
        args,
        env: vec![("CARGO_PKG_NAME".into(), "tiny".into())],
        files: vec![JobFile {
            hash: sha256_hex(&data),
            executable: false,
            size: data.len() as u64,
            path: text(&pkg.join("src/lib.rs")),
        }],
    };
    (request, data)
}

/// A rustc conversation on a raw socket.
struct Talk {
    stream: TcpStream,
    buf: Vec<u8>,
    decoder: ServerMsgDecoder,
}

impl Talk {
    fn open(server: &Server, identity: &str, request: &RustcRequest) -> Talk {
        Self::open_with(server, identity, request, &[rustc::FEATURE])
    }

    /// [`open`](Self::open) asking for `features`.
    fn open_with(
        server: &Server,
        identity: &str,
        request: &RustcRequest,
        features: &[&str],
    ) -> Talk {
        let mut stream = TcpStream::connect(("127.0.0.1", server.server.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let mut bytes = Vec::new();
        let preamble = Preamble {
            features: features.iter().map(|f| f.to_string()).collect(),
            identity: identity.into(),
        };
        ext::encode_preamble(&preamble, &mut bytes).unwrap();
        rustc::encode_request(request, &mut bytes).unwrap();
        stream.write_all(&bytes).unwrap();
        Talk {
            stream,
            buf: Vec::new(),
            decoder: ServerMsgDecoder::new(Limits::default()),
        }
    }

    /// The next message other than a keep-alive; `None` if the server closed.
    fn next(&mut self) -> Option<ServerMsg> {
        loop {
            if let Some((msg, used)) = self.decoder.decode(&self.buf).unwrap() {
                self.buf.drain(..used);
                if msg == ServerMsg::KeepAlive {
                    continue;
                }
                return Some(msg);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn send_blob(&mut self, data: &[u8]) {
        let mut bytes = Vec::new();
        rustc::encode_blob(data, &mut bytes).unwrap();
        self.stream.write_all(&bytes).unwrap();
    }

    /// Accepted, then the indices the server lacks.
    fn accepted_then_needed(&mut self) -> Vec<u32> {
        assert_eq!(self.next(), Some(ServerMsg::Accepted(vec!["rustc".into()])));
        match self.next() {
            Some(ServerMsg::Needed(n)) => n,
            other => panic!("expected RNED, got {other:?}"),
        }
    }
}

/// The files of the server's input store (`swarmccd-rustc-cache-UID` in its TMPDIR).
fn cache_files(dir: &Path, server: &Server) -> Vec<PathBuf> {
    let tmpdir = dir.join(format!("swarmccd-tmp-{}", server.server.port));
    let stores: Vec<PathBuf> = fs::read_dir(&tmpdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("swarmccd-rustc-cache-")
        })
        .collect();
    assert_eq!(stores.len(), 1, "one store in {}", tmpdir.display());
    fs::read_dir(&stores[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn refusal(msg: Option<ServerMsg>) -> String {
    match msg {
        Some(ServerMsg::Refused(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn reply(msg: Option<ServerMsg>) -> RustcReply {
    match msg {
        Some(ServerMsg::Reply(r)) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// A real job: the content is asked for once, the compile comes back with rlib, rmeta
/// and dep-info at their client paths; a second identical job sends no content (and,
/// the farm cache off, is compiled again).
#[test]
fn a_job_comes_back_with_its_outputs_and_its_inputs_are_sent_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_with(tmp.path(), &["--no-cache"]);
    let (request, data) = tiny_crate(tmp.path(), "pub fn add(a: u32, b: u32) -> u32 { a + b }\n");
    let mut talk = Talk::open(&server, &server.identity, &request);
    assert_eq!(talk.accepted_then_needed(), [0]);
    talk.send_blob(&data);
    let r = reply(talk.next());
    assert_eq!(r.status, 0, "{}", String::from_utf8_lossy(&r.stderr));
    let mut names: Vec<String> = r
        .outputs
        .iter()
        .map(|o| o.path.rsplit('/').next().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["libtiny.rlib", "libtiny.rmeta", "tiny.d"]);
    let out_dir = format!("{}/out/", request.cwd);
    assert!(r.outputs.iter().all(|o| o.path.starts_with(&out_dir)));
    let d = r.outputs.iter().find(|o| o.path.ends_with(".d")).unwrap();
    let dep_info = String::from_utf8_lossy(&d.data);
    // At the client's paths (a namespace) the dep-info is the client's as it is;
    // below a job root, its paths carry the root, which the client takes out.
    let prefix = if r.root == "/" { "" } else { r.root.as_str() };
    let expected = format!("{prefix}{}/out/tiny.d: src/lib.rs\n", request.cwd);
    assert!(
        dep_info.starts_with(&expected),
        "root {:?}:\n{dep_info}",
        r.root
    );
    assert_eq!(cache_files(tmp.path(), &server).len(), 1, "kept by content");
    let mut again = Talk::open(&server, &server.identity, &request);
    assert_eq!(
        again.accepted_then_needed(),
        Vec::<u32>::new(),
        "cached by content"
    );
    assert_eq!(reply(again.next()).status, 0);
    let log = server
        .server
        .log_when(|l| l.matches("COMPILE_OK").count() >= 2);
    assert!(log.contains("rustc tiny"), "{log}");
}

/// Another toolchain is refused before the request is read, naming what the server has.
#[test]
fn another_toolchain_is_refused_with_what_the_server_has() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let (request, _) = tiny_crate(tmp.path(), "pub fn f() {}\n");
    let mut talk = Talk::open(&server, "rustc 0.1.0; commit 0; host none", &request);
    assert_eq!(talk.next(), Some(ServerMsg::Accepted(vec![])));
    let why = refusal(talk.next());
    assert!(why.starts_with(rustc::NO_TOOLCHAIN), "{why}");
    assert!(why.contains(&server.identity), "{why}");
}

/// Content that is not what its hash says, a variable that would change how the
/// server's programs start, a command that is not a crate compile: each refused with
/// its reason, and nothing of the bad content is kept.
#[test]
fn lies_and_dangerous_requests_are_refused_and_the_server_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let (request, data) = tiny_crate(tmp.path(), "pub fn g() -> u8 { 7 }\n");

    let mut talk = Talk::open(&server, &server.identity, &request);
    assert_eq!(talk.accepted_then_needed(), [0]);
    talk.send_blob(b"pub fn g() -> u8 { 8 }\n");
    let why = refusal(talk.next());
    assert!(why.contains("src/lib.rs") && why.contains("hash"), "{why}");
    let cache = cache_files(tmp.path(), &server);
    assert!(cache.is_empty(), "a lie was kept: {cache:?}");

    let mut preload = request.clone();
    preload
        .env
        .push(("LD_PRELOAD".into(), "/tmp/evil.so".into()));
    let mut talk = Talk::open(&server, &server.identity, &preload);
    assert_eq!(talk.next(), Some(ServerMsg::Accepted(vec!["rustc".into()])));
    let why = refusal(talk.next());
    assert!(why.contains("LD_PRELOAD"), "{why}");

    let mut linker = request.clone();
    linker.args.extend(["-C".into(), "linker=/tmp/evil".into()]);
    let mut talk = Talk::open(&server, &server.identity, &linker);
    assert_eq!(talk.next(), Some(ServerMsg::Accepted(vec!["rustc".into()])));
    let why = refusal(talk.next());
    assert!(why.contains("linker"), "{why}");

    // A request cut short: the server drops it; then an honest job is served.
    let mut cut = TcpStream::connect(("127.0.0.1", server.server.port)).unwrap();
    let mut bytes = Vec::new();
    let preamble = Preamble {
        features: vec![rustc::FEATURE.into()],
        identity: server.identity.clone(),
    };
    ext::encode_preamble(&preamble, &mut bytes).unwrap();
    rustc::encode_request(&request, &mut bytes).unwrap();
    cut.write_all(&bytes[..bytes.len() - 10]).unwrap();
    drop(cut);

    let mut talk = Talk::open(&server, &server.identity, &request);
    assert_eq!(talk.accepted_then_needed(), [0]);
    talk.send_blob(&data);
    assert_eq!(reply(talk.next()).status, 0);
}

/// The farm cache: a successful job asked again is answered from the cache at once —
/// to a client that did not announce `rustc-farm-cache` as an empty `RNED` (what every
/// client understands), to one that did with `RHIT` — with the very reply the compile
/// made; another source is compiled, and a failed compile is never stored.
#[test]
fn a_job_seen_before_is_answered_from_the_farm_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let (request, data) = tiny_crate(tmp.path(), "pub fn k() -> u64 { 42 }\n");
    let mut talk = Talk::open(&server, &server.identity, &request);
    assert_eq!(talk.accepted_then_needed(), [0]);
    talk.send_blob(&data);
    let first = reply(talk.next());
    assert_eq!(
        first.status,
        0,
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stored = |l: &str| l.contains("stored rustc tiny in the farm cache");
    server.server.log_when(stored);

    // An old client: no mark, no contents asked for, the same reply.
    let mut old = Talk::open(&server, &server.identity, &request);
    assert_eq!(old.accepted_then_needed(), Vec::<u32>::new());
    assert_eq!(reply(old.next()), first);

    // A client that reads the mark.
    let features = [rustc::FEATURE, rustc::FARM_CACHE];
    let mut new = Talk::open_with(&server, &server.identity, &request, &features);
    let want: Vec<String> = features.iter().map(|f| f.to_string()).collect();
    assert_eq!(new.next(), Some(ServerMsg::Accepted(want)));
    assert_eq!(new.next(), Some(ServerMsg::CacheHit));
    assert_eq!(reply(new.next()), first);
    let log = server
        .server
        .log_when(|l| l.matches("CACHE_HIT").count() >= 2);
    assert_eq!(log.matches("COMPILE_OK").count(), 1, "{log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("CACHE_HIT"))
            .all(|l| l.contains("rustc tiny")),
        "{log}"
    );

    // Another source is another job; a failed compile is compiled each time.
    let (other, data) = tiny_crate(tmp.path(), "pub fn k() -> u64 { 43 }\n");
    let mut talk = Talk::open_with(&server, &server.identity, &other, &features);
    talk.next();
    assert_eq!(talk.next(), Some(ServerMsg::Needed(vec![0])));
    talk.send_blob(&data);
    assert_eq!(reply(talk.next()).status, 0);
    let (broken, data) = tiny_crate(tmp.path(), "pub fn k() -> u64 { nope }\n");
    for _ in 0..2 {
        let mut talk = Talk::open_with(&server, &server.identity, &broken, &features);
        talk.next();
        match talk.next() {
            Some(ServerMsg::Needed(n)) if n == [0] => talk.send_blob(&data),
            Some(ServerMsg::Needed(n)) => assert!(n.is_empty(), "{n:?}"),
            other => panic!("a failed compile was served from the cache: {other:?}"),
        }
        assert_ne!(reply(talk.next()).status, 0);
    }
    let log = server
        .server
        .log_when(|l| l.matches("COMPILE_ERROR").count() >= 2);
    assert_eq!(log.matches("CACHE_HIT").count(), 2, "{log}");
    assert_eq!(log.matches("in the farm cache as").count(), 2, "{log}");
}
