#!/usr/bin/env python3
"""swarmcc -> swarmccd vs distcc -> distccd, side by side: the benchmark suite.

Run it as `integration/bench` (a wrapper around this file). One command, a table per
section, then a "targets" block. Both servers run on loopback on this machine with the
same -j (cores + 2) and the same nice level (0), logging at warning level; both clients get
the same host spec (127.0.0.1:PORT/J, `,lzo` with --lzo), a fresh DISTCC_DIR each and
DISTCC_FALLBACK=0 (a failed distribution is an error, never a silent local compile).
Measurements are interleaved (the reference first, then the two tools in an order that
alternates every round, so each follows the reference equally often) and medians are
reported.

Sections
  overhead    (a) per-job wall time of `TOOL gcc -c` minus plain `gcc -c`, for a tiny C
              file, a medium C file (-O2, 300 functions) and a heavy C++ file (STL and
              iostream instantiations, about 1.5 s of CPU), and
              (b) client CPU per remote job: user+sys of the wrapper and everything it
              runs locally (the preprocessor), from wait4()'s rusage of each client
              process, against the CPU of a local `gcc -c` of the same file. swarmcc's
              per-user scheduling agent is a separate, detached process: its CPU is read
              from /proc/<agent>/stat around each batch and shown as its own row (and
              added in the "incl. agent" row, which the target uses).
  throughput  (c) server throughput, tiny jobs: a raw-protocol load generator (protocol
              1, identical requests, N concurrent connections, no client-side work) for a
              fixed time against each server; jobs/s, latency, the server process tree's
              CPU per job; peak memory of the server daemons (VmHWM, PSS) and of each
              client compiling an .i file (ru_maxrss, no local preprocessor), and the agent.
  build       (d) wall time of a real project build, lzo 2.10 (from the crate lzo-sys in
              ~/.cargo/registry; about 100 compiles, libtool, -MD dependency files) with
              make -jJ through CC="swarmcc gcc", CC="distcc gcc" and plain gcc.
  rust        (e) distributed rustc (integration/bench_rustc.py): a cold `cargo build`
              of a 50-crate graph, locally and through RUSTC_WRAPPER=swarmcc with a
              swarmccd --rustc (distcc has no rustc column: it does not distribute rustc),
              cold and warm input cache; wall, client CPU, server CPU, bytes sent, and the
              client CPU per remote crate compile against a local one's.
  cache       (f) caches (integration/bench_cache.py): lzo 2.10 built again after `make
              clean`, served by swarmccd's farm cache, by the client's local cache and by
              a REAPI engine's action cache (buildbox-casd, integration/reapi-engine.sh),
              against the first (cold) build, plain gcc and distcc, in the same run.

Usage: integration/bench [--quick] [--strict] [--only overhead,throughput,build,rust,cache]
                         [--runs N] [--rounds N] [--lzo] [--jobs J] [--nice N]
                         [--bin-dir DIR | --no-build] [--keep]
About 10 minutes on 2 cores (--quick: about 3). On a shared, busy machine the wall-time
rows are noisy; `--nice -10` (root) runs everything of both tools at a higher priority.
Exit status: 0, unless something crashed; with --strict, 1 if a target fails.
"""

import argparse
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# Process and port helpers shared with the scheduling benchmark.
from bench_sched import find_agents, free_port, kill_group, loadavg, stop_agents

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("swarmcc", "distcc")
CLK = os.sysconf("SC_CLK_TCK")
LZO_CRATE = "lzo-sys-1.1.0"

# Everything started here, so that `finally` can stop it: Popen objects of process groups.
_GROUPS = []


# ----------------------------------------------------------------------------- /proc

def read_stat(pid):
    """Fields 3.. of /proc/PID/stat (index 0 = state), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def proc_cpu(pid, children=True):
    """utime+stime (+cutime+cstime: its reaped descendants) in seconds; None if gone."""
    r = read_stat(pid)
    if r is None:
        return None
    t = int(r[11]) + int(r[12])
    if children:
        t += int(r[13]) + int(r[14])
    return t / CLK


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def session_pids(sid):
    out = []
    for pid in all_pids():
        r = read_stat(pid)
        if r is not None and int(r[3]) == sid:
            out.append(pid)
    return out


def tree_cpu(sid):
    """CPU of a whole process session since it started: each live process's own time plus
    that of its reaped descendants (a dead process's time is in its reaper's c-times)."""
    return sum(c for c in (proc_cpu(p) for p in session_pids(sid)) if c is not None)


def proc_kb(pid, file, key):
    """The kB value of the `key:` line of /proc/PID/FILE, or None."""
    try:
        with open(f"/proc/{pid}/{file}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_status_kb(pid, key):
    return proc_kb(pid, "status", key)


def proc_pss_kb(pid):
    return proc_kb(pid, "smaps_rollup", "Pss")


def exe_of(pid):
    try:
        return os.path.realpath(f"/proc/{pid}/exe")
    except OSError:
        return None


class AgentMeter:
    """CPU of swarmcc's agents (found by cmdline) between two reads. An agent that appears
    in between counts from 0; one that died in between is lost (we keep it alive with
    SWARMCC_AGENT_IDLE, so that does not happen)."""

    def __init__(self, work):
        self.work = work
        self.base = self.read()

    def read(self):
        return {p: proc_cpu(p) or 0.0 for p in find_agents(self.work)}

    def delta(self):
        now = self.read()
        d = sum(c - self.base.get(p, 0.0) for p, c in now.items())
        self.base = now
        return d

    def hwm_kb(self):
        v = [proc_status_kb(p, "VmHWM") for p in find_agents(self.work)]
        return max([x for x in v if x], default=None)


# ----------------------------------------------------------------------------- processes

def listening(port):
    """Whether something listens on 127.0.0.1:port or 0.0.0.0:port (/proc/net/tcp)."""
    want = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] in want and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"({path}: {e})"


# A tiny launcher, compiled at start: it forks, execs the command, wait4()s for it and
# writes the rusage to a file. Started straight from Python, ru_maxrss would report the
# forked Python's resident set (Linux carries the pre-exec peak over the exec), not the
# client's; from this 1 MB launcher the floor is about 1 MB.
RUSAGE_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    if (argc < 3) return 125;
    pid_t pid = fork();
    if (pid < 0) return 126;
    if (pid == 0) { execvp(argv[2], argv + 2); _exit(127); }
    int st; struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0) {}
    FILE *f = fopen(argv[1], "w");
    if (!f) return 126;
    fprintf(f, "%ld %ld %ld %d\n", (long)ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
            (long)ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec, ru.ru_maxrss, st);
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
"""
_RUSAGE = {}


def build_rusage_helper(work):
    src = os.path.join(work, "rusage.c")
    exe = os.path.join(work, "rusage")
    with open(src, "w") as f:
        f.write(RUSAGE_C)
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    _RUSAGE["exe"] = exe
    _RUSAGE["out"] = os.path.join(work, "rusage.out")


def run_rusage(cmd, env, cwd, errpath, new_session=False):
    """Runs cmd to completion: (wall s, user+sys CPU s of it and its waited-for
    descendants, ru_maxrss KiB, exit code), from wait4() of exactly this command."""
    out = _RUSAGE["out"]
    try:
        os.unlink(out)
    except FileNotFoundError:
        pass
    with open(errpath, "wb") as err:
        t = time.perf_counter()
        p = subprocess.Popen([_RUSAGE["exe"], out] + list(cmd), env=env, cwd=cwd,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             start_new_session=new_session)
        if new_session:
            _GROUPS.append(p)
        try:
            rc = p.wait()
        except BaseException:
            kill_group(p, 2) if new_session else p.kill()
            raise
        wall = time.perf_counter() - t
    if new_session:
        _GROUPS.remove(p)
    try:
        with open(out) as f:
            ut, st, rss, _ = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        raise SystemExit(f"{' '.join(cmd)}: no rusage (exit {rc})")
    return wall, (ut + st) / 1e6, rss, rc


class Server:
    def __init__(self, tool, work, binary, jobs, name=None, extra=()):
        self.tool, self.binary, self.jobs = tool, os.path.realpath(binary), jobs
        self.port = free_port()
        name = name or tool
        self.tmp = os.path.join(work, f"srvtmp-{name}")
        os.mkdir(self.tmp)
        os.chmod(self.tmp, 0o1777)  # both servers drop root to user distccd/nobody
        self.log = os.path.join(work, "log", f"{name}d.log")
        env = clean_env()
        # as a daemon started by init would have it (not this shell's PATH: the servers'
        # user cannot read /root, and gcc looks for `as` along PATH)
        env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env["TMPDIR"] = self.tmp
        if tool == "swarmcc":
            cmd = [binary, "--no-detach", "--listen", "127.0.0.1", "--port", str(self.port),
                   "--allow", "127.0.0.1", "-j", str(jobs), "--nice", "0",
                   "--log-level", "warning", "--log-file", self.log] + list(extra)
            # Sections (a)-(d) measure distribution: a repeated job must be compiled
            # again, as distccd does (section (f) measures the cache, with --cache-dir).
            if "--cache-dir" not in extra:
                cmd.append("--no-cache")
        else:
            cmd = [binary, "--no-detach", "--daemon", "--listen", "127.0.0.1",
                   "-p", str(self.port), "--allow", "127.0.0.1", "-j", str(jobs), "-N", "0",
                   "--log-level", "warning", "--log-file", self.log]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, env=env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.log + ".stderr", "w"),
                                     start_new_session=True)
        _GROUPS.append(self.proc)

    @property
    def sid(self):
        return self.proc.pid

    def wait_ready(self, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.tool} server exited ({self.proc.returncode}):\n"
                                 f"{tail(self.log)}{tail(self.log + '.stderr')}")
            if listening(self.port):  # (a test connection would make distccd log an error)
                return
            time.sleep(0.05)
        raise SystemExit(f"{self.tool} server did not start:\n{tail(self.log)}")

    def cpu(self):
        return tree_cpu(self.sid)

    def daemon_pids(self):
        """The daemon's own processes: swarmccd is one process (threads); distccd is a
        parent plus its preforked children. Compilers (and the fork before their exec)
        are left out."""
        pids = [self.sid]
        if self.tool == "distcc":
            for pid in session_pids(self.sid):
                r = read_stat(pid)
                if r and int(r[1]) == self.sid and exe_of(pid) == self.binary:
                    pids.append(pid)
        return pids

    def own_cpu(self):
        """CPU of the daemon processes themselves, without their reaped children (the
        compilers). Exact for swarmccd (one process); for distccd a lower bound: a
        preforked child that exited (distccd recycles them) takes its time to its
        parent's children-times, mixed with the compilers'."""
        return sum(c for c in (proc_cpu(p, children=False) for p in self.daemon_pids())
                   if c is not None)

    def memory(self):
        pids = self.daemon_pids()
        hwm = [proc_status_kb(p, "VmHWM") or 0 for p in pids]
        pss = [proc_pss_kb(p) or 0 for p in pids]
        return len(pids), sum(hwm), max(hwm, default=0), sum(pss)

    def stop(self):
        kill_group(self.proc)
        if self.proc in _GROUPS:
            _GROUPS.remove(self.proc)

    def problems(self):
        out = ""
        for path in (self.log, self.log + ".stderr"):
            try:
                with open(path, errors="replace") as f:
                    text = f.read().strip()
            except OSError:
                continue
            if text:
                out += f"--- {path}\n{text[-1500:]}\n"
        return out


def clean_env():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("DISTCC_", "SWARMCC_", "DISTCCD_")) or k in (
                "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "CARGO_MAKEFLAGS", "CC", "CXX",
                "CFLAGS", "CPPFLAGS", "CXXFLAGS", "UNCACHED_ERR_FD", "TMPDIR"):
            del env[k]
    env["LC_ALL"] = "C"
    return env


# ----------------------------------------------------------------------------- sources

def medium_source(n=300):
    lines = ["#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>"]
    for i in range(n):
        lines.append(
            f"int fn{i}(const char *s) {{ char b[64]; snprintf(b, sizeof b, \"%s{i}\", s);"
            f" return (int)strlen(b) + atoi(s) * {i}; }}")
    return "\n".join(lines) + "\n"


def heavy_source(n=2):
    """STL containers, algorithms, lambdas, shared_ptr and iostream, instantiated for n
    record types: about 1.5 s of CPU at -O2 with g++ 12 (n=3: 2.4 s)."""
    inc = ["algorithm", "iostream", "map", "set", "sstream", "string", "unordered_map",
           "vector", "numeric", "functional", "memory", "deque"]
    out = [f"#include <{h}>" for h in inc]
    for i in range(n):
        out.append(f"""
struct Rec{i} {{ int id; std::string name; double w;
  bool operator<(const Rec{i} &o) const {{ return id < o.id; }} }};
std::ostream &operator<<(std::ostream &os, const Rec{i} &r) {{ return os << r.id << ':' << r.name << '@' << r.w; }}
std::string work{i}(const std::vector<std::string> &in) {{
  std::vector<Rec{i}> v; std::map<std::string, Rec{i}> m; std::unordered_map<int, std::vector<Rec{i}>> u;
  std::set<Rec{i}> s; std::deque<std::shared_ptr<Rec{i}>> d;
  for (size_t k = 0; k < in.size(); ++k) {{
    Rec{i} r{{int(k * {i + 1}), in[k], k * 0.5}};
    v.push_back(r); m[in[k]] = r; u[int(k % 7)].push_back(r); s.insert(r); d.push_back(std::make_shared<Rec{i}>(r)); }}
  std::sort(v.begin(), v.end(), [](const Rec{i} &a, const Rec{i} &b) {{ return a.name < b.name || (a.name == b.name && a.w > b.w); }});
  auto it = std::stable_partition(v.begin(), v.end(), [](const Rec{i} &r) {{ return r.id % 2 == 0; }});
  double total = std::accumulate(v.begin(), it, 0.0, [](double acc, const Rec{i} &r) {{ return acc + r.w; }});
  std::ostringstream os; os << total << ' ';
  for (const auto &kv : m) os << kv.first << '=' << kv.second << ';';
  for (const auto &kv : u) os << kv.first << '#' << kv.second.size();
  for (const auto &p : d) if (s.count(*p)) os << *p;
  std::cout << os.str() << std::endl;
  return os.str();
}}""")
    out.append("int main() { std::vector<std::string> in{\"a\", \"b\", \"c\"}; size_t t = 0;")
    out += [f"  t += work{i}(in).size();" for i in range(n)]
    out.append("  return int(t % 2); }")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- output

def ms(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{1000 * x:.1f} ms"


def ratio(s, d):
    if s is None or d is None or d == 0 or math.isnan(s) or math.isnan(d):
        return "-"
    return f"{s / d:.2f}"


def table(title, rows, note=None):
    """rows: (metric, swarmcc, distcc, ratio, reference) as strings."""
    head = ("metric", "swarmcc", "distcc", "ratio s/d", "reference")
    rows = [tuple("" if c is None else str(c) for c in r) for r in rows]
    w = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(5)]
    print(f"\n{title}")
    line = (f"{head[0]:<{w[0]}}  {head[1]:>{w[1]}}  {head[2]:>{w[2]}}  "
            f"{head[3]:>{w[3]}}  {head[4]:<{w[4]}}")
    print(line.rstrip())
    print("-" * len(line.rstrip()))
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  "
              f"{r[4]:<{w[4]}}".rstrip())
    if note:
        print(note)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def quartiles(xs):
    if len(xs) < 4:
        return min(xs, default=float("nan")), max(xs, default=float("nan"))
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


# ----------------------------------------------------------------------------- (a)+(b)

class Ctx:
    pass


def verify_remote(ctx, tool, cmd, cwd, name):
    """One verbose run: the job must have been compiled on the tool's own server."""
    env = dict(ctx.env[tool], DISTCC_VERBOSE="1")
    errp = os.path.join(ctx.work, "verify.err")
    _, _, _, rc = run_rusage(cmd, env, cwd, errp)
    with open(errp, errors="replace") as f:
        err = f.read()
    port = ctx.servers[tool].port
    if tool == "swarmcc":
        ok = re.search(rf"remote on 127\.0\.0\.1:{port}\S* ok", err)
    else:
        ok = re.search(rf"compile \S+ on 127\.0\.0\.1:{port}\S* completed ok", err)
    if rc != 0 or not ok:
        raise SystemExit(f"{tool}: {name} was not compiled remotely on its server "
                         f"(exit {rc}):\n{err[-3000:]}\n{ctx.servers[tool].problems()}")


def section_overhead(ctx):
    d = os.path.join(ctx.work, "ovh")
    os.mkdir(d)
    with open(os.path.join(d, "tiny.c"), "w") as f:
        f.write("int small(void) { return 42; }\n")
    with open(os.path.join(d, "medium.c"), "w") as f:
        f.write(medium_source())
    with open(os.path.join(d, "heavy.cpp"), "w") as f:
        f.write(heavy_source())
    errp = os.path.join(ctx.work, "client.err")
    if run_rusage(["gcc", "-E", "tiny.c", "-o", "tiny.i"], ctx.base, d, errp)[3] != 0:
        raise SystemExit("gcc -E tiny.c failed")
    r = ctx.runs
    files = [("tiny.c", "gcc", ["-c"], r["tiny"]),
             ("tiny.i", "gcc", ["-c"], r["tiny"]),  # no local cpp: the wrapper alone
             ("medium.c", "gcc", ["-O2", "-c"], r["medium"]),
             ("heavy.cpp", "g++", ["-O2", "-c"], r["heavy"])]
    names = ("gcc",) + TOOLS
    res = {}
    agents = AgentMeter(ctx.work)
    for fname, cc, flags, runs in files:
        stem = fname.replace(".", "_")
        cmds = {
            "gcc": ([cc, *flags, fname, "-o", f"{stem}_g.o"], ctx.base),
            "swarmcc": ([ctx.swarmcc, cc, *flags, fname, "-o", f"{stem}_s.o"], ctx.env["swarmcc"]),
            "distcc": ([ctx.distcc, cc, *flags, fname, "-o", f"{stem}_d.o"], ctx.env["distcc"]),
        }
        for t in TOOLS:
            verify_remote(ctx, t, cmds[t][0], d, fname)
        # The floor of any tool that preprocesses here and compiles elsewhere: a local
        # `gcc -E` followed by a local compile of its output, with no network at all.
        ext = ".ii" if cc == "g++" else ".i"
        split = None if fname.endswith(".i") else (
            [cc, *flags[:-1], "-E", fname, "-o", f"{stem}_x{ext}"],
            [cc, *flags, f"{stem}_x{ext}", "-o", f"{stem}_x.o"])
        warm = 1 if runs <= 7 else 2
        data = {n: [] for n in names}
        data["split"] = []
        t0 = time.time()
        for i in range(warm + runs):
            # gcc first, then the two tools in alternating order: each tool follows the
            # local compile (which leaves the caches cold) equally often. A plain
            # rotation of the three put swarmcc right after gcc in 2 rounds of 3 and
            # distcc in 1, which cost swarmcc about 1 ms on heavy.cpp.
            order = ("gcc",) + (TOOLS if i % 2 == 0 else TOOLS[::-1])
            if i == warm:
                agents.delta()  # the agent's CPU counts from the first measured round
                for n in names:
                    data[n] = []
                data["split"] = []
            if split:
                parts = [run_rusage(c, ctx.base, d, errp) for c in split]
                if any(p[3] != 0 for p in parts):
                    raise SystemExit(f"local split compile of {fname} failed")
                if i >= warm:
                    data["split"].append((sum(p[0] for p in parts), sum(p[1] for p in parts),
                                          max(p[2] for p in parts)))
            for n in order:
                cmd, env = cmds[n]
                wall, cpu, rss, rc = run_rusage(cmd, env, d, errp)
                if rc != 0:
                    with open(errp, errors="replace") as f:
                        raise SystemExit(f"{' '.join(cmd)} failed ({rc}):\n{f.read()[-3000:]}"
                                         f"\n{ctx.servers.get(n).problems() if n in ctx.servers else ''}")
                data[n].append((wall, cpu, rss))
        res[fname] = dict(data=data, runs=runs, agent_cpu=agents.delta())
        walls = {n: med([x[0] for x in data[n]]) for n in names}
        print(f"  {fname:<10} {runs:2d} rounds in {time.time() - t0:5.1f}s: median wall gcc "
              f"{ms(walls['gcc'])}, swarmcc {ms(walls['swarmcc'])}, distcc {ms(walls['distcc'])}"
              f"; load {loadavg()}")
    ctx.results["overhead"] = res
    # The agent's work per job (a few short messages) does not depend on the file, and
    # /proc counts CPU in clock ticks: pool it over all measured swarmcc jobs.
    agent_jobs = sum(rr["runs"] for rr in res.values())
    agent_total = sum(rr["agent_cpu"] for rr in res.values())
    for rr in res.values():
        rr["agent"] = agent_total / agent_jobs

    rows_a, rows_b = [], []
    for fname, rr in res.items():
        data = rr["data"]
        wall = {n: [x[0] for x in data[n]] for n in names}
        cpu = {n: [x[1] for x in data[n]] for n in names}
        mw = {n: med(wall[n]) for n in names}
        # overhead = median of the paired differences (same round) to plain gcc
        ovh = {t: med([a - b for a, b in zip(wall[t], wall["gcc"])]) for t in TOOLS}
        iqr = {t: quartiles([a - b for a, b in zip(wall[t], wall["gcc"])]) for t in TOOLS}
        rr["ovh"] = ovh
        rows_a.append((f"{fname} wall, median", ms(mw["swarmcc"]), ms(mw["distcc"]),
                       ratio(mw["swarmcc"], mw["distcc"]), f"gcc -c {ms(mw['gcc'])}"))
        rows_a.append((f"{fname} overhead vs gcc -c", ms(ovh["swarmcc"]), ms(ovh["distcc"]),
                       ratio(ovh["swarmcc"], ovh["distcc"]),
                       f"IQR s {ms(iqr['swarmcc'][0])}..{ms(iqr['swarmcc'][1])}, "
                       f"d {ms(iqr['distcc'][0])}..{ms(iqr['distcc'][1])}"))
        # fastest run minus fastest run: what is left when the machine's noise (additive,
        # always positive) is least; a cross-check when the IQRs are wide
        mins = {t: min(wall[t]) - min(wall["gcc"]) for t in TOOLS}
        rows_a.append((f"{fname}   overhead, min - min", ms(mins["swarmcc"]), ms(mins["distcc"]),
                       ratio(mins["swarmcc"], mins["distcc"]), "cross-check, not the target"))
        if data["split"]:
            floor = med([a[0] - b for a, b in zip(data["split"], wall["gcc"])])
            rr["floor"] = floor
            rows_a.append((f"{fname}   floor: gcc -E, then gcc -c of it", "", "", "",
                           f"{ms(floor)}: local, no network"))
        mc = {n: med(cpu[n]) for n in names}
        with_agent = mc["swarmcc"] + rr["agent"]
        rr["cpu"] = dict(swarmcc=mc["swarmcc"], distcc=mc["distcc"], gcc=mc["gcc"],
                         swarmcc_agent=with_agent)
        pct = lambda x: f"{100 * x / mc['gcc']:.1f}%" if mc["gcc"] > 0 else "-"
        rows_b.append((f"{fname} client CPU/job (wrapper + cpp)", ms(mc["swarmcc"]),
                       ms(mc["distcc"]), ratio(mc["swarmcc"], mc["distcc"]),
                       f"local gcc -c {ms(mc['gcc'])}"))
        # /proc's CPU times are in clock ticks: below one tick in all, say so
        agent_txt = (ms(rr["agent"]) if rr["agent"] > 0
                     else f"<{1000 / CLK / agent_jobs:.2f} ms")
        rows_b.append((f"{fname}   + agent CPU/job (swarmcc only)", agent_txt, "-", "",
                       f"{1000 * agent_total:.0f} ms over all {agent_jobs} jobs, pooled"))
        rows_b.append((f"{fname}   client CPU/job incl. agent", ms(with_agent), ms(mc["distcc"]),
                       ratio(with_agent, mc["distcc"]), ""))
        rows_b.append((f"{fname}   as % of a local compile's CPU", pct(with_agent),
                       pct(mc["distcc"]), "", "100% = local gcc -c"))
        rss = {n: max(x[2] for x in data[n]) for n in names}
        rr["rss"] = rss
        rows_b.append((f"{fname}   client peak RSS (ru_maxrss, tree)", f"{rss['swarmcc'] / 1024:.1f} MiB",
                       f"{rss['distcc'] / 1024:.1f} MiB", ratio(rss["swarmcc"], rss["distcc"]),
                       "wrapper alone" if fname.endswith(".i") else "largest process: local cpp"))
    lzo = ",lzo" if ctx.lzo else ""
    table(f"(a) Per-job wall time, loopback, host 127.0.0.1:PORT/{ctx.jobs}{lzo}; medians of "
          f"{res['tiny.c']['runs']}/{res['medium.c']['runs']}/{res['heavy.cpp']['runs']} "
          f"interleaved rounds (tiny/medium/heavy)", rows_a,
          "overhead = median over rounds of (tool's wall - plain gcc -c's wall in the same round);"
          " IQR = its quartiles;\ntiny.i = tiny.c already preprocessed (no local cpp: the "
          "wrapper's own cost; gcc -c tiny.i is the reference);\nfloor = median over rounds of "
          "(local gcc -E + local gcc -c of its output - gcc -c): what preprocessing apart costs "
          "with no network at all")
    table("(b) Client CPU per remote job (user+sys from wait4 of each client process: the "
          "wrapper and the local preprocessor it runs)", rows_b,
          "agent CPU/job = CPU of swarmcc's scheduling agent (/proc/<pid>/stat, utime+stime, "
          f"{1000 / CLK:.0f} ms ticks) during all measured rounds / all swarmcc jobs measured;"
          "\nserver-side CPU is not included (other process tree).")


# ----------------------------------------------------------------------------- (c)

class ProtocolError(Exception):
    pass


def tok(t, v):
    return t.encode() + b"%08x" % v


def v1_request(argv, doti):
    out = [tok("DIST", 1), tok("ARGC", len(argv))]
    for a in argv:
        b = a.encode()
        out += [tok("ARGV", len(b)), b]
    out += [tok("DOTI", len(doti)), doti]
    return b"".join(out)


def read_exact(f, n):
    b = f.read(n)
    if len(b) != n:
        raise ProtocolError(f"short read ({len(b)} of {n})")
    return b


def raw_job(port, req, timeout=60):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(req)
        f = s.makefile("rb")

        def hdr(want):
            h = read_exact(f, 12)
            if h[:4] != want:
                raise ProtocolError(f"expected {want!r}, got {h!r}")
            return int(h[4:], 16)

        hdr(b"DONE")
        st = hdr(b"STAT")
        err = read_exact(f, hdr(b"SERR"))
        read_exact(f, hdr(b"SOUT"))
        obj = read_exact(f, hdr(b"DOTO"))
        return st, err, obj
    finally:
        s.close()


def load_run(port, req, conc, seconds):
    """conc threads, each one connection at a time, for `seconds`: jobs completed OK
    within the window, busy answers, errors, latencies of the OK jobs."""
    start = time.perf_counter()
    end = start + seconds
    lock = threading.Lock()
    stats = dict(ok=0, busy=0, err=0, lat=[], errors=[], all=0)

    def worker():
        while True:
            t = time.perf_counter()
            if t >= end:
                return
            try:
                st, err, obj = raw_job(port, req)
                kind = "ok" if st == 0 and obj[:4] == b"\x7fELF" else (
                    "busy" if b"busy" in err.lower() else "err")
                msg = f"STAT {st:x}: {err[:200]!r}"
            except (OSError, ProtocolError) as e:
                kind, msg = "err", str(e)
            done = time.perf_counter()
            with lock:
                stats["all"] += 1
                if done <= end:
                    stats[kind] += 1
                    if kind == "ok":
                        stats["lat"].append(done - t)
                if kind == "err" and len(stats["errors"]) < 3:
                    stats["errors"].append(msg)
            if kind == "err":
                time.sleep(0.01)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conc)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stats["seconds"] = seconds
    return stats


class MemSampler:
    """Samples the sum of PSS of a server's daemon processes while a load runs."""

    def __init__(self, server, every=0.25):
        self.server, self.every, self.peak_pss = server, every, 0
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self.loop, daemon=True)
        self.th.start()

    def loop(self):
        while not self.stop_ev.is_set():
            self.peak_pss = max(self.peak_pss, self.server.memory()[3])
            self.stop_ev.wait(self.every)

    def stop(self):
        self.stop_ev.set()
        self.th.join()


def section_throughput(ctx):
    d = os.path.join(ctx.work, "tput")
    os.mkdir(d)
    with open(os.path.join(d, "tiny.c"), "w") as f:
        f.write("int small(void) { return 42; }\n")
    with open(os.path.join(d, "medium.c"), "w") as f:
        f.write(medium_source())
    errp = os.path.join(ctx.work, "tput.err")
    for src in ("tiny", "medium"):
        _, _, _, rc = run_rusage(["gcc", "-E", f"{src}.c", "-o", f"{src}.i"], ctx.base, d, errp)
        if rc != 0:
            raise SystemExit(f"gcc -E {src}.c failed")
    with open(os.path.join(d, "tiny.i"), "rb") as f:
        doti = f.read()
    req = v1_request(["x86_64-linux-gnu-gcc", "-c", "tiny.c", "-o", "tiny.o"], doti)
    # reference: what the compiler alone costs per job (the servers run exactly this)
    ref = [run_rusage(["x86_64-linux-gnu-gcc", "-c", "tiny.i", "-o", "ref.o"], ctx.base, d,
                      errp) for _ in range(5)]
    ref_cpu = med([x[1] for x in ref])
    for t in TOOLS:  # correctness and warm-up
        st, err, obj = raw_job(ctx.servers[t].port, req)
        if st != 0 or obj[:4] != b"\x7fELF":
            raise SystemExit(f"raw job on {t}d failed: STAT {st:x} {err[:500]!r}\n"
                             f"{ctx.servers[t].problems()}")
    conc, secs, rounds = ctx.conc, ctx.tput_seconds, ctx.rounds
    res = {t: [] for t in TOOLS}
    samplers = {}
    t0 = time.time()
    for i in range(rounds):
        order = TOOLS if i % 2 == 0 else TOOLS[::-1]
        for t in order:
            srv = ctx.servers[t]
            load_run(srv.port, req, conc, ctx.tput_warm)
            samplers[t] = samplers.get(t) or MemSampler(srv)
            c0, o0 = srv.cpu(), srv.own_cpu()
            st = load_run(srv.port, req, conc, secs)
            time.sleep(0.3)  # let the last in-flight jobs end (their CPU is in the delta)
            st["cpu"] = srv.cpu() - c0
            st["own_per_job"] = (srv.own_cpu() - o0) / max(1, st["all"])
            # every job answered, also those still in flight at the window's end
            st["cpu_per_job"] = st["cpu"] / max(1, st["all"])
            res[t].append(st)
            print(f"  round {i + 1} {t}d: {st['ok'] / secs:6.1f} jobs/s ({st['ok']} ok, "
                  f"{st['busy']} busy, {st['err']} errors) load {loadavg()}")
            for e in st["errors"]:
                print(f"    error: {e}")
    for s in samplers.values():
        s.stop()
    print(f"  ({time.time() - t0:.0f}s)")

    # client peak memory: an .i compile, so no local preprocessor child is in the tree
    rss = {t: [] for t in TOOLS}
    for i in range(3):
        for t in TOOLS:
            w = ctx.swarmcc if t == "swarmcc" else ctx.distcc
            _, _, kb, rc = run_rusage([w, "gcc", "-O2", "-c", "medium.i", "-o", f"mi_{t}.o"],
                                      ctx.env[t], d, errp)
            if rc != 0:
                with open(errp, errors="replace") as f:
                    raise SystemExit(f"{t} gcc -c medium.i failed:\n{f.read()[-2000:]}")
            rss[t].append(kb)

    jps = {t: med([s["ok"] / s["seconds"] for s in res[t]]) for t in TOOLS}
    lat = {t: med([x for s in res[t] for x in s["lat"]]) for t in TOOLS}
    lat90 = {t: (statistics.quantiles([x for s in res[t] for x in s["lat"]], n=10)[8]
                 if sum(len(s["lat"]) for s in res[t]) > 10 else float("nan")) for t in TOOLS}
    cpj = {t: med([s["cpu_per_job"] for s in res[t]]) for t in TOOLS}
    own = {t: med([s["own_per_job"] for s in res[t]]) for t in TOOLS}
    bad = {t: (sum(s["busy"] for s in res[t]), sum(s["err"] for s in res[t])) for t in TOOLS}
    mem = {t: ctx.servers[t].memory() for t in TOOLS}
    agent_hwm = AgentMeter(ctx.work).hwm_kb()
    ctx.results["throughput"] = dict(jps=jps)
    kb = lambda x: "-" if x is None else f"{x / 1024:.1f} MiB"
    rows = [
        ("server throughput, tiny jobs", f"{jps['swarmcc']:.1f}/s", f"{jps['distcc']:.1f}/s",
         ratio(jps["swarmcc"], jps["distcc"]), "higher is better"),
        ("job latency under load p50", ms(lat["swarmcc"]), ms(lat["distcc"]),
         ratio(lat["swarmcc"], lat["distcc"]), "connect to end of reply"),
        ("job latency under load p90", ms(lat90["swarmcc"]), ms(lat90["distcc"]),
         ratio(lat90["swarmcc"], lat90["distcc"]), ""),
        ("busy answers / errors", f"{bad['swarmcc'][0]} / {bad['swarmcc'][1]}",
         f"{bad['distcc'][0]} / {bad['distcc'][1]}", "", "should be 0 / 0"),
        ("server tree CPU/job (daemon + compiler)", ms(cpj["swarmcc"]), ms(cpj["distcc"]),
         ratio(cpj["swarmcc"], cpj["distcc"]), f"compiler alone {ms(ref_cpu)}"),
        ("  daemon's share (est.: minus compiler alone)", ms(cpj["swarmcc"] - ref_cpu),
         ms(cpj["distcc"] - ref_cpu), ratio(cpj["swarmcc"] - ref_cpu, cpj["distcc"] - ref_cpu),
         ""),
        ("  daemon processes' own CPU/job (no children)", ms(own["swarmcc"]),
         ">= " + ms(own["distcc"]), ratio(own["swarmcc"], own["distcc"]),
         "distccd: recycled children lost, a lower bound"),
        ("server peak RSS, sum of VmHWM of daemon procs", kb(mem["swarmcc"][1]),
         kb(mem["distcc"][1]), ratio(mem["swarmcc"][1], mem["distcc"][1]),
         f"processes: swarmccd {mem['swarmcc'][0]}, distccd {mem['distcc'][0]}"),
        ("server RSS at start, idle (sum of daemon procs)", kb(ctx.idle_mem["swarmcc"][1]),
         kb(ctx.idle_mem["distcc"][1]), ratio(ctx.idle_mem["swarmcc"][1], ctx.idle_mem["distcc"][1]),
         ""),
        ("server peak RSS, largest daemon process", kb(mem["swarmcc"][2]), kb(mem["distcc"][2]),
         ratio(mem["swarmcc"][2], mem["distcc"][2]), ""),
        ("server peak PSS, sum (sampled under load)", kb(samplers["swarmcc"].peak_pss),
         kb(samplers["distcc"].peak_pss),
         ratio(samplers["swarmcc"].peak_pss, samplers["distcc"].peak_pss), "every 0.25 s"),
        ("client peak RSS, `gcc -O2 -c medium.i`", kb(max(rss["swarmcc"])), kb(max(rss["distcc"])),
         ratio(max(rss["swarmcc"]), max(rss["distcc"])), "ru_maxrss, no local cpp child"),
        ("scheduling agent peak RSS (VmHWM)", kb(agent_hwm), "-", "", "one per user, not per job"),
    ]
    table(f"(c) Server throughput: raw protocol-1 load generator, {conc} concurrent "
          f"connections, identical tiny.i jobs, both servers -j {ctx.jobs} -N 0; median of "
          f"{rounds} interleaved {secs:g} s windows", rows,
          "jobs/s = jobs completed within the window / window length; the generator is a Python "
          "process on the same 2 cores.")


# ----------------------------------------------------------------------------- (d)

def prepare_lzo(ctx):
    regs = sorted(d for d in (os.path.expanduser("~/.cargo/registry/src/" + x)
                              for x in (os.listdir(os.path.expanduser("~/.cargo/registry/src"))
                                        if os.path.isdir(os.path.expanduser("~/.cargo/registry/src"))
                                        else []))
                  if os.path.isdir(os.path.join(d, LZO_CRATE, "lzo")))
    if not regs:
        raise SystemExit(f"{LZO_CRATE} is not in ~/.cargo/registry/src; fetch it with "
                         f"`cargo fetch` in a scratch crate that depends on lzo-sys = \"1.1.0\" "
                         f"(../shared/docs/workloads.md §1), or run with --only overhead,throughput")
    src = os.path.join(regs[0], LZO_CRATE, "lzo")
    tree = os.path.join(ctx.work, "lzo")
    if os.path.exists(os.path.join(tree, "Makefile")):
        return tree  # configured by an earlier section of this run
    shutil.copytree(src, tree, symlinks=True)
    for dirpath, _, files in os.walk(tree):  # the crate ships CRLF line ends
        for fn in files:
            p = os.path.join(dirpath, fn)
            with open(p, "rb") as f:
                b = f.read()
            if b"\r\n" in b and b"\0" not in b:
                with open(p, "wb") as f:
                    f.write(b.replace(b"\r\n", b"\n"))
    for p in [os.path.join(tree, "configure")] + [
            os.path.join(tree, "autoconf", x) for x in os.listdir(os.path.join(tree, "autoconf"))]:
        os.chmod(p, 0o755)
    t = time.time()
    errp = os.path.join(ctx.work, "configure.log")
    _, _, _, rc = run_rusage(["./configure", "CC=gcc"], ctx.base, tree, errp, new_session=True)
    if rc != 0:
        raise SystemExit(f"lzo configure failed:\n{tail(errp, 30)}")
    print(f"  lzo 2.10 configured in {time.time() - t:.1f}s ({src})")
    return tree


def section_build(ctx):
    tree = prepare_lzo(ctx)
    j = ctx.jobs
    names = ("local",) + TOOLS
    cmds = {
        "local": (["make", f"-j{j}"], ctx.base),
        "swarmcc": (["make", f"-j{j}", f"CC={ctx.swarmcc} gcc"], ctx.env["swarmcc"]),
        "distcc": (["make", f"-j{j}", f"CC={ctx.distcc} gcc"], ctx.env["distcc"]),
    }
    logp = os.path.join(ctx.work, "build.log")
    agents = AgentMeter(ctx.work)
    res = {n: [] for n in names}
    tus = None
    t0 = time.time()
    for i in range(ctx.rounds):
        order = (names[0],) + (TOOLS if i % 2 == 0 else TOOLS[::-1])  # as in (a)
        for n in order:
            _, _, _, rc = run_rusage(["make", "clean"], ctx.base, tree, logp, new_session=True)
            if rc != 0:
                raise SystemExit(f"make clean failed:\n{tail(logp)}")
            srv = ctx.servers.get(n)
            c0 = srv.cpu() if srv else 0.0
            agents.delta()
            cmd, env = cmds[n]
            wall, cpu, _, rc = run_rusage(cmd, env, tree, logp, new_session=True)
            if rc != 0:
                raise SystemExit(f"{n} build failed ({rc}):\n{tail(logp, 30)}\n"
                                 f"{srv.problems() if srv else ''}")
            time.sleep(0.2)
            scpu = srv.cpu() - c0 if srv else 0.0
            acpu = agents.delta() if n == "swarmcc" else 0.0
            objs = sum(1 for dp, _, fs in os.walk(tree) for f in fs if f.endswith(".o"))
            tus = tus or objs
            if not os.path.exists(os.path.join(tree, "src", ".libs", "liblzo2.a")):
                raise SystemExit(f"{n} build made no src/.libs/liblzo2.a")
            res[n].append(dict(wall=wall, cpu=cpu, server=scpu, agent=acpu))
            print(f"  round {i + 1} {n:<8} {wall:6.2f}s wall, local CPU {cpu:6.2f}s, "
                  f"server CPU {scpu:6.2f}s; load {loadavg()}")
    print(f"  ({time.time() - t0:.0f}s)")
    m = {n: {k: med([r[k] for r in res[n]]) for k in ("wall", "cpu", "server", "agent")}
         for n in names}
    ctx.results["build"] = dict(wall={n: m[n]["wall"] for n in names})
    s = lambda x: f"{x:.2f} s"
    rows = [
        (f"lzo 2.10 build wall, make -j{j}", s(m["swarmcc"]["wall"]), s(m["distcc"]["wall"]),
         ratio(m["swarmcc"]["wall"], m["distcc"]["wall"]), f"local gcc {s(m['local']['wall'])}"),
        ("  local CPU (make, wrappers, cpp, links)", s(m["swarmcc"]["cpu"]), s(m["distcc"]["cpu"]),
         ratio(m["swarmcc"]["cpu"], m["distcc"]["cpu"]), f"local gcc {s(m['local']['cpu'])}"),
        ("  + scheduling agent CPU", s(m["swarmcc"]["agent"]), "-", "", ""),
        ("  server tree CPU (daemon + compilers)", s(m["swarmcc"]["server"]),
         s(m["distcc"]["server"]), ratio(m["swarmcc"]["server"], m["distcc"]["server"]), ""),
    ]
    lzo = ",lzo" if ctx.lzo else ""
    table(f"(d) Real project: lzo 2.10 (crate {LZO_CRATE}), {tus} objects, autotools+libtool, "
          f"-MD deps; CC=\"TOOL gcc\", host 127.0.0.1:PORT/{j}{lzo}; median of {ctx.rounds} "
          f"interleaved builds (configure once, make clean before each, untimed)", rows,
          "farm = this machine over loopback, so remote compiles compete with local work for the "
          "same 2 cores.")


# ----------------------------------------------------------------------------- targets

def targets(ctx):
    out = []
    ov = ctx.results.get("overhead")
    if ov:
        for f in ("tiny.c", "medium.c"):
            s, d = ov[f]["ovh"]["swarmcc"], ov[f]["ovh"]["distcc"]
            out.append((s <= 0.5 * d, f"per-job overhead {f}: swarmcc {ms(s)} <= 0.5 x distcc "
                                      f"{ms(d)} (= {ms(0.5 * d)}; ratio {ratio(s, d)})"))
        for f in ("tiny.c", "medium.c", "heavy.cpp"):
            c = ov[f]["cpu"]
            out.append((c["swarmcc_agent"] <= c["distcc"],
                        f"client CPU per remote job {f}: swarmcc {ms(c['swarmcc_agent'])} "
                        f"(incl. agent) <= distcc {ms(c['distcc'])} (ratio "
                        f"{ratio(c['swarmcc_agent'], c['distcc'])})"))
    tp = ctx.results.get("throughput")
    if tp:
        s, d = tp["jps"]["swarmcc"], tp["jps"]["distcc"]
        out.append((s > d, f"server throughput: swarmccd {s:.1f} jobs/s > distccd {d:.1f} "
                           f"jobs/s (ratio {ratio(s, d)})"))
    b = ctx.results.get("build")
    if b:
        s, d = b["wall"]["swarmcc"], b["wall"]["distcc"]
        out.append((s <= d, f"real-project build wall: swarmcc {s:.2f} s <= distcc {d:.2f} s "
                            f"(ratio {ratio(s, d)})"))
    if ov and "floor" in ov["heavy.cpp"]:
        s, d = ov["heavy.cpp"]["ovh"]["swarmcc"], ov["heavy.cpp"]["ovh"]["distcc"]
        print(f"\nnote: heavy.cpp overhead swarmcc {ms(s)}, distcc {ms(d)} (ratio {ratio(s, d)}): "
              f"preprocessing apart alone costs {ms(ov['heavy.cpp']['floor'])} there "
              f"(the floor row), {ratio(ov['heavy.cpp']['floor'], d)} x distcc's overhead")
    print("\ntargets")
    for ok, text in out:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for ok, _ in out)


# ----------------------------------------------------------------------------- main

SECTION_ALIASES = {"a": "overhead", "b": "overhead", "c": "throughput", "d": "build",
                   "e": "rust", "f": "cache", "overhead": "overhead", "cpu": "overhead",
                   "throughput": "throughput", "build": "build", "rust": "rust",
                   "cache": "cache"}


def section_rust(ctx):
    """(e) distributed rustc: integration/bench_rustc.py (a cold 50-crate cargo build,
    local vs through swarmcc and swarmccd --rustc; distcc does not distribute rustc, so
    the comparison is the local build), with this run's binaries."""
    script = os.path.join(ROOT, "integration", "bench_rustc.py")
    cmd = [sys.executable, script, "--runs", str(ctx.rust_runs),
           "--swarmcc", ctx.swarmcc, "--swarmccd", ctx.swarmccd]
    subprocess.run(cmd, check=False)


def section_cache(ctx):
    """(f) caches: integration/bench_cache.py."""
    import bench_cache
    bench_cache.section_cache(ctx, sys.modules[__name__])


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="integration/bench", description=__doc__.split("\n")[0],
        epilog="Sections: overhead (a, b), throughput (c), build (d), rust (e), cache (f). See the header of "
               "integration/bench_suite.py for what each measures.")
    ap.add_argument("--quick", action="store_true", help="smoke run, about 2 minutes")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a target fails")
    ap.add_argument("--only", default="overhead,throughput,build,rust,cache",
                    help="sections: overhead,throughput,build,rust,cache (or a,b,c,d,e,f)")
    ap.add_argument("--runs", type=int,
                    help="rounds per file in (a)/(b): tiny and medium N, heavy max(3, N/3) "
                         "(default 41/15/7; --quick 15/5/3)")
    ap.add_argument("--rounds", type=int,
                    help="rounds of the throughput windows and of the builds (3; --quick 1)")
    ap.add_argument("--seconds", type=float, help="throughput window per tool (8; --quick 4)")
    ap.add_argument("--conc", type=int, help="concurrent raw connections (2 x jobs)")
    ap.add_argument("--jobs", type=int, help="server -j and host /LIMIT (cores + 2)")
    ap.add_argument("--lzo", action="store_true",
                    help="host specs with ,lzo (protocol 2) in (a), (b) and (d)")
    ap.add_argument("--bin-dir", help="take swarmcc/swarmccd from DIR (no cargo build)")
    ap.add_argument("--no-build", action="store_true",
                    help="use the release binaries in $CARGO_TARGET_DIR (or target/) as they are")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the whole benchmark (servers, clients, compilers) at this "
                         "niceness; on a busy shared machine a negative value (root) shields "
                         "it from other work, for both tools alike (default 0: unchanged)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    started = time.time()

    sections = []
    for s in args.only.split(","):
        s = s.strip()
        if s not in SECTION_ALIASES:
            ap.error(f"unknown section {s!r}")
        if SECTION_ALIASES[s] not in sections:
            sections.append(SECTION_ALIASES[s])

    if args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as e:
            raise SystemExit(f"--nice {args.nice}: {e}")
    ctx = Ctx()
    ctx.jobs = args.jobs or (os.cpu_count() or 2) + 2
    ctx.conc = args.conc or 2 * ctx.jobs
    ctx.lzo = args.lzo
    if args.runs:
        ctx.runs = dict(tiny=args.runs, medium=args.runs, heavy=max(3, args.runs // 3))
    elif args.quick:
        ctx.runs = dict(tiny=15, medium=5, heavy=3)
    else:
        ctx.runs = dict(tiny=41, medium=15, heavy=7)
    ctx.rounds = args.rounds or (1 if args.quick else 3)
    ctx.rust_runs = args.rounds or (1 if args.quick else 3)
    ctx.tput_seconds = args.seconds or (4.0 if args.quick else 8.0)
    ctx.tput_warm = 0.5 if args.quick else 1.0
    ctx.results = {}

    if args.bin_dir:
        bdir = args.bin_dir
    else:
        bdir = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                            "release")
        if not args.no_build:
            t = time.time()
            subprocess.run(["cargo", "build", "--release", "--bins", "--quiet"], cwd=ROOT,
                           check=True)
            print(f"cargo build --release --bins: {time.time() - t:.1f}s")
    ctx.swarmcc = os.path.join(bdir, "swarmcc")
    swarmccd = os.path.join(bdir, "swarmccd")
    ctx.swarmccd = swarmccd
    ctx.distcc = shutil.which("distcc")
    distccd = shutil.which("distccd")
    for what, path in (("swarmcc", ctx.swarmcc), ("swarmccd", swarmccd), ("distcc", ctx.distcc),
                       ("distccd", distccd)):
        if not path or not os.access(path, os.X_OK):
            raise SystemExit(f"{what} not found ({path}); distcc: apt-get install distcc")

    def version(cmd):
        try:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=10).stdout.decode(errors="replace")
            return out.strip().splitlines()[0] if out.strip() else "?"
        except Exception:
            return "?"

    # No "distcc"/"swarmcc" in the work dir's name: swarmccd leaves such directories out of
    # its compiler search path (they look like masquerade folders).
    work = tempfile.mkdtemp(prefix="benchsuite-")
    os.chmod(work, 0o755)
    ctx.work = work
    ctx.servers = {}
    all_ok = True
    try:
        logdir = os.path.join(work, "log")
        os.mkdir(logdir)
        os.chmod(logdir, 0o1777)
        ctmp = os.path.join(work, "clienttmp")
        os.mkdir(ctmp)
        ctx.base = clean_env()
        ctx.base["TMPDIR"] = ctmp
        build_rusage_helper(work)
        head = version(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])  # read-only
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(ctx.swarmcc)))
        print(f"tree     {ROOT} at HEAD {head} (plus any uncommitted edits); binaries built {built}")
        print(f"swarmcc  {ctx.swarmcc}: {version([ctx.swarmcc, '--version'])}\n"
              f"distcc   {ctx.distcc}: {version([ctx.distcc, '--version'])}\n"
              f"gcc      {version(['gcc', '--version'])}\n"
              f"machine  {os.cpu_count()} CPUs, load average {loadavg()}; servers -j {ctx.jobs} "
              f"-N 0 on 127.0.0.1, logs at warning level; work dir {work}\n"
              f"sections {', '.join(sections)}{' (quick)' if args.quick else ''}; "
              f"niceness {os.getpriority(os.PRIO_PROCESS, 0)}")
        if os.getloadavg()[0] > (os.cpu_count() or 1) and not args.nice:
            print(f"NOTE: the machine is busy (load {loadavg()} on {os.cpu_count()} CPUs): "
                  f"wall times are noisy; --nice -10 (root) shields the run from other work")
        for t, binary in (("swarmcc", swarmccd), ("distcc", distccd)):
            ctx.servers[t] = Server(t, work, binary, ctx.jobs)
        for s in ctx.servers.values():
            s.wait_ready()
        time.sleep(0.3)  # distccd's preforked children
        ctx.idle_mem = {t: s.memory() for t, s in ctx.servers.items()}
        lzo = ",lzo" if ctx.lzo else ""
        ctx.env = {}
        for t in TOOLS:
            ddir = os.path.join(work, f"ddir-{t}")
            os.mkdir(ddir)
            ctx.env[t] = dict(ctx.base, DISTCC_HOSTS=f"127.0.0.1:{ctx.servers[t].port}/{ctx.jobs}{lzo}",
                              DISTCC_DIR=ddir, DISTCC_FALLBACK="0",
                              # one agent for the whole run (its CPU is read from /proc, and
                              # an agent that exits when idle would take its CPU with it)
                              SWARMCC_AGENT_IDLE="3600",
                              # (a)-(d) measure distribution, not the compile cache
                              SWARMCC_CACHE="0")
        for sec in sections:
            t = time.time()
            print(f"\n== {sec} ==")
            {"overhead": section_overhead, "throughput": section_throughput,
             "build": section_build, "rust": section_rust, "cache": section_cache}[sec](ctx)
            print(f"({sec}: {time.time() - t:.0f}s)")
        for t, s in ctx.servers.items():
            if s.proc.poll() is not None:
                print(f"WARNING: {t} server exited ({s.proc.returncode}) during the run")
            p = s.problems()
            if p:
                print(f"server log of {t} (warnings):\n{p}")
        all_ok = targets(ctx)
        print(f"\ntotal run time {time.time() - started:.0f}s; load average at the end {loadavg()}")
    finally:
        for p in list(_GROUPS):
            kill_group(p)
        stop_agents(work)
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all_ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
