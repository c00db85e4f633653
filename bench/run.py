"""Benchmarks of labvirt `up` and `destroy` against the sequential sum of the raw libvirt operations.

    .venv/bin/python bench/run.py                    # simulator and real daemon, 5 repetitions
    .venv/bin/python bench/run.py --only sim --repeat 5 --json out/bench.json

Prints a table (medians, minimums in brackets) and the ratios labvirt / sequential sum; see
bench/README.md for the method and the figures measured on the development machines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_lab  # noqa: E402

TARGETS = {"up": 0.6, "destroy": 0.4}   # on the real daemon: labvirt / sequential sum of raw operations


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def daemon_reachable(uri: str = "qemu:///system") -> str | None:
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)
        libvirt.open(uri).close()
        return None
    except Exception as e:   # reported, the daemon part is skipped
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def fmt(stat, unit="s") -> str:
    """'median (min)' in seconds, milliseconds or as a ratio."""
    if stat is None:
        return "-"
    if unit == "x":
        return f"{stat['median']:.2f}x ({stat['min']:.2f}x)"
    if unit == "ms":
        return f"{stat['median'] * 1000:.1f} ({stat['min'] * 1000:.1f})"
    return f"{stat['median']:.3f} ({stat['min']:.3f})"


def verdict(ratio, target) -> str:
    return "met" if ratio and ratio["median"] <= target else "MISSED"


def report(results: dict) -> str:
    lines = []
    for kind in ("sim", "daemon"):
        r = results.get(kind)
        if not r:
            continue
        unit = "ms" if kind == "sim" else "s"
        scale = 1000 if unit == "ms" else 1
        load = r.get("loadavg_1min")
        busy = r.get("cpu_busy_before")
        busy_text = f", CPUs busy with other work just before a repetition {busy['median']:.0%} (median)" if busy else ""
        lines += [f"## {kind}: labvirt on {r['uri']}, raw baseline on {r['raw_uri']}", "",
                  f"{r['repeat']} repetitions, --workers {r['workers']}, load average {load['median']:.2f} "
                  f"(1 min, median){busy_text}, other running domains on the host: "
                  f"{r.get('other_running_domains', 0)}; median (min) in {'milliseconds' if unit == 'ms' else 'seconds'}.", "",
                  "| | up | destroy |", "| --- | --- | --- |",
                  f"| raw libvirt calls, one after another (sum) | {fmt(r['raw_up'], unit)} | {fmt(r['raw_destroy'], unit)} |"]
        if r.get("raw_up_with_qemu_img"):
            lines.append(f"| same, volumes by `qemu-img create` (sum) | {fmt(r['raw_up_with_qemu_img'], unit)} | |")
        lines += [f"| labvirt in-process (Session + engine) | {fmt(r['labvirt_up'], unit)} | {fmt(r['labvirt_destroy'], unit)} |",
                  f"| labvirt CLI process (`python -m labvirt`) | {fmt(r['cli_up'], unit)} | {fmt(r['cli_destroy'], unit)} |",
                  f"| CLI `up` with nothing to do (fixed cost of a command) | {fmt(r['cli_noop_up'], unit)} | |",
                  f"| **ratio in-process / sum** | **{fmt(r['ratio_up'], 'x')}** | **{fmt(r['ratio_destroy'], 'x')}** |",
                  f"| ratio CLI / sum | {fmt(r['ratio_cli_up'], 'x')} | {fmt(r['ratio_cli_destroy'], 'x')} |"]
        if kind == "daemon":
            lines += [f"| floor on this host ({r['cpus']} CPUs; bench_lab.floors), s | {fmt(r['floor_up'])} | "
                      f"{fmt(r['floor_destroy'])} |",
                      f"| floor / sum (the best ratio this host allows) | {fmt(r['ratio_floor_up'], 'x')} | "
                      f"{fmt(r['ratio_floor_destroy'], 'x')} |",
                      f"| labvirt in-process / floor | {fmt(r['over_floor_up'], 'x')} | "
                      f"{fmt(r['over_floor_destroy'], 'x')} |",
                      f"| the same calls by hand, as concurrent as they go (baseline.raw_*_concurrent), s | "
                      f"{fmt(r['raw_up_concurrent'])} | {fmt(r['raw_destroy_concurrent'])} |",
                      f"| that / sum (the measured floor's ratio) | {fmt(r['ratio_concurrent_up'], 'x')} | "
                      f"{fmt(r['ratio_concurrent_destroy'], 'x')} |",
                      f"| labvirt in-process / that | {fmt(r['over_concurrent_up'], 'x')} | "
                      f"{fmt(r['over_concurrent_destroy'], 'x')} |"]
        if kind == "daemon":
            lines += [f"| target <= {TARGETS['up']}x / <= {TARGETS['destroy']}x, in-process | "
                      f"{verdict(r['ratio_up'], TARGETS['up'])} | {verdict(r['ratio_destroy'], TARGETS['destroy'])} |",
                      f"| target, CLI process | {verdict(r['ratio_cli_up'], TARGETS['up'])} | "
                      f"{verdict(r['ratio_cli_destroy'], TARGETS['destroy'])} |"]
        lines += ["", f"labvirt in-process by part (median, {unit}): " + "; ".join(
            f"{which}: " + ", ".join(f"{k} {v['median'] * scale:.{1 if unit == 'ms' else 3}f}"
                                     for k, v in r[f"labvirt_{which}_parts"].items()) for which in ("up", "destroy")), ""]
        lines += [f"| raw operation (up) | n | sum, {unit} | raw operation (destroy) | n | sum, {unit} |",
                  "| --- | --- | --- | --- | --- | --- |"]
        ups = list(r["raw_up_ops"].items()) + list(r.get("qemu_img_ops", {}).items())
        downs = list(r["raw_destroy_ops"].items())
        prec = 2 if unit == "ms" else 3
        for i in range(max(len(ups), len(downs))):
            a = ups[i] if i < len(ups) else None
            b = downs[i] if i < len(downs) else None
            left = f"{a[0]} | {a[1]['count']} | {a[1]['median'] * scale:.{prec}f}" if a else " | | "
            right = f"{b[0]} | {b[1]['count']} | {b[1]['median'] * scale:.{prec}f}" if b else " | | "
            lines.append(f"| {left} | {right} |")
        if r.get("retries"):
            lines += ["", f"{len(r['retries'])} repetition(s) were repeated after a race with another process "
                      f"(first: {r['retries'][0][:160]})"]
        lines.append("")
    if "overhead" in results:
        o = results["overhead"]
        lines += ["## labvirt's own overhead (no libvirt work)", "",
                  f"- `python -m labvirt --help`: {fmt(o['imports']['labvirt_help'])} s "
                  f"(bare `python -c pass`: {fmt(o['imports']['python_bare'])} s)",
                  f"- importing the modules `up` uses: {o['imports']['imports_for_up']:.3f} s",
                  f"- load lab + desired state + plan with every XML document ({o['plan']['actions']} actions): "
                  f"{o['plan']['median'] * 1000:.1f} ms median ({o['plan']['min'] * 1000:.1f} ms min)",
                  "- heaviest top-level imports of `labvirt --help` (cumulative s): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in o["imports"]["heaviest_top_level_imports"].items()), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("sim", "daemon"), help="Run on one host only (default: both).")
    ap.add_argument("--repeat", type=int, default=5, help="Repetitions per host (default 5; median and min are reported).")
    ap.add_argument("--workers", type=int, default=8, help="labvirt --workers (default 8, labvirt's default).")
    ap.add_argument("--no-cli", action="store_true", help="Skip the whole-process CLI measurements.")
    ap.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                    help="Before each daemon repetition, wait up to SECONDS for other work on the machine to settle "
                         "(under 25%% of the CPUs busy). Default 0: do not wait, only record.")
    ap.add_argument("--json", metavar="FILE", help="Also write every figure (each operation of each run) as JSON.")
    ap.add_argument("--uri", default="qemu:///system", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                 "when": time.strftime("%Y-%m-%d %H:%M:%S")}}
    status = 0
    hosts = [args.only] if args.only else ["sim", "daemon"]
    for kind in hosts:
        if kind == "daemon":
            why = daemon_reachable(args.uri)
            if why is not None:
                log(f"[daemon] skipped: cannot reach qemu:///system ({why}); start it with scripts/libvirtd-up")
                results["daemon_skipped"] = why
                status = 1 if args.only == "daemon" else status
                continue
        results[kind] = bench_lab.bench_host(kind, args.repeat, args.workers, with_cli=not args.no_cli, log=log,
                                              quiet_wait=args.quiet_wait)
    if not args.only:
        log("[overhead] imports and plan")
        results["overhead"] = {"imports": bench_lab.import_time(max(args.repeat, 5)),
                               "plan": bench_lab.plan_and_xml()}
    text = report(results)
    print(text)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        log(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
