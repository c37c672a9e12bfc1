//! Monitoring (issue 4), end to end: during a real `make -j8` through the masquerade
//! shims against a swarmccd, Debian's real `distccmon-text` and `swarmcc --monitor`
//! list the running jobs with the right host[slot] and phases; no state file is left
//! afterwards; a SIGTERM'd client removes its own file and a SIGKILL'd one's is ignored
//! and cleaned by the monitor; the full-screen view, driven in tmux, shows hosts, slot
//! bars and jobs, quits on `q` (and on SIGTERM) and gives the terminal back.
//!
//! Every process started here (server, make, tmux server, stalled clients) is stopped
//! by a guard; the scheduling agent the clients start is stopped by removing its socket.

mod common;

use common::*;
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// The two build tests load both CPUs: run them one at a time.
static BUILDS: Mutex<()> = Mutex::new(());

/// The host's `/LIMIT` in these tests.
const LIMIT: u32 = 3;
const PHASES: [&str; 8] = [
    "Startup",
    "Blocked",
    "Connect",
    "Preprocess",
    "Send",
    "Compile",
    "Receive",
    "Done",
];

/// A C file that takes a while at -O2 (~0.5–1 s), so jobs stay visible.
fn slow_source(i: usize) -> String {
    let mut s = String::from("#include <string.h>\n");
    for f in 0..1000 {
        let prev = if f == 0 { 0 } else { f - 1 };
        s.push_str(&format!(
            "int s{i}_f{f}(int x) {{ char b[64]; memset(b, x, sizeof b); int t = 0; \
             for (int k = 0; k < x; k++) t += b[k % 64] * {f}; return t ^ s{i}_f{prev}(x - 1); }}\n"
        ));
    }
    s
}

/// Stops the agent the clients started for `ddir` (it exits once its socket is gone).
struct AgentStopper(PathBuf);

impl Drop for AgentStopper {
    fn drop(&mut self) {
        let _ = fs::remove_file(swarmcc::agent::socket_path(&self.0));
    }
}

/// A swarmccd, masquerade shims, and an 8-file project.
struct Farm {
    tmp: tempfile::TempDir,
    server: Swarmccd,
    ddir: PathBuf,
    proj: PathBuf,
    path: String,
    _agent: AgentStopper,
}

impl Farm {
    fn new() -> Farm {
        let tmp = tempfile::tempdir().unwrap();
        let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1", "--jobs", "4"]);
        let shims = tmp.path().join("shims");
        fs::create_dir_all(&shims).unwrap();
        for name in ["gcc", "cc"] {
            symlink(SWARMCC, shims.join(name)).unwrap();
        }
        let proj = tmp.path().join("proj");
        fs::create_dir_all(&proj).unwrap();
        let mut objs = String::new();
        for i in 0..8 {
            fs::write(proj.join(format!("slow{i}.c")), slow_source(i)).unwrap();
            objs.push_str(&format!(" slow{i}.o"));
        }
        fs::write(
            proj.join("Makefile"),
            format!("all:{objs}\n%.o: %.c\n\tgcc -O2 -c $< -o $@\n"),
        )
        .unwrap();
        fs::set_permissions(&proj, fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            shims.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let ddir = tmp.path().join("ddir");
        fs::create_dir_all(&ddir).unwrap();
        Farm {
            _agent: AgentStopper(ddir.clone()),
            tmp,
            server,
            ddir,
            proj,
            path,
        }
    }

    fn hosts(&self) -> String {
        format!("127.0.0.1:{}/{LIMIT}", self.server.port)
    }

    /// The client environment, for any command.
    fn env(&self, cmd: &mut Command) {
        cmd.env("DISTCC_DIR", &self.ddir)
            .env("DISTCC_HOSTS", self.hosts())
            .env("SWARMCC_AGENT_IDLE", "2")
            .env_remove("DISTCC_VERBOSE")
            .env_remove("DISTCC_LOG")
            .env_remove("DISTCC_FALLBACK")
            .env_remove("DISTCC_BACKOFF_PERIOD")
            .env_remove("_DISTCC_SAFEGUARD")
            .env_remove("MAKEFLAGS");
    }

    /// `make -j8` through the shims, in the background.
    fn start_make(&self) -> ProcessGuard {
        let mut cmd = Command::new("make");
        cmd.current_dir(&self.proj)
            .args(["-j8", "-s", "all"])
            .env("PATH", &self.path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        self.env(&mut cmd);
        spawn_group(&mut cmd, "make -j8")
    }

    fn state_files(&self) -> Vec<String> {
        fs::read_dir(self.ddir.join("state"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One line of distccmon-text's format: (pid, phase, file, host, slot).
fn parse_line(line: &str) -> (u64, String, String, String, u32) {
    // "%6ld  %-10.10s  %-30.30s %24.24s[%d]"
    let b = line.as_bytes();
    assert!(
        b.len() >= 6 + 2 + 10 + 2 + 30 + 1 + 24 + 3,
        "short line {line:?}"
    );
    let pid = line[..6].trim().parse().expect("pid");
    let phase = line[8..18].trim().to_string();
    let file = line[20..50].trim().to_string();
    let rest = &line[51..];
    let open = rest.rfind('[').expect("[slot]");
    let host = rest[..open].trim().to_string();
    let slot = rest[open + 1..rest.len() - 1].parse().expect("slot");
    (pid, phase, file, host, slot)
}

fn monitor_output(farm: &Farm, program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    farm.env(&mut cmd);
    let out = run(&mut cmd);
    assert_success(&out, program);
    String::from_utf8(out.stdout).expect("text")
}

/// Checks one block of either monitor; returns the remote jobs seen in it.
fn check_block(text: &str, who: &str) -> Vec<(u64, String, u32)> {
    assert!(
        text.ends_with('\n'),
        "{who}: block ends with an empty line: {text:?}"
    );
    let mut remote = Vec::new();
    // Slots in use, and whether the job on each is already receiving its result.
    let mut slots: Vec<(u32, bool)> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (pid, phase, file, host, slot) = parse_line(line);
        assert!(
            PHASES.contains(&phase.as_str()),
            "{who}: phase {phase:?} in {line:?}"
        );
        assert_ne!(phase, "Done", "{who}: Done jobs are not listed");
        if !file.is_empty() {
            assert!(
                file.starts_with("slow") && file.ends_with(".c"),
                "{who}: file {file:?}"
            );
        }
        match host.as_str() {
            "127.0.0.1" => {
                assert!(
                    ["Connect", "Send", "Compile", "Receive", "Done"].contains(&phase.as_str()),
                    "{who}: remote phase {line:?}"
                );
                assert!(slot < LIMIT, "{who}: slot within /{LIMIT}: {line:?}");
                // Files are read one by one: a job whose file said Receive may have
                // finished and freed its slot before the next job's file was read.
                let receiving = phase == "Receive";
                assert!(
                    !slots.iter().any(|(s, r)| *s == slot && !r && !receiving),
                    "{who}: two jobs on one slot: {text}"
                );
                slots.push((slot, receiving));
                remote.push((pid, phase, slot));
            }
            "localhost" => assert!(
                ["Preprocess", "Compile"].contains(&phase.as_str()),
                "{who}: local phase {line:?}"
            ),
            "" => assert!(
                ["Startup", "Blocked"].contains(&phase.as_str()),
                "{who}: no host only before a slot: {line:?}"
            ),
            other => panic!("{who}: unexpected host {other:?} in {line:?}"),
        }
    }
    remote
}

#[test]
fn make_j8_jobs_show_in_distccmon_text_and_swarmcc_monitor() {
    let _one = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
    let farm = Farm::new();
    let mut make = farm.start_make();
    let mut seen_real = Vec::new();
    let mut seen_ours = Vec::new();
    let mut phases = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while make.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "make -j8 took too long");
        let real = monitor_output(&farm, "distccmon-text", &[]);
        seen_real.extend(check_block(&real, "distccmon-text"));
        let ours = monitor_output(&farm, SWARMCC, &["--monitor"]);
        seen_ours.extend(check_block(&ours, "swarmcc --monitor"));
        for l in real.lines().chain(ours.lines()).filter(|l| !l.is_empty()) {
            phases.insert(parse_line(l).1);
        }
        thread::sleep(Duration::from_millis(100));
    }
    let status = make.child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = make.child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "make -j8 failed: {err}");
    for i in 0..8 {
        assert!(farm.proj.join(format!("slow{i}.o")).exists(), "slow{i}.o");
    }
    // The server logs a job after its reply is out: make can finish first.
    let compiled = |l: &str| l.matches("COMPILE_OK").count();
    let log = farm.server.log_when(|l| compiled(l) >= 8);
    assert_eq!(compiled(&log), 8, "all remote: {log}");
    // Both monitors saw remote jobs compiling, on real slots.
    for (who, seen) in [
        ("distccmon-text", &seen_real),
        ("swarmcc --monitor", &seen_ours),
    ] {
        assert!(
            seen.iter().any(|(_, p, _)| p == "Compile"),
            "{who} saw a remote Compile: {seen:?}"
        );
    }
    // With 8 jobs and 3 slots, some jobs waited: both tools list Blocked ones too.
    assert!(phases.contains("Compile"), "{phases:?}");
    assert!(
        phases.contains("Blocked"),
        "waiting jobs are visible: {phases:?}"
    );
    // Nothing is left behind once the build is over.
    assert_eq!(farm.state_files(), Vec::<String>::new());
    assert_eq!(monitor_output(&farm, "distccmon-text", &[]), "\n");
    assert_eq!(monitor_output(&farm, SWARMCC, &["--monitor"]), "\n");
    drop(farm.tmp);
}

/// A client stuck in Compile against a server that never answers.
fn stalled_client(farm_dir: &Path, port: u16, src: &Path) -> ProcessGuard {
    let mut cmd = swarmcc(farm_dir, &format!("127.0.0.1:{port}/2"));
    cmd.args(["gcc", "-c"])
        .arg(src)
        .arg("-o")
        .arg(src.with_extension("o"))
        .env("SWARMCC_AGENT_IDLE", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    spawn_group(&mut cmd, "stalled swarmcc")
}

fn wait_for_phase(state: &Path, pid: u32, phase: swarmcc::state::Phase) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let path = swarmcc::state::file_path(state, u64::from(pid));
        if let Some(r) = fs::read(&path)
            .ok()
            .and_then(|b| swarmcc::state::Record::decode(&b))
        {
            if r.phase == phase {
                assert_eq!(r.host, "127.0.0.1");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never reached {phase:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killed_clients_leave_nothing_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let ddir = tmp.path().join("ddir");
    let _agent = AgentStopper(ddir.clone());
    let stall = StallServer::start();
    let src = tmp.path().join("x.c");
    fs::write(&src, "int x(void) { return 1; }\n").unwrap();
    let state = swarmcc::state::state_dir(&ddir);
    let mut termed = stalled_client(&ddir, stall.port, &src);
    let mut killed = stalled_client(&ddir, stall.port, &src);
    for c in [&termed, &killed] {
        wait_for_phase(&state, c.pid(), swarmcc::state::Phase::Compile);
    }
    let listed = |program: &str, args: &[&str]| {
        let out = run(Command::new(program).args(args).env("DISTCC_DIR", &ddir));
        assert_success(&out, program);
        String::from_utf8(out.stdout).unwrap()
    };
    let both = listed(SWARMCC, &["--monitor"]);
    assert_eq!(both.lines().filter(|l| !l.is_empty()).count(), 2, "{both}");

    // SIGTERM: the client's handler removes its file, then dies of the signal.
    // SAFETY: kill(2) on a child we started.
    unsafe { libc::kill(termed.pid() as i32, libc::SIGTERM) };
    let st = termed.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGTERM), "re-raised: {st:?}");
    let termed_file = swarmcc::state::file_path(&state, u64::from(termed.pid()));
    assert!(
        !termed_file.exists(),
        "SIGTERM'd client removed its state file"
    );

    // SIGKILL: the file stays behind; the monitor ignores it and cleans it up (the
    // real distccmon-text would too, so it is asked only afterwards).
    let killed_pid = killed.pid();
    // SAFETY: as above.
    unsafe { libc::kill(killed_pid as i32, libc::SIGKILL) };
    let _ = killed.child.wait();
    let killed_file = swarmcc::state::file_path(&state, u64::from(killed_pid));
    assert!(killed_file.exists(), "SIGKILL leaves the file");
    let ours = listed(SWARMCC, &["--monitor"]);
    assert_eq!(ours, "\n", "the dead client is not listed");
    assert!(!killed_file.exists(), "and its file is cleaned");
    assert_eq!(listed("distccmon-text", &[]), "\n");
    drop(stall);
}

/// A private tmux server, killed on drop.
struct Tmux {
    socket: String,
    conf: PathBuf,
}

impl Tmux {
    fn new(dir: &Path) -> Tmux {
        let conf = dir.join("tmux.conf");
        // A private server with a known configuration, whatever ~/.tmux.conf says.
        fs::write(&conf, "set -g status off\n").unwrap();
        Tmux {
            socket: format!("swarmcc-mon-{}", std::process::id()),
            conf,
        }
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = run(Command::new("tmux")
            .args(["-L", &self.socket, "-f"])
            .arg(&self.conf)
            .args(args));
        assert_success(&out, &format!("tmux {args:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn capture(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "mon"])
    }

    fn pane(&self, format: &str) -> String {
        self.cmd(&["list-panes", "-t", "mon", "-F", format])
            .trim()
            .to_string()
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.capture();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what}; the pane shows:\n{screen}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the shell around the monitor to say how it ended; returns its exit
    /// status, after checking that the pane is back on its normal screen.
    fn wait_exit(&self) -> String {
        let screen = self.wait_for("the monitor exits", |s| s.contains("monitor exited "));
        let status = screen
            .lines()
            .find_map(|l| l.trim().strip_prefix("monitor exited "))
            .unwrap_or_default()
            .to_string();
        assert_eq!(self.pane("#{alternate_on}"), "0", "alternate screen left");
        assert!(
            !screen.contains("swarmcc monitor"),
            "normal screen back:\n{screen}"
        );
        status
    }
}

/// The child of `parent`, from /proc.
fn child_of(parent: u32) -> Option<i32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid: u32 = stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == parent).then_some(pid)
    })
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn full_screen_view_in_tmux_shows_the_farm_and_restores_the_terminal() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is needed (integration/run-tests.sh installs it)"
    );
    let _one = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
    let farm = Farm::new();
    let tmux = Tmux::new(farm.tmp.path());
    // A shell around the monitor reports how it ended, on the normal screen, and
    // keeps the pane open (tmux 3.3 sometimes never reaps a dead pane's process, so
    // its exit status cannot be read from tmux).
    let dir_var = format!("DISTCC_DIR={}", farm.ddir.display());
    let hosts_var = format!("DISTCC_HOSTS={}", farm.hosts());
    let monitor = [
        "env",
        dir_var.as_str(),
        hosts_var.as_str(),
        "LANG=C.UTF-8",
        "sh",
        "-c",
        "\"$0\" \"$@\"; echo \"monitor exited $?\"; exec sleep 600",
        SWARMCC,
        "--monitor",
        "0.2",
    ];
    let mut new_session = vec!["new-session", "-d", "-s", "mon", "-x", "120", "-y", "40"];
    new_session.extend(monitor);
    tmux.cmd(&new_session);
    let host = format!("127.0.0.1:{}", farm.server.port);
    tmux.wait_for("the idle farm is shown", |s| {
        s.contains("swarmcc monitor") && s.contains(&host) && s.contains("no jobs running")
    });
    let mut make = farm.start_make();
    let busy = tmux.wait_for("running jobs are shown", |s| {
        s.lines()
            .any(|l| l.contains("Compile") && l.contains("127.0.0.1["))
            && s.contains('█')
    });
    let host_line = busy
        .lines()
        .find(|l| l.starts_with(&host))
        .unwrap_or_else(|| panic!("a line for {host}:\n{busy}"));
    assert!(
        host_line.contains('[') && host_line.contains('█'),
        "slot bar: {host_line}"
    );
    assert!(
        host_line.contains(&format!("/{LIMIT}")),
        "busy/limit: {host_line}"
    );
    assert!(busy.contains("throughput:"), "{busy}");
    assert!(busy.contains("slow"), "job files: {busy}");
    assert!(busy.contains("localhost"), "local slots: {busy}");
    // A resize redraws at the new size.
    tmux.cmd(&["resize-window", "-t", "mon", "-x", "90", "-y", "30"]);
    tmux.wait_for("a redraw after the resize", |s| {
        s.contains("swarmcc monitor") && s.lines().all(|l| l.chars().count() <= 90)
    });
    tmux.cmd(&["send-keys", "-t", "mon", "q"]);
    assert_eq!(tmux.wait_exit(), "0", "q quits with status 0");

    // SIGTERM also restores the terminal.
    let mut respawn = vec!["respawn-pane", "-k", "-t", "mon"];
    respawn.extend(monitor);
    tmux.cmd(&respawn);
    tmux.wait_for("the monitor is back", |s| s.contains("swarmcc monitor"));
    let shell: u32 = tmux.pane("#{pane_pid}").parse().unwrap();
    let pid = child_of(shell).expect("the monitor under the pane's shell");
    // SAFETY: kill(2) on the monitor this test started in the pane.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(tmux.wait_exit(), "0", "SIGTERM: a clean exit");

    let st = make.child.wait().unwrap();
    assert!(st.success(), "make -j8");
    assert_eq!(farm.state_files(), Vec::<String>::new());
}
