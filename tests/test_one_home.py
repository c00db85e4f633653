"""One home per mechanism (STYLE.md): "did you mean", the PID-recording lock, the size-unit table, the
default pool directory. Each test fails when a second copy appears in labvirt/."""

from __future__ import annotations

import os
import tomllib

import pytest

from labvirt.core.suggest import closest, did_you_mean, hint
from labvirt.core.units import UNITS, parse_size, to_bytes

from .conftest import ROOT

PACKAGE = os.path.join(ROOT, "labvirt")


def _sources():
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith((".py", ".toml")):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, ROOT), f.read()


def _homes(*needles: str) -> set[str]:
    return {path for path, text in _sources() if any(n in text for n in needles)}


def test_did_you_mean_has_one_home():
    assert _homes("difflib.get_close_matches", "get_close_matches(") == {"labvirt/core/suggest.py"}


def test_the_pid_lock_has_one_home():
    assert _homes("fcntl.flock", "LOCK_EX") == {"labvirt/driver/state_files.py"}


def test_the_size_unit_table_has_one_home():
    assert _homes('"mib"', '"gib"', "1000**2") == {"labvirt/core/units.py"}


def test_the_default_pool_directory_is_written_once():
    """Once in code (core/spec.py); the scaffolded lab.toml shows it to the user and must agree."""
    from labvirt.core.spec import DEFAULT_POOL_DIR, LabSpec

    assert _homes(f'"{DEFAULT_POOL_DIR}"') == {"labvirt/core/spec.py", "labvirt/scaffold/lab.toml"}
    with open(os.path.join(PACKAGE, "scaffold", "lab.toml"), "rb") as f:
        assert tomllib.load(f)["storage"]["pool_dir"] == DEFAULT_POOL_DIR
    assert LabSpec("x", "/", (), ()).pool_dir == DEFAULT_POOL_DIR


@pytest.mark.parametrize("word,choices,n,expected", [
    ("memroy", ["memory", "disk", "vcpus"], 1, " (did you mean 'memory'?)"),
    ("xyz", ["memory", "disk"], 1, ""),
    ("haet", ["heat", "neutron", "nova"], 3, " (did you mean 'heat'?)"),
    ("kvm_intl", ["kvm_intel", "kvm_intl2", "kvm_amd"], 2, " (did you mean 'kvm_intl2' or 'kvm_intel'?)"),
])
def test_did_you_mean_wording(word, choices, n, expected):
    assert did_you_mean(word, choices, n=n) == expected


def test_closest_is_best_first_and_respects_the_cutoff():
    assert closest("nova", ["novaa", "nov", "neutron"], n=3) == ["novaa", "nov"]
    assert closest("kvm_amd", ["kvm_intel"], cutoff=0.7) == []
    assert hint(["a", "b", "c"]) == " (did you mean 'a', 'b' or 'c'?)"


@pytest.mark.parametrize("unit,factor", [
    ("b", 1), ("bytes", 1), ("KiB", 1024), ("K", 1024), ("KB", 1000), ("MiB", 2**20), ("MB", 10**6),
    ("GiB", 2**30), ("G", 2**30), ("GB", 10**9), ("TiB", 2**40), ("TB", 10**12), ("PiB", 2**50), ("EB", 10**18),
])
def test_one_unit_table_for_lab_files_and_libvirt(unit, factor):
    """libvirt's unit names (formatdomain: 'Memory Allocation') mean the same in a lab file."""
    assert to_bytes(3, unit) == 3 * factor
    assert parse_size(f"3{unit}") == 3 * factor
    assert unit.lower() in UNITS


def test_files_are_replaced_in_one_place():
    """Every atomic replace goes through state_files (which removes its temporary file on failure)."""
    assert _homes("os.replace(", "os.rename(") == {"labvirt/driver/state_files.py"}
