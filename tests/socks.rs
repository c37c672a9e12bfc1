//! Gentoo's network-sandbox: the build runs in a network namespace with nothing but
//! loopback, and reaches its distcc hosts only through the SOCKSv5 proxy Portage
//! starts on a UNIX socket (`DISTCC_SOCKS_PROXY`). Here: Portage's own proxy
//! (`socks5-server.py`, from its PyPI wheel; `integration/run-tests.sh` fetches it) in
//! this namespace, swarmccd in a namespace of its own behind a veth pair, and the
//! client in a sandbox namespace from which the server has no route. The fixture
//! project builds remotely through the proxy (the server's log shows every job) with
//! objects equal to a local build; without the proxy the server is unreachable, and a
//! dead proxy means a local build with a clear message.

mod common;

use common::project::*;
use common::*;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn portage_proxy_script() -> PathBuf {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-deps/portage/socks5-server.py");
    assert!(
        script.exists(),
        "{} is missing: integration/run-tests.sh fetches Portage's SOCKSv5 server",
        script.display()
    );
    script
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Two namespaces of the test's own: `server`, joined to this one by a veth pair
/// (10.217.N.1 here, 10.217.N.2 there), and `sandbox`, with loopback only, as
/// Portage's network-sandbox. Both are deleted on drop.
struct Namespaces {
    server: String,
    sandbox: String,
    here_ip: String,
    server_ip: String,
}

impl Namespaces {
    fn create() -> Namespaces {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = std::process::id() % 50 * 4 + NEXT.fetch_add(1, Ordering::Relaxed) % 4 + 20;
        let ns = Namespaces {
            server: format!("swarmcc-socks-srv-{n}"),
            sandbox: format!("swarmcc-socks-sbx-{n}"),
            here_ip: format!("10.217.{n}.1"),
            server_ip: format!("10.217.{n}.2"),
        };
        let (here_if, there_if) = (format!("swsk{n}h"), format!("swsk{n}n"));
        for name in [&ns.server, &ns.sandbox] {
            let _ = ip(&["netns", "del", name]);
        }
        let _ = ip(&["link", "del", &here_if]);
        let ok = ip(&["netns", "add", &ns.server])
            && ip(&["netns", "add", &ns.sandbox])
            && ip(&[
                "link", "add", &here_if, "type", "veth", "peer", "name", &there_if,
            ])
            && ip(&["link", "set", &there_if, "netns", &ns.server])
            && ip(&[
                "addr",
                "add",
                &format!("{}/24", ns.here_ip),
                "dev",
                &here_if,
            ])
            && ip(&["link", "set", &here_if, "up"])
            && ip(&[
                "-n",
                &ns.server,
                "addr",
                "add",
                &format!("{}/24", ns.server_ip),
                "dev",
                &there_if,
            ])
            && ip(&["-n", &ns.server, "link", "set", &there_if, "up"])
            && ip(&["-n", &ns.server, "link", "set", "lo", "up"])
            && ip(&["-n", &ns.sandbox, "link", "set", "lo", "up"]);
        assert!(
            ok,
            "cannot set up the network namespaces (needs root and iproute2)"
        );
        ns
    }

    /// `command` run inside namespace `name`.
    fn exec(name: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", name, program]);
        c
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting the server's namespace removes the veth pair too.
        for name in [&self.server, &self.sandbox] {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// swarmccd in the server namespace, listening on its veth address.
struct Server {
    _guard: ProcessGuard,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    fn start(ns: &Namespaces, dir: &Path) -> Server {
        use std::os::unix::fs::PermissionsExt;
        let tmp = dir.join("server-tmp");
        fs::create_dir_all(&tmp).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        let log = dir.join("swarmccd.log");
        let addr: SocketAddr = format!("{}:3632", ns.server_ip).parse().unwrap();
        let guard = spawn_group(
            Namespaces::exec(&ns.server, common::SWARMCCD)
                .args(["--no-detach", "--log-level", "debug"])
                .args(["--listen", &ns.server_ip, "--port", "3632"])
                // Only the proxy's side of the veth pair may talk to it.
                .args(["--allow", &ns.here_ip])
                .arg("--log-file")
                .arg(&log)
                .env("TMPDIR", &tmp)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "swarmccd",
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "swarmccd did not listen on {addr}: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            _guard: guard,
            addr,
            log,
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Jobs compiled, once `want` are logged (or the wait is over).
    fn compiled(&self, want: usize) -> usize {
        let text = eventually(
            || self.log_text(),
            |t| t.matches("COMPILE_OK").count() >= want,
        );
        text.matches("COMPILE_OK").count()
    }

    fn host(&self) -> String {
        format!("{}/4", self.addr)
    }
}

/// Portage's SOCKSv5 server on a UNIX socket where Portage puts it
/// (`$PORTAGE_TMPDIR/portage/.portage.<pid>.net.sock`).
struct Proxy {
    guard: Option<ProcessGuard>,
    socket: PathBuf,
}

impl Proxy {
    fn start(dir: &Path) -> Proxy {
        let script = portage_proxy_script();
        let socket = dir
            .join("portage")
            .join(format!(".portage.{}.net.sock", std::process::id()));
        fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let mut guard = spawn_group(
            Command::new("python3")
                .arg(&script)
                .arg(&socket)
                .stdin(Stdio::null()),
            "socks5-server.py",
        );
        // As Portage's ProxyManager.ready(): until the socket accepts a connection.
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&socket).is_err() {
            let exited = !matches!(guard.child.try_wait(), Ok(None));
            assert!(
                !exited && Instant::now() < deadline,
                "Portage's SOCKSv5 server did not start on {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Proxy {
            guard: Some(guard),
            socket,
        }
    }

    fn stop(&mut self) {
        self.guard = None;
    }
}

/// The fixture built by swarmcc inside the sandbox namespace.
fn sandboxed_build(
    ns: &Namespaces,
    dir: &Path,
    ddir: &Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    copy_tree(&fixture("proj"), dir);
    fs::create_dir_all(ddir).unwrap();
    let mut cmd = Namespaces::exec(&ns.sandbox, "make");
    cmd.current_dir(dir)
        .args(["-j4", "-s", "prog"])
        .arg(format!("CC={} gcc", common::SWARMCC))
        .arg(format!("CXX={} g++", common::SWARMCC))
        .env("DISTCC_DIR", ddir)
        .env_remove("MAKEFLAGS")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG")
        .env_remove("DISTCC_SOCKS_PROXY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn a_sandboxed_build_compiles_remotely_through_portages_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let ns = Namespaces::create();
    let server = Server::start(&ns, &tmp.path().join("server"));
    let proxy = Proxy::start(tmp.path());
    let sock = proxy.socket.to_str().unwrap().to_owned();
    let host = server.host();

    // No other way out: from the sandbox the server is unreachable without the proxy.
    let ddir = tmp.path().join("ddir-direct");
    let _agents = AgentReaper(ddir.clone());
    let out = sandboxed_build(
        &ns,
        &tmp.path().join("direct"),
        &ddir,
        &[("DISTCC_HOSTS", &host), ("DISTCC_FALLBACK", "0")],
    );
    assert!(
        !out.status.success(),
        "the sandbox has a route to the server"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert_eq!(server.log_text().matches("COMPILE_OK").count(), 0);

    // Through Portage's proxy, as Portage sets it up: every job compiles remotely.
    let ddir = tmp.path().join("ddir");
    let _agents2 = AgentReaper(ddir.clone());
    let dir = tmp.path().join("remote");
    let out = sandboxed_build(
        &ns,
        &dir,
        &ddir,
        &[
            ("DISTCC_HOSTS", &host),
            ("DISTCC_SOCKS_PROXY", &sock),
            ("PORTAGE_SOCKS5_PROXY", &sock),
            ("DISTCC_FALLBACK", "0"),
        ],
    );
    assert_success(&out, &format!("sandboxed build through {sock}"));
    assert_eq!(server.compiled(6), 6, "{}", server.log_text());
    // The server saw the proxy's address, the only one it allows.
    let log = server.log_text();
    assert!(log.contains(&format!("client: {}:", ns.here_ip)), "{log}");
    assert_same_outputs(&local, &dir, true);

    // --check-hosts goes the same way.
    let out = run(Namespaces::exec(&ns.sandbox, common::SWARMCC)
        .arg("--check-hosts=gcc")
        .env("DISTCC_DIR", &ddir)
        .env("DISTCC_HOSTS", &host)
        .env("DISTCC_SOCKS_PROXY", &sock));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("(through the SOCKS proxy {sock})"))
            && text.contains("same object as here"),
        "{text}"
    );
}

#[test]
fn a_dead_proxy_means_a_local_build_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let local = reference_build(tmp.path());
    let ns = Namespaces::create();
    let server = Server::start(&ns, &tmp.path().join("server"));
    let mut proxy = Proxy::start(tmp.path());
    let sock = proxy.socket.to_str().unwrap().to_owned();
    proxy.stop();
    let ddir = tmp.path().join("ddir");
    let _agents = AgentReaper(ddir.clone());
    let dir = tmp.path().join("build");
    let out = sandboxed_build(
        &ns,
        &dir,
        &ddir,
        &[
            ("DISTCC_HOSTS", &server.host()),
            ("DISTCC_SOCKS_PROXY", &sock),
        ],
    );
    assert_success(&out, "sandboxed build with the proxy gone");
    assert_same_outputs(&local, &dir, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("failed to distribute").count(),
        1,
        "said once per host and backoff period:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "running locally instead: cannot connect: cannot reach the SOCKS proxy {sock} (DISTCC_SOCKS_PROXY)"
        )),
        "{stderr}"
    );
    assert_eq!(server.log_text().matches("COMPILE_OK").count(), 0);
}
