"""The benchmarks' lab copies still load: they rewrite the example lab's files, so a renamed recipe or
network in examples/ must not break `make bench` silently (bench_class did, once)."""

from __future__ import annotations

import os
import sys

from labvirt.core.loader import load_lab

from .conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))


def test_the_class_benchmark_lab_loads_with_no_image_recipe(tmp_path):
    import bench_class

    spec = load_lab(bench_class.make_lab(str(tmp_path), "lvbenchtest", None))
    assert len(spec.nodes) == 3 and all(n.image is None and n.base_image for n in spec.nodes)
    assert {n.mode for n in spec.networks} == {"isolated"}


def test_the_lab_benchmark_copy_loads(tmp_path):
    import lab_copy

    lab = lab_copy.make_lab(str(tmp_path / "lab"), "lvbenchtest", str(tmp_path / "pool"))
    lab_copy.check_safe(lab)
    assert len(load_lab(lab).nodes) == 3


def test_the_class_benchmark_reports_starts_against_the_raw_sequential_sum():
    import bench_class

    def rep(start_sum, up, define_up):
        cmd = {"wall": 1.0, "cpu": 0.5}
        return {"cpu_busy_before": 0.1, "loadavg_1min": 0.5, "class rebuild one": cmd,
                "raw: start each domain, one after another": {
                    "domains": 90, "start_sum": start_sum, "destroy_sum": 9.0, "start_first": 0.2,
                    "start_last": 0.9, "start_median": 0.4},
                "class up (start the defined)": {"wall": up, "cpu": 2.0},
                "class up (define + start)": {"wall": define_up, "cpu": 3.0}}

    s = bench_class.summarize([rep(40.0, 20.0, 30.0), rep(30.0, 30.0, 30.0), rep(50.0, 20.0, 25.0)], cpus=2)
    assert s["floor (sum of starts / CPUs)"] == 20.0 and s["target (1.5 x floor)"] == 30.0
    up = s["commands"]["class up (start the defined)"]
    assert up["ratio_to_start_sum"] == 0.5 and up["ratio_to_start_sum_min"] == 0.4   # per repetition, then median
    assert s["commands"]["class up (define + start)"]["over_floor"] == 1.5
    assert s["commands"]["class rebuild one"] == {"wall": 1.0, "wall_min": 1.0, "wall_max": 1.0, "cpu": 0.5}
    assert "target <= 1.5 x floor = 30.00 s" in bench_class.report("Real daemon", s)


def test_benchmarks_run_the_cli_with_cached_bytecode(tmp_path, monkeypatch):
    import bench_lab

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = bench_lab.cli_env(str(tmp_path))
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["PYTHONPYCACHEPREFIX"].startswith(str(tmp_path))


def test_the_stack_floor_program_runs_its_help():
    import subprocess

    import bench_fixed_cost

    r = subprocess.run([sys.executable, bench_fixed_cost.FLOOR_CLI, "--help"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0 and "up" in r.stdout
    assert [label for label, _ in bench_fixed_cost.cases("sim", "/lab", "sim:///x")] == [
        "sim: up (nothing to do)", "sim: status", "sim: ip"]       # no floor program for the simulator's URIs


def test_the_lab_benchmark_floor_is_what_libvirtd_serialises_plus_the_starts_on_the_cpus():
    import bench_lab
    from baseline import Ops

    up = Ops([("network start", "a", 0.2), ("network start", "b", 0.3), ("volume create", "v", 0.05),
              ("domain start", "x", 0.5), ("domain start", "y", 0.5), ("domain start", "z", 0.6)])
    down = Ops([("domain destroy", "x", 0.2), ("domain destroy", "y", 0.4), ("network stop", "a", 0.3),
                ("network stop", "b", 0.3)])
    rep = bench_lab.Repetition(up, down, None, {}, {}, None, None)
    assert bench_lab.floors(rep, cpus=2) == (0.5 + 0.8, 0.4 + 0.6)
    assert bench_lab.floors(rep, cpus=8)[0] == 0.5 + 0.6      # never below the longest start


def test_the_concurrent_baseline_makes_and_removes_the_lab_on_the_test_driver(tmp_path):
    """The measured floor (the same calls by hand, from threads) does the same work as the sequential one."""
    import libvirt

    import lab_copy
    from baseline import documents, raw_destroy_concurrent, raw_up_concurrent

    lab = lab_copy.make_lab(str(tmp_path / "lab"), "lvbenchconc", str(tmp_path / "pool"))
    docs = documents(lab)
    conn = libvirt.open("test:///default")
    try:
        assert raw_up_concurrent(conn, docs) > 0
        assert {n for n, _ in docs.domains} <= {d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
        assert {n for n, _ in docs.networks} <= {n.name() for n in conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE)}
        assert raw_destroy_concurrent(conn, docs) > 0
        assert not [d for d in conn.listAllDomains() if d.name().startswith(docs.prefix + "-")]
        assert not [n for n in conn.listAllNetworks() if n.name().startswith(docs.prefix + "-")]
        assert docs.pool[0] not in {p.name() for p in conn.listAllStoragePools()}
    finally:
        conn.close()
