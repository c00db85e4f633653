"""One student rebuilt while the rest of the class runs (issue 15: at most 2 s with 29 others running).

    .venv/bin/python bench/bench_rebuild.py                          # 30 students, 7 rounds
    .venv/bin/python bench/bench_rebuild.py --before /tmp/before --rounds 9 --json out/rebuild.json

The class of bench_class.py (the 3-node lab, 1 vCPU / 64 MiB nodes, isolated networks, overlays and
seeds; no OS boots) is brought up once on qemu:///system. Then each round, in the same class:

1. `labvirt class rebuild -s s02` as a whole process (wall, and labvirt's own CPU time);
2. with `--before DIR`, the same from an earlier tree (DIR holds its labvirt/ package, e.g. from
   `git archive <commit> labvirt | tar -x -C DIR`); 1 and 2 swap places every round, so drift in the
   guests' load meets both alike;
3. the floor, by hand: the student's 3 domains destroyed and started again with libvirt-python, one
   thread and one connection each (the QEMU work a rebuild cannot skip: no disks, no seeds, no
   definitions). Its wall time is reported beside labvirt's.

Before each round the share of the CPUs busy is recorded: with 87 guests in their firmware the machine
is never quiet, which is the load the target names. Everything this run made is removed at the end
(class destroy, then a sweep of its names), also on failure. Timing is reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_class import URI, cli, concurrently, domain_names, make_lab, remove_class  # noqa: E402
from bench_lab import cli_env, cpu_busy, median  # noqa: E402

STUDENT = "s02"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def by_hand(name: str) -> dict:
    """Destroy the student's domains, then start them, a thread and a connection each: wall s."""
    names = domain_names(f"{name}-{STUDENT}-")
    out = {"destroy": round(concurrently(names, lambda d: d.destroy(), len(names)), 3),
           "start": round(concurrently(names, lambda d: d.create(), len(names)), 3)}
    out["total"] = round(out["destroy"] + out["start"], 3)
    out["domains"] = len(names)
    return out


def run(students: int, rounds: int, before: str | None) -> list[dict]:
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    work = tempfile.mkdtemp(prefix="labvirt-bench-rebuild-")
    env = cli_env(work)
    env_before = dict(env, PYTHONPATH=os.path.abspath(before)) if before else None
    name = "lvbr" + uuid.uuid4().hex[:4]
    lab = make_lab(work, name, URI)
    conn = libvirt.open(URI)
    out = []
    try:
        log(f"class up of {students} students ({name}) on {URI}")
        cli("class", "up", "-n", str(students), "-C", lab, env=env)
        rebuild = ("class", "rebuild", "-s", STUDENT, "-C", lab)
        for i in range(rounds):
            busy = cpu_busy(1.0)
            log(f"round {i + 1}/{rounds}: CPUs busy {busy:.0%}, load {os.getloadavg()[0]:.2f}")
            r: dict = {"cpu_busy_before": round(busy, 2), "loadavg_1min": round(os.getloadavg()[0], 2)}
            order = [("after", env), ("before", env_before)] if env_before else [("after", env)]
            if i % 2:
                order.reverse()
            for label, e in order:
                r[label] = cli(*rebuild, env=e)
            r["by hand"] = by_hand(name)
            out.append(r)
        return out
    finally:
        remove_class(conn, lab, env, name, students)
        conn.close()
        shutil.rmtree(work, ignore_errors=True)


def report(rounds: list[dict], students: int) -> str:
    def stat(values):
        return f"{median(values):.2f} ({min(values):.2f}-{max(values):.2f})"

    hand = [r["by hand"]["total"] for r in rounds]
    lines = [f"### One rebuild, {students - 1} other students running: {len(rounds)} rounds; CPUs busy before a "
             f"round: median {median([r['cpu_busy_before'] for r in rounds]):.0%}, load median "
             f"{median([r['loadavg_1min'] for r in rounds]):.1f}", "",
             "| | wall s, median (min-max) | labvirt CPU s | / by hand, median | rounds under 2 s |",
             "| --- | --- | --- | --- | --- |"]
    for label in ("before", "after"):
        if label not in rounds[0]:
            continue
        walls = [r[label]["wall"] for r in rounds]
        ratio = median([r[label]["wall"] / r["by hand"]["total"] for r in rounds])
        lines.append(f"| labvirt class rebuild ({label}) | {stat(walls)} | {median([r[label]['cpu'] for r in rounds]):.2f} "
                     f"| {ratio:.2f}x | {sum(w <= 2.0 for w in walls)} of {len(walls)} |")
    lines.append(f"| by hand: the {rounds[0]['by hand']['domains']} domains destroyed, then started (a thread each) "
                 f"| {stat(hand)} | | 1.00x | |")
    lines += ["", f"By hand, destroy {median([r['by hand']['destroy'] for r in rounds]):.2f} s, start "
                  f"{median([r['by hand']['start'] for r in rounds]):.2f} s (medians)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=7, help="Rounds (default 7; medians are reported).")
    ap.add_argument("--before", metavar="DIR", help="Also rebuild with an earlier tree's labvirt/ (interleaved).")
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        import libvirt

        libvirt.open(URI).close()
    except Exception as e:      # noqa: BLE001 (any reason the daemon cannot be reached: say it and skip)
        log(f"skipped: {URI} cannot be reached ({e}); scripts/libvirtd-up starts it")
        return
    rounds = run(args.students, args.rounds, args.before)
    print(report(rounds, args.students))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"students": args.students, "rounds": rounds}, f, indent=1)


if __name__ == "__main__":
    main()
