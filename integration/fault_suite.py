#!/usr/bin/env python3
"""Fault-injection suite: a real C/C++ build through `swarmcc --run make` on a loopback
farm of swarmccd servers while one host fails mid-build, in every way we can think of.

Workload: lzo 2.10 (the full upstream tree shipped in the `lzo-sys` crate, a dev-dependency
of swarmcc, so it is on disk after `cargo fetch`), built by a Makefile this suite writes:
the library three times (C, C with -fPIC, and C++ through one-line .cpp wrappers: lzo is
C++-clean), the examples, lzotest, minilzo and the tests, linked and run (`make check`):
214 translation units with `-O2 -MMD -MP` (no -g: see LZO_MAKEFILE), 12 links. `--project
DIR` takes another lzo tree, or any directory with a Makefile (`make`, `make clean`).

Farm: three swarmccd on 127.0.0.1 (`--no-detach -j 2`, a log file each), DISTCC_HOSTS
`S1/2 S2/2,lzo F/2`, where F is the faulty host: a real server or a Python fault proxy in
front of one. `make -j6` (the sum of the host limits) through the launcher's shims, with
a fresh DISTCC_DIR per build. Scenarios (each fault injected mid-build, once at least
FAULT_AFTER jobs went through the faulty host, and when possible while jobs run on it):

  healthy      no fault (the baseline for the wall-time bound and the job count)
  kill9        the faulty swarmccd is killed with SIGKILL
  restart      killed with SIGKILL, started again on the same port 1.5 s later
               (DISTCC_BACKOFF_PERIOD=3 so the host must come back within the build)
  stall        a proxy that keeps accepting but stops answering (in-flight replies are
               held, new connections are neither read nor answered)
  sigstop      the faulty swarmccd gets SIGSTOP (the kernel still accepts connections)
  garbage      a proxy that answers garbage: random bytes, HTTP, huge length claims,
               non-hex lengths, a wrong protocol version, a truncated object
  slow         a proxy that trickles replies at 2.5 KB/s, gaps 0.1 s (below the IO
               timeout): a very slow but working host; jobs must still complete there
  slow-gap     a proxy that sends the reply's first 24 bytes, then stays silent longer
               than DISTCC_IO_TIMEOUT
  tmpfs-full   the faulty swarmccd's TMPDIR is a 16 MB tmpfs (root only), filled to the
               last page while a job compiles there (a 64 KB tmpfs from the start would
               fail jobs before any went through: preprocessed lzo sources are 50-85 KB)
  tmpfs-full-idle  the same, filled up between two jobs (a transparent proxy holds new
               connections until the host is idle), so every later job meets a full disk
               when the server writes its input
  reset        a proxy that forwards half of each reply, then closes with SO_LINGER 0 (RST);
               every other connection is reset after 4 KB of the request instead
  farm-down    all three servers SIGKILLed at once: the rest compiles locally
  (garbage and reset use DISTCC_BACKOFF_PERIOD=1, so that the host is tried again and
  again and every kind of garbage and reset meets real jobs)

Checks per build: make exits 0; every object (.o) and dependency file (.d) byte-identical
to a plain local gcc build of the same tree at the same path; wall time below a stated
bound; the faulty host's backoff timefile ($DISTCC_DIR/lock/backoff_tcp_<host>_<port>_0)
appears (a watcher polls it every 50 ms, as a later success on the host removes it) and no
healthy host is ever backed off; the launcher's summary (its stderr) parses, reports exit 0,
names the faulty host as failed, lists no healthy host as failed, names every host the
clients' log says they backed off (also in a fallback reason that blames a host), counts
every compiler run exactly once (remote + local = the healthy build's total) and gives
each host as many remote jobs as it really served (server logs, proxy counters).
Wall-time bound: max(2 x healthy, healthy + 10 s) plus the fault's allowance (connect +
IO + compile timeouts; for `slow`, twice the largest object's trickle time).

Every process the suite starts is a process-group leader (a new session) and is killed in
a `finally`/atexit, also on SIGINT/SIGTERM; the suite is a child subreaper, so compilers
orphaned by a killed server and the scheduling agents are adopted and killed too. Temp
dirs are removed (`--keep` keeps them), tmpfs mounts unmounted.

Usage: python3 integration/fault_suite.py [--bin-dir DIR] [--project DIR] [--only a,b]
                                          [--repeat N] [--keep] [--list]
Exit status: 0 if every scenario passed (SKIPPED scenarios are listed, never passed
silently), 1 if any failed, 2 on a setup error.
"""

import argparse
import atexit
import ctypes
import errno
import glob
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- timeouts given to the client (environment knobs) ---------------------------------
# The defaults (SWARMCC_COMPILE_TIMEOUT 600 s, DISTCC_IO_TIMEOUT 300 s) would make one
# stalled host cost ten minutes; these keep the whole suite at a few minutes on 2 cores
# while staying far above what a healthy loopback server needs: the slowest lzo TU
# compiles in about 1 s alone, about 3 s at -j6 on 2 cores.
CONNECT_TIMEOUT = 2  # SWARMCC_CONNECT_TIMEOUT: loopback connects are instant or refused
IO_TIMEOUT = 4  # DISTCC_IO_TIMEOUT: silence allowed mid-transfer
COMPILE_TIMEOUT = 10  # SWARMCC_COMPILE_TIMEOUT: wait for a reply to start
BACKOFF_PERIOD = 60  # DISTCC_BACKOFF_PERIOD: the default, stated explicitly
RESTART_BACKOFF = 3  # the restart scenario: short, so the restarted host is used again
AGENT_IDLE = 5  # SWARMCC_AGENT_IDLE: the per-DISTCC_DIR agent exits soon after a build

HOST_LIMIT = 2  # /LIMIT of each host, and swarmccd -j
SERVERS = 3
FAULT_AFTER = 8  # jobs completed on the faulty host before the fault is injected
INFLIGHT_WAIT = 4.0  # seconds to wait, after FAULT_AFTER, for a job running on the host
TRICKLE_PIECE = 256  # slow: bytes per piece
TRICKLE_GAP = 0.1  # slow: seconds between pieces (2.5 KB/s)
REPLY_HEAD = 24  # slow-gap: bytes sent before the silence (DONE and STAT tokens)
GAP_SILENCE = IO_TIMEOUT + 4  # slow-gap: longer than DISTCC_IO_TIMEOUT
RESET_AFTER = 4096  # reset: request bytes taken before a mid-request reset
REPEAT_BACKOFF = 1  # garbage, reset: short backoff, so the host is retried and every
#                     kind of garbage and reset meets real jobs
TMPFS_SIZE = "16m"
HANG_MIN = 120  # a build still running after max(HANG_MIN, 3 x its bound) is a hang

T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


# --- cleanup: every process, proxy, mount and directory ---------------------------------


class Cleanup:
    def __init__(self):
        self.procs = []  # Popen, each the leader of its own session/process group
        self.proxies = []
        self.mounts = []
        self.dirs = []
        self.done = False

    def popen_pids(self):
        return {p.pid for p in self.procs if p.returncode is None}

    def kill_proc(self, p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.kill()
            except OSError:
                pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def run(self):
        if self.done:
            return
        self.done = True
        for px in self.proxies:
            px.close()
        for p in self.procs:
            self.kill_proc(p)
        reap_adopted()
        for m in reversed(self.mounts):
            unmount(m)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


CLEAN = Cleanup()


def on_signal(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception so that every `finally` runs.
    log(f"signal {signum}: stopping, cleaning up")
    raise SystemExit(128 + signum)


def spawn(argv, env, cwd=None, stdout=None, stderr=None):
    p = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        start_new_session=True,
    )
    CLEAN.procs.append(p)
    return p


def become_subreaper():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def proc_stat(pid):
    """(state, ppid, pgid) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rfind(")") + 2 :].split()
    return rest[0], int(rest[1]), int(rest[2])


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def reap_adopted():
    """Kills and reaps the processes this suite adopted as a subreaper (compilers left
    by a killed server, scheduling agents), never the Popen children it tracks."""
    me = os.getpid()
    for _ in range(50):
        ours = CLEAN.popen_pids()
        adopted = []
        for pid in all_pids():
            st = proc_stat(pid)
            if st and st[1] == me and pid not in ours:
                adopted.append((pid, st))
        if not adopted:
            return
        for pid, (_state, _ppid, pgid) in adopted:
            try:
                if pgid == pid:
                    os.killpg(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid, _ in adopted:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        time.sleep(0.05)


def kill_agents(distcc_dir):
    """The scheduling agent of a DISTCC_DIR (`swarmcc --agent-serve DIR`), by pid, for
    the case the suite could not become a subreaper."""
    want = distcc_dir.encode()
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        for a, b in zip(args, args[1:]):
            if a == b"--agent-serve" and b == want:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def unmount(path):
    if subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            time.sleep(0.05)
            return proc is None or proc.poll() is None
        except OSError:
            time.sleep(0.05)
    return False


def base_env():
    """The caller's environment minus everything that would steer distcc/swarmcc/make."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISTCC_", "SWARMCC_", "_DISTCC"))
        and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO_MAKEFLAGS", "TMPDIR")
    }
    env["LC_ALL"] = "C"
    return env


# --- swarmccd ---------------------------------------------------------------------------

JOB_LINE = re.compile(r"client: \S+ ([A-Z_]+) exit:")


class LogTail:
    """Counts a swarmccd log's job starts ("compiling ... as:", debug level) and job
    results (distccd's one line per job) as the log grows."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.partial = b""
        self.started = 0
        self.connections = 0
        self.results = {}

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return
        self.pos += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if ": compiling " in line and " as: " in line:
                self.started += 1
            elif "] connection from " in line:
                self.connections += 1
            m = JOB_LINE.search(line)
            if m:
                self.results[m.group(1)] = self.results.get(m.group(1), 0) + 1

    def ok(self):
        self.poll()
        return self.results.get("COMPILE_OK", 0)

    def inflight(self):
        self.poll()
        return self.started - sum(self.results.values())

    def open_connections(self):
        self.poll()
        return self.connections - sum(self.results.values())


class Server:
    def __init__(self, ctx, name, tmpdir=None):
        self.ctx = ctx
        self.name = name
        self.port = free_port()
        self.tmpdir = tmpdir or os.path.join(ctx.scn_dir, f"{name}-tmp")
        os.makedirs(self.tmpdir, exist_ok=True)
        # Started as root, swarmccd serves as an unprivileged user: its TMPDIR must be
        # writable by that user.
        os.chmod(self.tmpdir, 0o1777)
        self.proc = None
        self.gen = 0
        self.logs = []
        self.tails = []

    def start(self):
        self.gen += 1
        logf = os.path.join(self.ctx.scn_dir, f"{self.name}-{self.port}-run{self.gen}.log")
        self.logs.append(logf)
        self.tails.append(LogTail(logf))
        env = base_env()
        env["TMPDIR"] = self.tmpdir
        argv = [
            self.ctx.swarmccd,
            "--no-detach",
            "--allow", "127.0.0.1",
            "--listen", "127.0.0.1",
            "--port", str(self.port),
            "-j", str(HOST_LIMIT),
            "--log-file", logf,
            "--log-level", "debug",
            "--whitelist-dir", self.ctx.whitelist,
        ]
        err = open(logf + ".stderr", "wb")
        try:
            self.proc = spawn(argv, env, stdout=err, stderr=err)
        finally:
            err.close()
        if not wait_port(self.port, self.proc):
            raise SetupError(
                f"swarmccd {self.name} did not listen on {self.port}:\n" + tail_file(logf, 20)
            )

    @property
    def tail(self):
        return self.tails[-1]

    def ok_total(self):
        return sum(t.ok() for t in self.tails)

    def kill9(self):
        # SIGKILL to the daemon only, as the OOM killer would: its compilers (in their
        # own process groups) are orphaned, adopted by this suite and reaped later.
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc is not None:
            CLEAN.kill_proc(self.proc)


class SetupError(Exception):
    pass


# --- the fault proxy --------------------------------------------------------------------

GARBAGE = [
    ("random bytes", lambda: os.urandom(4096)),
    ("an HTTP answer", lambda: b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nno\n"),
    ("a 4 GiB stderr claim", lambda: b"DONE00000002STAT00000000SERRffffffff" + os.urandom(512)),
    ("a non-hex length", lambda: b"DONE00000002STAT0000zz00SERR00000000"),
    ("protocol version 9", lambda: b"DONE00000009STAT00000000"),
    (
        "a truncated object",
        lambda: b"DONE00000002STAT00000000SERR00000000SOUT00000000DOTO0000ffff" + b"\x7fELF" + b"\0" * 60,
    ),
]


class FaultProxy:
    """A TCP proxy in front of a real swarmccd. In mode `pass` it forwards both ways; the
    reply of a connection takes the mode current when its first byte arrives from the
    server, and a new connection the mode current when it is accepted, so switching the
    mode mid-build hits running jobs as well as new ones."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.mode = "pass"
        self.lock = threading.Lock()
        # The gate: while closed, new connections wait before reaching the server (and
        # before counting as in flight, under the same lock), so that the server can be
        # made idle between two jobs.
        self.gate = threading.Condition(self.lock)
        self.gate_open = True
        self.stop = threading.Event()
        self.socks = set()
        self.threads = []
        self.n = {"accepted": 0, "forwarded": 0, "forwarded_slow": 0, "faulted": 0, "inflight": 0}
        self.garbage_kinds = {}
        self.garbage_next = 0
        self.resets = {"mid-request": 0, "mid-reply": 0}
        self.reset_accepts = 0
        CLEAN.proxies.append(self)
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    def count(self, key, d=1):
        with self.lock:
            self.n[key] += d

    def _track(self, s):
        with self.lock:
            self.socks.add(s)

    def _close(self, s, reset=False):
        with self.lock:
            self.socks.discard(s)
        try:
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass

    def close(self):
        self.stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            self._close(s)
        for t in self.threads:
            t.join(timeout=2)

    def _accept_loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._track(c)
            self.count("accepted")
            t = threading.Thread(target=self._handle, args=(c,), daemon=True)
            t.start()
            with self.lock:
                self.threads = [x for x in self.threads if x.is_alive()] + [t]

    def _send(self, s, data, timeout=30.0):
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        while view:
            if self.stop.is_set() or time.monotonic() > deadline:
                raise OSError("proxy: send gave up")
            try:
                n = s.send(view)
            except socket.timeout:
                continue
            view = view[n:]

    def _hold(self, c, pump=None, limit=120.0, read=True):
        """Keeps a connection open without answering until the client gives up (or, with
        read=False, without even reading: the client's send may block)."""
        deadline = time.monotonic() + limit
        while not self.stop.is_set() and time.monotonic() < deadline:
            if not read:
                self.stop.wait(0.2)
            elif pump is not None:
                pump.join(timeout=0.2)
                if not pump.is_alive():
                    return
            else:
                try:
                    if not c.recv(65536):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return

    def _garbage(self, c, pump=None):
        with self.lock:
            name, make = GARBAGE[self.garbage_next % len(GARBAGE)]
            self.garbage_next += 1
            self.garbage_kinds[name] = self.garbage_kinds.get(name, 0) + 1
        if pump is None:
            # Take (part of) the request first, as a confused server would.
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                try:
                    if not c.recv(65536):
                        break
                except socket.timeout:
                    break
                except OSError:
                    return
        try:
            self._send(c, make(), timeout=5)
        except OSError:
            return
        self._hold(c, pump, limit=60)

    def _pump_request(self, c, u):
        while not self.stop.is_set():
            try:
                data = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                self._send(u, data)
            except OSError:
                break
        try:
            u.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _handle(self, c):
        u = None
        try:
            c.settimeout(0.2)
            mode = self.mode
            if mode == "stall":
                self.count("faulted")
                self._hold(c, read=False, limit=60)
                return
            if mode == "garbage":
                self.count("faulted")
                self._garbage(c)
                return
            if mode == "reset":
                with self.lock:
                    self.reset_accepts += 1
                    mid_request = self.reset_accepts % 2 == 0
                    if mid_request:
                        self.resets["mid-request"] += 1
                if mid_request:
                    self.count("faulted")
                    self._reset_request(c)
                    return
            with self.gate:
                while not self.gate_open and not self.stop.is_set():
                    self.gate.wait(0.2)
                self.n["inflight"] += 1
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
                self._track(u)
                u.settimeout(0.2)
                self._relay(c, u)
            finally:
                self.count("inflight", -1)
        except OSError:
            pass
        finally:
            if u is not None:
                self._close(u)
            if c in self.socks:
                self._close(c)

    def _reset_request(self, c):
        """Takes the first RESET_AFTER bytes of the request, then resets the connection."""
        got = 0
        end = time.monotonic() + 3
        while got < RESET_AFTER and time.monotonic() < end:
            try:
                data = c.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            got += len(data)
        self._close(c, reset=True)

    def _relay(self, c, u):
        pump = threading.Thread(target=self._pump_request, args=(c, u), daemon=True)
        pump.start()
        reply_mode = None
        buffered = bytearray()
        sent = 0
        while not self.stop.is_set():
            try:
                data = u.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            if reply_mode is None:
                reply_mode = self.mode  # the mode when the reply starts
                if reply_mode not in ("pass", "slow"):
                    self.count("faulted")
            if reply_mode == "pass":
                self._send(c, data)
            elif reply_mode == "stall":
                self._hold(c, pump)
                return
            elif reply_mode == "garbage":
                self._garbage(c, pump)
                return
            elif reply_mode == "slow":
                for i in range(0, len(data), TRICKLE_PIECE):
                    self._send(c, data[i : i + TRICKLE_PIECE])
                    if self.stop.wait(TRICKLE_GAP):
                        return
            elif reply_mode == "gap":
                if sent < REPLY_HEAD:
                    head = data[: REPLY_HEAD - sent]
                    self._send(c, head)
                    sent += len(head)
                    data = data[len(head) :]
                    if sent >= REPLY_HEAD and self.stop.wait(GAP_SILENCE):
                        return
                if data:
                    self._send(c, data)  # too late: the client has given up
            elif reply_mode == "reset":
                buffered += data
        if reply_mode == "reset":
            with self.lock:
                self.resets["mid-reply"] += 1
            half = buffered[: max(1, len(buffered) // 2)]
            self._send(c, bytes(half))
            time.sleep(0.05)
            self._close(c, reset=True)
            return
        if reply_mode == "pass":
            self.count("forwarded")
        elif reply_mode == "slow":
            self.count("forwarded_slow")
        pump.join(timeout=5)


# --- the project ------------------------------------------------------------------------

LZO_HEADERS = (
    "assert.h ctype.h dirent.h errno.h fcntl.h float.h limits.h malloc.h memory.h setjmp.h "
    "signal.h stdarg.h stddef.h stdint.h stdio.h stdlib.h string.h strings.h time.h unistd.h "
    "utime.h sys/mman.h sys/resource.h sys/stat.h sys/time.h sys/types.h sys/wait.h"
).split()

LZO_MAKEFILE = r"""# Written by integration/fault_suite.py: lzo 2.10 built three ways (C, C -fPIC, and
# C++ through one-line .cpp wrappers), plus its examples, lzotest, minilzo and tests.
# The HAVE_* macros are what lzo's own CMakeLists.txt finds on glibc.
CC = gcc
CXX = g++
AR = ar
CPPFLAGS = -I. -Iinclude -Isrc -DLZO_CFG_NO_CONFIG_HEADER=1 @DEFS@
# No -g: gcc's DWARF line tables (column numbers) differ between compiling a .c and
# compiling its preprocessed .i, which is what every distcc-style compiler sends, so with
# -g no object of a distributed build is byte-identical to a local one.
CFLAGS = -O2 -Wall
CXXFLAGS = -std=gnu++17 -O2 -Wall
DEPFLAGS = -MMD -MP
NAMES := $(patsubst src/%.c,%,$(sort $(wildcard src/*.c)))
PROGS := simple dict lzopack overlap precomp precomp2 lzotest testmini align chksum promote sizes

all: $(PROGS:%=bin/%) obj/liblzo2_pic.a obj/liblzo2_cxx.a

obj/c/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
obj/pic/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -DPIC $(DEPFLAGS) -c $< -o $@
obj/cxx/%.o: cxx/%.cpp
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) $(DEPFLAGS) -c $< -o $@
obj/prog/%.o: examples/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
obj/prog/%.o: lzotest/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
obj/prog/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
obj/prog/%.o: minilzo/%.c
	@mkdir -p $(@D)
	$(CC) -Iminilzo -Iinclude/lzo $(CFLAGS) $(DEPFLAGS) -c $< -o $@

obj/liblzo2.a: $(NAMES:%=obj/c/%.o)
	rm -f $@ && $(AR) rcs $@ $^
obj/liblzo2_pic.a: $(NAMES:%=obj/pic/%.o)
	rm -f $@ && $(AR) rcs $@ $^
obj/liblzo2_cxx.a: $(NAMES:%=obj/cxx/%.o)
	rm -f $@ && $(AR) rcs $@ $^
bin/testmini: obj/prog/testmini.o obj/prog/minilzo.o
	@mkdir -p $(@D)
	$(CC) -o $@ $^
bin/%: obj/prog/%.o obj/liblzo2.a
	@mkdir -p $(@D)
	$(CC) -o $@ $^

check: all
	./bin/simple && ./bin/testmini && ./bin/align && ./bin/chksum
	./bin/sizes >/dev/null && ./bin/promote >/dev/null

clean:
	rm -rf obj bin

.PHONY: all check clean
.SECONDARY:
-include $(wildcard obj/*/*.d)
"""


class Project:
    def __init__(self, desc, path, make_args, clean_args):
        self.desc = desc
        self.path = path
        self.make_args = make_args
        self.clean_args = clean_args


def find_lzo(explicit):
    if explicit:
        return explicit
    homes = [os.environ.get("CARGO_HOME"), os.path.expanduser("~/.cargo")]
    for h in homes:
        if not h:
            continue
        hits = sorted(glob.glob(os.path.join(h, "registry/src/*/lzo-sys-*/lzo")))
        if hits:
            return hits[-1]
    # Ask cargo where the dev-dependency lives (it fetches it if needed).
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        ).stdout
        m = re.search(r'"manifest_path":"([^"]*lzo-sys-[^"]*)/Cargo.toml"', out)
        if m and os.path.isdir(os.path.join(m.group(1), "lzo")):
            return os.path.join(m.group(1), "lzo")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def is_lzo(d):
    return os.path.isfile(os.path.join(d, "src/lzo1x_1.c")) and os.path.isdir(
        os.path.join(d, "include/lzo")
    )


def setup_project(root, explicit):
    src = find_lzo(explicit)
    if src and is_lzo(src):
        dst = os.path.join(root, "lzo-2.10")
        shutil.copytree(src, dst, symlinks=True)
        # The crate ships CRLF line ends; normalise text files.
        for dirpath, _dirs, files in os.walk(dst):
            for fn in files:
                p = os.path.join(dirpath, fn)
                with open(p, "rb") as f:
                    data = f.read()
                if b"\r\n" in data and b"\0" not in data:
                    with open(p, "wb") as f:
                        f.write(data.replace(b"\r\n", b"\n"))
        defs = " ".join(
            "-DHAVE_" + re.sub(r"[^0-9A-Z_]", "_", h.upper()) + "=1" for h in LZO_HEADERS
        )
        with open(os.path.join(dst, "Makefile.faultsuite"), "w") as f:
            f.write(LZO_MAKEFILE.replace("@DEFS@", defs))
        os.makedirs(os.path.join(dst, "cxx"))
        for c in sorted(glob.glob(os.path.join(dst, "src", "*.c"))):
            name = os.path.basename(c)[:-2]
            with open(os.path.join(dst, "cxx", name + ".cpp"), "w") as f:
                f.write(f'// lzo\'s {name}.c compiled as C++ (lzo is C++-clean)\n#include "src/{name}.c"\n')
        return Project(
            f"lzo 2.10 from {src} (C, C -fPIC and C++ builds of the library, examples, tests)",
            dst,
            ["-f", "Makefile.faultsuite", "all", "check"],
            ["-f", "Makefile.faultsuite", "clean"],
        )
    if explicit:
        if not os.path.isfile(os.path.join(explicit, "Makefile")):
            raise SetupError(f"--project {explicit}: neither an lzo tree nor a directory with a Makefile")
        dst = os.path.join(root, os.path.basename(os.path.normpath(explicit)))
        shutil.copytree(explicit, dst, symlinks=True)
        return Project(f"{explicit} (its own Makefile)", dst, [], ["clean"])
    fixture = os.path.join(ROOT, "tests/fixtures/proj")
    log("WARNING: lzo-sys sources not found (run `cargo fetch`); falling back to the small "
        "bundled tests/fixtures/proj, which is NOT a real project")
    dst = os.path.join(root, "proj")
    shutil.copytree(fixture, dst)
    return Project("tests/fixtures/proj (fallback: 6 TUs, not a real project)", dst, [], ["clean"])


def output_paths(project_dir):
    for dirpath, _dirs, files in os.walk(project_dir):
        for fn in files:
            if fn.endswith((".o", ".d")):
                p = os.path.join(dirpath, fn)
                yield os.path.relpath(p, project_dir), p


def collect_outputs(project_dir, pristine=frozenset()):
    """Relative path -> bytes of every .o and .d file the build made (files that are
    there after `make clean`, like lzo's prebuilt asm objects, are not the build's)."""
    out = {}
    for rel, p in output_paths(project_dir):
        if rel not in pristine:
            with open(p, "rb") as f:
                out[rel] = f.read()
    return out


def tail_file(path, n):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return f"    ({path}: unreadable)"
    return "\n".join("    " + line for line in lines[-n:])


# --- the launcher's summary ---------------------------------------------------------------

SUMMARY_RE = re.compile(
    r"swarmcc: build finished in ([\d.]+) s: (\d+) remote, (\d+) local, (\d+) fallbacks \(exit (-?\d+)\)"
)


def parse_summary(text):
    m = SUMMARY_RE.search(text)
    if not m:
        return None
    s = {
        "wall": float(m.group(1)),
        "remote": int(m.group(2)),
        "local": int(m.group(3)),
        "fallbacks": int(m.group(4)),
        "exit": int(m.group(5)),
        "per_host": {},
        "failed": {},
        "reasons": [],
        "lines": [ln for ln in text.splitlines() if ln.startswith("swarmcc:")],
    }
    for line in text.splitlines():
        if line.startswith("swarmcc:   per host: "):
            for part in line[len("swarmcc:   per host: ") :].split(", "):
                host, _, n = part.rpartition(" ")
                if n.isdigit():
                    s["per_host"][host] = int(n)
        elif line.startswith("swarmcc:   failed host "):
            host, _, why = line[len("swarmcc:   failed host ") :].partition(": ")
            s["failed"][host] = why
        else:
            m2 = re.match(r"swarmcc:   local \((\d+)\): (.*)", line)
            if m2:
                s["reasons"].append((int(m2.group(1)), m2.group(2)))
    return s


# --- scenarios ----------------------------------------------------------------------------


class Fault:
    """What a scenario does to its faulty host. `hosts` are host specs, `fault_port` the
    port the clients use for the faulty host."""

    injects = True
    expect_backoff = True  # True: must be backed off; None: not judged
    needs_inflight = True
    allowance = COMPILE_TIMEOUT + IO_TIMEOUT + CONNECT_TIMEOUT
    env = {}
    fault_opts = ""

    def __init__(self, ctx):
        self.ctx = ctx
        self.servers = [Server(ctx, f"s{i + 1}") for i in range(SERVERS - 1)]
        self.proxy = None
        self.notes = []

    def setup(self):
        for s in self.servers:
            s.start()
        self.victim = Server(self.ctx, f"s{SERVERS}", tmpdir=self.victim_tmpdir())
        self.victim.start()
        self.fault_port = self.victim.port

    def victim_tmpdir(self):
        return None

    def faulty_ports(self):
        return [self.fault_port]

    def healthy_servers(self):
        """The servers that stay healthy (their logs must match the summary)."""
        return self.servers

    def hosts(self):
        opts = ["", ",lzo"]
        specs = [f"127.0.0.1:{s.port}/{HOST_LIMIT}{opts[i % 2]}" for i, s in enumerate(self.servers)]
        specs.append(f"127.0.0.1:{self.fault_port}/{HOST_LIMIT}{self.fault_opts}")
        return specs

    def progress(self):
        """(jobs completed on the faulty host, jobs running there)."""
        return self.victim.tail.ok(), self.victim.tail.inflight()

    def inject(self):
        pass

    def tick(self):
        pass

    def after_build(self):
        pass

    def settle(self):
        """Waits (briefly) until the fault host's bookkeeping has caught up."""

    def fault_remote_served(self):
        """Remote jobs the faulty host really delivered, or None if unknown (a server
        killed or frozen between sending a reply and logging it)."""
        return None

    def counted_servers(self):
        """The servers whose logs are counted against the summary."""
        return self.healthy_servers()

    def extra_checks(self, res):
        return []

    def teardown(self):
        for s in self.servers + [getattr(self, "victim", None)]:
            if s is not None:
                s.stop()


class Healthy(Fault):
    name = "healthy"
    what = "no fault (baseline)"
    injects = False
    expect_backoff = False
    allowance = 0

    def progress(self):
        return 0, 0

    def fault_remote_served(self):
        return self.victim.ok_total()

    def counted_servers(self):
        return self.healthy_servers() + [self.victim]


class Kill9(Fault):
    name = "kill9"
    what = "swarmccd killed with SIGKILL mid-build"

    def inject(self):
        self.victim.kill9()


class Restart(Fault):
    name = "restart"
    what = "swarmccd SIGKILLed, restarted on the same port 1.5 s later"
    env = {"DISTCC_BACKOFF_PERIOD": str(RESTART_BACKOFF)}

    def inject(self):
        self.victim.kill9()
        self.restart_at = time.monotonic() + 1.5
        self.restarted = False

    def tick(self):
        if not self.restarted and time.monotonic() >= self.restart_at:
            self.victim.start()
            self.restarted = True

    def extra_checks(self, res):
        if not getattr(self, "restarted", False):
            return ["the server was not restarted before the build ended"]
        after = self.victim.tails[-1].ok()
        self.notes.append(f"restarted server served {after} jobs after its restart")
        if after < 1:
            return [
                "the restarted host was never used again (its backoff of "
                f"{RESTART_BACKOFF} s expired well before the build ended)"
            ]
        return []


class SigStop(Fault):
    name = "sigstop"
    what = "swarmccd frozen with SIGSTOP (connections still accepted)"

    def inject(self):
        os.killpg(self.victim.proc.pid, signal.SIGSTOP)
        self.stopped = True

    def after_build(self):
        if getattr(self, "stopped", False):
            try:
                os.killpg(self.victim.proc.pid, signal.SIGCONT)
            except OSError:
                pass


class ProxyFault(Fault):
    mode = None

    def setup(self):
        super().setup()
        self.proxy = FaultProxy(self.victim.port)
        self.fault_port = self.proxy.port

    def progress(self):
        n = self.proxy.n
        return n["forwarded"], n["inflight"]

    def inject(self):
        self.proxy.mode = self.mode

    def fault_remote_served(self):
        n = self.proxy.n
        return n["forwarded"] + n["forwarded_slow"]

    def settle(self):
        # A reply is counted when the server's end of it arrives, a moment after the
        # client has taken its last byte.
        deadline = time.monotonic() + 5
        while self.proxy.n["inflight"] > 0 and time.monotonic() < deadline:
            time.sleep(0.05)

    def teardown(self):
        if self.proxy:
            self.proxy.close()
        super().teardown()

    def extra_checks(self, res):
        n = self.proxy.n
        self.notes.append(
            "proxy: {accepted} connections, {forwarded} replies forwarded, "
            "{forwarded_slow} trickled, {faulted} faulted".format(**n)
        )
        if self.proxy.garbage_kinds:
            self.notes.append(
                "garbage sent: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.proxy.garbage_kinds.items()))
            )
        if res.get("injected") and n["faulted"] == 0 and self.mode != "slow":
            return ["the fault never hit a connection"]
        return []


class Stall(ProxyFault):
    name = "stall"
    what = "proxy accepts, then never answers (running replies held)"
    mode = "stall"


class Garbage(ProxyFault):
    name = "garbage"
    what = f"proxy answers garbage instead of replies (backoff {REPEAT_BACKOFF} s: retried)"
    mode = "garbage"
    env = {"DISTCC_BACKOFF_PERIOD": str(REPEAT_BACKOFF)}


class Slow(ProxyFault):
    name = "slow"
    what = f"proxy trickles replies ({TRICKLE_PIECE} B every {TRICKLE_GAP} s)"
    mode = "slow"
    expect_backoff = None  # slow but working: not a failure (no backoff expected)

    def __init__(self, ctx):
        super().__init__(ctx)
        # The largest reference object, trickled, plus one for the job that waited.
        biggest = max((len(v) for k, v in ctx.reference.items() if k.endswith(".o")), default=0)
        self.allowance = 2 * (biggest / TRICKLE_PIECE * TRICKLE_GAP) + CONNECT_TIMEOUT

    def extra_checks(self, res):
        errs = super().extra_checks(res)
        if res.get("injected") and self.proxy.n["forwarded_slow"] < 1:
            errs.append("no job completed on the slow host after it slowed down")
        return errs


class SlowGap(ProxyFault):
    name = "slow-gap"
    what = f"proxy sends {REPLY_HEAD} reply bytes, then {GAP_SILENCE} s of silence"
    mode = "gap"


class Reset(ProxyFault):
    name = "reset"
    what = (
        "proxy sends half a reply then RST (SO_LINGER 0), or RST after 4 KB of the request; "
        f",lzo host; backoff {REPEAT_BACKOFF} s: retried"
    )
    mode = "reset"
    fault_opts = ",lzo"
    env = {"DISTCC_BACKOFF_PERIOD": str(REPEAT_BACKOFF)}

    def extra_checks(self, res):
        errs = super().extra_checks(res)
        r = self.proxy.resets
        self.notes.append(f"resets: {r['mid-reply']} mid-reply, {r['mid-request']} mid-request")
        if res.get("injected") and r["mid-reply"] < 1:
            errs.append("no reply was reset")
        if res.get("injected") and r["mid-request"] < 1:
            errs.append("no request was reset")
        return errs


class TmpfsFull(Fault):
    name = "tmpfs-full"
    what = f"swarmccd's TMPDIR is a {TMPFS_SIZE} tmpfs, filled up while a job compiles there"

    def victim_tmpdir(self):
        d = os.path.join(self.ctx.scn_dir, "tmpfs")
        os.makedirs(d)
        if os.geteuid() != 0:
            raise Skipped("mounting a tmpfs needs root (the suite runs as uid %d)" % os.geteuid())
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=1777", "tmpfs", d],
            capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise Skipped(f"mount -t tmpfs failed: {r.stderr.strip() or r.returncode}")
        CLEAN.mounts.append(d)
        self.mount = d
        return d

    def inject(self):
        self.filler = os.path.join(self.mount, "filler")
        self.fill()
        st = os.statvfs(self.mount)
        self.notes.append(f"tmpfs filled: {st.f_bavail * st.f_frsize} bytes left")

    def fill(self):
        # Fill to the last page; called again on every tick, as finished jobs free space.
        fd = os.open(self.filler, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for chunk in (1 << 20, 4096):
                buf = b"\0" * chunk
                while True:
                    try:
                        os.write(fd, buf)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)

    def fault_remote_served(self):
        return self.victim.ok_total()

    def counted_servers(self):
        return self.healthy_servers() + [self.victim]

    def tick(self):
        self.fill()

    def teardown(self):
        super().teardown()
        if getattr(self, "mount", None):
            unmount(self.mount)
            CLEAN.mounts.remove(self.mount)


class TmpfsFullIdle(TmpfsFull):
    name = "tmpfs-full-idle"
    what = "the same tmpfs, filled up between two jobs of the host (a gating proxy in front)"
    needs_inflight = False

    def setup(self):
        super().setup()
        # A transparent proxy whose gate lets the host run dry before the fill.
        self.proxy = FaultProxy(self.victim.port)
        self.fault_port = self.proxy.port

    def progress(self):
        return self.proxy.n["forwarded"], 0

    def inject(self):
        px = self.proxy
        with px.gate:
            px.gate_open = False
        deadline = time.monotonic() + 15
        while px.n["inflight"] > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if px.n["inflight"] > 0:
            self.notes.append("the host did not run dry in 15 s: filled with jobs running")
        try:
            super().inject()
        finally:
            with px.gate:
                px.gate_open = True
                px.gate.notify_all()

    def extra_checks(self, res):
        refused = self.victim.tail.results.get("OTHER", 0)
        self.notes.append(f"{refused} jobs reached the full host after the fill and were refused by it")
        return super().extra_checks(res)

    def teardown(self):
        if getattr(self, "proxy", None):
            self.proxy.close()
        super().teardown()


class FarmDown(Fault):
    name = "farm-down"
    what = "all three swarmccd SIGKILLed at once: the rest of the build compiles locally"

    def inject(self):
        for s in self.servers + [self.victim]:
            s.kill9()

    def faulty_ports(self):
        return [s.port for s in self.servers] + [self.fault_port]

    def healthy_servers(self):
        return []


class Skipped(Exception):
    pass


SCENARIOS = [
    Healthy, Kill9, Restart, Stall, SigStop, Garbage, Slow, SlowGap, TmpfsFull, TmpfsFullIdle, Reset,
    FarmDown,
]


# --- running a build ----------------------------------------------------------------------


class Ctx:
    pass


def client_env(ctx, fault, distcc_dir):
    env = base_env()
    env.update(
        {
            "DISTCC_HOSTS": " ".join(fault.hosts()),
            "DISTCC_DIR": distcc_dir,
            "DISTCC_LOG": os.path.join(ctx.scn_dir, "client.log"),
            "DISTCC_BACKOFF_PERIOD": str(BACKOFF_PERIOD),
            "DISTCC_IO_TIMEOUT": str(IO_TIMEOUT),
            "SWARMCC_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "SWARMCC_COMPILE_TIMEOUT": str(COMPILE_TIMEOUT),
            "SWARMCC_AGENT_IDLE": str(AGENT_IDLE),
        }
    )
    env.update(fault.env)
    return env


def run_logged(argv, cwd, log_path, timeout=600):
    """Runs a command in its own process group (killed on timeout or when the suite
    stops), output to log_path; returns its exit status."""
    with open(log_path, "wb") as out:
        p = spawn(argv, base_env(), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        CLEAN.kill_proc(p)
        return -1


def make_clean(ctx):
    log_path = os.path.join(ctx.root, "make-clean.log")
    if run_logged(["make", "-s"] + ctx.project.clean_args, ctx.project.path, log_path) != 0:
        raise SetupError("make clean failed:\n" + tail_file(log_path, 20))


def group_ps(pgid):
    lines = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[2] == pgid:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                cmd = "?"
            lines.append(f"    {pid} {st[0]} {cmd[:160]}")
    return "\n".join(lines)


def run_scenario(ctx, cls, rep):
    res = {"name": cls.name, "what": cls.what, "status": "FAIL", "errors": [], "notes": []}
    ctx.scn_dir = os.path.join(ctx.root, f"{cls.name}-{rep}")
    os.makedirs(ctx.scn_dir)
    os.chmod(ctx.scn_dir, 0o755)
    distcc_dir = os.path.join(ctx.scn_dir, "distcc")
    fault = cls(ctx)
    try:
        fault.setup()
    except Skipped as e:
        res["status"] = "SKIPPED"
        res["errors"].append(str(e))
        fault.teardown()
        return res
    except BaseException:
        fault.teardown()
        raise
    try:
        return run_build(ctx, fault, distcc_dir, res)
    finally:
        fault.teardown()
        kill_agents(distcc_dir)
        reap_adopted()


LOG_PATIENCE = 30.0  # seconds a running server may take to log the jobs it served


def settle_logs(fault):
    """Waits until every running server has logged a job line for each connection it
    accepted: swarmccd writes a job's line after its reply is out, so the build can end
    before the last lines exist, and the counts compared below would come up short on
    a loaded machine. Killed servers are skipped (they will never log)."""
    running = [s for s in fault.counted_servers() if s.proc is not None and s.proc.poll() is None]
    deadline = time.monotonic() + LOG_PATIENCE
    while any(s.tail.open_connections() > 0 for s in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    for s in running:
        if s.tail.open_connections() > 0:
            fault.notes.append(
                f"{s.name}: {s.tail.open_connections()} accepted connections still without a job line "
                f"after {LOG_PATIENCE:.0f}s"
            )


def run_build(ctx, fault, distcc_dir, res):
    make_clean(ctx)
    env = client_env(ctx, fault, distcc_dir)
    fault_host = f"127.0.0.1:{fault.fault_port}"
    faulty_hosts = [f"127.0.0.1:{p}" for p in fault.faulty_ports()]
    all_hosts = [f"127.0.0.1:{s.port}" for s in fault.servers] + [fault_host]
    healthy_hosts = [h for h in all_hosts if h not in faulty_hosts]
    lock_dir = os.path.join(distcc_dir, "lock")
    timefile = {h: "backoff_tcp_" + h.replace(":", "_") + "_0" for h in all_hosts}
    argv = [ctx.swarmcc, "--run", "make", f"-j{ctx.jobs}"] + ctx.project.make_args
    out_path = os.path.join(ctx.scn_dir, "build.stdout")
    err_path = os.path.join(ctx.scn_dir, "build.stderr")
    bound = ctx.bound_base + fault.allowance
    hang_limit = max(HANG_MIN, 3 * bound)
    log(f"{fault.name}: {fault.what}; hosts {env['DISTCC_HOSTS']}")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.monotonic()
        proc = spawn(argv, env, cwd=ctx.project.path, stdout=out, stderr=err)
    injected_at = None
    ready_at = None
    seen = {}
    hung = False
    while True:
        rc = proc.poll()
        now = time.monotonic()
        try:
            names = os.listdir(lock_dir)
        except OSError:
            names = []
        for n in names:
            if n.startswith("backoff_") and n not in seen:
                seen[n] = now - t0
        if injected_at is None and fault.injects and rc is None:
            done, inflight = fault.progress()
            if done >= ctx.fault_after:
                if ready_at is None:
                    ready_at = now
                if inflight >= 1 or not fault.needs_inflight or now - ready_at > INFLIGHT_WAIT:
                    fault.inject()
                    injected_at = now - t0
                    log(f"{fault.name}: fault injected at {injected_at:.1f}s after {done} jobs "
                        f"on {fault_host}, {inflight} running there")
        elif injected_at is not None:
            fault.tick()
        if rc is not None:
            break
        if now - t0 > hang_limit:
            hung = True
            log(f"{fault.name}: HANG: the build still runs after {hang_limit:.0f}s; processes:\n"
                + group_ps(proc.pid))
            CLEAN.kill_proc(proc)
            rc = proc.returncode
            break
        time.sleep(0.05)
    wall = time.monotonic() - t0
    fault.after_build()
    fault.settle()
    settle_logs(fault)
    try:
        for n in os.listdir(lock_dir):
            if n.startswith("backoff_") and n not in seen:
                seen[n] = wall
    except OSError:
        pass
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", "replace")
    summary = parse_summary(stderr)
    outputs = collect_outputs(ctx.project.path, ctx.pristine)

    errors = res["errors"]
    res.update(
        rc=rc, wall=wall, bound=bound, summary=summary, injected=injected_at is not None,
        injected_at=injected_at, hung=hung, fault_host=fault_host,
    )
    if hung:
        errors.append(f"HANG: build killed after {hang_limit:.0f}s")
    if rc != 0:
        errors.append(f"make through swarmcc --run exited {rc}")
    # Objects and dependency files, byte for byte.
    ref = ctx.reference
    n_obj = sum(1 for k in ref if k.endswith(".o"))
    same_obj = sum(1 for k, v in ref.items() if k.endswith(".o") and outputs.get(k) == v)
    n_dep = len(ref) - n_obj
    same_dep = sum(1 for k, v in ref.items() if k.endswith(".d") and outputs.get(k) == v)
    res.update(n_obj=n_obj, same_obj=same_obj, n_dep=n_dep, same_dep=same_dep)
    bad = sorted(k for k, v in ref.items() if outputs.get(k) != v)
    if bad:
        missing = [k for k in bad if k not in outputs]
        differ = [k for k in bad if k in outputs]
        if differ:
            errors.append(f"{len(differ)} outputs differ from the local build: {', '.join(differ[:6])}")
        if missing:
            errors.append(f"{len(missing)} outputs missing: {', '.join(missing[:6])}")
    extra = sorted(set(outputs) - set(ref))
    if extra:
        errors.append(f"{len(extra)} unexpected outputs: {', '.join(extra[:6])}")
    if wall > bound:
        errors.append(f"wall time {wall:.1f}s above the bound {bound:.1f}s")
    # Fault injected mid-build?
    if fault.injects:
        if injected_at is None:
            errors.append(
                f"fault not injected: the build ended before {ctx.fault_after} jobs went through {fault_host}"
            )
    # Backoff.
    not_seen = [h for h in faulty_hosts if timefile[h] not in seen]
    res["backed_off"] = not not_seen
    res["faulty_hosts"] = faulty_hosts
    for h in healthy_hosts:
        if timefile[h] in seen:
            errors.append(f"healthy host {h} was backed off (timefile seen at {seen[timefile[h]]:.1f}s)")
    if fault.expect_backoff is True and injected_at is not None:
        for h in not_seen:
            errors.append(f"faulty host {h} was never backed off ({timefile[h]} never appeared)")
    if fault.expect_backoff is False and len(not_seen) < len(faulty_hosts):
        errors.append(f"host {fault_host} backed off in a healthy build")
    # The launcher's summary.
    if summary is None:
        errors.append("no launcher summary found on stderr of swarmcc --run")
    else:
        if summary["exit"] != rc:
            errors.append(f"summary says exit {summary['exit']}, the launcher exited {rc}")
        total = summary["remote"] + summary["local"]
        if ctx.total_jobs is not None and total != ctx.total_jobs and not hung:
            errors.append(
                f"summary counts {summary['remote']} remote + {summary['local']} local = {total} jobs; "
                f"the build ran {ctx.total_jobs} compiler jobs"
            )
        for h in healthy_hosts:
            if h in summary["failed"]:
                errors.append(f"summary lists healthy host {h} as failed: {summary['failed'][h]}")
        if fault.expect_backoff is True and injected_at is not None:
            for h in faulty_hosts:
                if h not in summary["failed"]:
                    errors.append(f"summary does not name the faulty host {h} as failed")
        # Per-host remote counts against what the servers (and the proxy) really served.
        for s in fault.healthy_servers():
            h = f"127.0.0.1:{s.port}"
            served, said = s.ok_total(), summary["per_host"].get(h, 0)
            if served != said:
                errors.append(f"summary says {said} remote jobs on {h}, its log shows {served} COMPILE_OK")
        served = fault.fault_remote_served()
        said = summary["per_host"].get(fault_host, 0)
        if served is not None and served != said:
            errors.append(f"summary says {said} remote jobs on {fault_host}, it delivered {served}")
        if sum(summary["per_host"].values()) != summary["remote"]:
            errors.append("per-host counts do not add up to the remote count")
        # Every host the clients backed off (their log says so) must be named, and a
        # fallback reason that blames a host must say which.
        for h in sorted(blamed_hosts(os.path.join(ctx.scn_dir, "client.log"))):
            if h not in summary["failed"]:
                errors.append(f"the clients backed off {h}, but the summary does not list it as failed")
            for n, why in summary["reasons"]:
                if why.startswith("remote compile error") and h not in why:
                    errors.append(
                        f"summary reason 'local ({n}): {why}' does not say which host failed "
                        f"(the clients blamed and backed off {h})"
                    )
    errors.extend(fault.extra_checks(res))
    res["notes"].extend(fault.notes)
    if not errors:
        res["status"] = "ok"
    else:
        res["status"] = "FAIL"
        res["excerpts"] = excerpts(ctx, fault, stderr)
    return res


BLAME_RE = re.compile(r"failed on (\S+?)(?:/\d+)?(?:,\S+)? but compiled locally; backing off that host")


def blamed_hosts(client_log):
    """Hosts the clients backed off after a remote compile error that compiled locally."""
    hosts = set()
    try:
        with open(client_log, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = BLAME_RE.search(line)
                if m:
                    hosts.add(m.group(1))
    except OSError:
        pass
    return hosts


def excerpts(ctx, fault, stderr):
    parts = ["  launcher summary:"]
    parts += ["    " + ln for ln in stderr.splitlines() if ln.startswith("swarmcc:")][:20]
    client_log = os.path.join(ctx.scn_dir, "client.log")
    try:
        with open(client_log, encoding="utf-8", errors="replace") as f:
            interesting = [
                ln.rstrip() for ln in f
                if "fallback" in ln or "failed" in ln or "refused" in ln or "error" in ln.lower()
            ]
    except OSError:
        interesting = []
    parts.append(f"  client log ({client_log}), failures, first 12 of {len(interesting)}:")
    parts += ["    " + ln for ln in interesting[:12]]
    for lf in fault.victim.logs:
        parts.append(f"  faulty server log {lf}, last lines:")
        parts.append(tail_file(lf, 8))
    return "\n".join(parts)


# --- main -------------------------------------------------------------------------------


def fmt_table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_bin = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "debug")
    ap.add_argument("--bin-dir", default=default_bin, help="where swarmcc and swarmccd are (default: %(default)s)")
    ap.add_argument("--project", help="an lzo 2.10 tree, or a directory with a Makefile (default: lzo-sys's)")
    ap.add_argument("--only", help="comma-separated scenario names (healthy always runs first)")
    ap.add_argument("--repeat", type=int, default=1, help="run each scenario N times")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, builds)")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args()
    if args.list:
        for c in SCENARIOS:
            print(f"{c.name:11} {c.what}")
        return 0

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    atexit.register(CLEAN.run)
    try:
        return run_suite(args)
    except SetupError as e:
        log(f"SETUP ERROR: {e}")
        return 2
    finally:
        CLEAN.run()


def run_suite(args):
    suite_t0 = time.monotonic()
    ctx = Ctx()
    ctx.swarmcc = os.path.abspath(os.path.join(args.bin_dir, "swarmcc"))
    ctx.swarmccd = os.path.abspath(os.path.join(args.bin_dir, "swarmccd"))
    for b in (ctx.swarmcc, ctx.swarmccd):
        if not os.access(b, os.X_OK):
            raise SetupError(f"{b} not found: build with `cargo build --bins` or give --bin-dir")
    wanted = [c for c in SCENARIOS]
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in {c.name for c in SCENARIOS}]
        if unknown:
            raise SetupError(f"unknown scenarios {unknown}; --list shows them")
        wanted = [c for c in SCENARIOS if c.name == "healthy" or c.name in names]

    subreaper = become_subreaper()
    ctx.root = tempfile.mkdtemp(prefix="swarmcc-faults-")
    os.chmod(ctx.root, 0o755)  # swarmccd drops root; it must reach its dirs and logs
    if args.keep:
        log(f"keeping {ctx.root}")
    else:
        CLEAN.dirs.append(ctx.root)
    ctx.whitelist = os.path.join(ctx.root, "whitelist")
    r = subprocess.run([ctx.swarmcc, "--install-shims", ctx.whitelist], capture_output=True, text=True)
    if r.returncode != 0:
        raise SetupError(f"swarmcc --install-shims failed: {r.stderr}")
    ctx.project = setup_project(ctx.root, args.project)
    ctx.jobs = SERVERS * HOST_LIMIT
    log(f"binaries: {args.bin_dir}")
    log(f"project: {ctx.project.desc}")
    log(f"farm: {SERVERS} swarmccd on 127.0.0.1, -j {HOST_LIMIT} each; builds run "
        f"`swarmcc --run make -j{ctx.jobs} {' '.join(ctx.project.make_args)}`")
    log(f"client timeouts shortened for the suite: SWARMCC_CONNECT_TIMEOUT={CONNECT_TIMEOUT} "
        f"DISTCC_IO_TIMEOUT={IO_TIMEOUT} SWARMCC_COMPILE_TIMEOUT={COMPILE_TIMEOUT} "
        f"DISTCC_BACKOFF_PERIOD={BACKOFF_PERIOD} (restart: {RESTART_BACKOFF}) SWARMCC_AGENT_IDLE={AGENT_IDLE}")
    if not subreaper:
        log("note: could not become a child subreaper; orphans are killed by name match only")

    # Reference: plain local gcc, same tree, same path.
    make_clean(ctx)
    ctx.pristine = frozenset(rel for rel, _ in output_paths(ctx.project.path))
    t = time.monotonic()
    ncpu = os.cpu_count() or 2
    ref_log = os.path.join(ctx.root, "reference-build.log")
    rc = run_logged(["make", f"-j{ncpu}"] + ctx.project.make_args, ctx.project.path, ref_log)
    ref_wall = time.monotonic() - t
    if rc != 0:
        raise SetupError("the local reference build failed:\n" + tail_file(ref_log, 30))
    ctx.reference = collect_outputs(ctx.project.path, ctx.pristine)
    n_obj = sum(1 for k in ctx.reference if k.endswith(".o"))
    if n_obj == 0:
        raise SetupError("the reference build produced no object files")
    log(f"reference build (plain make -j{ncpu}, gcc/g++): {n_obj} objects, "
        f"{len(ctx.reference) - n_obj} dependency files, {ref_wall:.1f}s")
    ctx.fault_after = min(FAULT_AFTER, max(1, n_obj // (SERVERS * 4)))
    ctx.total_jobs = None
    # Until the healthy build has run: a generous bound from the local build.
    ctx.bound_base = max(3 * ref_wall, ref_wall + 20)

    results = []
    for cls in wanted:
        for rep in range(1, args.repeat + 1):
            res = run_scenario(ctx, cls, rep)
            results.append(res)
            s = res.get("summary")
            if cls is Healthy and res["status"] == "ok" and s:
                ctx.total_jobs = s["remote"] + s["local"]
                base = max(res["wall"], ref_wall)
                new = max(2 * base, base + 10)
                if rep == 1:
                    ctx.bound_base = new
                else:
                    ctx.bound_base = max(ctx.bound_base, new)
                log(f"healthy build: {res['wall']:.1f}s, {ctx.total_jobs} compiler jobs; wall-time bound "
                    f"for fault builds = {ctx.bound_base:.1f}s (max(2 x healthy, healthy + 10 s)) "
                    f"+ the fault's allowance")
            report_one(res)

    suite_wall = time.monotonic() - suite_t0
    print_table(results, ctx, suite_wall)
    failed = [r for r in results if r["status"] == "FAIL"]
    return 1 if failed else 0


def report_one(res):
    st = res["status"]
    s = res.get("summary")
    head = f"{res['name']}: {st}"
    if "wall" in res:
        head += f" in {res['wall']:.1f}s (bound {res['bound']:.1f}s)"
    log(head)
    if s:
        for ln in s["lines"]:
            print("      " + ln)
    for n in res["notes"]:
        print("      note: " + n)
    for e in res["errors"]:
        print(("      SKIPPED: " if st == "SKIPPED" else "      ERROR: ") + e)
    if res.get("excerpts"):
        print(res["excerpts"])
    sys.stdout.flush()


def print_table(results, ctx, suite_wall):
    header = ["scenario", "result", "build ok", "objs ident/cmp", "deps ident", "remote/local/fb",
              "wall (bound)", "fault at", "backed off", "summary names host"]
    rows = []
    for r in results:
        s = r.get("summary")
        if r["status"] == "SKIPPED":
            rows.append([r["name"], "SKIPPED", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        eb = {"healthy": "n/a", "slow": "not expected"}
        backed = "yes" if r.get("backed_off") else "no"
        if r["name"] in eb and not r.get("backed_off"):
            backed = f"no ({eb[r['name']]})"
        names = "-"
        if s:
            named = [h for h in r.get("faulty_hosts", [r["fault_host"]]) if h in s["failed"]]
            names = "yes" if len(named) == len(r.get("faulty_hosts", [1])) else "no"
            if r["name"] in eb and names == "no":
                names = "n/a"
        rows.append([
            r["name"],
            r["status"],
            "yes" if r.get("rc") == 0 else f"no (rc {r.get('rc')})",
            f"{r.get('same_obj', 0)}/{r.get('n_obj', 0)}",
            f"{r.get('same_dep', 0)}/{r.get('n_dep', 0)}",
            f"{s['remote']}/{s['local']}/{s['fallbacks']}" if s else "no summary",
            f"{r['wall']:.1f}s ({r['bound']:.0f}s)",
            f"{r['injected_at']:.1f}s" if r.get("injected_at") is not None else "-",
            backed,
            names,
        ])
    print()
    print("Fault-injection suite: " + ctx.project.desc)
    print(f"client timeouts: connect {CONNECT_TIMEOUT}s, io {IO_TIMEOUT}s, compile {COMPILE_TIMEOUT}s; "
          f"make -j{ctx.jobs}; fault after {ctx.fault_after} jobs on the faulty host")
    print(fmt_table(rows, header))
    built = [r for r in results if "wall" in r]
    faults = sum(1 for r in results if r.get("injected"))
    objs = sum(r.get("n_obj", 0) for r in built)
    worst = max(built, key=lambda r: r["wall"]) if built else None
    print()
    print(
        f"totals: {len(built)} builds run, {faults} faults injected, {objs} objects compared "
        f"({sum(r.get('same_obj', 0) for r in built)} identical), worst wall time "
        + (f"{worst['wall']:.1f}s ({worst['name']})" if worst else "-")
        + f"; suite {suite_wall:.0f}s"
    )
    skipped = [r for r in results if r["status"] == "SKIPPED"]
    for r in skipped:
        print(f"SKIPPED {r['name']}: {'; '.join(r['errors'])}")
    failed = [r for r in results if r["status"] == "FAIL"]
    if failed:
        print("FAILED: " + ", ".join(r["name"] for r in failed))
        for r in failed:
            for e in r["errors"]:
                print(f"  {r['name']}: {e}")
    else:
        print("all scenarios passed" + (" (some SKIPPED, see above)" if skipped else ""))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        CLEAN.run()
        sys.exit(130)
