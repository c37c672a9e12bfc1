#!/usr/bin/env python3
"""Scheduling benchmark: swarmcc -> swarmccd vs distcc -> distccd, side by side.

The "compiler" is a fake (`sleepcc`) that only sleeps, so this measures how well each
tool keeps a farm's slots busy, not CPU. Every server gets its own tag in its
environment (BENCH_HOST=s0, d3...), which the fake compiler, run by that server, writes
with a timestamp to an event log when it starts and ends. From those events:

* slot efficiency   ideal makespan / measured wall time of `make -jJ`, where
                    ideal = ceil(jobs / slots) * job seconds;
* max concurrency   the most fake compilers running at once on any one host, against
                    its /LIMIT (above the limit is a failure);
* hand-off latency  per host, from a job's end to the start of the next job on the freed
                    slot (FIFO), for every end that is followed by another start there.

Scenarios: (a) 4 hosts x /4, 64 jobs, make -j16; (b) the same with make -j32 (more
clients than slots: clients wait for a slot); (c) a 16-host x /16 farm (256 slots).
Tools run interleaved (swarmcc, distcc, swarmcc...) RUNS times; the table shows medians.
Servers listen on loopback ports (one port = one host) and are stopped on exit.
The inputs are `.i` files, so neither client runs a preprocessor.

Usage: integration/bench_sched.py [--runs N] [--quick] [--only a,b,c] [--bin-dir DIR]
Exit status: 0, or 1 if a job failed, a job ran locally, or a host exceeded its limit.
"""

import argparse
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The fake compiler. bash for $EPOCHREALTIME (microseconds, no fork of date).
SLEEPCC = r"""#!/bin/bash
# sleepcc: a fake compiler for integration/bench_sched.py
LC_ALL=C
# swarmcc asks a compiler who it is (-v) before it speaks its extension to a host;
# a fake has no version to tell, and this is not a compile.
[ "$*" = "-v" ] && exit 0
out= src=
while [ $# -gt 0 ]; do
    case "$1" in
        -o) out=$2; shift ;;
        -o*) out=${1#-o} ;;
        -x) shift ;;
        -) src=- ;;
        -*) ;;
        *) src=$1 ;;
    esac
    shift
done
tag=${BENCH_HOST:-unknown}
echo "start $tag $EPOCHREALTIME $$" >> "$BENCH_EVENTS"
# swarmccd may start the compiler before the source arrives and pipe it in (`-x … -`).
[ "$src" = - ] && { cat > /dev/null; src=stdin; touch "$src" 2>/dev/null || src=/dev/null; }
if [ -z "$out" ] || [ ! -e "$src" ]; then
    echo "sleepcc: need -o OUT and an existing input (got out='$out' src='$src')" >&2
    echo "fail $tag $EPOCHREALTIME $$" >> "$BENCH_EVENTS"
    exit 1
fi
sleep "${BENCH_JOB_SECONDS:-0.5}"
printf 'fake object of %s\n' "${src##*/}" > "$out"
echo "end $tag $EPOCHREALTIME $$" >> "$BENCH_EVENTS"
"""

TOOLS = ("swarmcc", "distcc")


class Scenario:
    def __init__(self, key, hosts, limit, jobs, make_j, job_seconds):
        self.key, self.hosts, self.limit = key, hosts, limit
        self.jobs, self.make_j, self.job_seconds = jobs, make_j, job_seconds

    @property
    def slots(self):
        return self.hosts * self.limit

    @property
    def ideal(self):
        return math.ceil(self.jobs / self.slots) * self.job_seconds

    @property
    def label(self):
        return (f"({self.key}) {self.hosts}x/{self.limit} {self.jobs} jobs "
                f"-j{self.make_j} {self.job_seconds:g}s")


def scenarios(quick, job_s, farm_job_s):
    if quick:
        return [
            Scenario("a", 4, 4, 32, 16, job_s),
            Scenario("b", 4, 4, 32, 32, job_s),
            Scenario("c", 16, 16, 256, 256, farm_job_s),
        ]
    return [
        Scenario("a", 4, 4, 64, 16, job_s),
        Scenario("b", 4, 4, 64, 32, job_s),
        Scenario("c", 16, 16, 512, 256, farm_job_s),
    ]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, log, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited ({proc.returncode}):\n{tail(log)}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start:\n{tail(log)}")


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"({path}: {e})"


def kill_group(proc, timeout=5):
    """Stops a server started with start_new_session: its whole process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


class Farm:
    """H servers of one tool for one scenario, each its own port and host tag."""

    def __init__(self, tool, sc, work, binaries):
        self.tool, self.sc = tool, sc
        self.dir = os.path.join(work, f"{sc.key}-{tool}")
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o1777)  # distccd/swarmccd drop root to user distccd
        self.events = os.path.join(self.dir, "events.log")
        self.truncate()
        self.procs, self.ports, self.logs = [], [], []
        self.tags = [f"{tool[0]}{i}" for i in range(sc.hosts)]
        bindir = os.path.join(work, "bin")
        for i, tag in enumerate(self.tags):
            port = free_port()
            log = os.path.join(self.dir, f"{tag}.log")
            env = server_env(bindir, tag, self.events, sc.job_seconds)
            if tool == "swarmcc":
                cmd = [binaries["swarmccd"], "--no-detach", "--listen", "127.0.0.1",
                       "--port", str(port), "--allow", "127.0.0.1", "-j", str(sc.limit),
                       "--log-level", "warning", "--log-file", log,
                       "--whitelist-dir", os.path.join(work, "wl"),
                       # The fake compilers log events outside their job directories.
                       "--no-sandbox",
                       # every job compiled, as distccd does: the rows measure scheduling
                       "--no-cache"]
            else:
                env["DISTCC_CMDLIST"] = os.path.join(work, "cmdlist")
                cmd = ["distccd", "--no-detach", "--daemon", "--listen", "127.0.0.1",
                       "-p", str(port), "--allow", "127.0.0.1", "-j", str(sc.limit),
                       "--log-level", "warning", "--log-file", log]
            self.procs.append(subprocess.Popen(
                cmd, env=env, cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=open(log + ".stderr", "w"),
                start_new_session=True))
            self.ports.append(port)
            self.logs.append(log)

    def wait_ready(self):
        for port, proc, log in zip(self.ports, self.procs, self.logs):
            wait_port(port, proc, log)

    def hosts_spec(self, n=None):
        return " ".join(f"127.0.0.1:{p}/{self.sc.limit}" for p in self.ports[:n])

    def truncate(self):
        with open(self.events, "w"):
            pass
        os.chmod(self.events, 0o666)

    def read_events(self):
        ev = []
        with open(self.events) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    ev.append((parts[0], parts[1], float(parts[2].replace(",", "."))))
        return ev

    def server_logs(self):
        return "\n".join(f"--- {log}\n{tail(log)}{tail(log + '.stderr')}" for log in self.logs)

    def stop(self):
        for p in self.procs:
            kill_group(p)


def server_env(bindir, tag, events, job_seconds):
    env = dict(os.environ)
    for k in ["DISTCC_VERBOSE", "DISTCC_LOG", "DISTCC_HOSTS", "DISTCC_CMDLIST"]:
        env.pop(k, None)
    env.update(DISTCCD_PATH=f"{bindir}:/usr/bin:/bin", BENCH_HOST=tag,
               BENCH_EVENTS=events, BENCH_JOB_SECONDS=f"{job_seconds:g}", LC_ALL="C")
    return env


def client_env(base, farm, distcc_dir, n_hosts=None):
    # Any compile run locally by the client is tagged "local" and counted as a failure.
    return dict(base, DISTCC_HOSTS=farm.hosts_spec(n_hosts), DISTCC_DIR=distcc_dir,
                DISTCC_FALLBACK="0", DISTCC_BACKOFF_PERIOD="0", BENCH_HOST="local",
                SWARMCC_CACHE="0",
                BENCH_EVENTS=farm.events, BENCH_JOB_SECONDS=f"{farm.sc.job_seconds:g}")


def run_make(cmd, env, cwd, timeout):
    """Runs make in its own process group (so a timeout or Ctrl-C stops every wrapper)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p, 2)
        try:
            out, _ = p.communicate(timeout=5)
        except Exception:
            out = b""
        dt = time.perf_counter() - t
        return None, dt, out.decode(errors="replace") + f"\n[timed out after {dt:.0f}s]"
    except BaseException:  # Ctrl-C: stop the build, then let the caller clean up
        kill_group(p, 2)
        raise
    return p.returncode, time.perf_counter() - t, out.decode(errors="replace")


def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ms(seconds):
    return "-" if math.isnan(seconds) else f"{1000 * seconds:.1f}"


def analyse(events, limit):
    """Per host: max concurrency; and hand-off gaps (end -> start on the freed slot)."""
    by_host = {}
    for kind, tag, t in events:
        if kind in ("start", "end"):
            by_host.setdefault(tag, []).append((t, 0 if kind == "end" else 1))
    max_conc, gaps = {}, []
    for tag, evs in by_host.items():
        evs.sort()  # at equal times, ends (0) before starts (1)
        running = peak = 0
        virgin = limit  # slots never used yet: a start there is not a hand-off
        freed = []  # end times of freed slots, oldest first
        for t, is_start in evs:
            if is_start:
                running += 1
                peak = max(peak, running)
                if virgin > 0:
                    virgin -= 1
                elif freed:
                    gaps.append(t - freed.pop(0))
            else:
                running -= 1
                freed.append(t)
        max_conc[tag] = peak
    return max_conc, gaps


def find_agents(work):
    """swarmcc's per-user scheduling agents started for our DISTCC_DIRs (by pid)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"--agent-serve" in argv and any(a.startswith(work.encode()) for a in argv):
            pids.append(int(pid))
    return pids


def stop_agents(work):
    pids = find_agents(work)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.time() + 3
    while time.time() < end and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def setup_work(work):
    bindir = os.path.join(work, "bin")
    os.mkdir(bindir)
    sleepcc = os.path.join(bindir, "sleepcc")
    with open(sleepcc, "w") as f:
        f.write(SLEEPCC)
    os.chmod(sleepcc, 0o755)
    # swarmccd: a whitelist dir holding a link named sleepcc (kept off DISTCCD_PATH).
    wl = os.path.join(work, "wl")
    os.mkdir(wl)
    os.symlink(sleepcc, os.path.join(wl, "sleepcc"))
    # distccd: DISTCC_CMDLIST replaces its whitelist and names the program to run.
    with open(os.path.join(work, "cmdlist"), "w") as f:
        f.write(sleepcc + "\n")
    return bindir


def prepare_build(work, tool, sc):
    d = os.path.join(work, f"{sc.key}-{tool}-build")
    os.mkdir(d)
    names = [f"job{i}" for i in range(sc.jobs)]
    for n in names:
        with open(os.path.join(d, n + ".i"), "w") as f:
            f.write(f"int {n}(void) {{ return 0; }}\n")
    with open(os.path.join(d, "Makefile"), "w") as f:
        f.write("all: " + " ".join(n + ".o" for n in names) + "\n")
        f.write("%.o: %.i\n\t$(WRAPPER) sleepcc -c $< -o $@\n")
    return d, names


def verify(tool, farm, wrapper, base, ddir):
    """One job through host 0: it must run on that server's fake compiler."""
    env = client_env(base, farm, ddir, 1)
    d = os.path.join(farm.dir, "verify")
    os.mkdir(d)
    with open(os.path.join(d, "v.i"), "w") as f:
        f.write("int v;\n")
    farm.truncate()
    rc, dt, out = run_make([wrapper, "sleepcc", "-c", "v.i", "-o", "v.o"], env, d,
                           30 + farm.sc.job_seconds)
    ev = farm.read_events()
    farm.truncate()
    tags = [(k, t) for k, t, _ in ev]
    want = [("start", farm.tags[0]), ("end", farm.tags[0])]
    if rc != 0 or tags != want or not os.path.exists(os.path.join(d, "v.o")):
        raise SystemExit(
            f"\nFAILED: one {tool} job through {farm.hosts_spec(1)} did not run the fake "
            f"compiler on that server.\nexit: {rc}\noutput (end):\n{out[-3000:]}\nevents: {tags} "
            f"(want {want})\n{farm.server_logs()}")


def one_run(tool, sc, farm, wrapper, build, names, base, ddir):
    for n in names:
        try:
            os.unlink(os.path.join(build, n + ".o"))
        except FileNotFoundError:
            pass
    farm.truncate()
    env = client_env(base, farm, ddir)
    launch = time.time()
    rc, wall, out = run_make(
        ["make", "-s", f"-j{sc.make_j}", f"WRAPPER={wrapper}"], env, build,
        timeout=sc.ideal * 10 + 60)
    ev = farm.read_events()
    problems = []
    if rc != 0:
        problems.append(f"make exited {rc}: {out.strip()[-1500:]}")
    starts = [e for e in ev if e[0] == "start"]
    ends = [e for e in ev if e[0] == "end"]
    local = [e for e in ev if e[1] not in farm.tags]
    fails = [e for e in ev if e[0] == "fail"]
    missing = [n for n in names if not os.path.exists(os.path.join(build, n + ".o"))]
    if len(starts) != sc.jobs or len(ends) != sc.jobs:
        problems.append(f"{len(starts)} starts / {len(ends)} ends for {sc.jobs} jobs")
    if local:
        problems.append(f"{len(local)} events not on a server (local compiles?)")
    if fails:
        problems.append(f"{len(fails)} fake compiles failed")
    if missing:
        problems.append(f"{len(missing)} objects missing, e.g. {missing[0]}.o")
    max_conc, gaps = analyse(ev, sc.limit)
    over = {h: c for h, c in max_conc.items() if h in farm.tags and c > sc.limit}
    if over:
        problems.append(f"HOSTS OVER THEIR LIMIT {sc.limit}: {over}")
    st = sorted(t for _, _, t in starts)
    first = st[0] - launch if st else float("nan")
    # all slots busy: the slots-th start (or the last one if fewer jobs than slots)
    fill = st[min(sc.slots, len(st)) - 1] - launch if st else float("nan")
    return dict(wall=wall, first=first, fill=fill, max_conc=max_conc, gaps=gaps,
                used=len([h for h in max_conc if h in farm.tags]), problems=problems)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per tool and scenario (3)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 run, half the jobs, 2 s jobs in the farm")
    ap.add_argument("--only", default="a,b,c", help="scenarios to run, e.g. a,b")
    ap.add_argument("--job-seconds", type=float, default=0.5,
                    help="fake compile time in scenarios a and b (0.5)")
    ap.add_argument("--farm-job-seconds", type=float, default=None,
                    help="fake compile time in scenario c (4; 2 with --quick)")
    ap.add_argument("--bin-dir", help="use swarmcc/swarmccd from DIR instead of building")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    # `kill PID` stops the servers too (the finally below), as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    runs = 1 if args.quick and args.runs == 3 else args.runs
    farm_s = args.farm_job_seconds or (2.0 if args.quick else 4.0)
    chosen = [s for s in scenarios(args.quick, args.job_seconds, farm_s)
              if s.key in args.only.split(",")]

    if args.bin_dir:
        bdir = args.bin_dir
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        bdir = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                            "release")
    binaries = {b: os.path.join(bdir, b) for b in ("swarmcc", "swarmccd")}
    wrappers = {"swarmcc": binaries["swarmcc"], "distcc": shutil.which("distcc")}
    for what, path in list(binaries.items()) + [("distcc", wrappers["distcc"]),
                                                ("distccd", shutil.which("distccd"))]:
        if not path or not os.access(path, os.X_OK):
            raise SystemExit(f"{what} not found ({path}); distcc/distccd: apt-get install distcc")

    # No "distcc"/"swarmcc" in the work dir's name: swarmccd leaves such directories out of
    # its compiler search path (they look like masquerade folders).
    work = tempfile.mkdtemp(prefix="schedbench-")
    os.chmod(work, 0o755)
    farms = []
    failed = False
    results = {}  # (scenario key, tool) -> list of run dicts
    try:
        bindir = setup_work(work)
        base = dict(os.environ)
        for k in ["DISTCC_VERBOSE", "DISTCC_LOG", "DISTCC_HOSTS", "DISTCC_FALLBACK",
                  "DISTCC_BACKOFF_PERIOD", "DISTCC_DIR", "SWARMCC_BUILD_ID", "MAKEFLAGS"]:
            base.pop(k, None)
        base["PATH"] = bindir + ":" + base.get("PATH", "/usr/bin:/bin")
        print(f"swarmcc: {binaries['swarmcc']}\ndistcc:  {wrappers['distcc']}\n"
              f"work dir: {work}; {os.cpu_count()} CPUs; {runs} run(s) per tool and scenario")
        for sc in chosen:
            print(f"\n{sc.label}: {sc.slots} slots, ideal makespan {sc.ideal:.2f}s; "
                  f"load average {loadavg()}")
            cur = {t: Farm(t, sc, work, binaries) for t in TOOLS}
            farms.extend(cur.values())
            ddirs, builds = {}, {}
            for t, farm in cur.items():
                farm.wait_ready()
                ddirs[t] = os.path.join(work, f"{sc.key}-{t}-dccdir")
                os.mkdir(ddirs[t])
                verify(t, farm, wrappers[t], base, ddirs[t])
                builds[t] = prepare_build(work, t, sc)
            for r in range(runs):
                for t in TOOLS:
                    res = one_run(t, sc, cur[t], wrappers[t], *builds[t], base, ddirs[t])
                    results.setdefault((sc.key, t), []).append(res)
                    worst = max(res["max_conc"].values(), default=0)
                    print(f"  run {r + 1} {t:<8} wall {res['wall']:6.2f}s  "
                          f"eff {100 * sc.ideal / res['wall']:5.1f}%  "
                          f"max conc/host {worst}/{sc.limit}  hosts used {res['used']}/{sc.hosts}"
                          f"  first start {1000 * res['first']:5.0f}ms  all busy "
                          f"{1000 * res['fill']:5.0f}ms"
                          f"  hand-off p50 {ms(percentile(res['gaps'], .5)):>6}ms")
                    for p in res["problems"]:
                        failed = True
                        print(f"    FAILURE: {p}")
            for farm in cur.values():
                farm.stop()
            stop_agents(work)

        print(f"\nScheduling: fake 'compilers' that sleep; median of {runs} interleaved runs; "
              f"load average at the end {loadavg()}")
        hdr = (f"{'scenario':<34} {'tool':<8} {'makespan':>9} {'ideal':>7} {'eff':>7} "
               f"{'max conc/host':>14} {'hand-off p50/p90':>17} {'all busy':>9}")
        print(hdr)
        print("-" * len(hdr))
        for sc in chosen:
            for i, t in enumerate(TOOLS):
                rs = results.get((sc.key, t), [])
                if not rs:
                    continue
                wall = statistics.median(r["wall"] for r in rs)
                conc = max(max(r["max_conc"].values(), default=0) for r in rs)
                gaps = [g for r in rs for g in r["gaps"]]
                fill = statistics.median(r["fill"] for r in rs)
                flag = "  OVER LIMIT" if conc > sc.limit else ""
                print(f"{sc.label if i == 0 else '':<34} {t:<8} {wall:8.2f}s {sc.ideal:6.2f}s "
                      f"{100 * sc.ideal / wall:6.1f}% {f'{conc} / {sc.limit}':>14} "
                      f"{ms(percentile(gaps, .5)):>7}/{ms(percentile(gaps, .9)):>6} ms"
                      f"{1000 * fill:7.0f}ms{flag}")
        print("(efficiency = ideal / median wall of make; max conc/host = worst over hosts and "
              "runs, vs /LIMIT;\n hand-off = end of a job to the start of the next one on "
              "that host's freed slot, pooled over runs (- : no job waited);\n all busy = make's launch to the "
              "start of the job that fills the last slot, median)")
        if failed:
            print("\nFAILED: see FAILURE lines above")
    finally:
        for farm in farms:
            farm.stop()
        stop_agents(work)
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
