"""Damaged state files (a simulated host's host.json and node.xml, a class record): one line naming the
file, what is wrong and what to do; exit 1; nothing changed; and the command named there works."""

from __future__ import annotations

import json
import os

import pytest

from labvirt.core.errors import StateError
from labvirt.driver import simulator as sim
from labvirt.ops import class_record

from .conftest import run_cli, small_lab


def _snapshot(directory):
    return {name: open(os.path.join(directory, name), "rb").read() for name in sorted(os.listdir(directory))
            if name != "lock"}


def _one_line_error(r, path, *words):
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"error: {path}: damaged "), lines[0]
    for w in words:
        assert w in lines[0], lines[0]


HOST_JSON = [
    ("not JSON", b"{", "not valid JSON"),
    ("truncated to nothing", b"", "not valid JSON"),
    ("binary", b"\x00\xff\x00\xfe", "not valid JSON"),
    ("a list", b"[]", "expected a JSON object, got list"),
    ("unknown key", b'{"name": "x", "cpu": 4}', "unknown key 'cpu'"),
    ("another host's", b'{"name": "y"}', "'name' is 'y', expected 'x'"),
    ("cpus text", b'{"name": "x", "cpus": "many"}', "'cpus' is 'many', expected a positive whole number"),
    ("memory negative", b'{"name": "x", "memory": -1}', "'memory' is -1"),
    ("profile", b'{"name": "x", "profile": "cray"}', "'profile' is 'cray', expected one of"),
    ("flags", b'{"name": "x", "networks_autostart": "default"}', "'networks_autostart' is 'default'"),
]


@pytest.mark.parametrize("what,content,words", HOST_JSON, ids=[h[0] for h in HOST_JSON])
def test_damaged_host_json_is_refused_in_one_line(what, content, words):
    sim.create_host("x")
    path = os.path.join(sim.sim_dir("x"), "host.json")
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(StateError) as e:
        sim.load_host("x")
    assert str(e.value).startswith(f"{path}: damaged simulated host file (") and words in str(e.value)
    assert "'labvirt sim create x --replace'" in str(e.value) and "\n" not in str(e.value)


def test_damaged_simulated_host_stops_a_command_changes_nothing_and_can_be_started_over(tmp_path):
    lab = small_lab(tmp_path, name="simlab")
    assert run_cli("sim", "create", "x").returncode == 0
    assert run_cli("up", "-C", lab, "-c", "sim:///x").returncode == 0
    host_json = os.path.join(sim.sim_dir("x"), "host.json")
    with open(host_json, "w") as f:
        f.write('{"name": "x", "cpus": 16,')                 # cut short
    before = _snapshot(sim.sim_dir("x"))
    for args in (("up", "-C", lab, "-c", "sim:///x"), ("destroy", "-C", lab, "-c", "sim:///x"), ("sim", "list")):
        _one_line_error(run_cli(*args), host_json, "not valid JSON", "'labvirt sim create x --replace'")
    assert _snapshot(sim.sim_dir("x")) == before
    r = run_cli("sim", "create", "x", "--replace")
    assert r.returncode == 0, r.stderr
    assert run_cli("up", "-C", lab, "-c", "sim:///x").returncode == 0


def test_damaged_node_file_is_refused_and_changes_nothing(tmp_path):
    lab = small_lab(tmp_path, name="simlab")
    assert run_cli("up", "-C", lab, "-c", "sim").returncode == 0
    node = os.path.join(sim.sim_dir("default"), "node.xml")
    with open(node, "rb") as f:
        text = f.read()
    with open(node, "wb") as f:
        f.write(text[: len(text) // 2])                      # a node file cut in the middle
    before = _snapshot(sim.sim_dir("default"))
    _one_line_error(run_cli("status", "-C", lab, "-c", "sim"), node, "libvirt's test driver cannot load it",
                    "'labvirt sim create default --replace'")
    assert _snapshot(sim.sim_dir("default")) == before
    assert run_cli("sim", "create", "default", "--replace").returncode == 0
    assert run_cli("status", "-C", lab, "-c", "sim").returncode == 0


def test_a_damaged_host_can_be_removed():
    sim.create_host("x")
    with open(os.path.join(sim.sim_dir("x"), "host.json"), "w") as f:
        f.write("garbage")
    r = run_cli("sim", "remove", "x")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(sim.sim_dir("x"))


RECORDS = [
    ("not JSON", b'{"lab": "cl", "students": {', "not valid JSON"),
    ("binary", b"\x89\x00\xff", "not valid JSON"),
    ("a string", b'"cl"', "expected a JSON object, got str"),
    ("another lab's", b'{"lab": "other", "students": {}}', "'lab' is 'other', expected 'cl'"),
    ("students a list", b'{"lab": "cl", "students": ["s01"]}', "'students' is ['s01']"),
    ("no host", b'{"lab": "cl", "students": {"s01": {"subnets": {}}}}', "student 's01': expected an object with 'host'"),
    ("bad subnet", b'{"lab": "cl", "students": {"s01": {"host": "sim", "subnets": {"a": "10.1.0.0/33"}}}}',
     "student 's01': 'subnets' is {'a': '10.1.0.0/33'}"),
    ("bad name", b'{"lab": "cl", "students": {"S 1": {"host": "sim", "subnets": {}}}}',
     "student 'S 1': not a valid student name"),
]


@pytest.mark.parametrize("what,content,words", RECORDS, ids=[r[0] for r in RECORDS])
def test_damaged_class_record_is_refused_in_one_line(what, content, words):
    path = class_record.record_path("cl")
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(StateError) as e:
        class_record.load_record("cl")
    assert str(e.value).startswith(f"{path}: damaged class record (") and words in str(e.value), str(e.value)
    assert "run 'labvirt class up' for the same students" in str(e.value) and "\n" not in str(e.value)


def test_damaged_class_record_stops_class_and_student_commands_and_can_be_recorded_again(tmp_path):
    lab = small_lab(tmp_path, name="cl")
    assert run_cli("class", "up", "--students", "2", "-C", lab, "-c", "sim").returncode == 0
    path = class_record.record_path("cl")
    with open(path) as f:
        good = json.load(f)
    with open(path, "w") as f:
        f.write(json.dumps(good)[:40])
    before = _snapshot(sim.sim_dir("default")), open(path, "rb").read()
    for args in (("class", "status", "-C", lab), ("class", "destroy", "-C", lab), ("status", "-C", lab, "-s", "s01")):
        _one_line_error(run_cli(*args), path, "not valid JSON")
    assert (_snapshot(sim.sim_dir("default")), open(path, "rb").read()) == before
    # what the message says to do: move it away, class up for the same students
    os.rename(path, path + ".damaged")
    r = run_cli("class", "up", "--students", "2", "-C", lab, "-c", "sim")
    assert r.returncode == 0 and r.stderr.count("up to date") == 2, r.stderr
    with open(path) as f:
        assert json.load(f) == good
