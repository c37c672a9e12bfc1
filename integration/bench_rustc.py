#!/usr/bin/env python3
"""Distributed rustc: a cold `cargo build` of a real crate graph, local vs through swarmcc.

The project is integration/bench-rust (about fifty crates from crates.io, Cargo.lock
committed: serde and its derive, serde_json, clap with its derive, regex, anyhow, log,
env_logger, rand, itertools, thiserror, bitflags, hex, smallvec and their
dependencies), copied to a temporary directory; `cargo fetch --locked` runs first so
that no download is timed. Every build is a debug `cargo build --locked` with
CARGO_INCREMENTAL=0 into an emptied target dir:

  local             plain cargo
  swarmcc, cold     RUSTC_WRAPPER=swarmcc against a swarmccd --rustc on loopback
                    (127.0.0.1:PORT/SLOTS) started for this build with an empty
                    --rustc-cache: every input is sent
  swarmcc, warm     the same server again, target dir emptied: the server has the
                    inputs already (what a second developer's build, or a CI rebuild,
                    would see)
  farm cache cold   RUSTC_WRAPPER=swarmcc against another swarmccd --rustc, this one
                    with its farm cache on (an empty --cache-dir): every job runs and
                    its result is stored
  farm cache warm   that server again, target dir emptied: every remote job is a farm
                    cache hit, no rustc runs on the server

The input-cache rows' servers run --no-cache, so that they measure distribution.
Measured per build: wall time; client CPU, user+sys of the cargo process tree from
os.wait4()'s rusage of the cargo child (cargo, rustc, swarmcc, build scripts: every
reaped descendant), plus swarmcc's scheduling agent, a detached process whose CPU is read
from /proc/<agent>/stat (shown separately too); server CPU from /proc/<swarmccd>/stat
before and after, its own utime+stime ("self": serving, hashing, the cache) and with its
reaped children's cutime+cstime ("+rustc": the compilers it ran). The server is a
separate process started before the build, never in cargo's tree. Run as root, swarmccd
offers root's rustup toolchain itself (linked below /var/lib/swarmccd/rust-toolchains).

Runs are interleaved (local first in even rounds, swarmcc first in odd ones) and medians
shown with [min-max]. The bytes sent are the sums of the client's
`rustc job <crate>: sent X of Y bytes (n of m files)` lines (DISTCC_LOG), cold vs warm.
"client CPU per crate compile": local client CPU / rustc jobs; for swarmcc, the client
CPU less the jobs that still ran locally (charged at the local average) / remote jobs.

Both run on this machine: on loopback the farm shares the client's cores, so the wall
times say what the protocol and the server cost, not what a real farm gains.

Usage: integration/bench_rustc.py [--runs N] [--jobs J] [--slots S]
                                  [--swarmcc PATH] [--swarmccd PATH] [--keep]
Defaults: 3 runs, cargo's own -j, 4 slots, target/release/swarmcc{,d}
(cargo build --release first). About 3 minutes a run on 2 cores.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# The suite's own helpers: one implementation of each.
from bench_sched import find_agents, free_port, stop_agents, tail
from bench_suite import read_stat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "integration", "bench-rust")
CLK = os.sysconf("SC_CLK_TCK")

JOB_RE = re.compile(r"\] job (\S+): (.*)$")
SENT_RE = re.compile(r"rustc job (\S+): sent (\d+) of (\d+) bytes \((\d+) of (\d+) files\)")
# cargo's probes (-vV, --print, the target-info crate): no compile of a crate.
PROBES = ("rustc", "___")

# Everything that would change what cargo, rustc or swarmcc do.
SCRUB_PREFIXES = ("DISTCC_", "SWARMCC_", "DISTCCD_")
SCRUB = (
    "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO_MAKEFLAGS", "CARGO_BUILD_JOBS",
    "CARGO_BUILD_TARGET", "CARGO_BUILD_RUSTC", "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER", "CARGO_BUILD_RUSTFLAGS", "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_INCREMENTAL", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR",
    "CARGO_INCREMENTAL", "RUSTC", "RUSTC_WRAPPER", "RUSTC_WORKSPACE_WRAPPER", "RUSTFLAGS",
    "RUSTDOC", "RUSTDOCFLAGS", "OUT_DIR", "CC", "CXX", "CFLAGS", "CXXFLAGS", "TMPDIR",
)


def cargo():
    return os.environ.get("CARGO", "cargo")


def base_env(target):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(SCRUB_PREFIXES) and k not in SCRUB}
    env.update(CARGO_TARGET_DIR=target, CARGO_INCREMENTAL="0", CARGO_TERM_COLOR="never")
    return env


# ----------------------------------------------------------------------------- /proc

def proc_cpu(pid):
    """(utime+stime, cutime+cstime) of PID in seconds, or None if it is gone."""
    r = read_stat(pid)
    if r is None:
        return None
    return (int(r[11]) + int(r[12])) / CLK, (int(r[13]) + int(r[14])) / CLK


# ----------------------------------------------------------------------------- server

class Server:
    """A swarmccd --rustc on loopback with its own cache, its own process group."""

    def __init__(self, binary, work, name, farm_cache=False):
        self.dir = os.path.join(work, name)
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o1777)  # swarmccd started as root runs as user distccd
        self.log = os.path.join(self.dir, "swarmccd.log")
        self.cache = os.path.join(self.dir, "cache")
        self.proc = None
        for _ in range(5):
            self.port = free_port()
            cmd = [binary, "--no-detach", "--log-level", "info", "--listen", "127.0.0.1",
                   "--port", str(self.port), "--allow", "127.0.0.1", "--log-file", self.log,
                   "--rustc", "--rustc-cache", self.cache]
            # The input-cache rows measure distribution: every job runs. The farm-cache
            # rows keep results in their own directory.
            cmd += (["--cache-dir", os.path.join(self.dir, "farm-cache")] if farm_cache
                    else ["--no-cache"])
            env = dict(os.environ, TMPDIR=self.dir)
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)
            if self._wait_listening():
                return
            self.stop()
            if "Address already in use" not in tail(self.log):
                break
        raise SystemExit(f"swarmccd did not start:\n{tail(self.log)}")

    def _wait_listening(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self.proc.poll() is None
            except OSError:
                time.sleep(0.05)
        return False

    def cpu(self):
        c = proc_cpu(self.proc.pid)
        if c is None:
            raise SystemExit(f"swarmccd died:\n{tail(self.log)}")
        return c

    def finished_jobs(self):
        try:
            with open(self.log, errors="replace") as f:
                return sum(1 for line in f if " rustc " in line and re.search(
                    r"\b(COMPILE_OK|COMPILE_ERROR|COMPILE_TIMEOUT|CLI_DISCONN|OTHER|CACHE_HIT)\b",
                    line))
        except OSError:
            return 0

    def stop(self):
        """SIGTERM, then SIGKILL, to the server's own process group (its pid)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(5)
                return
            except subprocess.TimeoutExpired:
                continue


# ----------------------------------------------------------------------------- builds

def timed(cmd, env, cwd, errpath):
    """(wall s, user+sys s of the whole reaped tree) of one command, from wait4."""
    with open(errpath, "wb") as err:
        start = time.monotonic()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=err, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{tail(errpath, 40)}")
    return wall, ru.ru_utime + ru.ru_stime


def empty(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def build_cmd(args):
    cmd = [cargo(), "build", "--locked"]
    if args.jobs:
        cmd += ["-j", str(args.jobs)]
    return cmd


def local_build(ctx, i):
    target = os.path.join(ctx.work, "target-local")
    empty(target)
    wall, cpu = timed(build_cmd(ctx.args), base_env(target), ctx.proj,
                      os.path.join(ctx.work, f"local-{i}.out"))
    return dict(wall=wall, client=cpu, agent=0.0, server_self=None, server_all=None,
                jobs=None, remote=None, sent=None, total=None)


def parse_client_log(path):
    jobs, remote, sent, total = 0, 0, 0, 0
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
    except OSError:
        lines = []
    for line in lines:
        m = JOB_RE.search(line)
        if m and m.group(1) not in PROBES:
            jobs += 1
            if re.match(r"(remote|farm cache hit) on \S+ ok\b", m.group(2)):
                remote += 1
        m = SENT_RE.search(line)
        if m:
            sent += int(m.group(2))
            total += int(m.group(3))
    return jobs, remote, sent, total


def farm_build(ctx, server, i, kind):
    target = os.path.join(ctx.work, "target-farm")
    empty(target)
    ddir = os.path.join(ctx.work, f"distcc-{kind}-{i}")
    os.makedirs(ddir)
    client_log = os.path.join(ctx.work, f"client-{kind}-{i}.log")
    env = base_env(target)
    env.update(RUSTC_WRAPPER=ctx.args.swarmcc, DISTCC_DIR=ddir, DISTCC_LOG=client_log,
               DISTCC_HOSTS=f"127.0.0.1:{server.port}/{ctx.args.slots}")
    before = server.cpu()
    try:
        wall, cpu = timed(build_cmd(ctx.args), env, ctx.proj,
                          os.path.join(ctx.work, f"farm-{kind}-{i}.out"))
        jobs, remote, sent, total = parse_client_log(client_log)
        # The server logs a job after its reply is out: let it catch up before reading
        # its CPU (each remote attempt ends in one job line).
        end = time.time() + 30
        while time.time() < end and server.finished_jobs() < ctx.seen_jobs[server] + remote:
            time.sleep(0.05)
        ctx.seen_jobs[server] = server.finished_jobs()
        after = server.cpu()
        agents = find_agents(ddir)
        agent = sum(sum(c) for c in (proc_cpu(p) for p in agents) if c is not None)
    finally:
        stop_agents(ddir)
    return dict(wall=wall, client=cpu + agent, agent=agent,
                server_self=after[0] - before[0], server_all=sum(after) - sum(before),
                jobs=jobs, remote=remote, sent=sent, total=total)


# ----------------------------------------------------------------------------- report

def med(xs):
    return statistics.median(xs)


def cell(xs, fmt="{:.1f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"{fmt.format(med(xs))} [{fmt.format(min(xs))}-{fmt.format(max(xs))}]"


def mib(n):
    return f"{n / 2**20:.1f} MiB"


def report(ctx, results):
    rows = [("local", results["local"]), ("swarmcc, cold cache", results["cold"]),
            ("swarmcc, warm cache", results["warm"]),
            ("swarmcc, farm cache cold", results["fill"]),
            ("swarmcc, farm cache warm", results["hit"])]
    print()
    print(f"cold cargo build (debug, CARGO_INCREMENTAL=0, -j {ctx.args.jobs or 'default'}) "
          f"of integration/bench-rust: {ctx.crates} crates; {ctx.args.runs} run(s), "
          f"median [min-max]; load average at start {ctx.load}")
    head = ("", "wall s", "client CPU s", "(agent)", "server CPU s self", "server +rustc",
            "remote/jobs")
    table = [head]
    for name, rs in rows:
        table.append((
            name,
            cell([r["wall"] for r in rs]),
            cell([r["client"] for r in rs]),
            cell([r["agent"] for r in rs], "{:.2f}") if name != "local" else "-",
            cell([r["server_self"] for r in rs]),
            cell([r["server_all"] for r in rs]),
            "-" if name == "local" else
            f"{med([r['remote'] for r in rs]):g}/{med([r['jobs'] for r in rs]):g}",
        ))
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))))

    print()
    print("bytes sent (sum of the client's `rustc job …: sent X of Y bytes` lines):")
    for name, key in (("cold cache", "cold"), ("warm cache", "warm")):
        rs = results[key]
        sent = med([r["sent"] for r in rs])
        total = med([r["total"] for r in rs])
        share = f"{100 * sent / total:.1f}%" if total else "-"
        print(f"  {name}: {mib(sent)} of {mib(total)} of inputs ({share}), "
              f"median of {len(rs)}")

    print()
    local_cpu = med([r["client"] for r in results["local"]])
    cold = results["cold"]
    jobs = med([r["jobs"] for r in cold])
    remote = med([r["remote"] for r in cold])
    if jobs and remote:
        per_local = local_cpu / jobs
        farm_cpu = med([r["client"] for r in cold])
        per_remote = (farm_cpu - per_local * (jobs - remote)) / remote
        print("client CPU per crate compile (cold cache; cargo and build scripts included):")
        print(f"  local:   {1000 * per_local:.0f} ms ({local_cpu:.1f} s / {jobs:g} rustc jobs)")
        print(f"  remote:  {1000 * per_remote:.0f} ms (({farm_cpu:.1f} s - {jobs - remote:g} "
              f"local jobs at the local average) / {remote:g} remote jobs)")
        print(f"  ratio remote/local: {per_remote / per_local:.2f}")
    else:
        print("no rustc job went remote: see the client logs in --keep's work dir")


# ----------------------------------------------------------------------------- main

class Ctx:
    pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=0, help="cargo -j (default: cargo's)")
    ap.add_argument("--slots", type=int, default=4, help="the host's /SLOTS")
    ap.add_argument("--swarmcc", default=os.path.join(ROOT, "target/release/swarmcc"))
    ap.add_argument("--swarmccd", default=os.path.join(ROOT, "target/release/swarmccd"))
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = ap.parse_args(argv)
    for b in (args.swarmcc, args.swarmccd):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b} is not there: cargo build --release (or --swarmcc/--swarmccd)")
    args.swarmcc = os.path.abspath(args.swarmcc)
    args.swarmccd = os.path.abspath(args.swarmccd)

    ctx = Ctx()
    ctx.args = args
    ctx.work = tempfile.mkdtemp(prefix="bench-rustc-")
    os.chmod(ctx.work, 0o755)  # the server's user reaches its dirs
    servers = []
    try:
        ctx.proj = os.path.join(ctx.work, "bench-rust")
        shutil.copytree(FIXTURE, ctx.proj, ignore=shutil.ignore_patterns("target"))
        print("fetching the crates (cargo fetch --locked)…", flush=True)
        subprocess.run([cargo(), "fetch", "--locked"], cwd=ctx.proj, check=True,
                       env=base_env(os.path.join(ctx.work, "target-fetch")))
        tree = subprocess.run([cargo(), "tree", "--locked", "--prefix", "none"],
                              cwd=ctx.proj, check=True, capture_output=True, text=True,
                              env=base_env(os.path.join(ctx.work, "target-fetch"))).stdout
        ctx.crates = len({line.replace(" (*)", "").strip() for line in tree.splitlines()
                          if line.strip()})
        ctx.seen_jobs = {}
        with open("/proc/loadavg") as f:
            ctx.load = " ".join(f.read().split()[:3])

        results = {"local": [], "cold": [], "warm": [], "fill": [], "hit": []}
        for i in range(args.runs):
            def farm():
                server = Server(args.swarmccd, ctx.work, f"server-{i}")
                servers.append(server)
                ctx.seen_jobs[server] = 0
                try:
                    results["cold"].append(farm_build(ctx, server, i, "cold"))
                    results["warm"].append(farm_build(ctx, server, i, "warm"))
                finally:
                    server.stop()
                server = Server(args.swarmccd, ctx.work, f"server-cache-{i}", farm_cache=True)
                servers.append(server)
                ctx.seen_jobs[server] = 0
                try:
                    results["fill"].append(farm_build(ctx, server, i, "fill"))
                    results["hit"].append(farm_build(ctx, server, i, "hit"))
                finally:
                    server.stop()
                for kind in ("cold", "warm", "fill", "hit"):
                    r = results[kind][-1]
                    print(f"  run {i + 1} swarmcc {kind}: {r['wall']:.1f}s wall, "
                          f"{r['client']:.1f}s client CPU, {r['server_all']:.1f}s server CPU, "
                          f"{r['remote']}/{r['jobs']} remote, sent {mib(r['sent'])}",
                          flush=True)

            def local():
                r = local_build(ctx, i)
                results["local"].append(r)
                print(f"  run {i + 1} local: {r['wall']:.1f}s wall, "
                      f"{r['client']:.1f}s client CPU", flush=True)

            for step in ((local, farm) if i % 2 == 0 else (farm, local)):
                step()
        report(ctx, results)
        if args.keep:
            print(f"\nwork dir kept: {ctx.work}")
    finally:
        for s in servers:
            s.stop()
        if not args.keep:
            shutil.rmtree(ctx.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
