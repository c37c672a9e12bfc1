//! swarmcc as `RUSTC_WRAPPER` against servers that misbehave at the worst moment, on
//! raw sockets speaking `protocol::rustc`: the build's rustc still runs (here), and
//! what cargo reads from it stays as a local rustc would have written it.

mod common;

use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::thread;

use swarmcc::protocol::ext;
use swarmcc::protocol::rustc::{self, OutputFile, RustcReply, RustcRequestDecoder};

/// A package with one library, and the rustc command cargo would run for it.
fn package(dir: &Path) -> (Vec<String>, std::path::PathBuf) {
    let pkg = dir.join("pkg");
    fs::create_dir_all(pkg.join("src")).unwrap();
    fs::write(pkg.join("Cargo.toml"), "[package]\nname = \"early\"\n").unwrap();
    fs::write(pkg.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n").unwrap();
    let out = pkg.join("out");
    fs::create_dir_all(&out).unwrap();
    let args = [
        "--crate-name",
        "early",
        "--edition=2021",
        "src/lib.rs",
        "--error-format=json",
        "--json=artifacts",
        "--crate-type",
        "lib",
        "--emit=dep-info,metadata,link",
        "-C",
        "metadata=e",
        "--out-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.to_string_lossy().into_owned()])
    .collect();
    (args, pkg)
}

/// A server that accepts the job, asks for nothing, sends an early part (the notice
/// that the metadata is written, with an `.rmeta` and the dep-info) and then dies.
fn dying_after_the_early_part(listener: TcpListener, pkg: &Path) -> thread::JoinHandle<()> {
    let pkg = pkg.to_owned();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        let mut decoder = RustcRequestDecoder::new(rustc::Limits::default());
        loop {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "the client closed before its request");
            buf.extend_from_slice(&chunk[..n]);
            let Some((_, used)) = ext::decode_preamble(&buf).unwrap() else {
                continue;
            };
            if decoder.decode(&buf[used..]).unwrap().is_some() {
                break;
            }
        }
        let out = pkg.join("out");
        let rmeta = out.join("libearly.rmeta").to_string_lossy().into_owned();
        let dep_info = out.join("early.d").to_string_lossy().into_owned();
        let notice = format!(
            "{{\"$message_type\":\"artifact\",\"artifact\":\"{rmeta}\",\"emit\":\"metadata\"}}\n"
        );
        let part = RustcReply {
            status: 0,
            stdout: Vec::new(),
            stderr: notice.into_bytes(),
            root: "/".into(),
            outputs: vec![
                OutputFile {
                    path: dep_info.clone(),
                    executable: false,
                    data: format!("{dep_info}: src/lib.rs\n\nsrc/lib.rs:\n").into_bytes(),
                },
                OutputFile {
                    path: rmeta,
                    executable: false,
                    data: b"not really metadata".to_vec(),
                },
            ],
        };
        let mut bytes = Vec::new();
        ext::encode_accepted(&[rustc::FEATURE, rustc::EARLY_METADATA], &mut bytes).unwrap();
        rustc::encode_needed(&[], &mut bytes).unwrap();
        rustc::encode_early(&part, &mut bytes).unwrap();
        s.write_all(&bytes).unwrap();
        // Gone before the reply.
    })
}

/// After an early part was printed and the server died, rustc runs here: the
/// metadata notice reaches cargo once, and the outputs are the local rustc's.
#[test]
fn a_server_dying_after_the_early_metadata_leaves_one_notice_and_local_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let (args, pkg) = package(tmp.path());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = dying_after_the_early_part(listener, &pkg);
    let ddir = tmp.path().join("distcc");
    let _reaper = AgentReaper(ddir.clone());
    let out = run(Command::new(SWARMCC)
        .arg(client_rustc())
        .args(&args)
        .current_dir(&pkg)
        .env("DISTCC_HOSTS", format!("127.0.0.1:{port}/2"))
        .env("DISTCC_DIR", &ddir)
        .env("DISTCC_BACKOFF_PERIOD", "0")
        .env("CARGO_MANIFEST_DIR", &pkg)
        .env("CARGO_PKG_NAME", "early")
        .env_remove("DISTCC_FALLBACK")
        .env_remove("OUT_DIR")
        .env("DISTCC_VERBOSE", "1"));
    server.join().unwrap();
    assert_success(&out, "rustc through swarmcc, the server dying mid-job");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let notices = stderr
        .lines()
        .filter(|l| l.contains("\"emit\":\"metadata\""))
        .count();
    assert_eq!(notices, 1, "the metadata notice once:\n{stderr}");
    assert!(
        stderr.contains("rustc early: metadata written ahead of the reply")
            && stderr.contains("job early: fallback to local"),
        "the early part was taken, then rustc ran here:\n{stderr}"
    );
    let rmeta = fs::read(pkg.join("out/libearly.rmeta")).unwrap();
    assert!(
        rmeta.starts_with(b"rust"),
        "the local rustc's metadata replaced the early one"
    );
    assert!(pkg.join("out/libearly.rlib").is_file(), "{stderr}");
    let dep_info = fs::read_to_string(pkg.join("out/early.d")).unwrap();
    assert!(dep_info.contains("src/lib.rs"), "{dep_info}");
}

/// A real distccd in the host list: the rustc job's extension request is closed at
/// once, so rustc runs here (even with `DISTCC_FALLBACK=0`: the host declined, it did
/// not fail), and the host is not asked again for the next rustc job.
#[test]
fn a_real_distccd_is_asked_once_and_rustc_runs_here() {
    let tmp = tempfile::tempdir().unwrap();
    let distccd = start_distccd(tmp.path());
    let (args, pkg) = package(tmp.path());
    let ddir = tmp.path().join("distcc");
    let _reaper = AgentReaper(ddir.clone());
    let log = tmp.path().join("client.log");
    let compile = || {
        run(Command::new(SWARMCC)
            .arg(client_rustc())
            .args(&args)
            .current_dir(&pkg)
            .env("DISTCC_HOSTS", format!("127.0.0.1:{}/2", distccd.port))
            .env("DISTCC_DIR", &ddir)
            .env("DISTCC_FALLBACK", "0")
            .env("DISTCC_LOG", &log)
            .env("DISTCC_VERBOSE", "1")
            .env("CARGO_MANIFEST_DIR", &pkg)
            .env_remove("OUT_DIR"))
    };
    for round in 0..2 {
        let out = compile();
        assert_success(
            &out,
            &format!("rustc through swarmcc to a distccd, round {round}"),
        );
        assert!(pkg.join("out/libearly.rlib").is_file());
    }
    let client = fs::read_to_string(&log).unwrap();
    let local: Vec<&str> = client
        .lines()
        .filter(|l| l.contains("job early: local ("))
        .collect();
    assert_eq!(local.len(), 2, "both rounds ran here:\n{client}");
    assert!(
        local[0].contains("closed the connection on a rustc job"),
        "{client}"
    );
    assert!(
        local[1].contains("no host serves rustc"),
        "not asked again:\n{client}"
    );
    assert!(
        !distccd.log_text().contains("COMPILE_OK"),
        "distccd compiled nothing:\n{}",
        distccd.log_text()
    );
}
