"""`up` then `destroy` of the 3-node example lab, beside the same libvirt work done one call after another.

One repetition on one libvirt host (the real daemon or the simulator) measures, in this order:

  raw        the objects labvirt would create, created and then removed with libvirt-python one call at
             a time (the XML is labvirt's own, rendered by labvirt.core.render, so the work is the same);
             each call is timed; their sum is the sequential baseline
  qemu-img   `qemu-img create -f qcow2` of the same disks (a second baseline line for the volumes)
  labvirt    `up` then `destroy` in this process through Session + engine (imports already paid)
  cli        `python -m labvirt up` then `destroy` as whole processes (imports included)

The lab is a temporary copy of examples/three-node-nat (only networks labvirt owns) made safe for a
benchmark: every network isolated,
subnets of its own in 10.253.0.0/16, 128 MiB nodes, empty thin disks, domain_type "qemu", pool in a
temporary directory, a lab name unique to the run. Everything created is removed in `finally`, first by
labvirt destroy and then by a sweep of libvirt objects carrying this run's name prefix (nothing else).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field

from baseline import (Documents, Ops, documents, qemu_img_volumes, raw_destroy, raw_destroy_concurrent, raw_up,  # noqa: E402
                      raw_up_concurrent)
from lab_copy import make_lab


# -- labvirt ------------------------------------------------------------------------------------------
def labvirt_up(lab: str, uri: str, workers: int) -> dict[str, float]:
    """`up` in this process: Session.open (lab, connection, host verdict), plan, apply, close."""
    return _timed(lab, uri, workers, lambda session: session.plan_up(for_apply=True)[1])


def labvirt_destroy(lab: str, uri: str, workers: int) -> dict[str, float]:
    from labvirt.core.plan import plan_destroy

    return _timed(lab, uri, workers, lambda session: plan_destroy(session.desired(), session.observe()))


def _timed(lab: str, uri: str, workers: int, make_plan) -> dict:
    """Session.open, make_plan(session), engine.apply, close: each part timed, with the action timeline."""
    from labvirt.ops.engine import apply
    from labvirt.ops.session import Session

    t0 = time.perf_counter()
    session = Session.open(lab, uri, lock=True)
    t1 = time.perf_counter()
    try:
        the_plan = make_plan(session)
        t2 = time.perf_counter()
        timeline = Timeline(t0)
        apply(the_plan, session.driver, workers=workers, on_event=timeline.event)
        t3 = time.perf_counter()
    finally:
        session.close()
    t4 = time.perf_counter()
    return {"total": t4 - t0, "open": t1 - t0, "plan": t2 - t1, "apply": t3 - t2, "close": t4 - t3,
            "actions": len(the_plan.actions), "timeline": timeline.rows}


class Timeline:
    """engine.apply's events as (action, phase, start, end) in seconds since the command began."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.rows: list[tuple[str, int, float, float]] = []
        self._started: dict[int, float] = {}

    def event(self, kind, action, error) -> None:
        now = time.perf_counter() - self.t0
        if kind == "start":
            self._started[id(action)] = now
        else:
            self.rows.append((action.describe()[:60], action.phase, self._started.pop(id(action), now), now))


def cli_env(work: str) -> dict:
    """The environment of the CLI processes a benchmark runs: labvirt's state in `work`, and bytecode cached
    there as for an installed package. Sessions here set PYTHONDONTWRITEBYTECODE; under it every process
    compiles labvirt's ~60 modules again (0.1-0.2 s), which no installed labvirt does."""
    env = dict(os.environ, LABVIRT_STATE_DIR=os.path.join(work, "state"), PYTHONPYCACHEPREFIX=os.path.join(work, "pyc"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_cpu(argv: list[str], env: dict) -> tuple[float, float]:
    """(wall, cpu) seconds of one process; cpu = user + system of that child (wait4). Fails loudly."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    if p.returncode != 0:
        text = err.decode(errors="replace")
        failed = [line for line in text.splitlines() if line.startswith(("✗", "error", "warning"))]
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: " + "\n".join(failed[:20])
                           + f"\n...\n{text.strip()[-500:]}")
    return wall, ru.ru_utime + ru.ru_stime


def cli(args: list[str], env: dict) -> float:
    """Wall time of one `python -m labvirt ...` process (fails loudly)."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "labvirt", *args], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=600)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"labvirt {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-500:]}")
    return took


# -- what exists, and the sweep -------------------------------------------------------------------------
def leftovers(conn, prefix: str) -> list[str]:
    """Objects on `conn` that belong to this run's lab (by name prefix)."""
    found = [f"domain {d.name()}" for d in conn.listAllDomains() if d.name().startswith(prefix + "-")]
    found += [f"network {n.name()}" for n in conn.listAllNetworks() if n.name().startswith(prefix + "-")]
    found += [f"pool {p.name()}" for p in conn.listAllStoragePools() if p.name() == f"labvirt-{prefix}"]
    return found


def sweep(conn, prefix: str) -> list[str]:
    """Remove whatever of this run's lab is still there (only names with this run's prefix)."""
    import libvirt

    removed = []
    for dom in conn.listAllDomains():
        if dom.name().startswith(prefix + "-"):
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            removed.append(f"domain {dom.name()}")
    for pool in conn.listAllStoragePools():
        if pool.name() == f"labvirt-{prefix}":
            with contextlib.suppress(libvirt.libvirtError):
                if not pool.isActive():
                    pool.create(0)
                for vol in pool.listAllVolumes():
                    with contextlib.suppress(libvirt.libvirtError):
                        vol.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.undefine()
            removed.append(f"pool {pool.name()}")
    for net in conn.listAllNetworks():
        if net.name().startswith(prefix + "-"):
            with contextlib.suppress(libvirt.libvirtError):
                if net.isActive():
                    net.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                net.undefine()
            removed.append(f"network {net.name()}")
    return removed


# -- one host -------------------------------------------------------------------------------------------
def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


@dataclass
class Repetition:
    raw_up: Ops
    raw_destroy: Ops
    qemu_img: Ops | None
    labvirt_up: dict
    labvirt_destroy: dict
    cli_up: float | None
    cli_destroy: float | None
    cli_noop_up: float | None = None
    conditions: dict = field(default_factory=dict)
    raw_up_concurrent: float | None = None        # the same calls by hand, as concurrent as they go
    raw_destroy_concurrent: float | None = None

    def as_dict(self) -> dict:
        d = {
            "raw_up": {"total": self.raw_up.total, "ops": self.raw_up.rows},
            "raw_destroy": {"total": self.raw_destroy.total, "ops": self.raw_destroy.rows},
            "labvirt_up": self.labvirt_up, "labvirt_destroy": self.labvirt_destroy,
            "cli_up": self.cli_up, "cli_destroy": self.cli_destroy, "cli_noop_up": self.cli_noop_up,
            "conditions": self.conditions,
            "raw_up_concurrent": self.raw_up_concurrent, "raw_destroy_concurrent": self.raw_destroy_concurrent,
        }
        if self.qemu_img is not None:
            d["qemu_img"] = {"total": self.qemu_img.total, "ops": self.qemu_img.rows}
            d["raw_up_with_qemu_img"] = self.raw_up_qemu_img
        return d

    @property
    def raw_up_qemu_img(self) -> float | None:
        """The sequential up sum with `qemu-img create` in place of libvirt's volume createXML."""
        if self.qemu_img is None:
            return None
        return self.raw_up.total - self.raw_up.by_op().get("volume create", 0.0) + self.qemu_img.total


def bench_host(kind: str, repeat: int, workers: int, with_cli: bool = True, log=print, quiet_wait: float = 0.0) -> dict:
    """kind 'daemon' (qemu:///system) or 'sim' (labvirt's simulator vs libvirt's test:///default).

    quiet_wait: before each daemon repetition, wait up to this long for the machine's other work to settle.
    """
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    tmp = tempfile.mkdtemp(prefix=f"labvirt-bench-{kind}-")
    state = os.path.join(tmp, "state")
    old_state = os.environ.get("LABVIRT_STATE_DIR")
    os.environ["LABVIRT_STATE_DIR"] = state        # locks, sim hosts: never the user's
    env = cli_env(tmp)
    env.pop("LIBVIRT_DEFAULT_URI", None)
    name = "lvbench" + uuid.uuid4().hex[:6]
    if kind == "daemon":
        uri = raw_uri = "qemu:///system"
    else:
        uri, raw_uri = "sim:///bench", "test:///default"
    conn = None
    reps: list[Repetition] = []
    retries: list[str] = []
    lab = None
    try:
        conn = libvirt.open(raw_uri)
        lab = make_lab(tmp, name, os.path.join(tmp, "pool"), conn if kind == "daemon" else None)
        docs = documents(lab)
        if kind == "sim":
            # labvirt's simulator host lives in the state dir; a connection to it is only for checks
            from labvirt.driver import simulator as sim

            sim.create_host("bench", replace=True)
        log(f"[{kind}] lab {name} in {lab}: {len(docs.networks)} networks, 1 pool, {len(docs.volumes)} volumes, "
            f"{len(docs.domains)} domains; labvirt on {uri}, raw baseline on {raw_uri}")
        while len(reps) < repeat:
            try:
                rep = _repetition(kind, conn, lab, uri, docs, tmp, workers, with_cli, env, quiet_wait, log)
            except Exception as e:
                if not RACE.search(str(e)) or len(retries) >= MAX_RETRIES:
                    raise
                # another labvirt user removed an object while labvirt listed the host (see README)
                retries.append(str(e))
                log(f"[{kind}] repetition lost to a race with another process on the host, retried: {e}")
                _cleanup(kind, lab, uri, conn, name, env, log)
                continue
            reps.append(rep)
            log(f"[{kind}] #{len(reps)}: raw up {rep.raw_up.total:.3f}s destroy {rep.raw_destroy.total:.3f}s | "
                f"labvirt up {rep.labvirt_up['total']:.3f}s destroy {rep.labvirt_destroy['total']:.3f}s"
                + (f" | cli up {rep.cli_up:.3f}s destroy {rep.cli_destroy:.3f}s" if with_cli else ""))
    finally:
        _cleanup(kind, lab, uri, conn, name, env, log)
        if old_state is None:
            os.environ.pop("LABVIRT_STATE_DIR", None)
        else:
            os.environ["LABVIRT_STATE_DIR"] = old_state
        with contextlib.suppress(Exception):
            if conn is not None:
                conn.close()
        shutil.rmtree(tmp, ignore_errors=True)
    out = summarize(kind, uri, raw_uri, reps, workers)
    out["retries"] = retries
    return out


# labvirt's observe() lists every object on the host; one that another process removes meanwhile fails it
RACE = re.compile(r"listing (domains|networks|storage pools): .*(not found|no storage vol|no network|no domain)",
                  re.I | re.S)
MAX_RETRIES = 5


def _repetition(kind, conn, lab, uri, docs: Documents, tmp, workers, with_cli, env, quiet_wait=0.0,
                log=print) -> Repetition:
    """raw up + destroy, qemu-img, labvirt in-process up + destroy, CLI up + destroy; each from nothing."""
    busy = wait_quiet(quiet_wait, log=log) if kind == "daemon" else None
    _must_be_empty(kind, conn, docs.prefix)
    ru = raw_up(conn, docs)
    rd = raw_destroy(conn, docs)
    _must_be_empty(kind, conn, docs.prefix)
    cu_raw = cd_raw = None
    if kind == "daemon":
        cu_raw = raw_up_concurrent(conn, docs)
        cd_raw = raw_destroy_concurrent(conn, docs)
        _must_be_empty(kind, conn, docs.prefix)
    qi = qemu_img_volumes(docs, os.path.join(tmp, "qemu-img")) if kind == "daemon" else None

    lu = labvirt_up(lab, uri, workers)
    _must_exist(kind, uri, docs)
    ld = labvirt_destroy(lab, uri, workers)
    _must_be_empty(kind, conn, docs.prefix, uri)

    cu = cd = noop = None
    if with_cli:
        cu = cli(["up", "-C", lab, "--connect", uri, "--workers", str(workers)], env)
        _must_exist(kind, uri, docs)
        noop = cli(["up", "-C", lab, "--connect", uri], env)     # nothing to do: the fixed cost of a command
        cd = cli(["destroy", "-C", lab, "--connect", uri, "--workers", str(workers)], env)
        _must_be_empty(kind, conn, docs.prefix, uri)
    return Repetition(ru, rd, qi, lu, ld, cu, cd, noop,
                      load_conditions(conn if kind == "daemon" else None, docs.prefix, busy), cu_raw, cd_raw)


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy during the next `seconds` (from /proc/stat): other work on the machine."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)          # idle + iowait, total
    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def wait_quiet(max_wait: float, threshold: float = 0.25, log=print) -> float:
    """Wait (at most `max_wait` s) until under `threshold` of the CPUs are busy; returns the last reading."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > threshold and time.monotonic() < deadline:
        log(f"  machine busy ({busy:.0%} of CPUs), waiting up to {deadline - time.monotonic():.0f}s more")
        time.sleep(4)
        busy = cpu_busy()
    return busy


def load_conditions(conn, prefix: str, busy_before: float | None = None) -> dict:
    """What else the machine was doing: CPU use just before the repetition, load average, other domains."""
    import libvirt

    out = {"loadavg_1min": round(os.getloadavg()[0], 2)}
    if busy_before is not None:
        out["cpu_busy_before"] = round(busy_before, 2)
    if conn is not None:
        with contextlib.suppress(Exception):
            out["other_running_domains"] = sum(1 for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
                                               if not d.name().startswith(prefix + "-"))
    return out


def _sim_conn(uri: str):
    """A read-only look at the simulator's persisted host (a fresh test:/// load of its node file)."""
    import libvirt

    from labvirt.core.uris import parse_sim_uri
    from labvirt.driver.state_files import sim_dir

    return libvirt.open(f"test://{os.path.join(sim_dir(parse_sim_uri(uri)), 'node.xml')}")


def _must_be_empty(kind, conn, prefix, uri=None):
    left = leftovers(conn, prefix)
    if kind == "sim" and uri is not None:
        c = _sim_conn(uri)
        try:
            left += leftovers(c, prefix)
        finally:
            c.close()
    if left:
        raise RuntimeError(f"objects left over (a run would not start from nothing): {', '.join(left)}")


def _must_exist(kind, uri, docs: Documents):
    import libvirt

    c = _sim_conn(uri) if kind == "sim" else libvirt.open(uri)
    try:
        missing = [n for n, _ in docs.domains if not _active(c, n)]
        if missing:
            raise RuntimeError(f"labvirt up did not leave these domains running: {', '.join(missing)}")
    finally:
        c.close()


def _active(conn, name) -> bool:
    import libvirt

    try:
        return bool(conn.lookupByName(name).isActive())
    except libvirt.libvirtError:
        return False


def _cleanup(kind, lab, uri, conn, name, env, log):
    """labvirt destroy, then a sweep of this run's names on the raw connection (and the daemon)."""
    import libvirt

    if lab is not None:
        try:
            subprocess.run([sys.executable, "-m", "labvirt", "destroy", "-C", lab, "--connect", uri],
                           capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
        except Exception as e:  # the sweep below still runs
            log(f"[{kind}] cleanup: labvirt destroy failed: {e}")
    targets = [conn] if conn is not None else []
    if kind == "daemon" and conn is None:
        with contextlib.suppress(libvirt.libvirtError):
            targets.append(libvirt.open(uri))
    for c in targets:
        with contextlib.suppress(Exception):
            removed = sweep(c, name)
            if removed:
                log(f"[{kind}] cleanup swept: {', '.join(removed)}")


def floors(rep: Repetition, cpus: int) -> tuple[float, float]:
    """The least time `up` and `destroy` can take on this host, from the raw operations of the same repetition:
    libvirtd starts and stops networks one at a time, and every node of the lab sits on every network, so
    up >= the network starts + the domain starts spread over the CPUs (QEMU's start-up is CPU-bound; never
    less than the longest start), and destroy >= the longest domain destroy + the network stops."""
    def ops(o: Ops, op: str) -> list[float]:
        return [s for name, _, s in o.rows if name == op]

    starts = ops(rep.raw_up, "domain start")
    up = sum(ops(rep.raw_up, "network start")) + max(sum(starts) / cpus, max(starts, default=0.0))
    destroy = max(ops(rep.raw_destroy, "domain destroy"), default=0.0) + sum(ops(rep.raw_destroy, "network stop"))
    return up, destroy


def summarize(kind, uri, raw_uri, reps: list[Repetition], workers: int) -> dict:
    def stat(values):
        values = [v for v in values if v is not None]
        return {"median": median(values), "min": min(values)} if values else None

    cpus = os.cpu_count() or 1
    out = {
        "host": kind, "uri": uri, "raw_uri": raw_uri, "repeat": len(reps), "workers": workers, "cpus": cpus,
        "raw_up": stat([r.raw_up.total for r in reps]),
        "raw_destroy": stat([r.raw_destroy.total for r in reps]),
        "labvirt_up": stat([r.labvirt_up["total"] for r in reps]),
        "labvirt_destroy": stat([r.labvirt_destroy["total"] for r in reps]),
        "cli_up": stat([r.cli_up for r in reps]),
        "cli_destroy": stat([r.cli_destroy for r in reps]),
        "cli_noop_up": stat([r.cli_noop_up for r in reps]),
        "loadavg_1min": stat([r.conditions.get("loadavg_1min") for r in reps]),
        "cpu_busy_before": stat([r.conditions.get("cpu_busy_before") for r in reps]),
        "other_running_domains": max((r.conditions.get("other_running_domains", 0) for r in reps), default=0),
        # ratios per repetition (labvirt and its baseline measured in the same repetition)
        "ratio_up": stat([r.labvirt_up["total"] / r.raw_up.total for r in reps]),
        "ratio_destroy": stat([r.labvirt_destroy["total"] / r.raw_destroy.total for r in reps]),
        "ratio_cli_up": stat([r.cli_up / r.raw_up.total for r in reps if r.cli_up]),
        "ratio_cli_destroy": stat([r.cli_destroy / r.raw_destroy.total for r in reps if r.cli_destroy]),
        # the floor (see floors) in seconds, as a ratio to the sum (the best ratio this host allows), and
        # labvirt over it
        "floor_up": stat([floors(r, cpus)[0] for r in reps]),
        "floor_destroy": stat([floors(r, cpus)[1] for r in reps]),
        "ratio_floor_up": stat([floors(r, cpus)[0] / r.raw_up.total for r in reps]),
        "ratio_floor_destroy": stat([floors(r, cpus)[1] / r.raw_destroy.total for r in reps]),
        "over_floor_up": stat([r.labvirt_up["total"] / floors(r, cpus)[0] for r in reps]),
        "over_floor_destroy": stat([r.labvirt_destroy["total"] / floors(r, cpus)[1] for r in reps]),
        # the measured floor: the same calls by hand, as concurrent as they go (daemon only)
        "raw_up_concurrent": stat([r.raw_up_concurrent for r in reps]),
        "raw_destroy_concurrent": stat([r.raw_destroy_concurrent for r in reps]),
        "ratio_concurrent_up": stat([r.raw_up_concurrent / r.raw_up.total for r in reps if r.raw_up_concurrent]),
        "ratio_concurrent_destroy": stat([r.raw_destroy_concurrent / r.raw_destroy.total for r in reps
                                          if r.raw_destroy_concurrent]),
        "over_concurrent_up": stat([r.labvirt_up["total"] / r.raw_up_concurrent for r in reps if r.raw_up_concurrent]),
        "over_concurrent_destroy": stat([r.labvirt_destroy["total"] / r.raw_destroy_concurrent for r in reps
                                         if r.raw_destroy_concurrent]),
        "labvirt_up_parts": {k: stat([r.labvirt_up[k] for r in reps]) for k in ("open", "plan", "apply", "close")},
        "labvirt_destroy_parts": {k: stat([r.labvirt_destroy[k] for r in reps])
                                  for k in ("open", "plan", "apply", "close")},
        "raw_up_ops": _op_stats(reps, "raw_up"),
        "raw_destroy_ops": _op_stats(reps, "raw_destroy"),
        "repetitions": [r.as_dict() for r in reps],
    }
    if reps and reps[0].qemu_img is not None:
        out["qemu_img"] = stat([r.qemu_img.total for r in reps])
        out["raw_up_with_qemu_img"] = stat([r.raw_up_qemu_img for r in reps])
        out["ratio_up_vs_qemu_img_line"] = stat([r.labvirt_up["total"] / r.raw_up_qemu_img for r in reps])
        out["qemu_img_ops"] = _op_stats(reps, "qemu_img")
    return out


def _op_stats(reps, attr) -> dict:
    """Per operation kind: count per repetition and the median over repetitions of its summed time."""
    per: dict[str, list[float]] = {}
    count: dict[str, int] = {}
    for r in reps:
        ops: Ops = getattr(r, attr)
        for op, s in ops.by_op().items():
            per.setdefault(op, []).append(s)
        if r is reps[0]:
            for op, _, _ in ops.rows:
                count[op] = count.get(op, 0) + 1
    return {op: {"count": count.get(op, 0), "median": median(v), "min": min(v)} for op, v in per.items()}


# -- overheads without libvirt work ----------------------------------------------------------------------
UP_IMPORTS = """
import time
t = time.perf_counter()
import labvirt.cli, labvirt.cli.progress, labvirt.ops.session, labvirt.ops.engine, labvirt.driver.libvirt_driver, labvirt.core.plan
import labvirt.driver.simulator, labvirt.core.summary, rich.progress
try:
    import labvirt.host.verdict, labvirt.host.facts
except ImportError:
    pass
print(time.perf_counter() - t)
"""


def import_time(repeat: int) -> dict:
    """Wall time of `python -m labvirt --help`, and of a bare interpreter for comparison;
    plus the cumulative import time of labvirt's modules from `-X importtime`."""
    def wall(args):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, check=True, stdin=subprocess.DEVNULL)
        return time.perf_counter() - t0

    helps = [wall(["-m", "labvirt", "--help"]) for _ in range(repeat)]
    bare = [wall(["-c", "pass"]) for _ in range(repeat)]
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "labvirt", "--help"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    top = {}
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) <= 2:    # top-level imports only
            top[m.group(4)] = int(m.group(2)) / 1e6
    heavy = dict(sorted(top.items(), key=lambda kv: -kv[1])[:8])
    up_imports = [float(subprocess.run([sys.executable, "-c", UP_IMPORTS], capture_output=True, text=True,
                                       check=True).stdout) for _ in range(repeat)]
    return {"labvirt_help": {"median": median(helps), "min": min(helps)},
            "python_bare": {"median": median(bare), "min": min(bare)},
            "imports_for_up": median(up_imports),
            "heaviest_top_level_imports": heavy}


def plan_and_xml(repeat: int = 20) -> dict:
    """load_lab + desire + plan_up on nothing observed (renders every XML document), in this process."""
    from labvirt.core import plan as p
    from labvirt.core.desired import HostParams, desire
    from labvirt.core.identity import LabCopy
    from labvirt.core.loader import load_lab
    from labvirt.core.observed import Observed

    tmp = tempfile.mkdtemp(prefix="labvirt-bench-plan-")
    try:
        lab = make_lab(tmp, "lvbenchplan", os.path.join(tmp, "pool"))
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            spec = load_lab(lab)
            desired = desire(spec, LabCopy(spec.name), HostParams(domain_type="qemu", nested_cpu="default"))
            the_plan = p.plan_up(desired, Observed())
            times.append(time.perf_counter() - t0)
        return {"median": median(times), "min": min(times), "actions": len(the_plan.actions)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
