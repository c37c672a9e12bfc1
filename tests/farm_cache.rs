//! The compile cache end to end, with real processes: the fixture project (C and C++,
//! `-MD` dependency files) built by real `make` through a real swarmccd with its farm
//! cache, twice; damaged entries; the size bound; the client's local cache with the
//! server gone; and Debian's real distcc and distccd on either side, which must see
//! nothing of it.

mod common;

use common::project::*;
use common::wire;
use common::*;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// A directory the unprivileged user swarmccd switches to (tests run as root) can
/// create its cache in.
fn cache_box(root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join("cachebox");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    dir.join("farm")
}

/// The files in a cache directory and their total size.
fn cache_files(dir: &Path) -> (usize, u64) {
    let Ok(items) = fs::read_dir(dir) else {
        return (0, 0);
    };
    let sizes: Vec<u64> = items
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    (sizes.len(), sizes.iter().sum())
}

struct Lab {
    tmp: tempfile::TempDir,
    local: PathBuf,
    ddir: PathBuf,
    _reaper: AgentReaper,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let local = reference_build(tmp.path());
        let ddir = tmp.path().join("ddir");
        fs::create_dir_all(&ddir).unwrap();
        Lab {
            _reaper: AgentReaper(ddir.clone()),
            tmp,
            local,
            ddir,
        }
    }

    fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Builds a fresh copy of the fixture in `name` through swarmcc; returns the
    /// directory, make's output and its wall time.
    fn build(&self, name: &str, hosts: &str, env: &[(&str, &str)]) -> (PathBuf, String, f64) {
        let dir = self.path().join(name);
        copy_tree(&fixture("proj"), &dir);
        let cc = format!("{SWARMCC} gcc");
        let cxx = format!("{SWARMCC} g++");
        let log = self.path().join(format!("{name}.log"));
        let mut all = vec![
            ("DISTCC_HOSTS", hosts),
            ("DISTCC_DIR", self.ddir.to_str().unwrap()),
            ("DISTCC_FALLBACK", "0"),
            ("DISTCC_VERBOSE", "1"),
            ("DISTCC_LOG", log.to_str().unwrap()),
        ];
        all.extend_from_slice(env);
        let started = Instant::now();
        let out = make(&dir, &cc, &cxx, &all);
        let secs = started.elapsed().as_secs_f64();
        assert_success(&out, &format!("build {name} through swarmcc ({hosts})"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The compiler's warning reaches the user exactly once, hit or not.
        assert_eq!(count(&stderr, "unused variable"), 1, "stderr:\n{stderr}");
        (dir, fs::read_to_string(&log).unwrap_or_default(), secs)
    }
}

fn farm_server(lab: &Lab, cache_dir: &Path, extra: &[&str]) -> (Swarmccd, u16) {
    let stats_port = free_port();
    let mut args = vec![
        "--allow".to_owned(),
        "127.0.0.1".to_owned(),
        "--stats".to_owned(),
        "--stats-port".to_owned(),
        stats_port.to_string(),
        "--cache-dir".to_owned(),
        cache_dir.to_str().unwrap().to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start_swarmccd(lab.path(), &args);
    server.log_when(|l| l.contains(&format!("statistics on 127.0.0.1:{stats_port}")));
    (server, stats_port)
}

#[test]
fn a_second_build_is_answered_by_the_farm_cache_without_compiling() {
    let lab = Lab::new();
    let cache_dir = cache_box(lab.path());
    let (server, stats) = farm_server(&lab, &cache_dir, &[]);
    let hosts = format!("127.0.0.1:{}/4", server.port);
    // Farm only: the local cache would answer the second build before any host.
    let farm = [("SWARMCC_CACHE", "farm")];
    let (first, _, cold) = lab.build("first", &hosts, &farm);
    let log = server.log_when(|l| count(l, "COMPILE_OK") >= 6);
    assert_same_outputs(&lab.local, &first, true);
    // Every result was stored, though the client had not yet learnt of the cache.
    let m = wait_for(
        "six stored results",
        || metrics(stats),
        |m| sample(m, "swarmccd_cache_stored_total") == Some(6),
    );
    assert_eq!(sample(&m, "swarmccd_cache_entries"), Some(6), "{m}");
    assert_eq!(cache_files(&cache_dir).0, 6);

    let (second, client_log, warm) = lab.build("second", &hosts, &farm);
    let log2 = server.log_when(|l| count(l, "CACHE_HIT") >= 6);
    assert_eq!(
        count(&log2, "COMPILE_OK"),
        6,
        "no compile ran for the second build:\n{log2}"
    );
    assert_eq!(count(&log, "CACHE_HIT"), 0);
    assert_same_outputs(&lab.local, &second, true);
    let m = metrics(stats);
    assert_eq!(sample(&m, "swarmccd_cache_hits_total"), Some(6), "{m}");
    assert_eq!(sample(&m, "swarmccd_cache_corrupt_total"), Some(0), "{m}");
    assert_eq!(
        sample(&m, "swarmccd_jobs_total{result=\"compile_ok\"}"),
        Some(6),
        "{m}"
    );
    assert_eq!(
        sample(&m, "swarmccd_jobs_total{result=\"cache_hit\"}"),
        Some(6),
        "{m}"
    );
    // DISTCC_VERBOSE shows each key and decision.
    let hit_jobs = client_log
        .lines()
        .filter(|l| l.contains(": farm cache hit on 127.0.0.1:") && l.contains(" ok in "));
    assert_eq!(hit_jobs.count(), 6, "{client_log}");
    assert!(client_log.contains("cache key "), "{client_log}");
    eprintln!("farm cache: cold build {cold:.2}s, warm build {warm:.2}s");
}

/// Flips a byte of one entry and truncates another, as the test's root user.
fn damage_two_entries(cache_dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let flipped = &entries[0];
    let mut bytes = fs::read(flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(flipped, &bytes).unwrap();
    let truncated = &entries[1];
    let bytes = fs::read(truncated).unwrap();
    fs::write(truncated, &bytes[..bytes.len() - 100]).unwrap();
    entries[..2].to_vec()
}

#[test]
fn damaged_entries_are_found_recompiled_and_never_served() {
    let lab = Lab::new();
    let cache_dir = cache_box(lab.path());
    let (server, stats) = farm_server(&lab, &cache_dir, &[]);
    let hosts = format!("127.0.0.1:{}/4", server.port);
    let farm = [("SWARMCC_CACHE", "farm")];
    lab.build("first", &hosts, &farm);
    server.log_when(|l| count(l, "COMPILE_OK") >= 6);
    wait_for(
        "six stored results",
        || metrics(stats),
        |m| sample(m, "swarmccd_cache_stored_total") == Some(6),
    );
    let damaged = damage_two_entries(&cache_dir);

    let (second, _, _) = lab.build("second", &hosts, &farm);
    let log = server.log_when(|l| count(l, "CACHE_HIT") + count(l, "COMPILE_OK") >= 12);
    assert_eq!(count(&log, "CACHE_HIT"), 4, "{log}");
    assert_eq!(
        count(&log, "COMPILE_OK"),
        8,
        "the two damaged ones compiled again:\n{log}"
    );
    assert_eq!(count(&log, "compiling it again"), 2, "{log}");
    assert!(log.contains("content does not match its checksum"), "{log}");
    assert_same_outputs(&lab.local, &second, true);
    let m = wait_for(
        "eight stored results",
        || metrics(stats),
        |m| sample(m, "swarmccd_cache_stored_total") == Some(8),
    );
    assert_eq!(sample(&m, "swarmccd_cache_corrupt_total"), Some(2), "{m}");
    // Stored again whole, under the same names.
    for path in &damaged {
        let bytes = fs::read(path).unwrap();
        assert!(bytes.len() > 100, "{}", path.display());
    }
    let (third, _, _) = lab.build("third", &hosts, &farm);
    let log = server.log_when(|l| count(l, "CACHE_HIT") >= 10);
    assert_eq!(count(&log, "COMPILE_OK"), 8, "{log}");
    assert_same_outputs(&lab.local, &third, true);
}

#[test]
fn the_farm_cache_stays_within_its_size() {
    let lab = Lab::new();
    let cache_dir = cache_box(lab.path());
    let (server, stats) = farm_server(&lab, &cache_dir, &["--cache-size", "1"]);
    let hosts = format!("127.0.0.1:{}/2", server.port);
    // Eight sources of 300 kB of data each: 2.4 MB of objects for a 1 MiB cache.
    let src = lab.path().join("big");
    fs::create_dir_all(&src).unwrap();
    for n in 0..8 {
        let text = format!(
            "const char big{n}[300000] = {{ {n} }};\nint f{n}(void) {{ return big{n}[7]; }}\n"
        );
        fs::write(src.join(format!("big{n}.c")), text).unwrap();
    }
    for n in 0..8 {
        let out = run(swarmcc(&lab.ddir, &hosts)
            .current_dir(&src)
            .env("SWARMCC_CACHE", "farm")
            .env("DISTCC_FALLBACK", "0")
            .args(["gcc", "-O2", "-c", &format!("big{n}.c"), "-o"])
            .arg(format!("big{n}.o")));
        assert_success(&out, &format!("compile big{n}.c"));
    }
    let m = wait_for(
        "eight stored results",
        || metrics(stats),
        |m| sample(m, "swarmccd_cache_stored_total") == Some(8),
    );
    let (files, bytes) = cache_files(&cache_dir);
    assert!(bytes <= 1 << 20, "{files} files, {bytes} bytes:\n{m}");
    assert!((1..8).contains(&files), "{files} files");
    assert_eq!(sample(&m, "swarmccd_cache_bytes"), Some(bytes), "{m}");
    assert_eq!(
        sample(&m, "swarmccd_cache_evicted_total"),
        Some(8 - files as u64),
        "{m}"
    );
}

#[test]
fn the_local_cache_answers_a_repeat_build_with_no_network() {
    let lab = Lab::new();
    let server = start_swarmccd(lab.path(), &["--allow", "127.0.0.1", "--no-cache"]);
    let port = server.port;
    let hosts = format!("127.0.0.1:{port}/4");
    let local_cache = lab.path().join("client-cache");
    let env = [("SWARMCC_CACHE_DIR", local_cache.to_str().unwrap())];
    let (first, _, cold) = lab.build("first", &hosts, &env);
    server.log_when(|l| count(l, "COMPILE_OK") >= 6);
    assert_same_outputs(&lab.local, &first, true);
    assert_eq!(cache_files(&local_cache).0, 6, "every result kept locally");
    drop(server);

    // The host's port now belongs to a listener that counts connections.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let (second, client_log, warm) = lab.build("second", &hosts, &env);
    assert_same_outputs(&lab.local, &second, true);
    assert_eq!(count(&client_log, "local cache hit ("), 6, "{client_log}");
    eprintln!("local cache: first build {cold:.2}s, repeat build {warm:.2}s");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the repeat build connected to the host: {other:?}"),
    }
    drop(listener);
    // Off with SWARMCC_CACHE=0: the dead host is tried, and the build compiles here
    // (fallback allowed for this one).
    let (third, client_log, _) = lab.build(
        "third",
        &hosts,
        &[
            ("SWARMCC_CACHE", "0"),
            ("DISTCC_FALLBACK", "1"),
            ("SWARMCC_CACHE_DIR", local_cache.to_str().unwrap()),
        ],
    );
    assert_eq!(count(&client_log, "local cache hit"), 0, "{client_log}");
    assert_same_outputs(&lab.local, &third, true);
}

#[test]
fn a_real_distcc_client_builds_against_a_caching_swarmccd_and_never_asks() {
    let lab = Lab::new();
    let cache_dir = cache_box(lab.path());
    let (server, stats) = farm_server(&lab, &cache_dir, &[]);
    let hosts = format!("127.0.0.1:{}/4", server.port);
    for (i, name) in ["first", "second"].iter().enumerate() {
        let dir = lab.path().join(name);
        copy_tree(&fixture("proj"), &dir);
        let out = make(
            &dir,
            "distcc gcc",
            "distcc g++",
            &[
                ("DISTCC_HOSTS", hosts.as_str()),
                ("DISTCC_DIR", lab.ddir.to_str().unwrap()),
                ("DISTCC_FALLBACK", "0"),
            ],
        );
        assert_success(&out, &format!("{name} build through Debian's distcc"));
        let log = server.log_when(|l| count(l, "COMPILE_OK") >= 6 * (i + 1));
        assert_eq!(count(&log, "CACHE_HIT"), 0, "{log}");
        // distcc writes no dependency files of -MD -MP when it distributes.
        assert_same_outputs(&lab.local, &dir, false);
    }
    let m = metrics(stats);
    assert_eq!(sample(&m, "swarmccd_cache_hits_total"), Some(0), "{m}");
    assert_eq!(sample(&m, "swarmccd_cache_misses_total"), Some(0), "{m}");
    // A plain client names no compiler: nothing it sent is kept.
    assert_eq!(sample(&m, "swarmccd_cache_stored_total"), Some(0), "{m}");
}

#[test]
fn swarmcc_never_sends_a_cache_key_to_a_real_distccd() {
    let lab = Lab::new();
    let server = start_distccd(lab.path());
    let hosts = format!("127.0.0.1:{}/4", server.port);
    let farm = [("SWARMCC_CACHE", "farm")];
    let (first, log1, _) = lab.build("first", &hosts, &farm);
    let (second, log2, _) = lab.build("second", &hosts, &farm);
    let dlog = server.log_when(|l| count(l, "COMPILE_OK") >= 12);
    assert_eq!(
        count(&dlog, "COMPILE_OK"),
        12,
        "distccd compiled both builds:\n{dlog}"
    );
    assert!(!dlog.contains("SWCK") && !dlog.contains("SWOP"), "{dlog}");
    for log in [&log1, &log2] {
        assert!(!log.contains("farm cache"), "{log}");
    }
    assert_same_outputs(&lab.local, &first, true);
    assert_same_outputs(&lab.local, &second, true);
    // A plain distccd does not check the compiler: its objects are not kept locally.
    let (third, log3, _) = lab.build("third", &hosts, &[]);
    assert_eq!(count(&log3, "local cache hit"), 0, "{log3}");
    let (_, log4, _) = lab.build("fourth", &hosts, &[]);
    assert_eq!(count(&log4, "local cache hit"), 0, "{log4}");
    assert_same_outputs(&lab.local, &third, true);
    assert!(!lab.ddir.join("cache").exists() || cache_files(&lab.ddir.join("cache")).0 == 0);
}

#[test]
fn a_server_with_no_cache_never_stores_nor_offers_it() {
    let lab = Lab::new();
    let stats_port = free_port();
    let server = start_swarmccd(
        lab.path(),
        &[
            "--allow",
            "127.0.0.1",
            "--no-cache",
            "--stats",
            "--stats-port",
            &stats_port.to_string(),
        ],
    );
    let hosts = format!("127.0.0.1:{}/4", server.port);
    let farm = [("SWARMCC_CACHE", "farm")];
    lab.build("first", &hosts, &farm);
    let (second, client_log, _) = lab.build("second", &hosts, &farm);
    let log = server.log_when(|l| count(l, "COMPILE_OK") >= 12);
    assert_eq!(count(&log, "COMPILE_OK"), 12, "{log}");
    assert_eq!(count(&log, "CACHE_HIT"), 0, "{log}");
    assert!(!client_log.contains("farm cache"), "{client_log}");
    assert_same_outputs(&lab.local, &second, true);
    let m = metrics(stats_port);
    assert!(!m.contains("swarmccd_cache_"), "{m}");
    // Nothing was created where the cache would be by default.
    let tmp = fs::read_dir(lab.path()).unwrap();
    for d in tmp.flatten() {
        if d.file_name().to_string_lossy().starts_with("swarmccd-tmp-") {
            let inside: Vec<_> = fs::read_dir(d.path()).unwrap().flatten().collect();
            assert!(
                inside.iter().all(|e| !e
                    .file_name()
                    .to_string_lossy()
                    .starts_with("swarmccd-cache")),
                "{inside:?}"
            );
        }
    }
}

#[test]
fn a_host_remembered_with_a_cache_that_no_longer_answers_is_not_asked_again() {
    let lab = Lab::new();
    // Silent after the preamble, as a swarmccd of before the cache would be.
    let stall = StallServer::start();
    let memory = lab
        .ddir
        .join("ext")
        .join(format!("tcp_127.0.0.1_{}", stall.port));
    fs::create_dir_all(memory.parent().unwrap()).unwrap();
    fs::write(&memory, "cache\n").unwrap();
    let src = lab.path().join("one.c");
    fs::write(&src, "int one(void) { return 1; }\n").unwrap();
    let hosts = format!("127.0.0.1:{}/2", stall.port);
    let out = run(swarmcc(&lab.ddir, &hosts)
        .current_dir(lab.path())
        .env("SWARMCC_CACHE", "farm")
        .env("SWARMCC_CONNECT_TIMEOUT", "1")
        .args(["gcc", "-c", "one.c", "-o", "one.o"]));
    assert_success(&out, "compile with a stalled host");
    assert!(lab.path().join("one.o").exists());
    assert_eq!(
        fs::read(&memory).unwrap(),
        b"",
        "cache forgotten, extension kept"
    );
}

#[test]
fn the_run_summary_counts_local_and_farm_hits() {
    let lab = Lab::new();
    let cache_dir = cache_box(lab.path());
    let (server, _) = farm_server(&lab, &cache_dir, &[]);
    let hosts = format!("127.0.0.1:{}/4", server.port);
    let launch = |name: &str, env: &[(&str, &str)]| {
        let dir = lab.path().join(name);
        copy_tree(&fixture("proj"), &dir);
        let out = run(Command::new(SWARMCC)
            .args(["--run", "make", "-C", dir.to_str().unwrap(), "prog"])
            .env("DISTCC_DIR", &lab.ddir)
            .env("DISTCC_HOSTS", &hosts)
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG")
            .env_remove("SWARMCC_BUILD_ID")
            .env_remove("MAKEFLAGS")
            .env_remove("MAKELEVEL")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null()));
        assert_success(&out, &format!("swarmcc --run make ({name})"));
        assert_same_outputs(&lab.local, &dir, true);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // The first jobs find nothing to look up; later ones of the same build may look
    // (and miss), once the first results are kept.
    let first = launch("first", &[]);
    assert!(
        !first.contains("cache:") || first.contains("cache: 0 local hits, 0 farm hits, "),
        "{first}"
    );
    let second = launch("second", &[]);
    assert!(
        second.contains("swarmcc:   cache: 6 local hits, 0 farm hits, 0 misses"),
        "{second}"
    );
    let third = launch("third", &[("SWARMCC_CACHE", "farm")]);
    assert!(
        third.contains("swarmcc:   cache: 0 local hits, 6 farm hits, 0 misses"),
        "{third}"
    );
    let log = server.log_when(|l| count(l, "CACHE_HIT") >= 6);
    assert_eq!(count(&log, "COMPILE_OK"), 6, "{log}");
}

/// A raw connection that asked for the farm cache and heard it accepted.
fn ask_for_the_cache(port: u16) -> TcpStream {
    use swarmcc::protocol::ext::{decode_reply_prelude, encode_preamble, Preamble, ReplyPrelude};
    let mut ask = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ask.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut bytes = Vec::new();
    let preamble = Preamble {
        features: vec!["keepalive".into(), "cache".into()],
        identity: String::new(),
    };
    encode_preamble(&preamble, &mut bytes).unwrap();
    ask.write_all(&bytes).unwrap();
    let mut head = [0u8; 12];
    ask.read_exact(&mut head).unwrap();
    let len = usize::from_str_radix(std::str::from_utf8(&head[4..]).unwrap(), 16).unwrap();
    let mut features = vec![0u8; len];
    ask.read_exact(&mut features).unwrap();
    let mut opening = head.to_vec();
    opening.extend_from_slice(&features);
    match decode_reply_prelude(&opening).unwrap() {
        Some((ReplyPrelude::Accepted(f), _)) => assert!(f.contains(&"cache".into()), "{f:?}"),
        other => panic!("{other:?}"),
    }
    ask
}

/// Everything a raw connection receives until the server closes it.
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

#[test]
fn a_hit_is_answered_while_the_only_compile_slot_is_busy() {
    use swarmcc::protocol::cache::{encode_key, Answer, AnswerDecoder};
    use swarmcc::protocol::{encode_request_header, encode_source, Version};

    let lab = Lab::new();
    let bin = lab.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    write_exe(&bin.join("slowcc"), "#!/bin/sh\nsleep 60\n");
    let cache_dir = cache_box(lab.path());
    let stats = free_port();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let server = start_swarmccd_env(
        lab.path(),
        &[
            "--allow",
            "127.0.0.1",
            "--jobs",
            "1",
            "--enable-tcp-insecure",
            "--stats",
            "--stats-port",
            &stats.to_string(),
            "--cache-dir",
            cache_dir.to_str().unwrap(),
        ],
        &[("DISTCCD_PATH", path.as_str())],
    );
    server.log_when(|l| l.contains(&format!("statistics on 127.0.0.1:{stats}")));
    // One result in the cache, by a real compile.
    let src = lab.path().join("one.c");
    fs::write(&src, "int one(int x) { return x + 1; }\n").unwrap();
    let hosts = format!("127.0.0.1:{}/1", server.port);
    let out = run(swarmcc(&lab.ddir, &hosts)
        .current_dir(lab.path())
        .env("SWARMCC_CACHE", "farm")
        .env("DISTCC_FALLBACK", "0")
        .args(["gcc", "-O2", "-c", "one.c", "-o", "one.o"]));
    assert_success(&out, "compile one.c");
    wait_for(
        "one stored result",
        || metrics(stats),
        |m| sample(m, "swarmccd_cache_stored_total") == Some(1),
    );
    let key = fs::read_dir(&cache_dir).unwrap().next().unwrap().unwrap();
    let key = key.file_name().to_string_lossy().into_owned();

    // The only slot taken by a compile that sleeps.
    let mut busy = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut slow = Vec::new();
    let argv: Vec<String> = ["slowcc", "-c", "x.c", "-o", "x.o"]
        .map(String::from)
        .into();
    encode_request_header(Version::V1, None, &argv, &mut slow).unwrap();
    encode_source(Version::V1, b"int x;\n", &mut slow).unwrap();
    busy.write_all(&slow).unwrap();
    wait_for(
        "the slow compile to hold the slot",
        || metrics(stats),
        |m| sample(m, "swarmccd_jobs_running") == Some(1),
    );

    let started = Instant::now();
    let mut ask = ask_for_the_cache(server.port);
    let mut bytes = Vec::new();
    encode_key(&key, &mut bytes).unwrap();
    ask.write_all(&bytes).unwrap();
    let answer = read_all(&mut ask);
    let elapsed = started.elapsed();
    let (hit, used) = AnswerDecoder.decode(&answer).unwrap().unwrap();
    assert_eq!(hit, Answer::Hit);
    let reply = wire::decode_reply(Version::V1, &answer[used..]);
    assert_eq!(reply.status, 0);
    assert_eq!(reply.object, fs::read(lab.path().join("one.o")).unwrap());
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
    let m = metrics(stats);
    assert_eq!(
        sample(&m, "swarmccd_jobs_running"),
        Some(1),
        "still busy:\n{m}"
    );
    assert_eq!(sample(&m, "swarmccd_cache_hits_total"), Some(1), "{m}");
    // Gone, its client gone: the server kills the sleeping compiler.
    drop(busy);
    wait_for(
        "the slow compile to be killed",
        || metrics(stats),
        |m| sample(m, "swarmccd_jobs_running") == Some(0),
    );
}

#[test]
fn hostile_keys_are_refused_and_the_server_goes_on() {
    let lab = Lab::new();
    let cache_dir = cache_box(lab.path());
    let (server, stats) = farm_server(&lab, &cache_dir, &[]);
    let mut path_key = b"SWCK00000040".to_vec();
    path_key.extend_from_slice(format!("{:/<64}", "../../../../etc/passwd").as_bytes());
    for hostile in [
        &b"SWCKffffffff"[..],
        b"SWCK00000010abcdefabcdefabcd",
        &path_key,
        b"DIST00000001",
    ] {
        let mut ask = ask_for_the_cache(server.port);
        ask.write_all(hostile).unwrap();
        assert!(
            read_all(&mut ask).is_empty(),
            "{:?}",
            String::from_utf8_lossy(hostile)
        );
    }
    let log = server.log_when(|l| count(l, "no cache key") >= 4);
    assert_eq!(count(&log, "CACHE_HIT"), 0, "{log}");
    let m = metrics(stats);
    assert_eq!(sample(&m, "swarmccd_cache_hits_total"), Some(0), "{m}");
    assert_eq!(sample(&m, "swarmccd_cache_misses_total"), Some(0), "{m}");
    assert_eq!(cache_files(&cache_dir).0, 0);
    // Still serving.
    let hosts = format!("127.0.0.1:{}/4", server.port);
    let (dir, _, _) = lab.build("after", &hosts, &[("SWARMCC_CACHE", "farm")]);
    assert_same_outputs(&lab.local, &dir, true);
}
