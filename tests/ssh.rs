//! ssh hosts (`user@host:command`) against a real OpenSSH server that each test starts
//! on a free loopback port, with a throwaway host key and user key: swarmcc →
//! swarmccd, swarmcc → Debian's distccd and Debian's distcc → swarmccd, each server in
//! `--inetd` mode on sshd's pipes, on the fixture project built by real `make`
//! (objects byte-identical to a local build, and every source compiled remotely, as
//! the server's log shows); a dead or hung ssh means a local build with a clear
//! message; `--check-hosts` checks an ssh host for real.

mod common;

use common::project::*;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd for root, its keys, and the `DISTCC_SSH` that reaches it.
struct Sshd {
    guard: Option<ProcessGuard>,
    port: u16,
    key: PathBuf,
    log: PathBuf,
}

impl Sshd {
    fn start(dir: &Path) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing (apt-get install openssh-server; integration/run-tests.sh does)"
        );
        let dir = dir.join("sshd");
        fs::create_dir_all(&dir).unwrap();
        let keygen = |name: &str| {
            let out = run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(name)));
            assert_success(&out, "ssh-keygen");
        };
        keygen("host_key");
        keygen("user_key");
        fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        // The privilege separation directory, which a package's service would create.
        fs::create_dir_all("/run/sshd").unwrap();
        let port = free_port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n\
                 MaxStartups 100\nMaxSessions 100\nLogLevel VERBOSE\n",
                dir.join("host_key").display(),
                dir.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let log = dir.join("sshd.log");
        let mut guard = spawn_group(
            Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null()),
            "sshd",
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !wait_for_port(port, Duration::from_millis(100)) {
            let exited = !matches!(guard.child.try_wait(), Ok(None));
            assert!(
                !exited && Instant::now() < deadline,
                "sshd did not listen on {port}: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Sshd {
            guard: Some(guard),
            port,
            key: dir.join("user_key"),
            log,
        }
    }

    /// `DISTCC_SSH` for this server: the twelve extra words distcc passes on.
    fn distcc_ssh(&self) -> String {
        distcc_ssh(self.port, &self.key)
    }

    fn stop(&mut self) {
        self.guard = None;
    }
}

fn distcc_ssh(port: u16, key: &Path) -> String {
    format!(
        "ssh -p {port} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o BatchMode=yes -o LogLevel=ERROR",
        key.display()
    )
}

/// A server program started over ssh: a script that runs it with a log file, as the
/// host's `:command` (the arguments ssh passes, `--inetd --enable-tcp-insecure`,
/// follow). Its log and temp directory are writable by the user it drops to.
struct Remote {
    command: PathBuf,
    log: PathBuf,
}

impl Remote {
    fn new(dir: &Path, name: &str, run: &str) -> Remote {
        let dir = dir.join(name);
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for d in [&dir, &tmp] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o1777)).unwrap();
        }
        let mut p = dir.parent();
        while let Some(d) = p {
            let mode = fs::metadata(d).unwrap().permissions().mode();
            if mode & 0o001 == 0 {
                fs::set_permissions(d, fs::Permissions::from_mode(mode | 0o711)).unwrap();
            }
            p = d.parent();
        }
        let log = dir.join("server.log");
        let command = dir.join("server");
        write_exe(
            &command,
            &format!(
                "#!/bin/sh\nTMPDIR={} exec {run} --log-file {} \"$@\"\n",
                tmp.display(),
                log.display()
            ),
        );
        Remote { command, log }
    }

    fn swarmccd(dir: &Path) -> Remote {
        Remote::new(dir, "swarmccd", &format!("{SWARMCCD} --log-level debug"))
    }

    fn distccd(dir: &Path) -> Remote {
        Remote::new(dir, "distccd", "distccd --log-level info")
    }

    /// The host-list entry that runs this server over ssh as root.
    fn host(&self) -> String {
        format!("root@127.0.0.1/4:{}", self.command.display())
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many jobs the server compiled, once it has logged `want` (a server logs a
    /// job after its reply is out, so the build can finish first).
    fn compiled(&self, want: usize) -> usize {
        let text = eventually(
            || self.log_text(),
            |t| t.matches("COMPILE_OK").count() >= want,
        );
        text.matches("COMPILE_OK").count()
    }
}

/// The ssh processes still alive that talk to `port`: each job must reap its own.
fn ssh_children(port: u16) -> Vec<String> {
    let want = format!("-p\0{port}\0");
    let mut found = Vec::new();
    for p in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).into_owned();
        if text.starts_with("ssh\0") && text.contains(&want) {
            found.push(text.replace('\0', " "));
        }
    }
    found
}

fn assert_no_ssh_left(port: u16) {
    let left = eventually(|| ssh_children(port).join("\n"), |t| t.is_empty());
    assert!(left.is_empty(), "ssh children left running:\n{left}");
}

/// A build of the fixture through `cc`/`cxx` with `hosts` and `DISTCC_SSH`.
fn build(
    dir: &Path,
    ddir: &Path,
    cc: &str,
    cxx: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    copy_tree(&fixture("proj"), dir);
    fs::create_dir_all(ddir).unwrap();
    let mut all = vec![("DISTCC_DIR", ddir.to_str().unwrap())];
    all.extend_from_slice(env);
    make(dir, cc, cxx, &all)
}

#[test]
fn swarmcc_builds_on_swarmccd_over_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let sshd = Sshd::start(tmp.path());
    let remote = Remote::swarmccd(tmp.path());
    let ddir = tmp.path().join("ddir");
    let _agents = AgentReaper(ddir.clone());
    let dir = tmp.path().join("remote");
    let (host, ssh) = (remote.host(), sshd.distcc_ssh());
    let out = build(
        &dir,
        &ddir,
        &format!("{SWARMCC} gcc"),
        &format!("{SWARMCC} g++"),
        &[
            ("DISTCC_HOSTS", &host),
            ("DISTCC_SSH", &ssh),
            ("DISTCC_FALLBACK", "0"),
        ],
    );
    assert_success(
        &out,
        &format!("build through swarmcc to swarmccd over ssh ({host})"),
    );
    assert_eq!(remote.compiled(6), 6, "{}", remote.log_text());
    let log = remote.log_text();
    // sshd gives the server pipes, not a socket: distccd's name for such a client.
    assert!(log.contains("client: NOTSOCKET COMPILE_OK"), "{log}");
    // The negotiated extension works over ssh as over TCP.
    assert!(log.contains("extension request"), "{log}");
    assert_same_outputs(&local, &dir, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("unused variable").count(),
        1,
        "stderr:\n{stderr}"
    );
    assert_no_ssh_left(sshd.port);
}

#[test]
fn swarmcc_builds_on_real_distccd_over_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let sshd = Sshd::start(tmp.path());
    let remote = Remote::distccd(tmp.path());
    let ddir = tmp.path().join("ddir");
    let _agents = AgentReaper(ddir.clone());
    let (host, ssh) = (remote.host(), sshd.distcc_ssh());
    let refusals = || {
        remote
            .log_text()
            .matches("can't handle requested protocol")
            .count()
    };
    let mut after_first = 0;
    for round in ["first", "second"] {
        let dir = tmp.path().join(round);
        let before = remote.log_text().matches("COMPILE_OK").count();
        let out = build(
            &dir,
            &ddir,
            &format!("{SWARMCC} gcc"),
            &format!("{SWARMCC} g++"),
            &[
                ("DISTCC_HOSTS", &host),
                ("DISTCC_SSH", &ssh),
                ("DISTCC_FALLBACK", "0"),
            ],
        );
        assert_success(
            &out,
            &format!("{round} build through swarmcc to distccd over ssh"),
        );
        assert_eq!(
            remote.compiled(before + 6) - before,
            6,
            "{}",
            remote.log_text()
        );
        assert_same_outputs(&local, &dir, true);
        if round == "first" {
            after_first = refusals();
        }
    }
    // distccd closed on the extension (each job that asked before the first refusal
    // was seen), and the host is remembered as plain distcc: the second build asked
    // no more, one ssh per job.
    assert!(ddir.join("plain/ssh_127.0.0.1").exists());
    assert!(
        (1..=6).contains(&after_first) && refusals() == after_first,
        "extension requests: {after_first} in the first build, {} in all:\n{}",
        refusals(),
        remote.log_text()
    );
    assert_no_ssh_left(sshd.port);
}

#[test]
fn real_distcc_builds_on_swarmccd_over_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let sshd = Sshd::start(tmp.path());
    let remote = Remote::swarmccd(tmp.path());
    let ddir = tmp.path().join("ddir");
    let dir = tmp.path().join("remote");
    let (host, ssh) = (remote.host(), sshd.distcc_ssh());
    let out = build(
        &dir,
        &ddir,
        "distcc gcc",
        "distcc g++",
        &[
            ("DISTCC_HOSTS", &host),
            ("DISTCC_SSH", &ssh),
            ("DISTCC_FALLBACK", "0"),
        ],
    );
    assert_success(
        &out,
        &format!("build through real distcc to swarmccd over ssh ({host})"),
    );
    assert_eq!(remote.compiled(6), 6, "{}", remote.log_text());
    assert!(remote.log_text().contains("client: NOTSOCKET COMPILE_OK"));
    // distcc writes its own .d files (with its bug #62): objects only.
    assert_same_outputs(&local, &dir, false);
}

#[test]
fn a_dead_ssh_means_a_local_build_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let mut sshd = Sshd::start(tmp.path());
    let remote = Remote::swarmccd(tmp.path());
    let ssh = sshd.distcc_ssh();
    let cc = format!("{SWARMCC} gcc");
    let cxx = format!("{SWARMCC} g++");

    // The remote command is not there: the remote shell's exit 127.
    let ddir = tmp.path().join("ddir-missing");
    let _agents = AgentReaper(ddir.clone());
    let missing = "root@127.0.0.1/4:/nonexistent/swarmccd";
    let dir = tmp.path().join("missing");
    let out = build(
        &dir,
        &ddir,
        &cc,
        &cxx,
        &[("DISTCC_HOSTS", missing), ("DISTCC_SSH", &ssh)],
    );
    assert_success(&out, "build with a missing remote command");
    assert_same_outputs(&local, &dir, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to distribute")
            && stderr.contains("root@127.0.0.1")
            && stderr.contains("the remote command was not found on root@127.0.0.1 (exit 127"),
        "{stderr}"
    );

    // sshd stopped: ssh's own exit 255, with its message.
    sshd.stop();
    let ddir = tmp.path().join("ddir-dead");
    let _agents2 = AgentReaper(ddir.clone());
    let dir = tmp.path().join("dead");
    let started = Instant::now();
    let out = build(
        &dir,
        &ddir,
        &cc,
        &cxx,
        &[("DISTCC_HOSTS", &remote.host()), ("DISTCC_SSH", &ssh)],
    );
    assert_success(&out, "build with sshd stopped");
    assert_same_outputs(&local, &dir, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let told = stderr.matches("failed to distribute").count();
    assert_eq!(told, 1, "said once per host and backoff period:\n{stderr}");
    assert!(
        stderr.contains("running locally instead: cannot connect: ssh to root@127.0.0.1 failed (exit 255): ssh: connect to host 127.0.0.1 port")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
    assert!(
        ddir.join("lock/backoff_ssh_127.0.0.1_0").exists(),
        "the host is backed off"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(remote.log_text().matches("COMPILE_OK").count(), 0);
    assert_no_ssh_left(sshd.port);
}

#[test]
fn a_hung_ssh_is_cut_off_by_the_timeouts_and_killed() {
    let tmp = tempfile::tempdir().unwrap();
    // A port that accepts and never answers: ssh waits for the server's banner forever.
    let stall = StallServer::start();
    let key = tmp.path().join("no_key");
    let ssh = distcc_ssh(stall.port, &key);
    fs::write(tmp.path().join("x.c"), "int x(void) { return 42; }\n").unwrap();
    for (plain, what) in [(false, "extension"), (true, "plain distcc")] {
        let ddir = tmp.path().join(format!("ddir-{what}"));
        let _agents = AgentReaper(ddir.clone());
        if plain {
            // Remembered as a plain distccd: no keep-alives, the compile timeout applies.
            fs::create_dir_all(ddir.join("plain")).unwrap();
            fs::write(ddir.join("plain/ssh_127.0.0.1"), "").unwrap();
        }
        let started = Instant::now();
        let out = run(swarmcc(&ddir, "root@127.0.0.1:/usr/bin/swarmccd")
            .current_dir(tmp.path())
            .args(["gcc", "-c", "x.c", "-o", "x.o"])
            .env("DISTCC_SSH", &ssh)
            .env("SWARMCC_STALL_TIMEOUT", "2")
            .env("SWARMCC_COMPILE_TIMEOUT", "3"));
        let took = started.elapsed();
        assert_success(&out, &format!("compile through a hung ssh ({what})"));
        assert!(tmp.path().join("x.o").exists());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("failed to distribute x.c to root@127.0.0.1")
                && stderr.contains("timed out"),
            "{what}: {stderr}"
        );
        assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
        assert_no_ssh_left(stall.port);
        fs::remove_file(tmp.path().join("x.o")).unwrap();
    }
}

#[test]
fn check_hosts_checks_an_ssh_host_for_real() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(tmp.path());
    let remote = Remote::swarmccd(tmp.path());
    let ddir = tmp.path().join("ddir");
    let _agents = AgentReaper(ddir.clone());
    let dead = format!("root@127.0.0.1:{}", remote.command.display());
    let hosts = remote.host();
    let out = run(swarmcc(&ddir, &hosts)
        .arg("--check-hosts=gcc")
        .env("DISTCC_SSH", sshd.distcc_ssh()));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\nsshd: {}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(&sshd.log).unwrap_or_default()
    );
    assert!(text.contains("connect   ssh: ssh -p"), "{text}");
    assert!(text.contains("swarmccd (it answered"), "{text}");
    assert!(text.contains("same object as here"), "{text}");
    assert!(remote.compiled(1) >= 1, "{}", remote.log_text());

    // Through a port where no sshd listens: UNREACHABLE, with ssh's own words.
    let out = run(swarmcc(&ddir, &dead)
        .arg("--check-hosts=gcc")
        .env("DISTCC_SSH", distcc_ssh(free_port(), &sshd.key)));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("UNREACHABLE")
            && text.contains("exit 255")
            && text.contains("Connection refused"),
        "{text}"
    );
}
