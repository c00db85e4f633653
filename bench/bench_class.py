"""Class mode at class size: 30 copies of the 3-node lab on the simulator and on a real libvirtd.

Times each whole CLI command (a fresh process, as an instructor runs it: wall time, and the CPU time
of labvirt's own process): class up, class snapshot, class rebuild of one student, class revert of
all, class destroy; on the real daemon also class up --no-start (define only) and the start of what
it defined. Every repetition starts from nothing; before each, the share of the CPUs busy with other
work is sampled.

The baseline, measured in the same repetition on the real daemon: the domains `class up --no-start`
defined (networks, disks and seeds in place) are started with libvirt-python one after another, each
`create()` timed, then destroyed one after another. The sum of those starts is "the sum of the QEMU
starts" of issue 15: each start meets the guests started before it, as in a class. Its floor for a
class-wide start is that sum / the number of CPUs; the target is at most 1.5x that floor.

Targets (issues 7 and 15): 30 copies up in under 3 s on the simulator; define-only under 10 s on the
real daemon; one student rebuilt in at most 2 s with the others running; class-wide define + start at
most 1.5 x (sum of the QEMU starts) / CPUs.
Run: .venv/bin/python bench/bench_class.py [--only sim|daemon] [--students 30] [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
EXAMPLE = os.path.join(ROOT, "examples", "three-node-nat")
URI = "qemu:///system"
REBUILT = "s02"     # the student rebuilt (its snapshot goes with its disks: not reverted)

from bench_lab import cli_env, cpu_busy, median, run_cpu, sweep, wait_quiet  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_lab(work: str, name: str, uri: str | None) -> str:
    """The 3-node example, made safe and small: isolated networks, 1 vCPU / 64 MiB nodes, overlays on a small
    local golden file, seeds on; its own subnet pool. `uri`: the class's host (daemon runs)."""
    lab = os.path.join(work, "lab")
    shutil.copytree(EXAMPLE, lab)
    shutil.rmtree(os.path.join(lab, "images"))
    golden = os.path.join(work, "golden.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", golden, "1G"], check=True)
    with open(os.path.join(lab, "networks", "provider.toml"), "w") as f:
        f.write('mode = "isolated"\nsubnet = "10.5.116.0/24"\n')
    for node in os.listdir(os.path.join(lab, "domains")):
        path = os.path.join(lab, "domains", node)
        text = open(path).read()
        text = re.sub(r'^image = ".*"$', f'base_image = "{golden}"\nseed = true', text, flags=re.MULTILINE)
        small = {"memory": 'memory = "64MiB"', "vcpus": "vcpus = 1"}     # no OS boots: keep QEMU small
        text = "\n".join(small.get(line.split(" ")[0], line) for line in text.splitlines())
        with open(path, "w") as f:
            f.write(text + "\n")
    with open(os.path.join(lab, "lab.toml"), "w") as f:
        f.write(f'[lab]\nname = "{name}"\ndomain_type = "qemu"\n[storage]\npool_dir = "{work}/pools"\n'
                '[class]\nsubnet_pool = "10.253.0.0/16"\nworkers = 8\n')
        if uri:
            # libvirt on these machines reports NUMA node0's memory (5.6 GiB of 23.5 GiB): say what we accept
            f.write(f'[[class.host]]\nuri = "{uri}"\nmemory_overcommit = 16\ncpu_overcommit = 64\n')
    return lab


def cli(*args, env=None) -> dict:
    """One `python -m labvirt ARGS` process: wall seconds and the CPU seconds of that process alone
    (bench_lab.run_cpu: QEMU, a child of libvirtd, is not counted). Fails loudly."""
    wall, cpu = run_cpu([sys.executable, "-m", "labvirt", *args], env)
    return {"wall": round(wall, 3), "cpu": round(cpu, 3)}


def _all_but(student: str, n: int) -> list[str]:
    """Every student but the rebuilt one (whose snapshot went with its disks), as -s options."""
    from labvirt.core.class_layout import student_names

    return [arg for s in student_names(n) if s != student for arg in ("-s", s)]


# -- the simulator --------------------------------------------------------------------------------------
def sim_repetition(lab: str, env: dict, students: int) -> dict:
    host = "sim:///benchclass"
    r = {"class up": cli("class", "up", "-n", str(students), "-C", lab, "-c", host, env=env)}
    r["class up again (no-op)"] = cli("class", "up", "-C", lab, "-c", host, env=env)
    r["class snapshot"] = cli("class", "snapshot", "pre", "-C", lab, "-c", host, env=env)
    r["class rebuild one"] = cli("class", "rebuild", "-s", REBUILT, "-C", lab, "-c", host, env=env)
    r["class revert all"] = cli("class", "revert", "pre", *_all_but(REBUILT, students), "-C", lab, "-c", host, env=env)
    r["class status"] = cli("class", "status", "-C", lab, "-c", host, env=env)
    r["class destroy"] = cli("class", "destroy", "-C", lab, "-c", host, env=env)
    return r


def run_sim(students: int, repeat: int) -> list[dict]:
    work = tempfile.mkdtemp(prefix="labvirt-bench-class-")
    env = cli_env(work)
    lab = make_lab(work, "lvbcsim", None)
    reps = []
    try:
        cli("sim", "create", "benchclass", "--cpus", "1024", "--memory", "4TiB", "--disk", "100TiB", env=env)
        for i in range(repeat):
            busy = cpu_busy(1.0)
            log(f"[sim] repetition {i + 1}/{repeat}: CPUs busy with other work {busy:.0%}")
            reps.append({"cpu_busy_before": round(busy, 2), "loadavg_1min": round(os.getloadavg()[0], 2),
                         **sim_repetition(lab, env, students)})
        return reps
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the real daemon ------------------------------------------------------------------------------------
def class_domains(conn, name: str) -> list:
    """The class's domains (named LAB-sNN-NODE), in name order."""
    return sorted((d for d in conn.listAllDomains() if d.name().startswith(f"{name}-s")), key=lambda d: d.name())


def raw_starts(conn, name: str) -> dict:
    """The baseline: start every defined domain of the class with libvirt-python, one after another (each
    create() timed), then destroy them one after another (timed). The domains stay defined."""
    doms = class_domains(conn, name)
    starts, destroys = [], []
    for d in doms:
        t0 = time.perf_counter()
        d.create()
        starts.append(time.perf_counter() - t0)
    for d in doms:
        t0 = time.perf_counter()
        d.destroy()
        destroys.append(time.perf_counter() - t0)
    return {"domains": len(doms), "start_sum": round(sum(starts), 3), "destroy_sum": round(sum(destroys), 3),
            "start_first": round(starts[0], 3), "start_last": round(starts[-1], 3),
            "start_median": round(median(starts), 3)}


def concurrently(names: list[str], op, threads: int) -> float:
    """Wall seconds of `op(domain)` on every named domain, by hand from `threads` threads, each with a
    libvirt connection of its own (no limit on calls in flight but libvirtd's). Fails loudly."""
    import queue
    import threading

    import libvirt

    conns = [libvirt.open(URI) for _ in range(threads)]
    try:
        todo: queue.Queue = queue.Queue()
        for n in names:
            todo.put(n)
        errors: list = []

        def worker(conn):
            while True:
                try:
                    dom = conn.lookupByName(todo.get_nowait())
                except queue.Empty:
                    return
                try:
                    op(dom)
                except libvirt.libvirtError as e:
                    errors.append(e)

        workers = [threading.Thread(target=worker, args=(c,)) for c in conns]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        took = time.perf_counter() - t0
        if errors:
            raise errors[0]
        return took
    finally:
        for c in conns:
            c.close()


def domain_names(prefix: str) -> list[str]:
    """The defined domains named PREFIX..., in name order."""
    import libvirt

    conn = libvirt.open(URI)
    try:
        return sorted(d.name() for d in conn.listAllDomains() if d.name().startswith(prefix))
    finally:
        conn.close()


def raw_concurrent(name: str, threads: int = 8) -> dict:
    """The measured floor of a class-wide start: the same defined domains started by hand from `threads`
    threads, each with a connection of its own, then destroyed the same way. Wall seconds of each."""
    names = domain_names(f"{name}-s")
    return {"threads": threads, "start": round(concurrently(names, lambda d: d.create(), threads), 3),
            "destroy": round(concurrently(names, lambda d: d.destroy(), threads), 3)}


def daemon_repetition(conn, lab: str, env: dict, students: int, name: str) -> dict:
    r = {"class up --no-start (define only)": cli("class", "up", "-n", str(students), "--no-start", "-C", lab, env=env)}
    r["raw: start each domain, one after another"] = raw_starts(conn, name)
    r["raw: start every domain from 8 threads"] = raw_concurrent(name)
    r["class up (start the defined)"] = cli("class", "up", "-C", lab, env=env)
    r["class destroy"] = cli("class", "destroy", "-C", lab, env=env)
    r["class up (define + start)"] = cli("class", "up", "-n", str(students), "-C", lab, env=env)
    r["class snapshot (running, with memory)"] = cli("class", "snapshot", "pre", "-C", lab, env=env)
    r["class rebuild one"] = cli("class", "rebuild", "-s", REBUILT, "-C", lab, env=env)
    r["class revert all"] = cli("class", "revert", "pre", *_all_but(REBUILT, students), "-C", lab, env=env)
    r["class destroy (running)"] = cli("class", "destroy", "-C", lab, env=env)
    return r


def run_daemon(students: int, repeat: int, quiet_wait: float) -> list[dict]:
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    work = tempfile.mkdtemp(prefix="labvirt-bench-class-")
    env = cli_env(work)
    name = "lvbc" + uuid.uuid4().hex[:4]
    lab = make_lab(work, name, URI)
    conn = libvirt.open(URI)
    reps = []
    try:
        for i in range(repeat):
            busy = wait_quiet(quiet_wait, log=log) if quiet_wait else cpu_busy(1.0)
            log(f"[daemon] repetition {i + 1}/{repeat}: CPUs busy with other work {busy:.0%}, "
                f"load {os.getloadavg()[0]:.2f}")
            reps.append({"cpu_busy_before": round(busy, 2), "loadavg_1min": round(os.getloadavg()[0], 2),
                         **daemon_repetition(conn, lab, env, students, name)})
        return reps
    finally:
        remove_class(conn, lab, env, name, students)
        conn.close()
        shutil.rmtree(work, ignore_errors=True)


def remove_class(conn, lab: str, env: dict, name: str, students: int) -> None:
    """`class destroy`, then a sweep of whatever a failed command left (this run's names only)."""
    subprocess.run([sys.executable, "-m", "labvirt", "class", "destroy", "-C", lab], env=env,
                   capture_output=True, stdin=subprocess.DEVNULL)
    for student in range(1, students + 1):
        left = sweep(conn, f"{name}-s{student:02d}")
        if left:
            log(f"cleanup swept: {', '.join(left)}")


# -- the report -----------------------------------------------------------------------------------------
def summarize(reps: list[dict], cpus: int) -> dict:
    """Median (min, max) per command over the repetitions; on the daemon the per-repetition ratios to the
    raw sequential starts, and the class-wide floor and target."""
    out: dict = {"repetitions": len(reps), "cpus": cpus,
                 "cpu_busy_before": [r["cpu_busy_before"] for r in reps],
                 "loadavg_1min": [r["loadavg_1min"] for r in reps], "commands": {}}
    commands = [k for k, v in reps[0].items() if isinstance(v, dict) and "wall" in v]
    for k in commands:
        walls = [r[k]["wall"] for r in reps]
        out["commands"][k] = {"wall": median(walls), "wall_min": min(walls), "wall_max": max(walls),
                              "cpu": median([r[k]["cpu"] for r in reps])}
    raw_key = "raw: start each domain, one after another"
    if raw_key in reps[0]:
        raws = [r[raw_key] for r in reps]
        out["raw"] = {k: median([x[k] for x in raws]) for k in raws[0]}

        def ratio(cmd):
            return [r[cmd]["wall"] / r[raw_key]["start_sum"] for r in reps]

        conc_key = "raw: start every domain from 8 threads"
        if conc_key in reps[0]:
            concs = [r[conc_key] for r in reps]
            out["raw_concurrent"] = {k: median([x[k] for x in concs]) for k in ("start", "destroy")}
            out["raw_concurrent"]["threads"] = concs[0]["threads"]
            out["commands"]["class up (start the defined)"]["over_raw_concurrent"] = median(
                [r["class up (start the defined)"]["wall"] / r[conc_key]["start"] for r in reps])
        floors = [r[raw_key]["start_sum"] / cpus for r in reps]
        out["floor (sum of starts / CPUs)"] = median(floors)
        out["target (1.5 x floor)"] = median([1.5 * f for f in floors])
        for cmd in ("class up (start the defined)", "class up (define + start)"):
            rs = ratio(cmd)
            out["commands"][cmd]["ratio_to_start_sum"] = median(rs)
            out["commands"][cmd]["ratio_to_start_sum_min"] = min(rs)
            out["commands"][cmd]["over_floor"] = median([r[cmd]["wall"] / f for r, f in zip(reps, floors)])
    return out


def report(kind: str, s: dict) -> str:
    lines = [f"### {kind}: {s['repetitions']} repetitions, {s['cpus']} CPUs; CPUs busy with other work before a "
             f"repetition: median {median(s['cpu_busy_before']):.0%} ({min(s['cpu_busy_before']):.0%}-"
             f"{max(s['cpu_busy_before']):.0%})", "",
             "| command | wall s, median (min-max) | labvirt CPU s | / raw start sum | / floor |",
             "| --- | --- | --- | --- | --- |"]
    for k, c in s["commands"].items():
        ratio = f"{c['ratio_to_start_sum']:.2f}x ({c['ratio_to_start_sum_min']:.2f}x)" if "ratio_to_start_sum" in c else ""
        over = f"{c['over_floor']:.2f}x" if "over_floor" in c else ""
        lines.append(f"| {k} | {c['wall']:.2f} ({c['wall_min']:.2f}-{c['wall_max']:.2f}) | {c['cpu']:.2f} | {ratio} | {over} |")
    if "raw" in s:
        raw = s["raw"]
        lines += ["", f"Raw, one after another ({raw['domains']} domains): start sum {raw['start_sum']:.2f} s "
                      f"(first {raw['start_first']:.3f} s, median {raw['start_median']:.3f} s, last "
                      f"{raw['start_last']:.3f} s), destroy sum {raw['destroy_sum']:.2f} s. Floor for a class-wide "
                      f"start = start sum / {s['cpus']} CPUs = {s['floor (sum of starts / CPUs)']:.2f} s; target "
                      f"<= 1.5 x floor = {s['target (1.5 x floor)']:.2f} s."]
        if "raw_concurrent" in s:
            c = s["raw_concurrent"]
            lines += ["", f"By hand from {c['threads']} threads, a connection each: start {c['start']:.2f} s, destroy "
                          f"{c['destroy']:.2f} s; `class up` of the defined / that: "
                          f"{s['commands']['class up (start the defined)']['over_raw_concurrent']:.2f}x."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("sim", "daemon"))
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5, help="Repetitions (default 5; medians are reported).")
    ap.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                    help="Before each daemon repetition wait up to S seconds until under 25%% of the CPUs are busy.")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    cpus = os.cpu_count() or 1
    results = {}
    if a.only in (None, "sim"):
        reps = run_sim(a.students, a.repeat)
        results["simulator"] = {"summary": summarize(reps, cpus), "repetitions": reps}
        print(report("Simulator", results["simulator"]["summary"]) + "\n")
    if a.only in (None, "daemon"):
        reps = run_daemon(a.students, a.repeat, a.quiet_wait)
        results["real daemon"] = {"summary": summarize(reps, cpus), "repetitions": reps}
        print(report("Real daemon", results["real daemon"]["summary"]) + "\n")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
