//! `swarmccd --stats`: real jobs through the swarmcc client (and Debian's distcc client
//! when installed) and a raw refused request, then the stats port read the ways its
//! users read it — distccd's `<distccstats>` page, parsed strictly in the field order of
//! distccd 3.4, and `GET /metrics`, parsed by Prometheus' own Python parser — and the
//! counters checked against the jobs the test ran. Also: `--allow` applies to the port.
//!
//! Servers are stopped by their guards, and the scheduling agents swarmcc starts for
//! the test's DISTCC_DIR are killed by pid, also when an assertion fails.

mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, start_swarmccd, swarmcc, AgentReaper, Swarmccd, PATIENCE};
use swarmcc::protocol::{encode_request_header, encode_source, Version};

/// distccd 3.4's fields, in its order (reference 5.5), with the shape of each value.
const DISTCC_FIELDS: &[(&str, Shape)] = &[
    ("dcc_tcp_accept", Shape::Int),
    ("dcc_rej_bad_req", Shape::Int),
    ("dcc_rej_overload", Shape::Int),
    ("dcc_compile_ok", Shape::Int),
    ("dcc_compile_error", Shape::Int),
    ("dcc_compile_timeout", Shape::Int),
    ("dcc_cli_disconnect", Shape::Int),
    ("dcc_other", Shape::Int),
    ("dcc_longest_job", Shape::Word),
    ("dcc_longest_job_compiler", Shape::Word),
    ("dcc_longest_job_time_msecs", Shape::Int),
    ("dcc_max_kids", Shape::Int),
    ("dcc_avg_kids1", Shape::Int),
    ("dcc_avg_kids2", Shape::Int),
    ("dcc_avg_kids3", Shape::Int),
    ("dcc_current_load", Shape::Int),
    ("dcc_load1", Shape::Fixed2),
    ("dcc_load2", Shape::Fixed2),
    ("dcc_load3", Shape::Fixed2),
    ("dcc_num_compiles1", Shape::Int),
    ("dcc_num_compiles2", Shape::Int),
    ("dcc_num_compiles3", Shape::Int),
    ("dcc_num_procstate_D", Shape::Int),
    ("dcc_max_RSS", Shape::Int),
    ("dcc_max_RSS_name", Shape::Word),
    ("dcc_io_rate", Shape::Int),
    ("dcc_free_space", Shape::Megabytes),
];

/// printf conversions of the page: `%d`, `%s` (no blanks), `%1.2lf`, `%d MB`.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Int,
    Word,
    Fixed2,
    Megabytes,
}

/// A distccd stats reply, parsed strictly: the exact status line and headers, LF line
/// ends only, every field once in order, nothing after `</distccstats>`.
fn parse_distcc(bytes: &[u8]) -> HashMap<String, String> {
    let text = std::str::from_utf8(bytes).expect("the page is text");
    assert!(!text.contains('\r'), "LF line ends only: {text:?}");
    assert!(text.ends_with("</distccstats>\n"), "{text:?}");
    let mut lines = text.strip_suffix('\n').unwrap().split('\n');
    for want in [
        "HTTP/1.0 200 OK",
        "Content-Type: text/plain",
        "Connection: close",
        "",
        "argv /distccd",
        "<distccstats>",
    ] {
        assert_eq!(lines.next(), Some(want), "{text}");
    }
    let mut fields = HashMap::new();
    for (name, shape) in DISTCC_FIELDS {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{name} missing: {text}"));
        let value = line
            .strip_prefix(name)
            .and_then(|v| v.strip_prefix(' '))
            .unwrap_or_else(|| panic!("expected {name}, got {line:?}"));
        let ok = match shape {
            Shape::Int => value.parse::<i64>().is_ok(),
            Shape::Word => !value.is_empty() && !value.contains(char::is_whitespace),
            Shape::Fixed2 => value.split_once('.').is_some_and(|(i, f)| {
                i.parse::<u64>().is_ok() && f.len() == 2 && f.parse::<u8>().is_ok()
            }),
            Shape::Megabytes => value
                .strip_suffix(" MB")
                .is_some_and(|n| n.parse::<u64>().is_ok()),
        };
        assert!(ok, "{name}: bad value {value:?} for {shape:?}");
        fields.insert(name.to_string(), value.to_string());
    }
    assert_eq!(lines.next(), Some("</distccstats>"));
    assert_eq!(lines.next(), None);
    fields
}

fn int(fields: &HashMap<String, String>, name: &str) -> i64 {
    fields[name].parse().unwrap()
}

/// Connects to a loopback port from `source` (e.g. 127.0.0.2, to be a different peer).
fn connect_from(source: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own; the addresses are valid
    // sockaddr_in values that outlive each call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let src = sockaddr(source, 0);
        if libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let dst = sockaddr(Ipv4Addr::LOCALHOST, port);
        if libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Sends `request` (possibly nothing) to the stats port from `source` and reads until
/// the server closes. Retries the connect briefly: the stats port is bound just after
/// the compile port the server guard waited for.
fn fetch_from(source: Ipv4Addr, port: u16, request: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + PATIENCE;
    let mut s = loop {
        match connect_from(source, port) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "stats port {port}: {e}");
                thread::sleep(Duration::from_millis(20));
            }
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if !request.is_empty() {
        s.write_all(request).unwrap();
    }
    let mut got = Vec::new();
    // A reset after a denied connect ends the read like a close.
    let _ = s.read_to_end(&mut got);
    got
}

fn fetch(port: u16, request: &[u8]) -> Vec<u8> {
    fetch_from(Ipv4Addr::LOCALHOST, port, request)
}

/// `GET /metrics`: checks the HTTP head, parses the body with `prometheus_client`,
/// and returns every sample as `name{k=v,...}` → value, plus each family's type.
fn scrape(port: u16, source: Ipv4Addr) -> (HashMap<String, f64>, HashMap<String, String>) {
    let reply = fetch_from(
        source,
        port,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    );
    let text = String::from_utf8(reply).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut head_lines = head.split("\r\n");
    assert_eq!(head_lines.next(), Some("HTTP/1.0 200 OK"), "{text}");
    assert!(
        head_lines.any(|h| h.starts_with("Content-Type: text/plain; version=0.0.4")),
        "{head}"
    );
    prometheus_parse(body)
}

const PROM_PARSER: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    print("TYPE\t%s\t%s" % (family.name, family.type))
    for s in family.samples:
        labels = ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))
        print("SAMPLE\t%s{%s}\t%r" % (s.name, labels, float(s.value)))
"#;

fn prometheus_parse(body: &str) -> (HashMap<String, f64>, HashMap<String, String>) {
    let mut child = Command::new("python3")
        .args(["-c", PROM_PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (integration/run-tests.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'prometheus_client'"),
        "the Prometheus parser is missing: python3 -m pip install prometheus-client \
         (integration/run-tests.sh installs it)"
    );
    assert!(out.status.success(), "Prometheus parser: {stderr}\n{body}");
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        match parts[..] {
            ["TYPE", name, kind] => {
                types.insert(name.to_string(), kind.to_string());
            }
            ["SAMPLE", key, value] => {
                samples.insert(key.to_string(), value.parse().unwrap());
            }
            _ => panic!("parser output: {line:?}"),
        }
    }
    (samples, types)
}

fn sample(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:?}"))
}

fn wait_log(server: &Swarmccd, text: &str) {
    server.log_when(|l| l.contains(text));
}

/// A project: sources, and a whitelist folder with the names both clients send.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(p.join("wl")).unwrap();
    for name in ["gcc", "x86_64-linux-gnu-gcc"] {
        symlink("/usr/bin/gcc", p.join("wl").join(name)).unwrap();
    }
    for (name, text) in [
        ("a.c", "int a(int x){return x+1;}\n"),
        ("b.c", "static int t[64]; int b(int i){return t[i&63];}\n"),
        ("c.c", "double c(double x){return x*x;}\n"),
        ("bad.c", "int bad(void){return undeclared;}\n"),
    ] {
        fs::write(p.join(name), text).unwrap();
    }
    dir
}

fn compile_with_swarmcc(p: &Path, ddir: &Path, port: u16, src: &str) -> std::process::Output {
    let obj = src.replace(".c", ".o");
    swarmcc(ddir, &format!("127.0.0.1:{port}/4"))
        .current_dir(p)
        .args(["gcc", "-c", src, "-o", &obj])
        .env("DISTCC_FALLBACK", "0")
        .env("DISTCC_SKIP_LOCAL_RETRY", "1")
        .env("SWARMCC_AGENT_IDLE", "2")
        .output()
        .unwrap()
}

/// A protocol-1 request for a compiler that is not whitelisted.
fn refused_request() -> Vec<u8> {
    let argv: Vec<String> = ["tcc", "-c", "x.c", "-o", "x.o"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut out = Vec::new();
    encode_request_header(Version::V1, Some("/tmp"), &argv, &mut out).unwrap();
    encode_source(Version::V1, b"int x;\n", &mut out).unwrap();
    out
}

#[test]
fn stats_port_counts_the_jobs_in_both_formats() {
    let dir = project();
    let p = dir.path();
    let ddir = p.join("distcc-dir");
    fs::create_dir(&ddir).unwrap();
    let _reaper = AgentReaper(ddir.clone());
    let stats_port = free_port();
    let wl = p.join("wl");
    let server = start_swarmccd(
        p,
        &[
            "--allow",
            "127.0.0.1",
            "-j",
            "3",
            "--stats",
            "--stats-port",
            &stats_port.to_string(),
            "--whitelist-dir",
            wl.to_str().unwrap(),
        ],
    );
    // start_swarmccd's readiness probe is a connection that sends nothing: one
    // accepted connection with result OTHER, before any job of ours.
    wait_log(&server, "closed without sending a request");
    wait_log(&server, &format!("statistics on 127.0.0.1:{stats_port}"));
    let fresh = parse_distcc(&fetch(stats_port, b""));
    assert_eq!(int(&fresh, "dcc_tcp_accept"), 1);
    assert_eq!(int(&fresh, "dcc_other"), 1);
    assert_eq!(int(&fresh, "dcc_compile_ok"), 0);
    assert_eq!(fresh["dcc_longest_job"], "none");
    assert_eq!(fresh["dcc_longest_job_compiler"], "none");
    assert_eq!(int(&fresh, "dcc_longest_job_time_msecs"), -1);

    // Three good compiles: swarmcc, and Debian's distcc for the third when installed.
    for src in ["a.c", "b.c"] {
        let out = compile_with_swarmcc(p, &ddir, server.port, src);
        common::assert_success(&out, &format!("swarmcc {src}"));
    }
    if Path::new("/usr/bin/distcc").exists() {
        let out = Command::new("/usr/bin/distcc")
            .current_dir(p)
            .args(["gcc", "-c", "c.c", "-o", "c.o"])
            .env("DISTCC_HOSTS", format!("127.0.0.1:{}/2", server.port))
            .env("DISTCC_DIR", &ddir)
            .env("DISTCC_FALLBACK", "0")
            .output()
            .unwrap();
        common::assert_success(&out, "distcc c.c");
    } else {
        eprintln!("/usr/bin/distcc is not installed: c.c goes through swarmcc too");
        let out = compile_with_swarmcc(p, &ddir, server.port, "c.c");
        common::assert_success(&out, "swarmcc c.c");
    }
    // One compile error, reported by the server (no local retry).
    let out = compile_with_swarmcc(p, &ddir, server.port, "bad.c");
    assert!(!out.status.success(), "bad.c must fail: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("undeclared"));
    // One refusal: a compiler that is not whitelisted, sent by hand.
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&refused_request()).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        String::from_utf8_lossy(&reply).contains("not in the whitelist"),
        "{reply:?}"
    );
    // The counters are taken before each job line is written, and the job lines after
    // the replies: once all six lines are there, the page counts all six jobs.
    server.log_when(|l| {
        l.matches("COMPILE_OK").count() >= 3
            && l.contains("COMPILE_ERROR")
            && l.lines().filter(|j| j.contains(" OTHER ")).count() >= 2
    });

    // The distccd page, as a script gets it: nothing sent, or a plain GET.
    // Lower bounds of the wire bytes: swarmcc speaks the zstd extension to swarmccd, so
    // sources and objects travel compressed.
    let packed = |names: &[&str]| -> usize {
        names
            .iter()
            .map(|f| {
                zstd::bulk::compress(&fs::read(p.join(f)).unwrap(), 19)
                    .unwrap()
                    .len()
            })
            .sum()
    };
    let sources = packed(&["a.c", "b.c", "c.c", "bad.c"]);
    let objects = packed(&["a.o", "b.o", "c.o"]);
    for request in [&b""[..], b"GET / HTTP/1.0\r\n\r\n"] {
        let page = fetch(stats_port, request);
        let f = parse_distcc(&page);
        let what = String::from_utf8_lossy(&page);
        // The probe, 3 good compiles, the error, the refusal.
        assert_eq!(int(&f, "dcc_tcp_accept"), 6, "{what}");
        assert_eq!(int(&f, "dcc_compile_ok"), 3, "{what}");
        assert_eq!(int(&f, "dcc_compile_error"), 1, "{what}");
        // The refusal, plus the readiness probe that sent nothing.
        assert_eq!(int(&f, "dcc_other"), 1 + 1, "{what}");
        for zero in [
            "dcc_rej_bad_req",
            "dcc_rej_overload",
            "dcc_compile_timeout",
            "dcc_cli_disconnect",
        ] {
            assert_eq!(int(&f, zero), 0, "{zero}: {what}");
        }
        assert_eq!(int(&f, "dcc_max_kids"), 3);
        assert!(
            ["a.c", "b.c", "c.c"].contains(&f["dcc_longest_job"].as_str()),
            "{what}"
        );
        assert!(
            ["gcc", "x86_64-linux-gnu-gcc"].contains(&f["dcc_longest_job_compiler"].as_str()),
            "{what}"
        );
        assert!(int(&f, "dcc_longest_job_time_msecs") >= 0);
        // Compiles that used the machine: 3 good, 1 error.
        for n in [
            "dcc_num_compiles1",
            "dcc_num_compiles2",
            "dcc_num_compiles3",
        ] {
            assert_eq!(int(&f, n), 4, "{n}: {what}");
        }
        assert!(f["dcc_max_RSS_name"].starts_with('(') && f["dcc_max_RSS_name"].ends_with(')'));
        assert_eq!(int(&f, "dcc_io_rate"), -1);
    }

    // Prometheus, parsed by Prometheus' Python client.
    let (m, types) = scrape(stats_port, Ipv4Addr::LOCALHOST);
    assert_eq!(types["swarmccd_jobs"], "counter");
    assert_eq!(types["swarmccd_compile_seconds"], "histogram");
    assert_eq!(types["swarmccd_jobs_running"], "gauge");
    let jobs = |r: &str| sample(&m, &format!("swarmccd_jobs_total{{result={r}}}"));
    assert_eq!(jobs("compile_ok"), 3.0);
    assert_eq!(jobs("compile_error"), 1.0);
    assert_eq!(jobs("other"), 2.0);
    assert_eq!(jobs("cli_disconn"), 0.0);
    assert_eq!(sample(&m, "swarmccd_connections_total{}"), 6.0);
    assert_eq!(sample(&m, "swarmccd_rejects_total{reason=whitelist}"), 1.0);
    let rejects: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("swarmccd_rejects_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(rejects, 1.0, "only the whitelist refusal: {m:?}");
    assert_eq!(sample(&m, "swarmccd_jobs_running{}"), 0.0);
    assert_eq!(sample(&m, "swarmccd_jobs_queued{}"), 0.0);
    assert_eq!(sample(&m, "swarmccd_max_jobs{}"), 3.0);
    assert_eq!(sample(&m, "swarmccd_compile_seconds_count{}"), 4.0);
    assert_eq!(sample(&m, "swarmccd_compile_seconds_bucket{le=+Inf}"), 4.0);
    assert!(sample(&m, "swarmccd_compile_seconds_sum{}") > 0.0);
    assert!(
        sample(&m, "swarmccd_bytes_received_total{}") >= sources as f64,
        "{m:?}"
    );
    assert!(
        sample(&m, "swarmccd_bytes_sent_total{}") >= objects as f64,
        "{m:?}"
    );
}

#[test]
fn stats_port_applies_the_allow_list() {
    let dir = project();
    let p = dir.path();
    let stats_port = free_port();
    // Listening on 127.0.0.1 (start_swarmccd), but only 127.0.0.2 may connect.
    let server = start_swarmccd(
        p,
        &[
            "--allow",
            "127.0.0.2",
            "--stats",
            "--stats-port",
            &stats_port.to_string(),
        ],
    );
    // The readiness probe came from 127.0.0.1: denied.
    wait_log(&server, "denied by access list");
    wait_log(&server, &format!("statistics on 127.0.0.1:{stats_port}"));
    for request in [
        &b""[..],
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let got = fetch(stats_port, request);
        assert!(
            got.is_empty(),
            "a denied peer gets nothing: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    wait_log(&server, "stats connection from client '127.0.0.1:");
    // The allowed peer gets both formats; the denied probe is counted.
    let page = parse_distcc(&fetch_from(Ipv4Addr::new(127, 0, 0, 2), stats_port, b""));
    assert_eq!(int(&page, "dcc_tcp_accept"), 1);
    assert_eq!(int(&page, "dcc_compile_ok"), 0);
    let (m, _) = scrape(stats_port, Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(
        sample(&m, "swarmccd_rejects_total{reason=access_denied}"),
        1.0
    );
    assert_eq!(sample(&m, "swarmccd_connections_total{}"), 1.0);
    // The compile port stays closed to 127.0.0.1 too, and counts it.
    let mut s = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&refused_request());
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (m, _) = scrape(stats_port, Ipv4Addr::new(127, 0, 0, 2));
        if sample(&m, "swarmccd_rejects_total{reason=access_denied}") == 2.0 {
            break;
        }
        assert!(Instant::now() < deadline, "denial not counted: {m:?}");
        thread::sleep(Duration::from_millis(50));
    }
}
