//! swarmcc's negotiated extension, end to end with real processes: swarmccd is spoken
//! to in it from the first job (zstd bodies, compiler check, keep-alives); a real
//! distccd is not (one probe, remembered, and it still compiles); a server whose
//! compiler differs is never used; a long compile stays remote while a frozen server
//! is noticed within the stall timeout, not the compile timeout.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_success, run, start_distccd, start_swarmccd_env, swarmcc, AgentReaper};

const SOURCE: &str = "int scale(int a){int s=0;for(int i=0;i<a;i++)s+=i*3;return s;}\n";

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for i in 0..4 {
            fs::write(
                dir.path().join(format!("s{i}.c")),
                SOURCE.replace("scale", &format!("scale{i}")),
            )
            .unwrap();
        }
        Lab { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ddir(&self) -> PathBuf {
        self.path().join("distcc-dir")
    }

    /// A whitelisted `gcc` for a server: a script that runs the real one, after
    /// `body` (which may fake `-v`, or sleep).
    fn server_gcc(&self, name: &str, body: &str) -> (PathBuf, String) {
        let bin = self.path().join(format!("{name}-bin"));
        let wl = self.path().join(format!("{name}-wl"));
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(&wl).unwrap();
        // Under both names a client sends: swarmcc asks for the triple-prefixed gcc.
        for cc in ["gcc", "x86_64-linux-gnu-gcc"] {
            let script = bin.join(cc);
            let text = format!("#!/bin/sh\n{body}\nexec /usr/bin/gcc \"$@\"\n");
            fs::write(&script, text).unwrap();
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
            symlink(&script, wl.join(cc)).unwrap();
        }
        for d in [&bin, &wl] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        (wl, format!("{}:/usr/bin:/bin", bin.display()))
    }

    /// `swarmcc gcc -c sN.c`, verbose; returns the client's log.
    fn compile(&self, hosts: &str, n: usize, env: &[(&str, &str)]) -> String {
        let mut cmd = swarmcc(&self.ddir(), hosts);
        cmd.current_dir(self.path())
            .args(["gcc", "-O2", "-c", &format!("s{n}.c")])
            .env("DISTCC_VERBOSE", "1")
            .envs(env.iter().copied());
        let out = run(&mut cmd);
        assert_success(&out, &format!("swarmcc gcc -c s{n}.c"));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn assert_objects_local(&self, n: usize) {
        let local = self.path().join("local.o");
        let st = Command::new("gcc")
            .current_dir(self.path())
            .args(["-O2", "-c", &format!("s{n}.c"), "-o"])
            .arg(&local)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            fs::read(self.path().join(format!("s{n}.o"))).unwrap(),
            fs::read(&local).unwrap(),
            "s{n}.o differs from a local compile"
        );
    }
}

fn lock_name(port: u16) -> String {
    format!("tcp_127.0.0.1_{port}")
}

#[test]
fn swarmccd_is_spoken_to_in_the_extension_from_the_first_job() {
    let lab = Lab::new();
    let _reaper = AgentReaper(lab.ddir());
    let srv = start_swarmccd_env(lab.path(), &[], &[]);
    // Compression only where the host list asks for it (`,lzo`: zstd instead).
    for (n, options) in [(0, ""), (1, ",lzo")] {
        let hosts = format!("127.0.0.1:{}/2{options}", srv.port);
        let log = lab.compile(&hosts, n, &[]);
        assert!(log.contains("remote on 127.0.0.1"), "{log}");
        lab.assert_objects_local(n);
    }
    let server_log = srv.log_when(|l| l.matches("COMPILE_OK").count() >= 2);
    for zstd in [false, true] {
        let line =
            format!("extension request (zstd: {zstd}, keep-alive: true, compiler: \"gcc version");
        assert_eq!(server_log.matches(&line).count(), 1, "{server_log}");
    }
    assert_eq!(server_log.matches("COMPILE_OK").count(), 2);
    assert!(lab.ddir().join("ext").join(lock_name(srv.port)).exists());
}

#[test]
fn real_distccd_is_probed_once_and_then_spoken_to_in_plain_distcc() {
    let lab = Lab::new();
    let _reaper = AgentReaper(lab.ddir());
    let d = start_distccd(lab.path());
    let hosts = format!("127.0.0.1:{}/2,lzo", d.port);
    for n in 0..3 {
        let log = lab.compile(&hosts, n, &[]);
        assert!(log.contains("remote on 127.0.0.1"), "{log}");
        assert_eq!(
            log.contains("not a swarmccd; using plain distcc"),
            n == 0,
            "job {n}: {log}"
        );
        lab.assert_objects_local(n);
    }
    assert!(lab.ddir().join("plain").join(lock_name(d.port)).exists());
    assert!(!lab.ddir().join("ext").join(lock_name(d.port)).exists());
    let dlog = d.log_when(|l| l.matches("COMPILE_OK").count() >= 3);
    assert_eq!(dlog.matches("COMPILE_OK").count(), 3, "{dlog}");
}

#[test]
fn a_server_with_a_different_compiler_is_never_used() {
    let lab = Lab::new();
    let _reaper = AgentReaper(lab.ddir());
    // The same gcc binary, but claiming another version: what an older or newer gcc
    // on a helper machine looks like.
    let (wl, path) = lab.server_gcc(
        "other",
        "case \"$*\" in -v) echo 'Target: x86_64-linux-gnu' >&2; \
         echo 'gcc version 99.1.0 (Other 99.1.0-1)' >&2; exit 0;; esac",
    );
    let other = start_swarmccd_env(
        lab.path(),
        &["--whitelist-dir", wl.to_str().unwrap()],
        &[("DISTCCD_PATH", &path)],
    );
    let good = start_swarmccd_env(lab.path(), &[], &[]);

    // Only the mismatched host: every job compiles here, with the reason.
    let only = format!("127.0.0.1:{}/2", other.port);
    let log = lab.compile(&only, 0, &[]);
    assert!(log.contains("compiler mismatch"), "{log}");
    assert!(log.contains("gcc version 99.1.0"), "{log}");
    lab.assert_objects_local(0);
    let olog = other.log_when(|l| l.contains("compiler mismatch"));
    assert_eq!(olog.matches("COMPILE_OK").count(), 0, "{olog}");
    assert!(olog.contains("compiler mismatch"), "{olog}");

    // Both hosts, mismatched one first: the jobs end up on the matching host.
    let _ = fs::remove_dir_all(lab.ddir());
    let both = format!("127.0.0.1:{}/2 127.0.0.1:{}/2", other.port, good.port);
    for n in 1..4 {
        let log = lab.compile(&both, n, &[]);
        assert!(
            log.contains(&format!("remote on 127.0.0.1:{}", good.port)),
            "{log}"
        );
        lab.assert_objects_local(n);
    }
    let glog = good.log_when(|l| l.matches("COMPILE_OK").count() >= 3);
    assert_eq!(glog.matches("COMPILE_OK").count(), 3, "{glog}");
    assert_eq!(other.log_text().matches("COMPILE_OK").count(), 0);
}

#[test]
fn keepalives_keep_a_long_compile_remote_and_a_frozen_server_is_noticed() {
    let lab = Lab::new();
    let _reaper = AgentReaper(lab.ddir());
    let (wl, path) = lab.server_gcc("slow", "case \"$*\" in -v) ;; *) sleep 5;; esac");
    let srv = start_swarmccd_env(
        lab.path(),
        &["--whitelist-dir", wl.to_str().unwrap(), "--no-sandbox"],
        &[("DISTCCD_PATH", &path)],
    );
    let hosts = format!("127.0.0.1:{}/2", srv.port);
    // A 5 s compile with a 3 s stall timeout: the keep-alives keep it remote.
    let stall = [("SWARMCC_STALL_TIMEOUT", "3")];
    let log = lab.compile(&hosts, 0, &stall);
    assert!(log.contains("remote on 127.0.0.1"), "{log}");
    lab.assert_objects_local(0);

    // The same server frozen mid-compile: the client gives up after 3 s of silence
    // (the default stall timeout is 20 s, the compile timeout 600 s) and compiles
    // locally.
    let pid = srv.guard.pid() as i32;
    let mut cmd = swarmcc(&lab.ddir(), &hosts);
    cmd.current_dir(lab.path())
        .args(["gcc", "-O2", "-c", "s1.c"])
        .env("DISTCC_VERBOSE", "1")
        .envs(stall);
    let child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    srv.log_when(|l| l.contains("compiling s1.c"));
    // Timed from the freeze: the client's start and preprocessing are not the point.
    let frozen = Instant::now();
    // SAFETY: kill(2) on the server we started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let out = child.wait_with_output().unwrap();
    // SAFETY: as above; let it finish (and be killed by its guard).
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let took = frozen.elapsed();
    assert_success(&out, "swarmcc with a frozen server");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("fallback to local"), "{log}");
    // The 3 s stall timeout plus a local compile and room for a loaded machine, below
    // the 20 s default a client ignoring SWARMCC_STALL_TIMEOUT would wait.
    assert!(took < Duration::from_secs(15), "noticed after {took:?}");
    lab.assert_objects_local(1);
}

/// A client asking for a rustc job (feature `rustc`, then its request) hears, in the
/// extension's terms, that this swarmccd does not take it: accepted features without
/// `rustc`, then a refusal naming why; the server logs the refusal and goes on serving.
#[test]
fn a_rustc_job_is_refused_in_the_extensions_terms() {
    use swarmcc::protocol::ext::{encode_preamble, Preamble};
    use swarmcc::protocol::rustc::{
        encode_request, Limits, RustcRequest, ServerMsg, ServerMsgDecoder,
    };

    let lab = Lab::new();
    let _reaper = AgentReaper(lab.ddir());
    let srv = start_swarmccd_env(lab.path(), &[], &[]);
    let mut bytes = Vec::new();
    let preamble = Preamble {
        features: vec!["rustc".into(), "keepalive".into()],
        identity: "rustc 1.95.0; commit 0; host x86_64-unknown-linux-gnu".into(),
    };
    encode_preamble(&preamble, &mut bytes).unwrap();
    let request = RustcRequest {
        cwd: "/src".into(),
        args: vec!["--crate-name".into(), "demo".into(), "/src/lib.rs".into()],
        ..Default::default()
    };
    encode_request(&request, &mut bytes).unwrap();
    let answer = common::wire::exchange(srv.port, &bytes);

    let mut decoder = ServerMsgDecoder::new(Limits::default());
    let mut at = 0;
    let mut msgs = Vec::new();
    while let Some((msg, used)) = decoder.decode(&answer[at..]).unwrap() {
        msgs.push(msg);
        at += used;
    }
    assert_eq!(at, answer.len(), "bytes after the refusal: {answer:?}");
    assert_eq!(
        msgs,
        vec![
            ServerMsg::Accepted(vec![]),
            ServerMsg::Refused("rustc jobs are not served by this swarmccd".into()),
        ]
    );
    srv.log_when(|l| l.contains("(rustc jobs are not served by this swarmccd)"));
    // Still serving: a C job right after is compiled there.
    let log = lab.compile(&format!("127.0.0.1:{}/2", srv.port), 0, &[]);
    assert!(log.contains("remote on 127.0.0.1"), "{log}");
    lab.assert_objects_local(0);
}
