//! The REAPI backend against a real engine: buildbox-casd 1.4.25 with its local
//! execution service (buildbox-run in a bubblewrap sandbox), installed by
//! `integration/reapi-engine.sh install` (the test command runs it and sets
//! `SWARMCC_REAPI_ENGINE_DIR`) and started here on a loopback port for each test.
//!
//! What is checked: the fixture project built with `make -j4 CC="swarmcc gcc"` on the
//! engine gives the local build's objects, every job executed on the engine; a second
//! clean build is served from the engine's action cache, even by the same cache
//! restarted without its runner (so it cannot execute anything); an engine killed
//! mid-build means local fallbacks and a good build; a broken spec, a dead engine and
//! a missing token file are said clearly and the compile is done here; a source and
//! an object larger than the engine's batch limit go through ByteStream.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::project::{assert_same_outputs, make, reference_build};
use common::{
    assert_success, copy_tree, file_when, fixture, free_port, run, spawn_group, swarmcc, wait_for,
    wait_for_port, AgentReaper, ProcessGuard, PATIENCE, SWARMCC,
};

/// Where the engine's binaries are: `SWARMCC_REAPI_ENGINE_DIR`, else the install
/// script's default. A missing engine fails the test with what to do.
fn engine_dir() -> PathBuf {
    let dir = std::env::var_os("SWARMCC_REAPI_ENGINE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
            cache.join("swarmcc-tests/buildbox-1.4.25")
        });
    for bin in ["buildbox-casd", "buildbox-run"] {
        assert!(
            dir.join(bin).is_file(),
            "the REAPI engine is not installed: no {}; run `bash integration/reapi-engine.sh install` \
             (integration/run-tests.sh does) and set SWARMCC_REAPI_ENGINE_DIR to the directory it prints",
            dir.join(bin).display()
        );
    }
    dir
}

/// A running buildbox-casd, killed when dropped.
struct Engine {
    guard: ProcessGuard,
    port: u16,
    log: PathBuf,
}

impl Engine {
    /// Starts the engine on a free port with its cache in `cache`: with execution
    /// (`start`) or as a cache only (`cache-only`).
    fn start(dir: &Path, cache: &Path, mode: &str, extra: &[&str]) -> Engine {
        let engine = engine_dir();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/reapi-engine.sh");
        let port = free_port();
        let log = dir.join(format!("casd-{port}.log"));
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .args([mode, &port.to_string()])
            .arg(cache)
            .args(extra)
            .env("SWARMCC_REAPI_ENGINE_DIR", &engine)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&log).unwrap());
        let mut guard = spawn_group(&mut cmd, "buildbox-casd");
        let deadline = Instant::now() + PATIENCE;
        while !wait_for_port(port, Duration::from_millis(100)) {
            let text = fs::read_to_string(&log).unwrap_or_default();
            assert!(
                matches!(guard.child.try_wait(), Ok(None)) && Instant::now() < deadline,
                "buildbox-casd did not listen on {port}:\n{text}"
            );
        }
        file_when(&log, |t| t.contains("Server listening on"));
        Engine { guard, port, log }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hosts(&self) -> String {
        format!("reapi://127.0.0.1:{}/8", self.port)
    }
}

/// The fixture project built in `dir` through swarmcc on `hosts`, verbose, logging to
/// `log`.
fn build(dir: &Path, distcc_dir: &Path, hosts: &str, log: &Path) -> std::process::Output {
    copy_tree(&fixture("proj"), dir);
    let cc = format!("{SWARMCC} gcc");
    let cxx = format!("{SWARMCC} g++");
    let env = [
        ("DISTCC_HOSTS", hosts),
        ("DISTCC_DIR", distcc_dir.to_str().unwrap()),
        ("DISTCC_VERBOSE", "1"),
        ("DISTCC_LOG", log.to_str().unwrap()),
    ];
    make(dir, &cc, &cxx, &env)
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn project_builds_on_the_engine_then_from_its_action_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let distcc_dir = root.join("distcc");
    let _agents = AgentReaper(distcc_dir.clone());
    let local = reference_build(root);
    let cache = root.join("cas");

    let engine = Engine::start(root, &cache, "start", &[]);
    let first_log = root.join("first.log");
    let started = Instant::now();
    let out = build(
        &root.join("first"),
        &distcc_dir,
        &engine.hosts(),
        &first_log,
    );
    let first = started.elapsed();
    assert_success(&out, "build on the engine");
    assert_same_outputs(&local, &root.join("first"), true);
    let log = fs::read_to_string(&first_log).unwrap();
    assert_eq!(
        count(&log, ": executed remotely as operation "),
        6,
        "all six compiles ran on the engine:\n{log}"
    );
    assert_eq!(count(&log, "fallback to local"), 0, "{log}");
    assert_eq!(count(&log, "failed to distribute"), 0, "{log}");
    // The engine says so too: six actions run by its runner, each exiting 0.
    let elog = engine.log_text();
    assert!(count(&elog, "Runner exited with code 0") >= 6, "{elog}");
    drop(engine);

    // The same cache, restarted without a runner: it cannot execute, so every object
    // of a clean build must come from its action cache.
    let cache_only = Engine::start(root, &cache, "cache-only", &[]);
    // Through `swarmcc --run` this time, whose summary counts the hits.
    let second_log = root.join("second.log");
    let dir = root.join("second");
    copy_tree(&fixture("proj"), &dir);
    let started = Instant::now();
    let out = run(Command::new(SWARMCC)
        .args(["--run", "make", "-j4", "-s", "prog", "CC=gcc", "CXX=g++"])
        .current_dir(&dir)
        .env_remove("MAKEFLAGS")
        .env_remove("SWARMCC_BUILD_ID")
        .env("DISTCC_HOSTS", cache_only.hosts())
        .env("DISTCC_DIR", &distcc_dir)
        .env("DISTCC_VERBOSE", "1")
        .env("DISTCC_LOG", &second_log));
    let second = started.elapsed();
    assert_success(&out, "build from the action cache");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("6 remote (6 from REAPI action caches), 1 local, 0 fallbacks"),
        "the summary counts the hits:\n{said}"
    );
    assert!(
        said.contains(&format!(
            "per host: reapi://127.0.0.1:{}/8 6",
            cache_only.port
        )),
        "{said}"
    );
    assert_same_outputs(&local, &root.join("second"), true);
    let log = fs::read_to_string(&second_log).unwrap();
    assert_eq!(count(&log, ": action cache hit (action "), 6, "{log}");
    assert_eq!(count(&log, "executed remotely"), 0, "{log}");
    assert_eq!(count(&log, "fallback to local"), 0, "{log}");
    assert!(
        !cache_only.log_text().contains("Runner exited"),
        "the cache-only engine ran nothing"
    );
    eprintln!(
        "fixture build: on the engine {:.2}s, from its action cache {:.2}s",
        first.as_secs_f64(),
        second.as_secs_f64()
    );
}

#[test]
fn engine_killed_mid_build_means_local_fallback() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let distcc_dir = root.join("distcc");
    let _agents = AgentReaper(distcc_dir.clone());
    let local = reference_build(root);
    // One action at a time, so that the build is still going when the first one
    // starts.
    let mut engine = Engine::start(root, &root.join("cas"), "start", &["--jobs=1"]);
    let dir = root.join("killed");
    copy_tree(&fixture("proj"), &dir);
    let log = root.join("client.log");
    let mut cmd = Command::new("make");
    cmd.current_dir(&dir)
        .args(["-j4", "-s", "prog"])
        .arg(format!("CC={SWARMCC} gcc"))
        .arg(format!("CXX={SWARMCC} g++"))
        .env_remove("MAKEFLAGS")
        .env("DISTCC_HOSTS", engine.hosts())
        .env("DISTCC_DIR", &distcc_dir)
        .env("DISTCC_VERBOSE", "1")
        .env("DISTCC_LOG", &log)
        .stdout(fs::File::create(root.join("make.out")).unwrap())
        .stderr(fs::File::create(root.join("make.out")).unwrap());
    let mut make = spawn_group(&mut cmd, "make");
    file_when(&engine.log, |t| t.contains("Execute request"));
    // Frozen, the engine holds its jobs in the Compile phase: Debian's distccmon-text
    // lists them on the engine, then the engine dies under them.
    let group = -(engine.guard.pid() as i32);
    // SAFETY: kill(2) on the engine's process group, which the guard owns.
    unsafe {
        libc::kill(group, libc::SIGSTOP);
    }
    let label = format!("reapi://127.0.0.1:{}", engine.port);
    let shown = wait_for(
        "distccmon-text to list a job compiling on the engine",
        || {
            let out = run(Command::new("distccmon-text").env("DISTCC_DIR", &distcc_dir));
            String::from_utf8_lossy(&out.stdout).into_owned()
        },
        |text: &String| {
            text.lines()
                .any(|l| l.contains("Compile") && l.contains(&label[..label.len().min(24)]))
        },
    );
    let sources = [
        "alpha.c",
        "beta.c",
        "gamma.c",
        "main.c",
        "entry.cpp",
        "templates.cc",
    ];
    assert!(
        shown.lines().any(|l| l.contains("Compile")
            && l.contains(&label[..label.len().min(24)])
            && sources.iter().any(|s| l.contains(s))),
        "a job is listed by its source:\n{shown}"
    );
    // SAFETY: as above.
    unsafe {
        libc::kill(group, libc::SIGKILL);
    }
    let _ = engine.guard.child.wait();
    let status = make.child.wait().unwrap();
    let said = fs::read_to_string(root.join("make.out")).unwrap_or_default();
    assert!(
        status.success(),
        "build with the engine killed: {status:?}\n{said}"
    );
    assert_same_outputs(&local, &dir, true);
    let text = fs::read_to_string(&log).unwrap();
    let here = count(&text, "fallback to local") + count(&text, ": local (no host available)");
    let remote = count(&text, ": executed remotely as operation ");
    assert_eq!(here + remote, 6, "every job ran somewhere:\n{text}");
    assert!(count(&text, "fallback to local") >= 1, "{text}");
    assert!(
        text.contains(&format!("reapi://127.0.0.1:{}", engine.port)),
        "the failed engine is named:\n{text}"
    );
}

/// A one-file compile through swarmcc on `hosts`; returns its stderr after checking
/// that the object is the local one.
fn compile_one(root: &Path, hosts: &str, source: &str, flags: &[&str]) -> String {
    let src = root.join("one.c");
    fs::write(&src, source).unwrap();
    let want = root.join("want.o");
    let got = root.join("got.o");
    let _ = fs::remove_file(&got);
    assert_success(
        &run(Command::new("gcc")
            .args(flags)
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&want)),
        "local compile",
    );
    // A DISTCC_DIR of its own: the backoff of an earlier call's failure stays there.
    let distcc_dir = tempfile::tempdir_in(root).unwrap().keep();
    let _agents = AgentReaper(distcc_dir.clone());
    let out = run(swarmcc(&distcc_dir, hosts)
        .env("DISTCC_VERBOSE", "1")
        .arg("gcc")
        .args(flags)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&got));
    assert_success(&out, "swarmcc compile");
    assert_eq!(
        fs::read(&want).unwrap(),
        fs::read(&got).unwrap(),
        "the object is the local one"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn broken_specs_and_dead_engines_are_said_and_compiled_here() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let src = "int f(int x) { return x * 3; }\n";
    let err = compile_one(root, "reapi://127.0.0.1/main", src, &["-O2"]);
    assert!(
        err.contains("\"reapi://127.0.0.1/main\"") && err.contains("reapi:// needs a port"),
        "{err}"
    );
    let dead = free_port();
    let err = compile_one(root, &format!("reapi://127.0.0.1:{dead}"), src, &["-O2"]);
    assert!(
        err.contains("failed to distribute") && err.contains(&format!("127.0.0.1:{dead}")),
        "{err}"
    );
    assert!(err.contains("cannot connect to http://127.0.0.1"), "{err}");
    assert!(err.contains("fallback to local"), "{err}");

    let engine = Engine::start(root, &root.join("cas"), "start", &[]);
    let missing = root.join("no-such-token");
    let hosts = format!(
        "reapi://127.0.0.1:{},token={}",
        engine.port,
        missing.display()
    );
    let err = compile_one(root, &hosts, src, &["-O2"]);
    assert!(
        err.contains(&format!(
            "cannot read the REAPI token file {}",
            missing.display()
        )),
        "{err}"
    );
    assert!(!err.contains("executed remotely"), "{err}");
    // With a token (which this engine ignores), the job runs there.
    let token = root.join("token");
    fs::write(&token, "s3cret\n").unwrap();
    let hosts = format!(
        "reapi://127.0.0.1:{},token={}",
        engine.port,
        token.display()
    );
    let err = compile_one(root, &hosts, src, &["-O2"]);
    assert!(err.contains(": executed remotely as operation "), "{err}");
}

#[test]
fn sources_and_objects_larger_than_a_batch_go_through_bytestream() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let engine = Engine::start(root, &root.join("cas"), "start", &[]);
    // 1.2 million ints: about 8 MB of source and 4.8 MB of object, both above the
    // engine's 4 MiB batch limit.
    let mut src = String::from("const int table[] = {\n");
    for i in 0..1_200_000u32 {
        src.push_str(&format!("{},", 1_000_000 + i));
        if i % 16 == 15 {
            src.push('\n');
        }
    }
    src.push_str("};\n");
    let hosts = format!("reapi://127.0.0.1:{}", engine.port);
    let err = compile_one(root, &hosts, &src, &["-O0"]);
    assert!(err.contains("max batch 4194304 bytes"), "{err}");
    assert!(
        err.contains("by ByteStream)") && !err.contains("(0 by ByteStream)"),
        "{err}"
    );
    assert!(err.contains("reapi: wrote "), "{err}");
    assert!(err.contains("reapi: read "), "{err}");
    assert!(err.contains(": executed remotely as operation "), "{err}");
    // Again: the action cache's object, read through ByteStream too.
    let err = compile_one(root, &hosts, &src, &["-O0"]);
    assert!(err.contains(": action cache hit (action "), "{err}");
    assert!(err.contains("reapi: read "), "{err}");
}

/// A TLS terminator in front of the engine (Python's `ssl`, ALPN h2, as gRPC over TLS
/// needs), so that `reapis://` meets a real TLS server with a certificate made here.
const TLS_PROXY: &str = r#"
import asyncio, ssl, sys
cert, key, port, target = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])

async def pipe(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()

async def handle(cr, cw):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw))

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"#;

#[test]
fn tls_engines_are_checked_against_the_given_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // A CA, and the engine's certificate signed by it (webpki takes no CA certificate
    // as a server's own).
    let (ca, cert, key) = (
        root.join("ca.pem"),
        root.join("cert.pem"),
        root.join("key.pem"),
    );
    let script = format!(
        "set -e; cd {dir}
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca \
             -keyout ca.key -out ca.pem
         openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout key.pem -out req.csr
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext
         openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -extfile ext -out cert.pem",
        dir = root.display()
    );
    assert_success(
        &run(Command::new("sh").args(["-c", &script])),
        "a CA and a certificate signed by it",
    );
    let engine = Engine::start(root, &root.join("cas"), "start", &[]);
    let port = free_port();
    let proxy_log = root.join("proxy.log");
    let script = root.join("tls-proxy.py");
    fs::write(&script, TLS_PROXY).unwrap();
    let _proxy = spawn_group(
        Command::new("python3")
            .arg(&script)
            .arg(&cert)
            .arg(&key)
            .args([port.to_string(), engine.port.to_string()])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&proxy_log).unwrap())
            .stderr(fs::File::create(&proxy_log).unwrap()),
        "TLS proxy",
    );
    file_when(&proxy_log, |t| t.contains("listening"));
    let src = "int twice(int x) { return 2 * x; }\n";

    let hosts = format!("reapis://127.0.0.1:{port},ca={}", ca.display());
    let err = compile_one(root, &hosts, src, &["-O2"]);
    assert!(err.contains("reapi https://127.0.0.1:"), "{err}");
    assert!(err.contains(": executed remotely as operation "), "{err}");

    // Without the CA, the self-signed certificate is refused, and the job runs here.
    let hosts = format!("reapis://127.0.0.1:{port}");
    let err = compile_one(root, &hosts, src, &["-O3"]);
    assert!(err.contains("fallback to local"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains("executed remotely"), "{err}");
}

#[test]
fn check_hosts_reports_engines_by_their_capabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let engine = Engine::start(root, &root.join("cas"), "start", &[]);
    let dead = free_port();
    let hosts = format!(
        "reapi://127.0.0.1:{} reapi://127.0.0.1:{}/no-such-instance reapi://127.0.0.1:{dead}",
        engine.port, engine.port
    );
    let distcc_dir = root.join("distcc");
    let _agents = AgentReaper(distcc_dir.clone());
    let out = run(swarmcc(&distcc_dir, &hosts).arg("--check-hosts"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "two hosts fail:\n{text}");
    assert!(
        text.contains(&format!("REAPI 2.1 or later at 127.0.0.1:{}", engine.port))
            && text.contains("executes actions"),
        "{text}"
    );
    assert!(
        text.contains("FAILED: GetCapabilities: InvalidArgument")
            && text.contains("no-such-instance"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "UNREACHABLE: cannot connect to http://127.0.0.1:{dead}"
        )),
        "{text}"
    );
    assert!(
        text.contains("3 hosts: 1 OK, 1 FAILED, 1 UNREACHABLE"),
        "{text}"
    );
}

#[test]
fn a_corrupt_blob_in_the_engine_is_never_written() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let cache = root.join("cas");
    let src = "int thrice(int x) { return 3 * x; }\n";
    let engine = Engine::start(root, &cache, "start", &[]);
    let hosts = format!("reapi://127.0.0.1:{}", engine.port);
    let err = compile_one(root, &hosts, src, &["-O2"]);
    assert!(err.contains(": executed remotely as operation "), "{err}");
    drop(engine);
    // The object's blob in the engine's store, changed in place (same length).
    let object = fs::read(root.join("got.o")).unwrap();
    let hash = swarmcc::reapi::digest::of(&object).hash;
    let blob = cache.join("cas/objects").join(&hash[..2]).join(&hash[2..]);
    let mut bytes = fs::read(&blob).expect("the engine stores the object by its digest");
    assert_eq!(bytes, object);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob, &bytes).unwrap();

    let cache_only = Engine::start(root, &cache, "cache-only", &[]);
    let hosts = format!("reapi://127.0.0.1:{}", cache_only.port);
    // compile_one checks that the object written is the local compile's.
    let err = compile_one(root, &hosts, src, &["-O2"]);
    assert!(
        err.contains(&format!("blob {hash}/{} read back as", object.len())),
        "the bad blob is caught by its digest:\n{err}"
    );
    assert!(err.contains("unusable"), "{err}");
    assert!(!err.contains("remote on reapi"), "{err}");
}

/// lzo 2.10's library sources, from the `lzo-sys` crate (a dev-dependency, so cargo
/// has fetched it for these tests), copied with their line ends made Unix ones, and a
/// Makefile compiling each of them (lzo's own `HAVE_*` for glibc, as the fault suite).
fn lzo_library(dir: &Path) -> usize {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let registry = cargo_home.join("registry/src");
    let tree = fs::read_dir(&registry)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|index| fs::read_dir(index.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lzo-sys-"))
        })
        .map(|p| p.join("lzo"))
        .find(|p| p.join("src/lzo1x_1.c").is_file())
        .unwrap_or_else(|| {
            panic!(
                "no lzo-sys sources under {}: run `cargo fetch`",
                registry.display()
            )
        });
    let mut sources = 0;
    for sub in ["src", "include/lzo"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
        for e in fs::read_dir(tree.join(sub)).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.ends_with(".c") || name.ends_with(".h") || name.ends_with(".ch")) {
                continue;
            }
            sources += usize::from(sub == "src" && name.ends_with(".c"));
            let text = fs::read(e.path()).unwrap();
            let unix = String::from_utf8_lossy(&text).replace("\r\n", "\n");
            fs::write(dir.join(sub).join(&name), unix).unwrap();
        }
    }
    let have: String = [
        "ASSERT_H",
        "CTYPE_H",
        "ERRNO_H",
        "FCNTL_H",
        "LIMITS_H",
        "STDDEF_H",
        "STDINT_H",
        "STDIO_H",
        "STDLIB_H",
        "STRING_H",
        "STRINGS_H",
        "TIME_H",
        "UNISTD_H",
        "SYS_STAT_H",
        "SYS_TIME_H",
        "SYS_TYPES_H",
    ]
    .iter()
    .map(|h| format!(" -DHAVE_{h}=1"))
    .collect();
    fs::write(
        dir.join("Makefile"),
        format!(
            "CC = gcc\nCPPFLAGS = -Iinclude -Isrc -DLZO_CFG_NO_CONFIG_HEADER=1{have}\n\
             CFLAGS = -O2 -Wall\n\
             OBJS := $(patsubst src/%.c,obj/%.o,$(sort $(wildcard src/*.c)))\n\
             lib: $(OBJS)\n\tar rcs liblzo2.a $(OBJS)\n\
             obj/%.o: src/%.c\n\t@mkdir -p obj\n\t$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@\n"
        ),
    )
    .unwrap();
    sources
}

fn make_lzo(dir: &Path, cc: &str, env: &[(&str, &std::ffi::OsStr)]) {
    let mut cmd = Command::new("make");
    cmd.current_dir(dir)
        .args(["-j4", "-s", "lib"])
        .arg(format!("CC={cc}"))
        .env_remove("MAKEFLAGS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    assert_success(&run(&mut cmd), &format!("lzo built with {cc}"));
}

/// Every `.o` and `.d` of an lzo build, by name.
fn lzo_outputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir.join("obj"))
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_real_c_library_builds_on_the_engine_then_from_its_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let local = root.join("local");
    let n = lzo_library(&local);
    assert!(n > 40, "lzo has {n} library sources");
    let started = Instant::now();
    make_lzo(&local, "gcc", &[]);
    let local_seconds = started.elapsed().as_secs_f64();
    let want = lzo_outputs(&local);
    assert_eq!(want.len(), 2 * n, "an object and a .d per source");

    let cache = root.join("cas");
    let distcc_dir = root.join("distcc");
    let _agents = AgentReaper(distcc_dir.clone());
    let cc = format!("{SWARMCC} gcc");
    let mut seconds = Vec::new();
    for (round, mode) in [(1, "start"), (2, "cache-only")] {
        let engine = Engine::start(root, &cache, mode, &[]);
        let dir = root.join(format!("round{round}"));
        lzo_library(&dir);
        let log = root.join(format!("round{round}.log"));
        let hosts = format!("reapi://127.0.0.1:{}/4", engine.port);
        let started = Instant::now();
        make_lzo(
            &dir,
            &cc,
            &[
                ("DISTCC_HOSTS", hosts.as_ref()),
                ("DISTCC_DIR", distcc_dir.as_os_str()),
                ("DISTCC_VERBOSE", "1".as_ref()),
                ("DISTCC_LOG", log.as_os_str()),
            ],
        );
        seconds.push(started.elapsed().as_secs_f64());
        let got = lzo_outputs(&dir);
        assert_eq!(got.len(), want.len());
        for ((name, a), (other, b)) in want.iter().zip(&got) {
            assert_eq!(name, other);
            assert!(
                a == b,
                "round {round}: obj/{name} differs from the local build"
            );
        }
        let text = fs::read_to_string(&log).unwrap();
        let (served, wanted) = if round == 1 {
            (
                ": executed remotely as operation ",
                "executed on the engine",
            )
        } else {
            (
                ": action cache hit (action ",
                "served from the action cache",
            )
        };
        assert_eq!(count(&text, served), n, "every source {wanted}:\n{text}");
        assert_eq!(count(&text, "fallback to local"), 0, "{text}");
    }
    eprintln!(
        "lzo 2.10, {n} sources, make -j4: local {local_seconds:.2}s, on the engine {:.2}s, \
         from its action cache {:.2}s",
        seconds[0], seconds[1]
    );
}
