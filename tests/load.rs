//! 200 clients at once against `swarmccd -j 2`: every one is served or told "busy" in
//! time to compile locally; none is lost, none hangs, and the server's memory stays
//! bounded. Once with raw protocol clients (to see each answer), once with 200 real
//! Debian `distcc` processes (to see the builds succeed, objects identical).

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::wire::{exchange, request, try_decode_reply, REFUSED};
use common::{start_swarmccd, Swarmccd};
use swarmcc::protocol::Version;

const CLIENTS: usize = 200;

/// The server's peak resident memory so far, in KiB.
fn peak_rss_kib(srv: &Swarmccd) -> u64 {
    common::proc_status_kib(srv.guard.pid(), "VmHWM")
}

fn source(i: usize) -> String {
    format!("int f{i}(int a){{int s=0;for(int k=0;k<a;k++)s+=k*{i};return s;}}\n")
}

fn gcc(dir: &Path, args: &[&str]) {
    let st = Command::new("gcc")
        .current_dir(dir)
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "gcc {args:?}");
}

#[test]
fn two_hundred_raw_clients_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("x.c"), source(7)).unwrap();
    gcc(d, &["-E", "x.c", "-o", "x.i"]);
    gcc(d, &["-O2", "-c", "x.i", "-o", "ref.o"]);
    let pre = fs::read(d.join("x.i")).unwrap();
    let reference = fs::read(d.join("ref.o")).unwrap();
    let srv = start_swarmccd(d, &["-j", "2"]);
    let bytes = request(Version::V2, &["gcc", "-O2", "-c", "x.c", "-o", "x.o"], &pre);
    let started = Instant::now();
    let port = srv.port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let bytes = bytes.clone();
            thread::spawn(move || {
                let t = Instant::now();
                let got = exchange(port, &bytes);
                (t.elapsed(), try_decode_reply(Version::V2, &got))
            })
        })
        .collect();
    let (mut served, mut busy, mut worst) = (0, 0, Duration::ZERO);
    for c in clients {
        let (took, reply) = c.join().unwrap();
        worst = worst.max(took);
        let r = reply.expect("every client gets a whole reply");
        if r.status == 0 {
            assert_eq!(r.object, reference);
            served += 1;
        } else {
            assert_eq!(r.status, REFUSED, "{}", r.stderr);
            assert!(r.stderr.contains("server busy"), "{}", r.stderr);
            busy += 1;
        }
    }
    let peak = peak_rss_kib(&srv);
    eprintln!(
        "{CLIENTS} raw clients vs -j2: {served} served, {busy} told busy, worst wait {:.2}s, \
         all in {:.2}s, server peak RSS {} MiB",
        worst.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        peak / 1024
    );
    assert_eq!(served + busy, CLIENTS);
    assert!(served >= 10, "only {served} served");
    assert!(worst < Duration::from_secs(60), "a client waited {worst:?}");
    assert!(peak < 256 * 1024, "server peak RSS {peak} KiB");
}

#[test]
fn two_hundred_distcc_clients_all_build() {
    if Command::new("distcc")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        panic!("Debian's distcc is needed (integration/run-tests.sh installs it)");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for i in 0..CLIENTS {
        fs::write(d.join(format!("s{i}.c")), source(i)).unwrap();
    }
    let srv = start_swarmccd(d, &["-j", "2"]);
    let ddir = d.join("distcc-dir");
    fs::create_dir(&ddir).unwrap();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            Command::new("distcc")
                .args(["gcc", "-O2", "-c"])
                .arg(format!("s{i}.c"))
                .current_dir(d)
                .env("DISTCC_HOSTS", format!("127.0.0.1:{}/{CLIENTS}", srv.port))
                .env("DISTCC_DIR", &ddir)
                .env_remove("DISTCC_VERBOSE")
                .env_remove("DISTCC_SKIP_LOCAL_RETRY")
                .env_remove("DISTCC_FALLBACK")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "s{i}.c: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let took = started.elapsed();
    let peak = peak_rss_kib(&srv);
    // Every object, remote or fallen back, equals a plain local compile.
    let local = d.join("local");
    fs::create_dir(&local).unwrap();
    for i in 0..CLIENTS {
        let obj = local.join(format!("s{i}.o"));
        gcc(
            d,
            &["-O2", "-c", &format!("s{i}.c"), "-o", obj.to_str().unwrap()],
        );
        assert_eq!(
            fs::read(d.join(format!("s{i}.o"))).unwrap(),
            fs::read(&obj).unwrap(),
            "s{i}.o differs"
        );
    }
    // Jobs are logged after their replies: the last lines can trail the clients' exit.
    let log = common::eventually(|| srv.log_text(), |l| l.matches("COMPILE_OK").count() >= 10);
    let remote = log.matches("COMPILE_OK").count();
    let busy = log.matches("server busy").count();
    eprintln!(
        "{CLIENTS} distcc clients vs swarmccd -j2: all built in {:.1}s; {remote} compiled \
         remotely, {busy} told busy (compiled locally); server peak RSS {} MiB",
        took.as_secs_f64(),
        peak / 1024
    );
    assert!(remote >= 10, "{remote} remote compiles");
    assert!(peak < 256 * 1024, "server peak RSS {peak} KiB");
}
