//! What a hostile network can send `swarmccd`, and what it must not achieve: every
//! attack known against distccd 3.4 (distcc-reference §6: the whitelist bypass with
//! `-wrapper`, `-B` and friends, pump-mode `..` names, the open-by-default daemon, the
//! zero-argument request, length and decompression bombs, no server-side timeouts) is
//! sent to the real binary, which must refuse it — with a reason where the request was
//! readable — leave no trace on disk, and go on serving: each attack is followed by an
//! honest compile whose object must equal a local one.
//!
//! Marker files that a successful attack would create live in world-writable
//! directories, so that the unprivileged user a root-started server becomes *could*
//! create them: their absence means the server refused, not that it lacked the right.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::wire::{compile, exchange, read_to_close, request, try_decode_reply, REFUSED};
use common::{start_swarmccd, start_swarmccd_env, write_exe, Swarmccd};
use swarmcc::protocol::{encode_files, encode_request_header, FileEntry, Version};

const SOURCE: &str = "int twice(int a){return a*2;}\n";

/// A test directory with a preprocessed source, its local object, and a world-writable
/// `drop/` where markers would appear.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(p.join("drop")).unwrap();
        fs::set_permissions(p.join("drop"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(p.join("x.c"), SOURCE).unwrap();
        let ok = |c: &mut Command| assert!(c.current_dir(p).status().unwrap().success());
        ok(Command::new("gcc").args(["-E", "x.c", "-o", "x.i"]));
        ok(Command::new("gcc").args(["-c", "x.i", "-o", "ref.o"]));
        Lab { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn marker(&self, name: &str) -> PathBuf {
        self.path().join("drop").join(name)
    }

    fn preprocessed(&self) -> Vec<u8> {
        fs::read(self.path().join("x.i")).unwrap()
    }

    /// An executable script in `bin/` (created readable and executable for everyone).
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let bin = self.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let path = bin.join(name);
        write_exe(&path, &format!("#!/bin/sh\n{body}\n"));
        path
    }

    /// An honest compile must still work, and give the local object.
    fn assert_still_serving(&self, srv: &Swarmccd, after: &str) {
        let r = compile(
            srv.port,
            Version::V1,
            &["gcc", "-O2", "-c", "x.c", "-o", "x.o"],
            &self.preprocessed(),
        );
        let local = {
            let out = self.path().join("ref-O2.o");
            let st = Command::new("gcc")
                .current_dir(self.path())
                .args(["-O2", "-c", "x.i", "-o"])
                .arg(&out)
                .status()
                .unwrap();
            assert!(st.success());
            fs::read(out).unwrap()
        };
        assert_eq!(r.status, 0, "after {after}: {}", r.stderr);
        assert_eq!(r.object, local, "after {after}: object differs");
    }
}

fn refused_with_reason(r: &common::wire::Reply, what: &str, reason: &str) {
    assert_eq!(r.status, REFUSED, "{what}: not refused: {r:?}");
    assert!(
        r.stderr.starts_with("swarmccd: ") && r.stderr.contains(reason),
        "{what}: reason {:?} lacks {reason:?}",
        r.stderr
    );
    assert!(r.object.is_empty(), "{what}: an object came back");
}

/// The server's resident memory right now, in KiB.
fn rss_kib(pid: u32) -> u64 {
    common::proc_status_kib(pid, "VmRSS")
}

#[test]
fn options_that_run_code_or_write_files_are_refused() {
    let lab = Lab::new();
    // A fake cc1/as pair that would leave a marker if gcc ever ran them.
    let evil = lab.path().join("evil");
    fs::create_dir(&evil).unwrap();
    fs::set_permissions(&evil, fs::Permissions::from_mode(0o755)).unwrap();
    for prog in ["cc1", "as"] {
        let m = lab.marker(&format!("ran-{prog}"));
        let p = evil.join(prog);
        fs::write(&p, format!("#!/bin/sh\ntouch {}\nexit 1\n", m.display())).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let specs = lab.path().join("evil.specs");
    fs::write(&specs, "*cc1:\n+ -fplugin=/nonexistent.so\n").unwrap();
    let rsp = lab.path().join("args.rsp");
    fs::write(&rsp, "-wrapper /bin/true").unwrap();
    let srv = start_swarmccd(lab.path(), &[]);
    let wrapper_marker = lab.marker("wrapper");
    let touch_wrapper = format!("/usr/bin/env,sh,-c,touch {}", wrapper_marker.display());
    let evil_b = format!("-B{}", evil.display());
    let evil_prefix = format!("--prefix={}", evil.display());
    let specs_arg = format!("-specs={}", specs.display());
    let rsp_arg = format!("@{}", rsp.display());
    let listing = format!("-Wa,-adhln={}", lab.marker("listing").display());
    let depfile = format!("-Wp,-MD,{}", lab.marker("deps").display());
    let mf = lab.marker("mf");
    let dumps = format!("-fdump-tree-all={}", lab.marker("dump").display());
    let plugin = format!("-fplugin={}", lab.path().join("p.so").display());
    let evil_cc1 = evil.join("cc1").display().to_string();
    #[rustfmt::skip]
    let attacks: Vec<(&str, Vec<&str>, &str)> = vec![
        // The distcc 3.4 whitelist bypass (CVE-2004-2687 follow-up), confirmed upstream.
        ("-wrapper", vec!["gcc", "-wrapper", &touch_wrapper, "-c", "x.c", "-o", "x.o"], "runs another program"),
        ("-B", vec!["gcc", &evil_b, "-c", "x.c", "-o", "x.o"], "runs compiler programs"),
        ("-B DIR", vec!["gcc", "-B", evil.to_str().unwrap(), "-c", "x.c", "-o", "x.o"], "runs compiler programs"),
        ("--prefix", vec!["gcc", &evil_prefix, "-c", "x.c", "-o", "x.o"], "runs compiler programs"),
        ("-specs", vec!["gcc", &specs_arg, "-c", "x.c", "-o", "x.o"], "spec file"),
        ("-fplugin", vec!["gcc", &plugin, "-c", "x.c", "-o", "x.o"], "plugin"),
        ("@file", vec!["gcc", &rsp_arg, "-c", "x.c", "-o", "x.o"], "response files"),
        ("-fdump", vec!["gcc", &dumps, "-c", "x.c", "-o", "x.o"], "dump files"),
        ("-save-temps", vec!["gcc", "-save-temps=obj", "-c", "x.c", "-o", "x.o"], "intermediate files"),
        ("-Wa,-a", vec!["gcc", &listing, "-c", "x.c", "-o", "x.o"], "writes or reads files"),
        ("-Wp,-MD", vec!["gcc", &depfile, "-c", "x.c", "-o", "x.o"], "writes or reads files"),
        ("-MF", vec!["gcc", "-MD", "-MF", mf.to_str().unwrap(), "-c", "x.c", "-o", "x.o"], "dependency file"),
        ("-Xclang -load", vec!["clang", "-Xclang", "-load", "-Xclang", "/x.so", "-c", "x.c", "-o", "x.o"], ""),
        // Compilers: by name from the whitelist, never a program the client points at.
        ("shell as compiler", vec!["sh", "-c", "x.c", "-o", "x.o"], "not"),
        ("client's own path", vec![&evil_cc1, "-c", "x.c", "-o", "x.o"], "not"),
    ];
    for (what, argv, reason) in &attacks {
        let r = compile(srv.port, Version::V1, argv, &lab.preprocessed());
        refused_with_reason(&r, what, reason);
    }
    let left: Vec<_> = fs::read_dir(lab.path().join("drop"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "an attack left files behind: {left:?}");
    // One log line per refusal, naming what was refused.
    srv.log_when(|l| l.contains("refused: option \"-wrapper\""));
    lab.assert_still_serving(&srv, "the option attacks");
}

#[test]
fn pump_mode_dotdot_names_cannot_reach_files() {
    // distccd 3.4 overwrote, then deleted, the file a `/../../..` NAME pointed at.
    let lab = Lab::new();
    let victim = lab.marker("victim");
    fs::write(&victim, "precious").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o666)).unwrap();
    let srv = start_swarmccd(lab.path(), &[]);
    let argv: Vec<String> = ["gcc", "-c", "x.c", "-o", "x.o"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut bytes = Vec::new();
    encode_request_header(Version::V3, Some("/tmp"), &argv, &mut bytes).unwrap();
    let name = format!("/../../../../../../..{}", victim.display());
    let files = [
        FileEntry::File {
            name,
            contents: b"PWNED".to_vec(),
        },
        FileEntry::Link {
            name: "/../../../../tmp/swarmcc-attack-link".into(),
            target: "/etc/passwd".into(),
        },
    ];
    encode_files(&files, &mut bytes).unwrap();
    let reply = exchange(srv.port, &bytes);
    let r = try_decode_reply(Version::V3, &reply).expect("a refusal, not a closed socket");
    refused_with_reason(&r, "pump .. names", "pump mode");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(fs::symlink_metadata("/tmp/swarmcc-attack-link").is_err());
    lab.assert_still_serving(&srv, "the pump attack");
}

#[test]
fn zero_argument_request_does_not_crash_the_server() {
    // distccd 3.4 crashes on ARGC 0.
    let lab = Lab::new();
    let srv = start_swarmccd(lab.path(), &[]);
    for bytes in [
        &b"DIST00000001ARGC00000000"[..],
        b"DIST00000002ARGC00000000DOTI00000000",
        // Version 0, which distccd 3.4 takes for version 1.
        b"DIST00000000ARGC00000001ARGV00000003gccDOTI00000001x",
    ] {
        let got = exchange(srv.port, bytes);
        assert!(got.is_empty(), "expected a plain close, got {got:?}");
    }
    srv.log_when(|l| l.contains("bad request"));
    lab.assert_still_serving(&srv, "zero-argument requests");
}

#[test]
fn length_bombs_are_refused_before_allocating() {
    let lab = Lab::new();
    let srv = start_swarmccd(lab.path(), &[]);
    let before = rss_kib(srv.guard.pid());
    let huge_argc = b"DIST00000001ARGC7fffffff".to_vec();
    let huge_argv = b"DIST00000001ARGC00000001ARGVfffffff0".to_vec();
    let huge_cdir = b"DIST00000003CDIRffffffff".to_vec();
    // 4,000 arguments of 2 KiB: each within the string limit, 8 MiB in all.
    let mut wide = Vec::new();
    let long_arg = format!("-D{}", "A".repeat(2048));
    let mut argv = vec!["gcc".to_string(), "-c".into(), "x.c".into()];
    argv.extend(std::iter::repeat_n(long_arg, 4000));
    encode_request_header(Version::V1, None, &argv, &mut wide).unwrap();
    for (what, bytes) in [
        ("ARGC 2^31", huge_argc),
        ("ARGV 4 GiB", huge_argv),
        ("CDIR 4 GiB", huge_cdir),
        ("8 MiB of arguments", wide),
    ] {
        let t = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(50))).unwrap();
        // The server may close while we still write: that is the point.
        let _ = s.write_all(&bytes);
        let got = read_to_close(&mut s);
        assert!(got.is_empty(), "{what}: got a reply {got:?}");
        // Closed on reading the length, not after waiting for the bytes (the server's
        // IO timeout is 60 s; the bound leaves a loaded machine plenty of room).
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what}: held {:?}",
            t.elapsed()
        );
    }
    // A source announced at 4 GiB: answered (so the client compiles locally rather
    // than back off the host), never allocated.
    let mut huge_doti = Vec::new();
    let argv = ["gcc".to_string(), "-c".into(), "x.c".into()];
    encode_request_header(Version::V1, None, &argv, &mut huge_doti).unwrap();
    huge_doti.extend_from_slice(b"DOTIfffffff0");
    let r = try_decode_reply(Version::V1, &exchange(srv.port, &huge_doti)).expect("a refusal");
    refused_with_reason(&r, "DOTI 4 GiB", "too large");
    srv.log_when(|l| l.contains("too large"));
    let after = rss_kib(srv.guard.pid());
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    lab.assert_still_serving(&srv, "length bombs");
}

#[test]
fn lzo_bomb_is_refused_at_the_decompression_limit() {
    // 40 MiB of zeros compress to about 160 KiB; the server stops at 32 MiB.
    let lab = Lab::new();
    let srv = start_swarmccd(lab.path(), &["--max-source-size", "32"]);
    let zeros = vec![0u8; 40 << 20];
    let bytes = request(Version::V2, &["gcc", "-c", "x.c", "-o", "x.o"], &zeros);
    drop(zeros);
    assert!(bytes.len() < 1 << 20, "the bomb is {} bytes", bytes.len());
    let r = try_decode_reply(Version::V2, &exchange(srv.port, &bytes)).expect("a refusal");
    refused_with_reason(&r, "LZO bomb", "too large");
    assert!(rss_kib(srv.guard.pid()) < 512 * 1024);
    lab.assert_still_serving(&srv, "an LZO bomb");
}

#[test]
fn a_trickling_client_is_cut_off_and_others_are_served() {
    // distccd has no server-side timeouts: a silent or slow client pins a child.
    let lab = Lab::new();
    let srv = start_swarmccd(
        lab.path(),
        &["--request-timeout", "2", "--io-timeout", "1", "-j", "1"],
    );
    let bytes = request(
        Version::V1,
        &["gcc", "-c", "x.c", "-o", "x.o"],
        &lab.preprocessed(),
    );
    let port = srv.port;
    // One byte every 0.3 s: never silent for the 1 s I/O timeout, always too slow (the
    // whole request would take minutes; the trickle gives up after 60 s).
    let slow = thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let t = Instant::now();
        for b in &bytes {
            if s.write_all(std::slice::from_ref(b)).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(300));
            if t.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
        let _ = s.shutdown(Shutdown::Write);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (t.elapsed(), read_to_close(&mut s))
    });
    // A silent client: connects and sends nothing.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    lab.assert_still_serving(&srv, "a trickling client started");
    let (took, got) = slow.join().unwrap();
    assert!(got.is_empty());
    // Cut off at the 2 s request limit, long before the trickle would have ended.
    assert!(
        took < Duration::from_secs(30),
        "the trickle lasted {took:?}"
    );
    // The silent one was cut off meanwhile (1 s of silence): its read ends at once,
    // rather than at our own read timeout.
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 8];
    let t = Instant::now();
    assert_eq!(silent.read(&mut buf).unwrap_or(0), 0);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    srv.log_when(|l| l.contains("overall time limit"));
}

#[test]
fn a_client_that_never_reads_its_reply_does_not_hold_the_slot() {
    let lab = Lab::new();
    // A 32 MiB object: far more than the socket buffers hold.
    fs::write(
        lab.path().join("big.i"),
        "char big[32 << 20] = {1};\nint twice(int a){return a*2;}\n",
    )
    .unwrap();
    let srv = start_swarmccd(lab.path(), &["-j", "1", "--io-timeout", "30"]);
    let mut hog = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    hog.write_all(&request(
        Version::V1,
        &["gcc", "-c", "big.c", "-o", "big.o"],
        &fs::read(lab.path().join("big.i")).unwrap(),
    ))
    .unwrap();
    // Wait until the big compile has run and its reply has started to arrive: the job
    // is then writing a reply nobody reads (protocol 1: nothing is sent before).
    srv.log_when(|l| l.contains("compiling big.c"));
    hog.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    common::wait_for(
        "the first bytes of the big reply",
        || hog.peek(&mut [0u8; 1]).unwrap_or(0),
        |&n| n > 0,
    );
    let t = Instant::now();
    lab.assert_still_serving(&srv, "a client stuck in its reply");
    // Served while the stuck reply waits out its 30 s IO timeout.
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the honest compile waited {:?}",
        t.elapsed()
    );
    drop(hog);
}

#[test]
fn jobs_beyond_the_queue_limit_are_told_the_server_is_busy() {
    let lab = Lab::new();
    // A compiler that takes a second: one runs, one waits, the rest are turned away.
    let slow = lab.script("slowcc", "sleep 1\nexec gcc \"$@\"");
    let wl = lab.path().join("wl");
    fs::create_dir(&wl).unwrap();
    symlink(&slow, wl.join("slowcc")).unwrap();
    let path = format!("{}:/usr/bin:/bin", slow.parent().unwrap().display());
    let srv = start_swarmccd_env(
        lab.path(),
        &[
            "-j",
            "1",
            "--max-queued",
            "1",
            "--whitelist-dir",
            wl.to_str().unwrap(),
        ],
        &[("DISTCCD_PATH", &path)],
    );
    let source = lab.preprocessed();
    let port = srv.port;
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let source = source.clone();
            thread::spawn(move || {
                compile(
                    port,
                    Version::V1,
                    &["slowcc", "-c", "x.c", "-o", "x.o"],
                    &source,
                )
            })
        })
        .collect();
    let replies: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let reference = fs::read(lab.path().join("ref.o")).unwrap();
    let ok = replies.iter().filter(|r| r.status == 0).count();
    let busy = replies
        .iter()
        .filter(|r| r.status == REFUSED && r.stderr.contains("server busy"))
        .count();
    assert_eq!(ok + busy, 5, "{replies:?}");
    assert!(ok >= 2 && busy >= 1, "ok {ok}, busy {busy}");
    for r in replies.iter().filter(|r| r.status == 0) {
        assert_eq!(r.object, reference);
    }
}

#[test]
fn compilers_cannot_write_outside_their_job_directory() {
    if !swarmcc::sandbox::available() {
        eprintln!("SKIPPED: this kernel has no Landlock");
        return;
    }
    let lab = Lab::new();
    let escape = lab.marker("escaped");
    // A whitelisted compiler that also tries to write elsewhere: the compile must
    // work (gcc is happy inside the sandbox), the escape must not.
    let cc = lab.script(
        "leakycc",
        &format!(
            "echo leak > {} 2>/dev/null\nexec gcc \"$@\"",
            escape.display()
        ),
    );
    let wl = lab.path().join("wl");
    fs::create_dir(&wl).unwrap();
    symlink(&cc, wl.join("leakycc")).unwrap();
    let path = format!("{}:/usr/bin:/bin", cc.parent().unwrap().display());
    let argv = ["leakycc", "-c", "x.c", "-o", "x.o"];
    let reference = fs::read(lab.path().join("ref.o")).unwrap();
    for (sandbox, escapes) in [(true, false), (false, true)] {
        let mut flags = vec!["--whitelist-dir", wl.to_str().unwrap()];
        if !sandbox {
            flags.push("--no-sandbox");
        }
        let srv = start_swarmccd_env(lab.path(), &flags, &[("DISTCCD_PATH", &path)]);
        let r = compile(srv.port, Version::V1, &argv, &lab.preprocessed());
        assert_eq!(r.status, 0, "{}", r.stderr);
        assert_eq!(r.object, reference);
        // Without the sandbox the same compiler does escape: the check can fail.
        assert_eq!(escape.exists(), escapes, "sandbox {sandbox}");
        let _ = fs::remove_file(&escape);
    }
}

/// A network namespace with a veth pair: the host side gets 10.213.N.1, the namespace
/// 10.213.N.2. Removed on drop.
struct Netns {
    name: String,
    host_ip: String,
}

impl Netns {
    fn create() -> Option<Netns> {
        let n = std::process::id() % 200 + 20;
        let name = format!("swarmcc-atk-{n}");
        let host_if = format!("swatk{n}h");
        let ns_if = format!("swatk{n}n");
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let _ = ip(&["netns", "del", &name]);
        let _ = ip(&["link", "del", &host_if]);
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        let ns = Netns {
            name: name.clone(),
            host_ip: format!("10.213.{n}.1"),
        };
        let ok = ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]) && ip(&["link", "set", &ns_if, "netns", &name])
            && ip(&["addr", "add", &format!("10.213.{n}.1/24"), "dev", &host_if])
            && ip(&["link", "set", &host_if, "up"])
            && ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("10.213.{n}.2/24"),
                "dev",
                &ns_if,
            ])
            && ip(&["-n", &name, "link", "set", &ns_if, "up"])
            && ip(&["-n", &name, "link", "set", "lo", "up"]);
        ok.then_some(ns)
    }

    /// Sends a compile request from inside the namespace; returns the raw answer.
    fn exchange_from_inside(&self, port: u16, bytes: &[u8]) -> Vec<u8> {
        let script = "import socket,sys\n\
            s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=10)\n\
            s.sendall(sys.stdin.buffer.read())\n\
            out=b''\n\
            while True:\n\
            \x20   try: d=s.recv(65536)\n\
            \x20   except OSError: break\n\
            \x20   if not d: break\n\
            \x20   out+=d\n\
            sys.stdout.buffer.write(out)\n";
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", script])
            .arg(&self.host_ip)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        out.stdout
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes the veth pair too.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn without_allow_only_this_machine_is_served_even_on_all_interfaces() {
    // distcc 3.4 documents --allow-private as the default and accepts everyone.
    let Some(ns) = Netns::create() else {
        eprintln!("SKIPPED: cannot create a network namespace (needs root and iproute2)");
        return;
    };
    let lab = Lab::new();
    let bytes = request(
        Version::V1,
        &["gcc", "-O2", "-c", "x.c", "-o", "x.o"],
        &lab.preprocessed(),
    );
    let srv = start_swarmccd(lab.path(), &["--listen", "0.0.0.0"]);
    // From another machine (the namespace): closed without a byte.
    assert!(ns.exchange_from_inside(srv.port, &bytes).is_empty());
    srv.log_when(|l| l.contains("denied by access list"));
    // From this machine: served.
    lab.assert_still_serving(&srv, "a denied peer");
    drop(srv);
    // Allowing the namespace's network lets it in.
    let net = format!("{}/24", ns.host_ip);
    let srv = start_swarmccd(lab.path(), &["--listen", "0.0.0.0", "--allow", &net]);
    let got = ns.exchange_from_inside(srv.port, &bytes);
    let r = try_decode_reply(Version::V1, &got).expect("a whole reply");
    assert_eq!(r.status, 0, "{}", r.stderr);
}
