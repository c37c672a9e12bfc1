//! Local fallback: with the only host refusing connections, stalling after accept, or
//! killed mid-compile, the build still succeeds locally with identical objects, in
//! bounded time, and the host is backed off. Also DISTCC_FALLBACK=0 and a broken host
//! list.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A C file that takes gcc -O2 about two seconds, so a server can be killed mid-compile
/// and a compile outlasts a one-second IO timeout.
fn slow_source(dir: &Path) -> std::path::PathBuf {
    let mut s = String::from("#include <string.h>\n");
    for i in 0..3000 {
        s.push_str(&format!(
            "int f{i}(int x) {{ char b[64]; memset(b, x, sizeof b); int t = 0; \
             for (int k = 0; k < x; k++) t += b[k % 64] * {i}; return t ^ f{prev}(x - 1); }}\n",
            prev = if i == 0 { i } else { i - 1 }
        ));
    }
    let p = dir.join("slow.c");
    fs::write(&p, s).unwrap();
    p
}

fn tiny_source(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("tiny.c");
    fs::write(&p, "int add(int a, int b) { return a + b; }\n").unwrap();
    p
}

fn local_object(dir: &Path, src: &Path) -> Vec<u8> {
    let out = dir.join("reference.o");
    let o = run(Command::new("gcc")
        .args(["-O2", "-c"])
        .arg(src)
        .arg("-o")
        .arg(&out));
    assert_success(&o, "reference compile");
    fs::read(out).unwrap()
}

fn backoff_file(ddir: &Path, port: u16) -> std::path::PathBuf {
    ddir.join(format!("lock/backoff_tcp_127.0.0.1_{port}_0"))
}

#[test]
fn refused_connection_falls_back_and_backs_off() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tiny_source(tmp.path());
    let want = local_object(tmp.path(), &src);
    let port = free_port();
    let ddir = tmp.path().join("ddir");
    let out_o = tmp.path().join("out.o");
    let t = Instant::now();
    let out = run(swarmcc(&ddir, &format!("127.0.0.1:{port}/4"))
        .args(["gcc", "-O2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_o));
    assert_success(&out, "compile with a refusing host");
    // Refused at once, not retried: bounded (with room for a loaded machine).
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert_eq!(fs::read(&out_o).unwrap(), want);
    // The first failure is told once, with the host, the reason and distcc's phrase.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one notice: {err}");
    assert!(
        err.contains(&format!(
            "failed to distribute {} to 127.0.0.1:{port}, running locally instead",
            src.display()
        )) && err.contains("Connection refused"),
        "stderr: {err}"
    );
    assert!(backoff_file(&ddir, port).exists(), "host is backed off");

    // While backed off, the host is not even tried, the compile is still local, and
    // nothing more is said (once per host and backoff period).
    let out = run(swarmcc(&ddir, &format!("127.0.0.1:{port}/4"))
        .args(["gcc", "-O2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_o));
    assert_success(&out, "compile while backed off");
    assert!(
        out.stderr.is_empty(),
        "said only once: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(swarmcc(&ddir, &format!("127.0.0.1:{port}/4"))
        .env("DISTCC_VERBOSE", "1")
        .args(["gcc", "-O2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_o));
    assert_success(&out, "compile while backed off");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("backed off"), "verbose log says why: {log}");
}

#[test]
fn fallback_disabled_is_an_error_with_exit_116() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tiny_source(tmp.path());
    let port = free_port();
    let ddir = tmp.path().join("ddir");
    let out_o = tmp.path().join("out.o");
    let out = run(swarmcc(&ddir, &format!("127.0.0.1:{port}/4"))
        .env("DISTCC_FALLBACK", "0")
        .args(["gcc", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_o));
    assert_eq!(
        out.status.code(),
        Some(116),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out_o.exists());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fallbacks are disabled"), "{err}");
}

#[test]
fn zero_backoff_period_does_not_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tiny_source(tmp.path());
    let port = free_port();
    let ddir = tmp.path().join("ddir");
    let t = Instant::now();
    let out = run(
        swarmcc(&ddir, &format!("127.0.0.1:{port}/4 127.0.0.1:{port}/2"))
            .env("DISTCC_BACKOFF_PERIOD", "0")
            .env("DISTCC_FALLBACK", "0")
            .args(["gcc", "-c"])
            .arg(&src)
            .arg("-o")
            .arg(tmp.path().join("o.o")),
    );
    // distcc 3.4 retries forever here; we try each host once and stop.
    assert_eq!(out.status.code(), Some(116));
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
}

#[test]
fn stalled_host_times_out_and_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tiny_source(tmp.path());
    let want = local_object(tmp.path(), &src);
    let stall = StallServer::start();
    let ddir = tmp.path().join("ddir");
    let out_o = tmp.path().join("out.o");
    let t = Instant::now();
    let out = run(swarmcc(&ddir, &format!("127.0.0.1:{}/4", stall.port))
        .env("DISTCC_IO_TIMEOUT", "2")
        .env("SWARMCC_COMPILE_TIMEOUT", "2")
        .args(["gcc", "-O2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_o));
    assert_success(&out, "compile with a stalling host");
    // At least the 2 s given, and far below the defaults (IO 300 s, compile 600 s).
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(60),
        "took {took:?}"
    );
    assert_eq!(fs::read(&out_o).unwrap(), want);
    assert!(backoff_file(&ddir, stall.port).exists());
}

#[test]
fn server_killed_mid_compile_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let src = slow_source(tmp.path());
    let want = local_object(tmp.path(), &src);
    let mut server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let ddir = tmp.path().join("ddir");
    let out_o = tmp.path().join("out.o");
    let child = swarmcc(&ddir, &format!("127.0.0.1:{}/4", server.port))
        .args(["gcc", "-O2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_o)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = ProcessGuard {
        child,
        name: "swarmcc".into(),
    };
    // Kill the server once it is compiling our job (gcc takes seconds over slow.c).
    server.log_when(|l| {
        l.lines()
            .any(|j| j.contains(": compiling ") && j.contains("slow.c as: "))
    });
    let _ = server.guard.child.kill();
    let _ = server.guard.child.wait();
    let mut client = client;
    let out = std::mem::replace(&mut client.child, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    assert_success(&out, "compile whose server was killed");
    assert_eq!(
        fs::read(&out_o).unwrap(),
        want,
        "identical object from the fallback"
    );
    assert!(backoff_file(&ddir, server.port).exists());
}

#[test]
fn broken_host_spec_names_the_token_and_compiles_locally() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tiny_source(tmp.path());
    let ddir = tmp.path().join("ddir");
    let out_o = tmp.path().join("out.o");
    let out = run(swarmcc(&ddir, "127.0.0.1:abc")
        .args(["gcc", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_o));
    assert_success(&out, "compile with a broken host list");
    assert!(out_o.exists());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1:abc"),
        "the message names the bad token: {err}"
    );
}

#[test]
fn remote_compile_error_shows_one_set_of_diagnostics() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let bad = tmp.path().join("bad.c");
    fs::write(&bad, "int f(void) { return 1 }\n").unwrap();
    let ddir = tmp.path().join("ddir");
    let hosts = format!("127.0.0.1:{}/4", server.port);
    for skip in [false, true] {
        let mut cmd = swarmcc(&ddir, &hosts);
        if skip {
            cmd.env("DISTCC_SKIP_LOCAL_RETRY", "1");
        }
        let out = run(cmd
            .current_dir(tmp.path())
            .args(["gcc", "-c", "bad.c", "-o", "bad.o"]));
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.matches("error: expected").count(),
            1,
            "one diagnostic (skip={skip}):\n{err}"
        );
        assert!(!tmp.path().join("bad.o").exists());
    }
    // A genuine compile error is not the host's fault.
    assert!(!backoff_file(&ddir, server.port).exists());
}

#[test]
fn long_compile_on_a_healthy_server_is_not_an_io_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let src = slow_source(tmp.path());
    let want = local_object(tmp.path(), &src);
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let ddir = tmp.path().join("ddir");
    let out_o = tmp.path().join("out.o");
    // The compile takes about a second; the IO timeout (silence mid-transfer) is one
    // second too. distcc would give up here (its IO timeout covers the compile).
    let out = run(swarmcc(&ddir, &format!("127.0.0.1:{}/4", server.port))
        .env("DISTCC_IO_TIMEOUT", "1")
        .env("DISTCC_FALLBACK", "0")
        .args(["gcc", "-O2", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_o));
    assert_success(&out, "long remote compile");
    assert_eq!(fs::read(&out_o).unwrap(), want);
    server.log_when(|l| l.contains("COMPILE_OK"));
    assert!(!backoff_file(&ddir, server.port).exists());
}

#[test]
fn failed_preprocessing_ends_the_request_cleanly_and_the_server_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    fs::write(tmp.path().join("bad.c"), "#include \"missing.h\"\nint x;\n").unwrap();
    let ddir = tmp.path().join("ddir");
    // Plain and `,lzo`; the first job of each also speaks the extension (keep-alives
    // are in flight when the client gives up).
    for hosts in [
        format!("127.0.0.1:{}/4", server.port),
        format!("127.0.0.1:{}/4,lzo", server.port),
    ] {
        let out = run(swarmcc(&ddir, &hosts)
            .current_dir(tmp.path())
            .args(["gcc", "-c", "bad.c", "-o", "bad.o"]));
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.matches("fatal error: missing.h").count(),
            1,
            "the local error, once:\n{err}"
        );
    }
    let log = server.log_when(|l| l.matches("before sending its source").count() >= 2);
    assert!(!log.contains("reset by peer"), "no reset: {log}");
    // The preprocessor is at fault, not the host.
    assert!(!backoff_file(&ddir, server.port).exists());
}
