"""Per-node disks on a real libvirtd: a qcow2 overlay on the golden image plus a cloud-init seed ISO,
for the 3-node example lab and for 30 copies of it, beside a full copy of the golden image per node.

Targets (issue 5): under 50 ms and under 2 MiB per node before boot.
Run: .venv/bin/python bench/bench_disks.py [--copies 30] [--golden-mib 1024] [--data-mib 400] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from labvirt.ops import engine
from labvirt.core import plan as p  # noqa: E402
from labvirt.core.desired import HostParams, desire  # noqa: E402
from labvirt.driver.libvirt_driver import Driver, open_libvirt  # noqa: E402
from labvirt.core.identity import LabCopy  # noqa: E402
from labvirt.core.loader import load_lab  # noqa: E402
from labvirt.core.observed import Observed  # noqa: E402
from labvirt.core.plan import SeedIdentity  # noqa: E402
from labvirt.core.record import replace  # noqa: E402

URI = "qemu:///system"
EXAMPLE = os.path.join(os.path.dirname(HERE), "examples", "three-node")


def make_golden(path: str, size_mib: int, data_mib: int) -> None:
    """A qcow2 with `data_mib` of written data: what a small installed system weighs."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, f"{size_mib}M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0xab 0 {data_mib}M", path], check=True,
                   capture_output=True)


def on_disk(path: str) -> int:
    return os.stat(path).st_blocks * 512


def volume_plan(copies: list[LabCopy], spec, pool_dir: str):
    """Only the storage part of 'up': pools, overlays, seeds (no networks, no domains)."""
    actions = []
    for copy in copies:
        desired = desire(spec, copy, HostParams(domain_type="qemu", pool_dir=pool_dir))
        full = p.plan_up(desired, Observed(), identity=SeedIdentity(ssh_keys=("ssh-ed25519 AAAA bench",)))
        actions += [a for a in full.actions if isinstance(a, (p.DefinePool, p.StartPool, p.CreateVolume, p.CreateSeed))]
    return p.Plan(tuple(actions))


def run(copies_n: int, golden_mib: int, data_mib: int) -> dict:
    work = tempfile.mkdtemp(prefix="labvirt-bench-disks-")
    driver = Driver(open_libvirt(URI), URI)
    golden = os.path.join(work, "golden.qcow2")
    make_golden(golden, golden_mib, data_mib)
    spec = load_lab(EXAMPLE)
    # every node backed by the golden file, with a seed ISO: exactly what 'up' makes per node
    spec = replace(spec, name="lvbenchdisk", images=(),
                   nodes=tuple(replace(n, image=None, base_image=golden, seed=True) for n in spec.nodes))
    results = {"golden": {"virtual_mib": golden_mib, "on_disk": on_disk(golden)}}
    try:
        rounds = (("3-node lab, one operation at a time", 1, 1), ("3-node lab", 1, 8),
                  (f"{copies_n} copies", copies_n, 8))
        for label, n, workers in rounds:
            copies = [LabCopy(spec.name, f"b{i:02d}" if n > 1 else "") for i in range(n)]
            plan = volume_plan(copies, spec, os.path.join(work, "pools"))
            times: dict[str, float] = {}
            took: list[float] = []

            def on_event(kind, action, error, times=times, took=took):
                if kind == "start":
                    times[id(action)] = time.perf_counter()
                elif kind == "done" and isinstance(action, (p.CreateVolume, p.CreateSeed)):
                    took.append((action, time.perf_counter() - times[id(action)]))

            t0 = time.perf_counter()
            engine.apply(plan, driver, workers=workers, on_event=on_event)
            wall = time.perf_counter() - t0
            nodes = len(copies) * len(spec.nodes)
            per_node_op = {}
            for action, secs in took:
                node = action.target.split("/")[1].replace("-seed.iso", "").replace(".qcow2", "")
                per_node_op.setdefault((action.target.split("/")[0], node), 0.0)
                per_node_op[(action.target.split("/")[0], node)] += secs
            sizes = []
            for copy in copies:
                for node in spec.nodes:
                    d = os.path.join(work, "pools", copy.prefix)
                    sizes.append(on_disk(os.path.join(d, f"{node.name}.qcow2")) + on_disk(os.path.join(d, f"{node.name}-seed.iso")))
            results[label] = {
                "nodes": nodes, "workers": workers, "wall_s": round(wall, 3),
                "wall_per_node_ms": round(1000 * wall / nodes, 1),
                "op_per_node_ms_median": round(1000 * statistics.median(per_node_op.values()), 1),
                "bytes_per_node_median": int(statistics.median(sizes)), "bytes_per_node_max": max(sizes),
            }
            # teardown of this round through labvirt's own destroy plans
            for copy in copies:
                obs = driver.observe(copy.prefix)
                engine.apply(p.plan_destroy(desire(spec, copy, HostParams(pool_dir=os.path.join(work, "pools"))), obs), driver)
        # baseline: a full copy of the golden image per node (what the course does by hand)
        base = []
        for i in range(3):
            dst = os.path.join(work, f"full{i}.qcow2")
            t0 = time.perf_counter()
            subprocess.run(["qemu-img", "convert", "-O", "qcow2", golden, dst], check=True)
            base.append((time.perf_counter() - t0, on_disk(dst)))
            os.unlink(dst)
        results["full copy baseline"] = {"per_node_ms_median": round(1000 * statistics.median(b[0] for b in base), 1),
                                         "bytes_per_node": int(statistics.median(b[1] for b in base))}
    finally:
        driver.close()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=30)
    ap.add_argument("--golden-mib", type=int, default=1024)
    ap.add_argument("--data-mib", type=int, default=400)
    ap.add_argument("--json", help="write the results here too")
    a = ap.parse_args()
    results = run(a.copies, a.golden_mib, a.data_mib)
    text = json.dumps(results, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
