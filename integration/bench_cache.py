"""(f) caches: a repeat build served by swarmccd's farm cache, by the client's local cache
and by a REAPI engine's action cache, against the first (cold) build, plain local gcc and
distcc, in the same run. Called by integration/bench_suite.py (`--only cache`).

Each round, interleaved like (d):
  local        make -jJ with plain gcc
  distcc       CC="distcc gcc" -> the suite's distccd (distcc has no cache: every build
               compiles everything again)
  farm cold    CC="swarmcc gcc" -> a swarmccd started for this round with an empty
               --cache-dir; the client's local cache off
  farm warm    the same again after `make clean`: every object comes from swarmccd's cache
  local warm   the same again with the client's local cache on, filled by one untimed
               build first: no connection at all
  reapi cold   the same project through reapi:// to buildbox-casd with local execution
               (integration/reapi-engine.sh), a fresh engine cache each round
  reapi warm   again: every object from the engine's action cache
The rows give wall time, local CPU (make, wrappers, preprocessor, links: everything the
build ran on this machine, from wait4) and the CPU of the server process tree.
"""

import os
import socket
import subprocess
import time

from bench_sched import free_port, kill_group

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = os.path.join(ROOT, "integration", "reapi-engine.sh")
# The running bench_suite module (its process list and rusage helper), given by it: run
# as a script it is `__main__`, and importing it again would make a second copy.
bs = None


class Engine:
    """buildbox-casd with local execution, on a free loopback port, for one round."""

    def __init__(self, work, name, jobs):
        self.dir = os.path.join(work, name)
        os.mkdir(self.dir)
        self.port = free_port()
        self.log = os.path.join(self.dir, "engine.log")
        self.proc = subprocess.Popen(
            ["bash", ENGINE, "start", str(self.port), os.path.join(self.dir, "cache"),
             f"--jobs={jobs}", "--log-level=warning"],
            stdin=subprocess.DEVNULL, stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        bs._GROUPS.append(self.proc)
        end = time.time() + 60
        # gRPC may listen on a v4-mapped IPv6 socket, which /proc/net/tcp does not list:
        # a connection tells (the engine does not mind one).
        while not connects(self.port):
            if self.proc.poll() is not None or time.time() > end:
                raise SystemExit(f"REAPI engine did not start:\n{bs.tail(self.log)}")
            time.sleep(0.05)

    def cpu(self):
        # casd itself (the script execs it) and the runners it has reaped: between two
        # builds no runner is alive, so this only grows.
        return bs.proc_cpu(self.proc.pid, children=True) or 0.0

    def stop(self):
        kill_group(self.proc)
        if self.proc in bs._GROUPS:
            bs._GROUPS.remove(self.proc)


def connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def count_objects(tree):
    return sum(1 for _, _, fs in os.walk(tree) for f in fs if f.endswith(".o"))


def objects(tree):
    out = {}
    for dp, _, fs in os.walk(tree):
        for f in fs:
            if f.endswith(".o"):
                p = os.path.join(dp, f)
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, tree)] = fh.read()
    return out


def section_cache(ctx, suite):
    global bs
    bs = suite
    tree = bs.prepare_lzo(ctx)
    j = ctx.jobs
    logp = os.path.join(ctx.work, "cache-build.log")
    agents = bs.AgentMeter(ctx.work)
    installed = subprocess.run(["bash", ENGINE, "install"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    reapi = installed.returncode == 0
    if not reapi:
        print(f"  (no REAPI rows: {ENGINE} install failed: {installed.stderr.strip()[-300:]})")
    names = ["local", "distcc", "farm cold", "farm warm", "local warm"]
    if reapi:
        names += ["reapi cold", "reapi warm"]
    res = {n: [] for n in names}
    refs = {}  # the local build's objects, and distcc's (also from preprocessed sources)

    def build(name, cc, env, server=None):
        _, _, _, rc = bs.run_rusage(["make", "clean"], ctx.base, tree, logp, new_session=True)
        if rc != 0:
            raise SystemExit(f"make clean failed:\n{bs.tail(logp)}")
        c0 = server.cpu() if server else 0.0
        agents.delta()
        cmd = ["make", f"-j{j}"] + ([f"CC={cc}"] if cc else [])
        wall, cpu, _, rc = bs.run_rusage(cmd, env, tree, logp, new_session=True)
        if rc != 0:
            raise SystemExit(f"{name} build failed ({rc}):\n{bs.tail(logp, 30)}")
        time.sleep(0.2)
        scpu = server.cpu() - c0 if server else 0.0
        acpu = agents.delta()
        objs = objects(tree)
        for ref in ("local", "distcc"):
            refs.setdefault(ref, objs if name == ref else None)
        differ = {ref: sum(1 for k, v in o.items() if objs.get(k) != v)
                  for ref, o in refs.items() if o is not None}
        return dict(wall=wall, cpu=cpu + acpu, server=scpu, differ=differ)

    t0 = time.time()
    for i in range(ctx.rounds):
        rdir = os.path.join(ctx.work, f"cache-round-{i}")
        os.mkdir(rdir)
        os.chmod(rdir, 0o1777)
        srv = bs.Server("swarmcc", ctx.work, ctx.swarmccd, j, name=f"swarmcc-cache-{i}",
                        extra=["--cache-dir", os.path.join(rdir, "farm-cache")])
        srv.wait_ready()
        engine = Engine(ctx.work, f"engine-{i}", j) if reapi else None
        try:
            farm = dict(ctx.base, DISTCC_HOSTS=f"127.0.0.1:{srv.port}/{j}",
                        DISTCC_DIR=os.path.join(rdir, "ddir"), DISTCC_FALLBACK="0",
                        SWARMCC_AGENT_IDLE="3600", SWARMCC_CACHE="farm")
            os.mkdir(farm["DISTCC_DIR"])
            local_cached = dict(farm, SWARMCC_CACHE="1",
                                SWARMCC_CACHE_DIR=os.path.join(rdir, "client-cache"))
            runs = [("local", lambda: build("local", None, ctx.base)),
                    ("distcc", lambda: build("distcc", f"{ctx.distcc} gcc", ctx.env["distcc"],
                                             ctx.servers["distcc"])),
                    ("farm cold", lambda: build("farm cold", f"{ctx.swarmcc} gcc", farm, srv)),
                    ("farm warm", lambda: build("farm warm", f"{ctx.swarmcc} gcc", farm, srv))]
            for n, run in runs:
                res[n].append(run())
                print(f"  round {i + 1} {n:<10} {res[n][-1]['wall']:6.2f}s wall, local CPU "
                      f"{res[n][-1]['cpu']:6.2f}s, server CPU {res[n][-1]['server']:6.2f}s")
            build("local fill", f"{ctx.swarmcc} gcc", local_cached, srv)  # untimed
            res["local warm"].append(build("local warm", f"{ctx.swarmcc} gcc", local_cached,
                                           srv))
            print(f"  round {i + 1} local warm {res['local warm'][-1]['wall']:6.2f}s wall, "
                  f"local CPU {res['local warm'][-1]['cpu']:6.2f}s")
            if engine:
                env = dict(farm, DISTCC_HOSTS=f"reapi://127.0.0.1:{engine.port}/{j}")
                for n in ("reapi cold", "reapi warm"):
                    res[n].append(build(n, f"{ctx.swarmcc} gcc", env, engine))
                    print(f"  round {i + 1} {n:<10} {res[n][-1]['wall']:6.2f}s wall, local "
                          f"CPU {res[n][-1]['cpu']:6.2f}s, engine CPU "
                          f"{res[n][-1]['server']:6.2f}s")
        finally:
            srv.stop()
            if engine:
                engine.stop()
    print(f"  ({time.time() - t0:.0f}s)")
    m = {n: {k: bs.med([r[k] for r in res[n]]) for k in ("wall", "cpu", "server")}
         for n in names}
    def same(n, ref):
        worst = max(r["differ"].get(ref, 0) for r in res[n])
        return "all" if worst == 0 else f"{len(refs[ref]) - worst} of {len(refs[ref])}"
    ctx.results["cache"] = m
    s = lambda x: f"{x:.2f} s"
    rows = []
    for n in names:
        rows.append((n, s(m[n]["wall"]), s(m[n]["cpu"]), s(m[n]["server"]),
                     bs.ratio(m[n]["wall"], m["farm cold"]["wall"]),
                     bs.ratio(m[n]["wall"], m["distcc"]["wall"]),
                     same(n, "local"), same(n, "distcc")))
    print(f"\n(f) Caches: lzo 2.10, {count_objects(tree)} objects, make -j{j}; median of "
          f"{ctx.rounds} interleaved rounds")
    print(f"  {'build':<12} {'wall':>9} {'local CPU':>10} {'server CPU':>11} "
          f"{'wall/farm cold':>15} {'wall/distcc':>12} {'= local':>9} {'= distcc':>9}")
    for r in rows:
        print(f"  {r[0]:<12} {r[1]:>9} {r[2]:>10} {r[3]:>11} {r[4]:>15} {r[5]:>12} {r[6]:>9} "
              f"{r[7]:>9}")
    print("  local CPU includes swarmcc's agent; server CPU is swarmccd's (or the engine's or "
          "distccd's) process tree (the engine's: casd and the runners it reaped, a lower bound "
          "where a runner does not wait for its compiler's children). farm = this machine "
          "over loopback.\n"
          "  = local / = distcc: objects byte-identical to the local gcc build's / distcc's, "
          "worst round. lzo builds with -g: a compile of preprocessed source (distcc's way, "
          "and swarmcc's) records other DWARF column numbers where macros expand, so those "
          "objects differ from a local compile's in .debug_info alone.")
