#!/usr/bin/env python3
"""How many jobs are in flight at the server during a Gentoo-style `make -j16 -l4` build
through masquerade shims: swarmcc against distcc, in the same run.

    integration/bench_concurrency.py [--rounds N] [--bin-dir DIR] [--gated-bin-dir DIR]
                                     [--calm LOAD] [--keep]

Builds lzo 2.10 (the crate lzo-sys, as `integration/bench`'s build section) with the
shims of each tool first on PATH and the host `127.0.0.1:PORT/16`, against a server of its
own with `-j 16` (swarmccd for swarmcc, distccd for distcc). Every 5 ms it samples the
connections established at the server's port (remote jobs in flight) and the wrapper
processes alive (jobs make has started), and prints the peak and the mean of each.

make's `-l` reads the 1-minute load average, so a build that starts right after another
is held back by the previous build's load: before each build the script waits until the
load average is below `--calm` (0.8), for at most 5 minutes, and prints the load it
started from. Rounds interleave the tools. `--gated-bin-dir` adds a third row for another
swarmcc build (for instance the one before the preprocessor stopped waiting for the load
limit). On a shared machine other work moves the load, and with it make's `-l`: compare
rows of the same round.

Needs gcc, make, distcc/distccd, ss (iproute2), and the release binaries (built here
unless --bin-dir is given).
"""

import argparse
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_suite  # noqa: E402  (lzo preparation and the rusage helper)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connections(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def wrappers(exes):
    """Wrapper processes alive whose executable is one of `exes` (the scheduling agent,
    a long-lived swarmcc process, is not a job)."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/exe") not in exes:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"--agent-serve" in f.read():
                    continue
        except OSError:
            continue
        n += 1
    return n


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_calm(limit):
    deadline = time.time() + 300
    while load1() > limit and time.time() < deadline:
        time.sleep(1)
    return load1()


class Tool:
    def __init__(self, name, client, server, shims, wrapper_exes):
        self.name, self.client, self.server = name, client, server
        self.shims, self.wrapper_exes = shims, wrapper_exes

    def start_server(self, port, work):
        log = os.path.join(work, f"{self.name}-{port}.log")
        tmp = tempfile.mkdtemp(dir=work)
        os.chmod(tmp, 0o1777)
        if self.name == "distcc":
            cmd = [self.server, "--no-detach", "--daemon", "-j", "16", "-N", "0", "-p",
                   str(port), "--listen", "127.0.0.1", "-a", "127.0.0.1", "--log-file", log]
        else:
            wl = os.path.join(work, "whitelist")
            cmd = [self.server, "--no-detach", "-j", "16", "-N", "0", "-p", str(port),
                   "--listen", "127.0.0.1", "--whitelist-dir", wl, "--log-file", log,
                   "--no-cache"]
        p = subprocess.Popen(cmd, env=dict(os.environ, TMPDIR=tmp), start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return p
            except OSError:
                if p.poll() is not None:
                    raise SystemExit(f"{self.server} exited at start ({p.returncode}); log {log}")
                time.sleep(0.05)
        raise SystemExit(f"{self.server} did not listen on {port} within 60 s")


def build(tool, tree, work, calm):
    subprocess.run(["make", "clean"], cwd=tree, capture_output=True, check=True)
    port = free_port()
    srv = tool.start_server(port, work)
    ddir = tempfile.mkdtemp(dir=work)
    env = dict(os.environ, PATH=f"{tool.shims}:{os.environ['PATH']}", DISTCC_DIR=ddir,
               DISTCC_HOSTS=f"127.0.0.1:{port}/16", SWARMCC_CACHE="0")
    env.pop("MAKEFLAGS", None)
    at_start = wait_calm(calm)
    conns, jobs = collections.Counter(), collections.Counter()
    done = threading.Event()

    def sample():
        while not done.is_set():
            conns[connections(port)] += 1
            jobs[wrappers(tool.wrapper_exes)] += 1
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.time()
    try:
        p = subprocess.run(["make", "-j16", "-l4"], cwd=tree, env=env, capture_output=True,
                           text=True)
    finally:
        wall = time.time() - t0
        done.set()
        sampler.join()
        os.killpg(srv.pid, signal.SIGTERM)
        srv.wait()
    if p.returncode != 0:
        raise SystemExit(f"{tool.name} build failed ({p.returncode}):\n{p.stderr[-3000:]}")
    if not os.path.exists(os.path.join(tree, "src", ".libs", "liblzo2.a")):
        raise SystemExit(f"{tool.name} build made no src/.libs/liblzo2.a")

    def stats(c):
        n = sum(c.values())
        return max(c), sum(k * v for k, v in c.items()) / n

    return dict(wall=wall, load=at_start, conns=stats(conns), jobs=stats(jobs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bin-dir", help="swarmcc and swarmccd from DIR (default: cargo build)")
    ap.add_argument("--gated-bin-dir", help="a third row: the swarmcc/swarmccd in DIR")
    ap.add_argument("--calm", type=float, default=0.8,
                    help="start each build once the 1-minute load is below this (0.8)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()

    bins = args.bin_dir
    if not bins:
        subprocess.run(["cargo", "build", "--release", "--bins", "--quiet"],
                       cwd=bench_suite.ROOT, check=True)
        bins = os.path.join(os.environ.get("CARGO_TARGET_DIR",
                                           os.path.join(bench_suite.ROOT, "target")), "release")
    work = tempfile.mkdtemp(prefix="swarmcc-conc-")
    os.chmod(work, 0o755)
    try:
        bench_suite.build_rusage_helper(work)
        tree = bench_suite.prepare_lzo(types.SimpleNamespace(work=work, base=dict(os.environ)))
        os.mkdir(os.path.join(work, "whitelist"))
        tools = []
        for name, d in [("swarmcc", bins), ("swarmcc-gated", args.gated_bin_dir)]:
            if not d:
                continue
            client = os.path.realpath(os.path.join(d, "swarmcc"))
            shims = os.path.join(work, f"shims-{name}")
            os.mkdir(shims)
            for cc in ["gcc", "cc", "x86_64-linux-gnu-gcc"]:
                os.symlink(client, os.path.join(shims, cc))
                wl = os.path.join(work, "whitelist", cc)
                if not os.path.lexists(wl):
                    os.symlink(client, wl)
            tools.append(Tool(name, client, os.path.join(d, "swarmccd"), shims, {client}))
        distcc = os.path.realpath(shutil.which("distcc"))
        tools.append(Tool("distcc", distcc, shutil.which("distccd"), "/usr/lib/distcc",
                          {distcc}))
        print(f"make -j16 -l4 of lzo 2.10 through the shims, host 127.0.0.1:PORT/16, "
              f"server -j 16; each build starts below load {args.calm}")
        for r in range(args.rounds):
            order = tools if r % 2 == 0 else tools[::-1]
            for t in order:
                res = build(t, tree, work, args.calm)
                (pc, mc), (pj, mj) = res["conns"], res["jobs"]
                print(f"  round {r + 1} {t.name:<14} wall {res['wall']:5.1f} s  "
                      f"in flight at the server: peak {pc:2d} mean {mc:4.1f}  "
                      f"jobs make started: peak {pj:2d} mean {mj:4.1f}  "
                      f"(load at start {res['load']:.2f})", flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
