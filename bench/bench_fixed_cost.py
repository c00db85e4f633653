"""The fixed cost of one labvirt command, as ratios against the bare interpreter (issue 15).

    .venv/bin/python bench/bench_fixed_cost.py                   # simulator and real daemon, 5 repetitions
    .venv/bin/python bench/bench_fixed_cost.py --only sim --repeat 9 --json out/fixed.json

Each repetition runs, one after another as whole processes: `python -c pass` (the interpreter floor,
with this venv's site-packages), `python -c "import typer"` (the floor of any Typer CLI),
`labvirt --help`, and a no-op `up`, `status` and `ip` of a tiny lab that is already up (on the
simulator and on qemu:///system when it can be reached). Before each repetition the share of the CPUs
busy with other work is sampled for one second; the load average is recorded too. Reported per
command: median wall and CPU seconds (user + system of the child), and the ratios command / floor
computed within each repetition (median and minimum). `--before DIR` runs the same commands from
an earlier tree as well, interleaved, so before and after meet the same load. Bytecode is cached (in
the run's temporary directory) as for an installed package. The lab: one isolated network on a free /24 of
10.253.0.0/16, one 64 MiB node with an empty 64 MiB disk, domain type qemu, a unique name; removed at
the end (labvirt destroy, then a sweep of this run's names), also on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_lab import cli_env, cpu_busy, median, run_cpu, sweep  # noqa: E402
from lab_copy import check_safe, pick_subnets  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def labvirt_argv() -> list[str]:
    """The console script users run (falls back to `python -m labvirt`)."""
    script = os.path.join(os.path.dirname(sys.executable), "labvirt")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "labvirt"]


def write_lab(root: str, name: str, subnet, pool_dir: str) -> str:
    lab = os.path.join(root, "lab")
    os.makedirs(os.path.join(lab, "networks"))
    os.makedirs(os.path.join(lab, "domains"))
    host = list(subnet.hosts())
    with open(os.path.join(lab, "lab.toml"), "w") as f:
        f.write(f'[lab]\nname = "{name}"\ndomain_type = "qemu"\n\n[storage]\npool_dir = "{pool_dir}"\n')
    with open(os.path.join(lab, "networks", "a.toml"), "w") as f:
        f.write(f'mode = "isolated"\nsubnet = "{subnet}"\n')
    with open(os.path.join(lab, "domains", "alpha.toml"), "w") as f:
        f.write(f'role = "generic"\nvcpus = 1\nmemory = "64MiB"\ndisk = "64MiB"\n\n'
                f'[[nic]]\nnetwork = "a"\naddress = "{host[99]}"\n')
    check_safe(lab)
    return lab


FLOOR_CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor_cli.py")


def cases(kind: str, lab: str, uri: str) -> list[tuple[str, list[str]]]:
    cli = labvirt_argv()
    common = ["-C", lab, "--connect", uri]
    floor = [(f"{kind}: floor_cli.py up (the stack's floor)", [sys.executable, FLOOR_CLI, "up", *common])]
    return (floor if kind == "daemon" else []) + [
        (f"{kind}: up (nothing to do)", cli + ["up", *common]),
        (f"{kind}: status", cli + ["status", *common]),
        (f"{kind}: ip", cli + ["ip", *common])]


def bench(kinds: list[str], repeat: int, before: str | None = None, with_phases: bool = False, log=log) -> dict:
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    from labvirt.core.identity import LabCopy

    tmp = tempfile.mkdtemp(prefix="lvfixed-")
    env = cli_env(tmp)     # bytecode cached as for an installed package, out of the source tree
    old_env = dict(env, PYTHONPATH=before) if before else None
    name = "lvfix" + uuid.uuid4().hex[:6]
    prefix = LabCopy(name).prefix
    conn = libvirt.open("qemu:///system") if "daemon" in kinds else None
    subnet = pick_subnets(1, conn)[0]
    lab = write_lab(tmp, name, subnet, os.path.join(tmp, "pool"))
    uris = {"sim": "sim:///default", "daemon": "qemu:///system"}
    base = [("python -c pass (floor)", [sys.executable, "-c", "pass"]),
            ("python -c 'import typer'", [sys.executable, "-c", "import typer"]),
            ("floor_cli.py --help (a one-command Typer app)", [sys.executable, FLOOR_CLI, "--help"]),
            ("labvirt --help", labvirt_argv() + ["--help"])]
    plan = [(label, argv, env) for label, argv in base + [c for k in kinds for c in cases(k, lab, uris[k])]]
    if old_env:     # the same commands from an earlier tree, interleaved: before/after in the same conditions
        plan += [(label + " (before)", argv, old_env) for label, argv, _ in plan[3:] if FLOOR_CLI not in argv]
    samples: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in plan}
    conditions = []
    breakdown: dict[str, dict[str, float]] = {}
    try:
        for k in kinds:
            log(f"[{k}] labvirt up of {name} ({subnet}) on {uris[k]}")
            run_cpu(labvirt_argv() + ["up", "-C", lab, "--connect", uris[k]], env)
            run_cpu(labvirt_argv() + ["up", "-C", lab, "--connect", uris[k]], env)   # warm: caches, .pyc
            if old_env:
                run_cpu(labvirt_argv() + ["up", "-C", lab, "--connect", uris[k]], old_env)
        for i in range(repeat):
            busy = cpu_busy(1.0)
            conditions.append({"cpu_busy_before": round(busy, 2), "loadavg_1min": round(os.getloadavg()[0], 2)})
            log(f"repetition {i + 1}/{repeat}: CPUs busy with other work {busy:.0%}, load {os.getloadavg()[0]:.2f}")
            for label, argv, e in plan:
                samples[label].append(run_cpu(argv, e))
        if with_phases:
            for label, argv, e in plan[3:]:
                if FLOOR_CLI in argv:    # the floor program: no phases to time
                    continue
                log(f"phases: {label}")
                breakdown[label] = phases(argv[len(labvirt_argv()):], e, repeat)
    finally:
        for k in kinds:
            with contextlib.suppress(Exception):
                subprocess.run(labvirt_argv() + ["destroy", "-C", lab, "--connect", uris[k]], env=env,
                               capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
        if conn is not None:
            left = sweep(conn, prefix)
            if left:
                log(f"cleanup swept: {', '.join(left)}")
            conn.close()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    floor = samples[plan[0][0]]
    rows = {}
    for label, _, _ in plan:
        s = samples[label]
        wall_ratio = [w / f[0] for (w, _), f in zip(s, floor)]
        cpu_ratio = [c / f[1] for (_, c), f in zip(s, floor) if f[1] > 0]
        rows[label] = {"wall": median([w for w, _ in s]), "wall_min": min(w for w, _ in s),
                       "cpu": median([c for _, c in s]),
                       "ratio_wall": median(wall_ratio), "ratio_wall_min": min(wall_ratio),
                       "ratio_cpu": median(cpu_ratio) if cpu_ratio else None}
    pairs = {"labvirt --help": "floor_cli.py --help (a one-command Typer app)",
             "daemon: up (nothing to do)": "daemon: floor_cli.py up (the stack's floor)"}
    for label, floor_label in pairs.items():     # labvirt over the same stack's floor, per repetition
        if label in samples and floor_label in samples:
            ratios = [w / f[0] for (w, _), f in zip(samples[label], samples[floor_label])]
            rows[label]["ratio_stack_floor"] = median(ratios)
            rows[label]["ratio_stack_floor_min"] = min(ratios)
    return {"repeat": repeat, "conditions": conditions, "rows": rows, "phases": breakdown,
            "samples": {k: v for k, v in samples.items()}}


PHASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixed_cost_phases.py")


def phases(argv: list[str], env: dict, repeat: int) -> dict[str, float]:
    """Median seconds per phase of `labvirt ARGV` run in one process with timers (fixed_cost_phases.py)."""
    runs = []
    for _ in range(repeat):
        r = subprocess.run([sys.executable, PHASES, *argv], capture_output=True, text=True, env=env,
                           stdin=subprocess.DEVNULL, timeout=600, cwd=os.path.dirname(PHASES))
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    names = dict.fromkeys(n for run in runs for n in run["phases"])
    out = {n: median([run["phases"].get(n, 0.0) for run in runs]) for n in names}
    out["total (in-process)"] = median([run["total"] for run in runs])
    return out


def report(r: dict) -> str:
    busy = [c["cpu_busy_before"] for c in r["conditions"]]
    load = [c["loadavg_1min"] for c in r["conditions"]]
    lines = [f"{r['repeat']} repetitions; CPUs busy with other work before a repetition: median {median(busy):.0%} "
             f"({min(busy):.0%}-{max(busy):.0%}); load average (1 min) median {median(load):.2f}", "",
             "| command | wall s, median (min) | CPU s, median | wall / floor, median (min) | CPU / floor "
             "| wall / the stack's floor (floor_cli.py) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label, row in r["rows"].items():
        cpu_ratio = f"{row['ratio_cpu']:.1f}x" if row["ratio_cpu"] else "-"
        stack = (f"{row['ratio_stack_floor']:.2f}x ({row['ratio_stack_floor_min']:.2f}x)"
                 if "ratio_stack_floor" in row else "")
        lines.append(f"| {label} | {row['wall']:.3f} ({row['wall_min']:.3f}) | {row['cpu']:.3f} | "
                     f"{row['ratio_wall']:.1f}x ({row['ratio_wall_min']:.1f}x) | {cpu_ratio} | {stack} |")
    if r.get("phases"):
        labels = list(r["phases"])
        names = list(dict.fromkeys(n for p in r["phases"].values() for n in p))
        lines += ["", "Inside the process, median ms per phase (wall; imports counted where they happen):", "",
                  "| phase | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
        for n in names:
            lines.append(f"| {n} | " + " | ".join(f"{r['phases'][l].get(n, 0.0) * 1000:.0f}" for l in labels) + " |")
    return "\n".join(lines)


def daemon_reachable(uri: str = "qemu:///system") -> str | None:
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)
        libvirt.open(uri).close()
        return None
    except Exception as e:   # reported; the daemon part is skipped
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("sim", "daemon"), help="One host only (default: both).")
    ap.add_argument("--repeat", type=int, default=5, help="Repetitions (default 5; medians are reported).")
    ap.add_argument("--json", metavar="FILE", help="Also write every sample as JSON.")
    ap.add_argument("--phases", action="store_true", help="Also time the phases inside each command's process "
                                                           "(fixed_cost_phases.py), median over the repetitions.")
    ap.add_argument("--before", metavar="DIR", help="Also run the commands from an earlier tree (a directory "
                                                     "holding its labvirt/ package, e.g. from `git archive`), "
                                                     "interleaved with the current one.")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    kinds = [args.only] if args.only else ["sim", "daemon"]
    if "daemon" in kinds:
        why = daemon_reachable()
        if why is not None:
            log(f"[daemon] skipped: cannot reach qemu:///system ({why}); start it with scripts/libvirtd-up")
            if args.only == "daemon":
                return 1
            kinds.remove("daemon")
    result = bench(kinds, args.repeat, before=os.path.abspath(args.before) if args.before else None,
                   with_phases=args.phases)
    print("## Fixed cost of a command\n")
    print(report(result))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
