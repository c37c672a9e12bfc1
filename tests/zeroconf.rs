//! Zeroconf both ways against the real thing: Debian's distcc 3.4 (built with Avahi)
//! and avahi-daemon, on a two-machine network of the test's own.
//!
//! Each test builds a [`Lan`]: two network namespaces joined by a veth pair (10.221.N.1
//! the client, 10.221.N.2 the server), each with a private D-Bus system bus (its own
//! config and socket, reached through `DBUS_SYSTEM_BUS_ADDRESS`) and its own
//! avahi-daemon (root, no chroot, own config, and a private mount namespace whose tmpfs
//! `/run` holds its pid file and socket, so the machine's own `/run/avahi-daemon` is
//! never touched). Everything runs inside the namespaces; dropping the `Lan` kills
//! every process in them and deletes them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_success, spawn_group, ProcessGuard, SWARMCC, SWARMCCD};

/// How long mDNS may take to tell a change (announce, withdraw) across the link.
const MDNS_WAIT: Duration = Duration::from_secs(20);

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn available() -> bool {
    let have = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    [
        "avahi-daemon",
        "dbus-daemon",
        "avahi-publish",
        "distccd",
        "unshare",
    ]
    .iter()
    .all(|t| have(t))
}

/// One "machine": a network namespace with its own bus and avahi-daemon.
struct Host {
    ns: String,
    addr: String,
    /// The veth end inside, and the host name its avahi-daemon uses.
    dev: String,
    name: String,
    dir: PathBuf,
    bus: String,
    daemons: Vec<ProcessGuard>,
}

impl Host {
    /// `program args…` run inside this machine, on its bus.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus)
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG")
            .env_remove("DISTCC_BACKOFF_PERIOD")
            .env_remove("_DISTCC_SAFEGUARD")
            .stdin(Stdio::null());
        c
    }

    fn start_bus(&mut self) {
        let socket = self.dir.join("system_bus_socket");
        let config = self.dir.join("bus.conf");
        // A system bus that lets anyone own and call anything: the test's own, for
        // avahi-daemon (root) and for clients and servers (root or a dropped user).
        fs::write(
            &config,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                 <busconfig><type>system</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>\n\
                 <policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>\n\
                 <allow send_type=\"method_call\"/><allow send_type=\"signal\"/>\n\
                 <allow send_type=\"method_return\"/><allow send_type=\"error\"/>\n\
                 <allow receive_type=\"method_call\"/><allow receive_type=\"signal\"/>\n\
                 <allow receive_type=\"method_return\"/><allow receive_type=\"error\"/>\n\
                 </policy></busconfig>\n",
                socket.display()
            ),
        )
        .unwrap();
        let mut cmd = self.command("dbus-daemon");
        cmd.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.daemons.push(spawn_group(&mut cmd, "dbus-daemon"));
        wait_until("the private D-Bus socket", Duration::from_secs(10), || {
            socket.exists()
        });
        // Only this socket: world-usable, as the system bus is, for a server that drops root.
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&socket, fs::Permissions::from_mode(0o777));
    }

    fn start_avahi(&mut self) {
        let (name, interface) = (&self.name, &self.dev);
        let config = self.dir.join("avahi-daemon.conf");
        fs::write(
            &config,
            format!(
                "[server]\nhost-name={name}\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces={interface}\n\
                 enable-dbus=yes\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\n\
                 publish-workstation=no\n"
            ),
        )
        .unwrap();
        let log = self.dir.join("avahi.log");
        let _ = fs::remove_file(&log);
        let script = format!(
            "mount -t tmpfs tmpfs /run && exec avahi-daemon -f '{}' --no-drop-root --no-chroot \
             --no-rlimits --no-proc-title",
            config.display()
        );
        let mut cmd = self.command("unshare");
        cmd.args(["-m", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        self.daemons.push(spawn_group(&mut cmd, "avahi-daemon"));
        let text = wait_for_text(&log, MDNS_WAIT, |t| t.contains("Server startup complete"));
        assert!(
            text.contains("Server startup complete"),
            "avahi-daemon:\n{text}"
        );
    }

    /// Stops this machine's avahi-daemon (the last one started).
    fn stop_avahi(&mut self) {
        let at = self
            .daemons
            .iter()
            .rposition(|g| g.name == "avahi-daemon")
            .expect("an avahi-daemon");
        drop(self.daemons.remove(at));
    }
}

/// Two machines on one link; everything in them is killed, and they are deleted, on drop.
struct Lan {
    client: Host,
    server: Host,
    _dir: tempfile::TempDir,
}

impl Lan {
    fn new() -> Option<Lan> {
        if !available() {
            eprintln!("SKIPPED: needs avahi-daemon, dbus-daemon, avahi-utils, distcc, unshare");
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = (std::process::id() + NEXT.fetch_add(1, Ordering::SeqCst)) % 200 + 20;
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let host = |role: &str, i: u32| {
            let d = dir.path().join(role);
            fs::create_dir_all(&d).unwrap();
            Host {
                ns: format!("swarmcc-zc{n}-{role}"),
                addr: format!("10.221.{n}.{i}"),
                dev: format!("zc{n}{}", &role[..1]),
                name: format!("zc{n}-{role}"),
                bus: format!("unix:path={}", d.join("system_bus_socket").display()),
                dir: d,
                daemons: Vec::new(),
            }
        };
        let mut lan = Lan {
            client: host("client", 1),
            server: host("server", 2),
            _dir: dir,
        };
        let (ci, si) = (lan.client.dev.clone(), lan.server.dev.clone());
        for h in [&lan.client, &lan.server] {
            let _ = ip(&["netns", "del", &h.ns]);
        }
        let ok = ip(&["netns", "add", &lan.client.ns])
            && ip(&["netns", "add", &lan.server.ns])
            && ip(&["link", "add", &ci, "type", "veth", "peer", "name", &si])
            && ip(&["link", "set", &ci, "netns", &lan.client.ns])
            && ip(&["link", "set", &si, "netns", &lan.server.ns]);
        if !ok {
            eprintln!("SKIPPED: cannot create network namespaces (needs root and iproute2)");
            return None;
        }
        for (h, dev) in [(&lan.client, &ci), (&lan.server, &si)] {
            let cidr = format!("{}/24", h.addr);
            assert!(ip(&["-n", &h.ns, "addr", "add", &cidr, "dev", dev]));
            assert!(ip(&["-n", &h.ns, "link", "set", dev, "up"]));
            assert!(ip(&["-n", &h.ns, "link", "set", "lo", "up"]));
        }
        for h in [&mut lan.client, &mut lan.server] {
            h.start_bus();
            h.start_avahi();
        }
        Some(lan)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for h in [&mut self.client, &mut self.server] {
            // Whatever runs inside (helpers forked by distcc or swarmcc included).
            let pids = Command::new("ip")
                .args(["netns", "pids", &h.ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: kill(2) on a pid that lives in this test's own namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            h.daemons.clear();
            let _ = ip(&["netns", "del", &h.ns]);
        }
    }
}

fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The file's text once `done` holds for it, or its last text after `limit`.
fn wait_for_text(path: &Path, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = fs::read_to_string(path).unwrap_or_default();
        if done(&text) || Instant::now() >= deadline {
            return text;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` until its stdout satisfies `done`, or `limit` passes; the last output.
fn run_until(cmd: &mut Command, limit: Duration, done: impl Fn(&str) -> bool) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        let out = cmd.output().expect("run");
        if done(&String::from_utf8_lossy(&out.stdout)) || Instant::now() >= deadline {
            return out;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server inside the server machine, logging to a file an unprivileged user can write.
struct Server {
    guard: ProcessGuard,
    log: PathBuf,
}

impl Server {
    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn log_dir(lan: &Lan, name: &str) -> PathBuf {
    let d = lan.server.dir.join(name);
    fs::create_dir_all(&d).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&d, fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

/// Debian's real `distccd --zeroconf`, serving the client machine.
fn start_distccd(lan: &Lan, port: u16, jobs: u32) -> Server {
    let dir = log_dir(lan, &format!("distccd-{port}"));
    let log = dir.join("distccd.log");
    let mut cmd = lan.server.command("distccd");
    cmd.args([
        "--no-detach",
        "--daemon",
        "--zeroconf",
        "--log-level",
        "info",
    ])
    .args(["--allow", &lan.client.addr, "--listen", &lan.server.addr])
    .args(["--port", &port.to_string(), "--jobs", &jobs.to_string()])
    .arg("--log-file")
    .arg(&log)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    Server {
        guard: spawn_group(&mut cmd, "distccd"),
        log,
    }
}

/// `swarmccd --zeroconf`, serving the client machine; `env` for its own bus.
fn start_swarmccd(lan: &Lan, port: u16, jobs: u32, env: &[(&str, &str)]) -> Server {
    let dir = log_dir(lan, &format!("swarmccd-{port}"));
    let log = dir.join("swarmccd.log");
    let mut cmd = lan.server.command(SWARMCCD);
    cmd.args(["--no-detach", "--zeroconf", "--log-level", "debug"])
        .args(["--allow", &lan.client.addr, "--listen", &lan.server.addr])
        .args(["--port", &port.to_string(), "--jobs", &jobs.to_string()])
        .arg("--log-file")
        .arg(&log)
        .env("TMPDIR", &dir)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Server {
        guard: spawn_group(&mut cmd, "swarmccd"),
        log,
    };
    let text = wait_for_text(&server.log, MDNS_WAIT, |t| t.contains("listening on"));
    assert!(text.contains("listening on"), "swarmccd:\n{text}");
    server
}

/// `swarmcc --show-hosts` with `+zeroconf`, run until its output satisfies `done`.
/// Fails the test with the client's log (the helper's included) if it never does.
fn shown_when(lan: &Lan, distcc_dir: &Path, done: impl Fn(&str) -> bool) -> Output {
    let out = run_until(
        swarmcc(lan, distcc_dir, "+zeroconf").arg("--show-hosts"),
        MDNS_WAIT,
        &done,
    );
    let log = fs::read_to_string(distcc_dir.join("swarmcc.log")).unwrap_or_default();
    assert!(
        done(&stdout(&out)),
        "--show-hosts never got there:\n{}\nclient log:\n{log}\nfile: {:?}",
        stdout(&out),
        zeroconf_file(distcc_dir)
    );
    out
}

/// swarmcc in the client machine with `hosts` and its own `DISTCC_DIR`.
/// It and the helper it starts log everything to `DISTCC_DIR/swarmcc.log`.
fn swarmcc(lan: &Lan, distcc_dir: &Path, hosts: &str) -> Command {
    let mut c = lan.client.command(SWARMCC);
    c.env("DISTCC_DIR", distcc_dir)
        .env("DISTCC_HOSTS", hosts)
        .env("DISTCC_VERBOSE", "1")
        .env("DISTCC_LOG", distcc_dir.join("swarmcc.log"));
    c
}

/// Debian's real distcc in the client machine (which, unlike swarmcc, does not create
/// its `DISTCC_DIR`).
fn distcc(lan: &Lan, distcc_dir: &Path, hosts: &str) -> Command {
    fs::create_dir_all(distcc_dir).unwrap();
    let mut c = lan.client.command("distcc");
    c.env("DISTCC_DIR", distcc_dir).env("DISTCC_HOSTS", hosts);
    c
}

fn zeroconf_file(distcc_dir: &Path) -> String {
    fs::read_to_string(distcc_dir.join("zeroconf/hosts")).unwrap_or_default()
}

/// A small C file, its object compiled locally, and a directory to compile it in.
fn project(lan: &Lan) -> (PathBuf, Vec<u8>) {
    let dir = lan.client.dir.join("project");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("z.c"),
        "static int sq(int x) { return x * x; }\nint zc(int n) { int s = 0; \
         for (int i = 0; i < n; i++) s += sq(i) ^ i; return s; }\n",
    )
    .unwrap();
    let out = Command::new("gcc")
        .args(["-O2", "-c", "z.c", "-o", "local.o"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_success(&out, "local gcc");
    let object = fs::read(dir.join("local.o")).unwrap();
    (dir, object)
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn swarmcc_finds_real_distccd_and_compiles_there() {
    let Some(lan) = Lan::new() else { return };
    let server = start_distccd(&lan, 3632, 3);
    let dd = lan.client.dir.join("swarmcc-dir");
    let entry = format!("{}:3632/3", lan.server.addr);

    // Mixed with other hosts, in the token's place; the first start waits for the answer.
    let list = format!("localhost/1 +zeroconf {}:7/2", lan.client.addr);
    let out = run_until(
        swarmcc(&lan, &dd, &list).arg("--show-hosts"),
        MDNS_WAIT,
        |o| o.contains(&entry),
    );
    assert_success(&out, "swarmcc --show-hosts");
    let shown: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.split("  ").next().unwrap().to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "localhost/1".to_string(),
            entry.clone(),
            format!("{}:7/2", lan.client.addr)
        ],
        "{}",
        stdout(&out)
    );
    assert_eq!(zeroconf_file(&dd), format!("{entry}\n"));
    let out = swarmcc(&lan, &dd, &list).arg("-j").output().unwrap();
    assert_eq!(stdout(&out).trim(), "6");

    // --check-hosts checks the discovered host like any other.
    let out = swarmcc(&lan, &dd, "+zeroconf")
        .arg("--check-hosts=gcc")
        .output()
        .unwrap();
    assert_success(&out, "swarmcc --check-hosts");
    assert!(stdout(&out).contains(&lan.server.addr), "{}", stdout(&out));

    // A compile goes there: the server logs it, and the object is the local one.
    let (dir, local) = project(&lan);
    let before = count(&server.log_text(), "COMPILE_OK");
    let out = swarmcc(&lan, &dd, "+zeroconf")
        .args(["gcc", "-O2", "-c", "z.c", "-o", "remote.o"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_success(&out, "swarmcc gcc");
    let log = wait_for_text(&server.log, MDNS_WAIT, |t| count(t, "COMPILE_OK") > before);
    assert_eq!(count(&log, "COMPILE_OK"), before + 1, "distccd log:\n{log}");
    assert_eq!(fs::read(dir.join("remote.o")).unwrap(), local);
    drop(server);
}

#[test]
fn real_distcc_finds_swarmccd_and_compiles_there() {
    let Some(lan) = Lan::new() else { return };
    let server = start_swarmccd(&lan, 3632, 5, &[]);
    let announced = wait_for_text(&server.log, MDNS_WAIT, |t| {
        t.contains("zeroconf: announced")
    });
    assert!(
        announced.contains("zeroconf: announced as 'distcc@"),
        "{announced}"
    );

    // What distccd publishes, as Avahi's own browser sees it from the client machine.
    let cc = |flag: &str| {
        stdout(&Command::new("cc").arg(flag).output().unwrap())
            .trim()
            .to_string()
    };
    let (version, machine) = (cc("-dumpversion"), cc("-dumpmachine"));
    let subtype = own_subtype();
    let browse = run_until(
        lan.client.command("avahi-browse").args([
            "--resolve",
            "--terminate",
            "--parsable",
            &subtype,
        ]),
        MDNS_WAIT,
        |o| o.lines().any(|l| l.starts_with('=')),
    );
    let resolved = stdout(&browse);
    let line = resolved
        .lines()
        .find(|l| l.starts_with('='))
        .unwrap_or_else(|| {
            panic!("not found under {subtype}:\n{resolved}");
        });
    for txt in [
        "\"txtvers=1\"".to_string(),
        format!("\"cpus={}\"", thread::available_parallelism().unwrap()),
        "\"jobs=5\"".into(),
        "\"distcc=3.4\"".into(),
        format!("\"cc_version={version}\""),
        format!("\"cc_machine={machine}\""),
    ] {
        assert!(line.contains(&txt), "{txt} missing: {line}");
    }
    assert!(line.contains("\"gnuhost="), "{line}");
    assert!(
        line.contains(&format!(";{};3632;", lan.server.addr)),
        "{line}"
    );

    // The real distcc's helper finds it and writes distcc's cache file.
    let dd = lan.client.dir.join("distcc-dir");
    let entry = format!("{}:3632/5", lan.server.addr);
    let out = run_until(
        distcc(&lan, &dd, "+zeroconf").arg("--show-hosts"),
        MDNS_WAIT,
        |o| o.contains(&entry),
    );
    assert_eq!(stdout(&out), format!("{entry}\n"));
    assert_eq!(zeroconf_file(&dd), format!("{entry}\n"));

    // And compiles there.
    let (dir, local) = project(&lan);
    let out = distcc(&lan, &dd, "+zeroconf")
        .args(["gcc", "-O2", "-c", "z.c", "-o", "remote.o"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_success(&out, "distcc gcc");
    let log = wait_for_text(&server.log, MDNS_WAIT, |t| t.contains("COMPILE_OK"));
    assert_eq!(count(&log, "COMPILE_OK"), 1, "swarmccd log:\n{log}");
    assert_eq!(fs::read(dir.join("remote.o")).unwrap(), local);

    // Withdrawn at shutdown: distcc's own helper drops it.
    drop(server);
    let text = wait_for_text(&dd.join("zeroconf/hosts"), MDNS_WAIT, |t| {
        !t.contains(&entry)
    });
    assert!(
        !text.contains(&entry),
        "still listed after shutdown: {text}"
    );
}

/// Publishes a fake distcc service from the server machine with `avahi-publish`.
fn publish(lan: &Lan, name: &str, port: u16, subtype: Option<&str>, txt: &[&str]) -> ProcessGuard {
    let mut cmd = lan.server.command("avahi-publish");
    cmd.arg("-s");
    if let Some(sub) = subtype {
        cmd.arg(format!("--subtype={sub}"));
    }
    cmd.args([name, "_distcc._tcp", &port.to_string()])
        .args(txt)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    spawn_group(&mut cmd, "avahi-publish")
}

fn own_subtype() -> String {
    let cc = |flag: &str| {
        let out = Command::new("cc").arg(flag).output().unwrap();
        stdout(&out)
            .trim()
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    };
    format!(
        "_{}--{}._sub._distcc._tcp",
        cc("-dumpmachine"),
        cc("-dumpversion")
    )
}

#[test]
fn compiler_filter_and_limits_are_real_distccs() {
    let Some(lan) = Lan::new() else { return };
    let ours = own_subtype();
    // TXT sets whose limits distcc 3.4 computes in its own way, and servers whose
    // compiler differs (another subtype, or none): real distcc lists the first kind only.
    let _p = [
        publish(
            &lan,
            "distcc@jobs",
            4001,
            Some(&ours),
            &["cpus=2", "jobs=3"],
        ),
        publish(&lan, "distcc@nojobs", 4002, Some(&ours), &["cpus=5"]),
        publish(
            &lan,
            "distcc@zerojobs",
            4003,
            Some(&ours),
            &["cpus=5", "jobs=0"],
        ),
        publish(
            &lan,
            "distcc@badcpus",
            4004,
            Some(&ours),
            &["cpus=-1", "jobs=x"],
        ),
        publish(
            &lan,
            "distcc@arm",
            4005,
            Some("_arm-linux-gnueabihf--12._sub._distcc._tcp"),
            &["jobs=9"],
        ),
        publish(&lan, "distcc@nosub", 4006, None, &["jobs=9"]),
    ];
    // Ports and limits: distcc asks Avahi for any address, and sometimes writes the
    // server's IPv6 link-local one (without its interface); swarmcc asks for IPv4 here.
    let want = ["4001/3", "4002/4", "4003/7", "4004/3"];
    let port_limits = |text: &str| {
        let mut v: Vec<String> = text
            .lines()
            .map(|l| l.rsplit(':').next().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let real = lan.client.dir.join("distcc-dir");
    let out = run_until(
        distcc(&lan, &real, "+zeroconf").arg("--show-hosts"),
        MDNS_WAIT,
        |o| o.lines().count() >= 4,
    );
    assert_eq!(port_limits(&stdout(&out)), want, "real distcc");
    assert_eq!(port_limits(&zeroconf_file(&real)), want);
    let s = &lan.server.addr;

    let mine = lan.client.dir.join("swarmcc-dir");
    let out = run_until(
        swarmcc(&lan, &mine, "+zeroconf").arg("-j"),
        MDNS_WAIT,
        |o| o.trim() == "17",
    );
    assert_eq!(stdout(&out).trim(), "17");
    // The same lines, sorted by service name.
    assert_eq!(
        zeroconf_file(&mine),
        format!("{s}:4004/3\n{s}:4001/3\n{s}:4002/4\n{s}:4003/7\n")
    );
}

#[test]
fn a_stopped_server_leaves_the_list() {
    let Some(lan) = Lan::new() else { return };
    let dd = lan.client.dir.join("swarmcc-dir");
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let server = start_swarmccd(&lan, 3632, 4, &[]);
        let entry = format!("{}:3632/4", lan.server.addr);
        let out = shown_when(&lan, &dd, |o| o.contains(&entry));
        assert!(stdout(&out).contains(&entry), "{}", stdout(&out));
        // SAFETY: kill(2) on the server's own process (group leader).
        unsafe { libc::kill(server.guard.pid() as i32, signal) };
        // Killed or stopped, its records go with its D-Bus connection; the helper hears
        // the goodbye and rewrites the file while clients keep reading it.
        let started = Instant::now();
        let out = shown_when(&lan, &dd, |o| !o.contains(&entry));
        assert!(
            !stdout(&out).contains(&entry),
            "signal {signal}: {}",
            stdout(&out)
        );
        assert!(!zeroconf_file(&dd).contains(&entry));
        eprintln!(
            "signal {signal}: gone from the list after {:?}",
            started.elapsed()
        );
        if signal == libc::SIGTERM {
            let log = wait_for_text(&server.log, MDNS_WAIT, |t| t.contains("withdrawn"));
            assert!(log.contains("zeroconf: 'distcc@"), "{log}");
        }
        drop(server);
    }
}

#[test]
fn name_collisions_and_avahi_restarts_are_survived() {
    let Some(mut lan) = Lan::new() else { return };
    // distccd and swarmccd on one machine announce the same name, distcc@HOSTNAME.
    let distccd = start_distccd(&lan, 3632, 2);
    let first = lan.client.dir.join("first");
    let d_entry = format!("{}:3632/2", lan.server.addr);
    let out = shown_when(&lan, &first, |o| o.contains(&d_entry));
    assert!(stdout(&out).contains(&d_entry));
    let server = start_swarmccd(&lan, 3700, 3, &[]);
    let log = wait_for_text(&server.log, MDNS_WAIT, |t| {
        t.contains("zeroconf: announced")
    });
    assert!(
        log.contains("is taken on the network; announcing as 'distcc@"),
        "{log}"
    );
    let s_entry = format!("{}:3700/3", lan.server.addr);
    let both = |o: &str| o.contains(&d_entry) && o.contains(&s_entry);
    let out = shown_when(&lan, &first, both);
    assert!(both(&stdout(&out)), "{}", stdout(&out));

    // The server machine's avahi-daemon restarts: both servers announce themselves again.
    let before = count(&server.log_text(), "zeroconf: announced");
    lan.server.stop_avahi();
    let gone = wait_for_text(&server.log, MDNS_WAIT, |t| t.contains("lost avahi-daemon"));
    assert!(gone.contains("lost avahi-daemon"), "{gone}");
    lan.server.start_avahi();
    let log = wait_for_text(&server.log, MDNS_WAIT, |t| {
        count(t, "zeroconf: announced") > before
    });
    assert!(count(&log, "zeroconf: announced") > before, "{log}");
    let fresh = lan.client.dir.join("fresh");
    let out = shown_when(&lan, &fresh, both);
    assert!(both(&stdout(&out)), "after the restart: {}", stdout(&out));

    // The client machine's avahi-daemon restarts under a running helper: the helper
    // browses again, and its list (kept meanwhile) is whole again.
    lan.client.stop_avahi();
    let kept = swarmcc(&lan, &first, "+zeroconf")
        .arg("--show-hosts")
        .output()
        .unwrap();
    assert!(
        both(&stdout(&kept)),
        "kept while Avahi is down: {}",
        stdout(&kept)
    );
    lan.client.start_avahi();
    let hosts = first.join("zeroconf/hosts");
    let before = fs::metadata(&hosts).unwrap().modified().unwrap();
    let text = wait_for_text(&hosts, MDNS_WAIT, |t| {
        both(t) && fs::metadata(&hosts).unwrap().modified().unwrap() > before
    });
    assert!(both(&text), "after the client's Avahi restarted: {text}");
    assert!(
        fs::metadata(&hosts).unwrap().modified().unwrap() > before,
        "never rewritten"
    );
    drop(server);
    drop(distccd);
}

#[test]
fn without_avahi_the_server_serves_and_the_client_says_why() {
    let Some(lan) = Lan::new() else { return };
    let nobus = [(
        "DBUS_SYSTEM_BUS_ADDRESS",
        "unix:path=/nonexistent/zeroconf-test-bus",
    )];
    let server = start_swarmccd(&lan, 3632, 2, &nobus);
    let log = wait_for_text(&server.log, MDNS_WAIT, |t| t.contains("not announced"));
    assert!(
        log.contains("this server is not announced until avahi-daemon runs (serving anyway"),
        "{log}"
    );
    // It serves all the same.
    let (dir, local) = project(&lan);
    let host = format!("{}:3632", lan.server.addr);
    let out = swarmcc(&lan, &lan.client.dir.join("plain"), &host)
        .args(["gcc", "-O2", "-c", "z.c", "-o", "remote.o"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_success(&out, "swarmcc gcc");
    assert!(
        wait_for_text(&server.log, MDNS_WAIT, |t| t.contains("COMPILE_OK")).contains("COMPILE_OK")
    );
    assert_eq!(fs::read(dir.join("remote.o")).unwrap(), local);

    // A client whose helper cannot reach Avahi goes on with the rest of the list and
    // says why, once.
    let dd = lan.client.dir.join("nobus");
    let list = format!("+zeroconf {host}");
    let out = swarmcc(&lan, &dd, &list)
        .envs(nobus)
        .env_remove("DISTCC_LOG")
        .env_remove("DISTCC_VERBOSE")
        .arg("--show-hosts")
        .output()
        .unwrap();
    assert_success(&out, "swarmcc --show-hosts");
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("+zeroconf: ") && err.contains("no servers discovered"),
        "{err}"
    );
    assert!(
        zeroconf_file(&dd).starts_with("# zeroconf: "),
        "{}",
        zeroconf_file(&dd)
    );
    let again = swarmcc(&lan, &dd, &list)
        .envs(nobus)
        .env_remove("DISTCC_LOG")
        .env_remove("DISTCC_VERBOSE")
        .arg("-j")
        .output()
        .unwrap();
    assert_eq!(stdout(&again).trim(), "4");
    assert!(
        again.stderr.is_empty(),
        "said twice: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    drop(server);
}

#[test]
fn the_helper_exits_when_unused_and_the_next_client_starts_it_again() {
    let Some(lan) = Lan::new() else { return };
    let server = start_swarmccd(&lan, 3632, 4, &[]);
    let entry = format!("{}:3632/4", lan.server.addr);
    let dd = lan.client.dir.join("swarmcc-dir");
    let out = shown_when(&lan, &dd, |o| o.contains(&entry));
    assert!(stdout(&out).contains(&entry));
    let helpers = || {
        let pids = stdout(
            &Command::new("ip")
                .args(["netns", "pids", &lan.client.ns])
                .output()
                .unwrap(),
        );
        pids.split_whitespace()
            .filter(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).contains("--zeroconf-serve")
            })
            .count()
    };
    assert_eq!(helpers(), 1);
    // Unused for 20 s (distcc's rule), it exits, releasing the lock.
    let started = Instant::now();
    wait_until("the idle helper to exit", Duration::from_secs(60), || {
        helpers() == 0
    });
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The next client starts a new one, which answers at once from the network.
    let out = swarmcc(&lan, &dd, "+zeroconf")
        .arg("--show-hosts")
        .output()
        .unwrap();
    assert_eq!(stdout(&out).split("  ").next(), Some(entry.as_str()));
    assert_eq!(helpers(), 1);
    drop(server);
}
