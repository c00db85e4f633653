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
