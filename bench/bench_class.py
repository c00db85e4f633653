"""Class mode at class size: 30 copies of the 3-node lab on the simulator and on a real libvirtd.

Times each whole CLI command (a fresh process, as an instructor runs it): class up, class snapshot,
class rebuild of one student, class revert of all, class destroy; on the real daemon also class up
--no-start (define only). Beside them, the per-operation floor measured in the same run: one raw
define, start and destroy of a small domain, one after another.

Targets (issue 7): 30 copies up in under 3 s on the simulator and under 10 s define-only on the
real daemon (reported with start too); one student rebuilt in under 2 s.
Run: .venv/bin/python bench/bench_class.py [--only sim|daemon] [--students 30] [--json FILE]
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLE = os.path.join(ROOT, "examples", "three-node-nat")
URI = "qemu:///system"
REBUILT = "s02"     # the student rebuilt (its snapshot goes with its disks: not reverted)


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


def cli(*args, env=None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "labvirt", *args], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"labvirt {' '.join(args)} failed: {r.stderr[-800:]}")
    return round(took, 2)


def floor_ops() -> dict:
    """One raw define, start, destroy+undefine of a small domain, with libvirt-python, 3 times."""
    import libvirt
    from lxml.builder import E
    from lxml import etree

    libvirt.registerErrorHandler(lambda *a: None, None)
    conn = libvirt.open(URI)
    out = {"define": [], "start": [], "destroy": []}
    try:
        for i in range(3):
            xml = etree.tostring(E.domain(E.name(f"lvbenchfloor{i}"), E.memory("65536", unit="KiB"),
                                          E.os(E.type("hvm", arch="x86_64", machine="q35")), type="qemu"), encoding="unicode")
            t0 = time.perf_counter(); dom = conn.defineXML(xml); t1 = time.perf_counter()
            dom.create(); t2 = time.perf_counter()
            dom.destroy(); dom.undefine(); t3 = time.perf_counter()
            out["define"].append(t1 - t0); out["start"].append(t2 - t1); out["destroy"].append(t3 - t2)
    finally:
        conn.close()
    return {k: round(sorted(v)[1], 3) for k, v in out.items()}


def run_sim(students: int) -> dict:
    work = tempfile.mkdtemp(prefix="labvirt-bench-class-")
    env = dict(os.environ, LABVIRT_STATE_DIR=os.path.join(work, "state"))
    lab = make_lab(work, "lvbcsim", None)
    host = "sim:///benchclass"
    try:
        cli("sim", "create", "benchclass", "--cpus", "1024", "--memory", "4TiB", "--disk", "100TiB", env=env)
        r = {"class up": cli("class", "up", "-n", str(students), "-C", lab, "-c", host, env=env)}
        r["class up again (no-op)"] = cli("class", "up", "-C", lab, "-c", host, env=env)
        r["class snapshot"] = cli("class", "snapshot", "pre", "-C", lab, "-c", host, env=env)
        r["class rebuild one"] = cli("class", "rebuild", "-s", REBUILT, "-C", lab, "-c", host, env=env)
        r["class revert all"] = cli("class", "revert", "pre", *_all_but(REBUILT, students), "-C", lab, "-c", host, env=env)
        r["class status"] = cli("class", "status", "-C", lab, "-c", host, env=env)
        r["class destroy"] = cli("class", "destroy", "-C", lab, "-c", host, env=env)
        return r
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _all_but(student: str, n: int) -> list[str]:
    """Every student but the rebuilt one (whose snapshot went with its disks), as -s options."""
    from labvirt.core.class_layout import student_names

    return [arg for s in student_names(n) if s != student for arg in ("-s", s)]


def run_daemon(students: int) -> dict:
    work = tempfile.mkdtemp(prefix="labvirt-bench-class-")
    env = dict(os.environ, LABVIRT_STATE_DIR=os.path.join(work, "state"))
    lab = make_lab(work, "lvbcd", URI)
    r = {"floor (one raw op)": floor_ops()}
    try:
        r["class up --no-start (define only)"] = cli("class", "up", "-n", str(students), "--no-start", "-C", lab, env=env)
        r["class up (start the defined)"] = cli("class", "up", "-C", lab, env=env)
        r["class destroy"] = cli("class", "destroy", "-C", lab, env=env)
        r["class up (define + start)"] = cli("class", "up", "-n", str(students), "-C", lab, env=env)
        r["class snapshot (running, with memory)"] = cli("class", "snapshot", "pre", "-C", lab, env=env)
        r["class rebuild one"] = cli("class", "rebuild", "-s", REBUILT, "-C", lab, env=env)
        r["class revert all"] = cli("class", "revert", "pre", *_all_but(REBUILT, students), "-C", lab, env=env)
        r["class destroy (running)"] = cli("class", "destroy", "-C", lab, env=env)
        return r
    finally:
        subprocess.run([sys.executable, "-m", "labvirt", "class", "destroy", "-C", lab], env=env,
                       capture_output=True, stdin=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("sim", "daemon"))
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--json")
    a = ap.parse_args()
    results = {}
    if a.only in (None, "sim"):
        results["simulator"] = run_sim(a.students)
    if a.only in (None, "daemon"):
        results["real daemon"] = run_daemon(a.students)
    text = json.dumps(results, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
