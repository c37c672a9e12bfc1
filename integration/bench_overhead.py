#!/usr/bin/env python3
"""Per-job wall overhead on loopback: swarmcc->swarmccd vs distcc->distccd vs plain gcc.

Runs the three interleaved (gcc, swarmcc, distcc, gcc, ...) so machine noise hits all
of them alike, and prints medians. Starts its own swarmccd and distccd on free loopback
ports and stops them on exit. Usage: integration/bench_overhead.py [RUNS]
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 21


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


def medium_source():
    lines = ["#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>"]
    for i in range(200):
        lines.append(
            f"int fn{i}(const char *s) {{ char b[64]; snprintf(b, sizeof b, \"%s{i}\", s);"
            f" return (int)strlen(b) + atoi(s) * {i}; }}"
        )
    return "\n".join(lines) + "\n"


def timed(cmd, env, cwd):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode(errors='replace')}")
    return dt


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    swarmcc = os.path.join(ROOT, "target/release/swarmcc")
    swarmccd = os.path.join(ROOT, "target/release/swarmccd")
    work = tempfile.mkdtemp(prefix="swarmcc-bench-")
    os.chmod(work, 0o755)
    procs = []
    try:
        with open(os.path.join(work, "tiny.c"), "w") as f:
            f.write("int small(void) { return 42; }\n")
        with open(os.path.join(work, "medium.c"), "w") as f:
            f.write(medium_source())
        sport, dport = free_port(), free_port()
        logdir = os.path.join(work, "log")
        os.mkdir(logdir)
        os.chmod(logdir, 0o1777)
        procs.append(subprocess.Popen(
            [swarmccd, "--no-detach", "--listen", "127.0.0.1", "--port", str(sport),
             "--allow", "127.0.0.1", "-j", "4", "--log-level", "warning",
             "--log-file", os.path.join(logdir, "swarmccd.log")]))
        procs.append(subprocess.Popen(
            ["distccd", "--no-detach", "--daemon", "--listen", "127.0.0.1", "-p", str(dport),
             "--allow", "127.0.0.1", "-j", "4", "--log-level", "warning",
             "--log-file", os.path.join(logdir, "distccd.log")]))
        wait_port(sport)
        wait_port(dport)
        base = dict(os.environ)
        for k in ["DISTCC_VERBOSE", "DISTCC_LOG", "DISTCC_HOSTS"]:
            base.pop(k, None)
        env_s = dict(base, DISTCC_HOSTS=f"127.0.0.1:{sport}/4", DISTCC_FALLBACK="0",
                     DISTCC_DIR=os.path.join(work, "ds"))
        env_d = dict(base, DISTCC_HOSTS=f"127.0.0.1:{dport}/4", DISTCC_FALLBACK="0",
                     DISTCC_DIR=os.path.join(work, "dd"))
        os.makedirs(env_d["DISTCC_DIR"], exist_ok=True)
        rows = []
        for name, flags in [("tiny.c", ["-c"]), ("medium.c", ["-O2", "-c"])]:
            t = {"gcc": [], "swarmcc": [], "distcc": []}
            cmds = {
                "gcc": (["gcc", *flags, name, "-o", "g.o"], base),
                "swarmcc": ([swarmcc, "gcc", *flags, name, "-o", "s.o"], env_s),
                "distcc": (["distcc", "gcc", *flags, name, "-o", "d.o"], env_d),
            }
            for _ in range(2):  # warm-up: page cache, server threads
                for k, (c, e) in cmds.items():
                    timed(c, e, work)
            for _ in range(RUNS):
                for k, (c, e) in cmds.items():
                    t[k].append(timed(c, e, work))
            med = {k: statistics.median(v) for k, v in t.items()}
            rows.append((name, med))
        print(f"\nPer-job wall time on loopback, median of {RUNS} interleaved runs")
        print(f"{'file':<10} {'gcc -c':>9} {'swarmcc':>9} {'distcc':>9} "
              f"{'swarmcc overhead':>17} {'distcc overhead':>16} {'ratio':>6}")
        for name, m in rows:
            so = m["swarmcc"] - m["gcc"]
            do = m["distcc"] - m["gcc"]
            ratio = so / do if do > 0 else float("nan")
            print(f"{name:<10} {m['gcc']*1000:8.1f}ms {m['swarmcc']*1000:8.1f}ms "
                  f"{m['distcc']*1000:8.1f}ms {so*1000:15.1f}ms {do*1000:14.1f}ms {ratio:6.2f}")
        print("(overhead = median wall minus plain gcc's median; ratio = swarmcc/distcc overhead)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
