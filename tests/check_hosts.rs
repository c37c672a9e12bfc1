//! `swarmcc --check-hosts` against real servers: a matching swarmccd and a matching
//! Debian distccd (plain and `,lzo`) pass; a server whose compiler is a wrapper that
//! changes the code (`-fno-inline` added behind the client's back) is flagged DIFFERENT
//! COMPILER, for swarmccd and for distccd; a compiler outside the server's list is
//! REFUSED (with swarmccd's reason); a dead port is UNREACHABLE; and the exit status says
//! whether everything is OK.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The name a client sends for `gcc` (`x86_64-linux-gnu-gcc` on Debian), as the check
/// prints it: `gcc (sent as NAME)`, or just `gcc`.
fn sent_name(out: &str, compiler: &str) -> String {
    let marker = format!("{compiler} (sent as ");
    match out.find(&marker) {
        Some(at) => {
            let rest = &out[at + marker.len()..];
            rest[..rest.find(')').unwrap()].to_string()
        }
        None => compiler.to_string(),
    }
}

/// `swarmcc FLAG` (`--check-hosts` or `--check-hosts=LIST`) with `hosts`.
fn check(dir: &Path, hosts: &str, flag: &str) -> (Output, String) {
    let out = run(swarmcc(&dir.join("distcc"), hosts)
        .arg(flag)
        .env("SWARMCC_CONNECT_TIMEOUT", "2"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    (out, text)
}

/// The block of the report about `spec` (from its line to the next blank line).
fn block<'a>(text: &'a str, spec: &str) -> &'a str {
    let start = text
        .find(&format!("\n{spec}\n"))
        .unwrap_or_else(|| panic!("no report for {spec}:\n{text}"));
    let rest = &text[start + 1..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

/// A lab directory the unprivileged server users can traverse.
fn lab() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

/// `DIR/bin/NAME` for each name: a script running the real `/usr/bin/NAME` with
/// `-fno-inline` added — a compiler that accepts the same options but generates other
/// code. Returns the folder.
fn wrappers(dir: &Path, names: &[String]) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for name in names {
        let real = Path::new("/usr/bin").join(name);
        let script = bin.join(name);
        write_exe(
            &script,
            &format!("#!/bin/sh\nexec {} \"$@\" -fno-inline\n", real.display()),
        );
    }
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn matching_swarmccd_and_distccd_pass() {
    let tmp = lab();
    let s = start_swarmccd(tmp.path(), &[]);
    let d = start_distccd(tmp.path());
    let hosts = format!(
        "127.0.0.1:{sp} 127.0.0.1:{sp},lzo 127.0.0.1:{dp} 127.0.0.1:{dp},lzo localhost",
        sp = s.port,
        dp = d.port
    );
    let (out, text) = check(tmp.path(), &hosts, "--check-hosts");
    assert_eq!(out.status.code(), Some(0), "{text}");
    for spec in [
        format!("127.0.0.1:{}", s.port),
        format!("127.0.0.1:{},lzo", s.port),
    ] {
        let b = block(&text, &spec);
        assert!(b.contains("server    swarmccd"), "{b}");
        assert!(b.contains("gcc       same object as here"), "{b}");
        assert!(b.contains("g++       same object as here"), "{b}");
        assert!(b.contains("verdict   OK"), "{b}");
    }
    for (spec, proto) in [
        (format!("127.0.0.1:{}", d.port), "protocol  1"),
        (format!("127.0.0.1:{},lzo", d.port), "protocol  2"),
    ] {
        let b = block(&text, &spec);
        assert!(b.contains(proto), "{b}");
        assert!(b.contains("server    distccd"), "{b}");
        assert!(b.contains("gcc       same object as here"), "{b}");
        assert!(b.contains("g++       same object as here"), "{b}");
        assert!(b.contains("verdict   OK"), "{b}");
    }
    assert!(text.contains("5 hosts: 5 OK"), "{text}");
    // The probes really were compiled there: two per server and protocol.
    let four = |l: &str| l.matches("COMPILE_OK").count() == 4;
    let log = eventually(|| d.log_text(), four);
    assert!(four(&log), "{log}");
    let log = eventually(|| s.log_text(), four);
    assert!(four(&log), "{log}");
}

#[test]
fn a_compiler_that_generates_other_code_is_flagged_different() {
    let tmp = lab();
    let sent = {
        let (_, text) = check(tmp.path(), "localhost", "--check-hosts");
        sent_name(&text, "gcc")
    };
    let bin = wrappers(tmp.path(), std::slice::from_ref(&sent));
    let search = format!("{}:/usr/bin:/bin", bin.display());
    // swarmccd: the wrapper is whitelisted by name and found first on DISTCCD_PATH.
    let wl = tmp.path().join("wl");
    fs::create_dir_all(&wl).unwrap();
    symlink(bin.join(&sent), wl.join(&sent)).unwrap();
    let s = start_swarmccd_env(
        tmp.path(),
        &["--whitelist-dir", wl.to_str().unwrap()],
        &[("DISTCCD_PATH", &search)],
    );
    // distccd: its whitelist (/usr/lib/distcc) already has the name; DISTCCD_PATH
    // decides which program runs.
    let d = start_distccd_env(tmp.path(), &[("DISTCCD_PATH", &search)]);
    let hosts = format!("127.0.0.1:{} 127.0.0.1:{},lzo", s.port, d.port);
    let (out, text) = check(tmp.path(), &hosts, "--check-hosts=gcc");
    assert_eq!(out.status.code(), Some(1), "{text}");
    for spec in [
        format!("127.0.0.1:{}", s.port),
        format!("127.0.0.1:{},lzo", d.port),
    ] {
        let b = block(&text, &spec);
        assert!(b.contains("gcc       DIFFERENT object"), "{b}");
        // Same compiler version, other code: the sections say so.
        assert!(b.contains(".text") && b.contains("both say"), "{b}");
        assert!(b.contains("verdict   DIFFERENT COMPILER"), "{b}");
    }
    assert!(text.contains("2 hosts: 2 DIFFERENT COMPILER"), "{text}");
    // The wrapper did run there.
    for log in [
        eventually(|| s.log_text(), |l| l.contains("COMPILE_OK")),
        eventually(|| d.log_text(), |l| l.contains("COMPILE_OK")),
    ] {
        assert!(log.contains("COMPILE_OK"), "{log}");
    }
}

#[test]
fn compilers_outside_the_server_list_are_refused_and_dead_hosts_unreachable() {
    let tmp = lab();
    let sent = {
        let (_, text) = check(tmp.path(), "localhost", "--check-hosts");
        sent_name(&text, "gcc")
    };
    let real = which::which(&sent).unwrap();
    // Both servers may run gcc only: g++ is refused.
    let list = tmp.path().join("cmdlist");
    fs::write(&list, format!("{}\n", real.display())).unwrap();
    fs::set_permissions(&list, fs::Permissions::from_mode(0o644)).unwrap();
    let cmdlist = list.to_str().unwrap();
    let s = start_swarmccd_env(tmp.path(), &[], &[("DISTCC_CMDLIST", cmdlist)]);
    let d = start_distccd_env(tmp.path(), &[("DISTCC_CMDLIST", cmdlist)]);
    let dead = free_port();
    let hosts = format!("127.0.0.1:{} 127.0.0.1:{} 127.0.0.1:{dead}", s.port, d.port);
    let (out, text) = check(tmp.path(), &hosts, "--check-hosts");
    assert_eq!(out.status.code(), Some(1), "{text}");

    let b = block(&text, &format!("127.0.0.1:{}", s.port));
    assert!(b.contains("gcc       same object as here"), "{b}");
    assert!(
        b.contains("g++       REFUSED") && b.contains("is not in DISTCC_CMDLIST"),
        "{b}"
    );
    assert!(b.contains("verdict   REFUSED"), "{b}");

    let b = block(&text, &format!("127.0.0.1:{}", d.port));
    assert!(b.contains("gcc       same object as here"), "{b}");
    assert!(
        b.contains("g++       REFUSED") && b.contains("closed the connection"),
        "{b}"
    );

    let b = block(&text, &format!("127.0.0.1:{dead}"));
    assert!(
        b.contains("verdict   UNREACHABLE: connection refused"),
        "{b}"
    );
    assert!(text.contains("3 hosts: 2 REFUSED, 1 UNREACHABLE"), "{text}");
}

#[test]
fn usage_errors() {
    let tmp = lab();
    // No host at all.
    let (out, text) = check(tmp.path(), "", "--check-hosts");
    assert_eq!(out.status.code(), Some(106), "{text}");
    assert!(text.contains("no hosts"), "{text}");
    // A compiler this machine does not have: nothing to compare with.
    let (out, text) = check(tmp.path(), "127.0.0.1:1", "--check-hosts=no-such-cc-42");
    assert_eq!(out.status.code(), Some(110), "{text}");
    assert!(
        text.contains("no-such-cc-42 is not installed here"),
        "{text}"
    );
    // `,down` hosts are skipped, not failed.
    let (out, text) = check(tmp.path(), "127.0.0.1:1,down localhost", "--check-hosts");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("2 hosts: 1 OK, 1 SKIPPED"), "{text}");
}

/// `,auth` hosts are checked through the handshake, with the job's key file: the right
/// key passes, another key is REFUSED with the server's reason. A server that accepts
/// and never answers is FAILED after the (here shortened) compile timeout.
#[test]
fn authenticated_hosts_and_stalled_servers() {
    let tmp = lab();
    let key = tmp.path().join("server.key");
    assert_success(
        &run(std::process::Command::new(SWARMCCD)
            .arg("--gen-auth-key")
            .arg(&key)),
        "swarmccd --gen-auth-key",
    );
    let wrong = tmp.path().join("wrong.key");
    assert_success(
        &run(std::process::Command::new(SWARMCCD)
            .arg("--gen-auth-key")
            .arg(&wrong)),
        "swarmccd --gen-auth-key",
    );
    let s = start_swarmccd(tmp.path(), &["--auth-key-file", key.to_str().unwrap()]);
    let stall = StallServer::start();
    let hosts = format!("127.0.0.1:{},auth", s.port);
    let out = run(swarmcc(&tmp.path().join("d1"), &hosts)
        .arg("--check-hosts=gcc")
        .env("SWARMCC_AUTH_KEY_FILE", &key));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("authenticated with") && text.contains("verdict   OK"),
        "{text}"
    );

    let hosts = format!("127.0.0.1:{},auth 127.0.0.1:{}", s.port, stall.port);
    let out = run(swarmcc(&tmp.path().join("d2"), &hosts)
        .arg("--check-hosts=gcc")
        .env("SWARMCC_AUTH_KEY_FILE", &wrong)
        .env("SWARMCC_COMPILE_TIMEOUT", "1"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let b = block(&text, &format!("127.0.0.1:{},auth", s.port));
    assert!(
        b.contains("verdict   REFUSED") && b.contains("wrong key"),
        "{b}"
    );
    let b = block(&text, &format!("127.0.0.1:{}", stall.port));
    assert!(
        b.contains("verdict   FAILED") && b.contains("timed out"),
        "{b}"
    );
}
