"""The CLI: exit codes, JSON on stdout only, one-line errors, plan --xml, init, help."""

from __future__ import annotations

import json
import os

from labvirt.core import schema

from .conftest import EXAMPLES, run_cli


def test_help_lists_every_command():
    r = run_cli("--help")
    assert r.returncode == 0
    for cmd in ("init", "plan", "up", "down", "destroy", "status"):
        assert cmd in r.stdout


def test_plan_json_offline_describes_networks_nodes_volumes():
    r = run_cli("plan", "-C", EXAMPLES["three-node"], "--offline", "--domain-type", "kvm", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    mgmt = next(n for n in data["networks"] if n["name"] == "openstack3-mgmt")
    assert mgmt["mode"] == "isolated" and mgmt["subnet"] == "192.168.1.0/24" and len(mgmt["bridge"]) <= 15
    assert {x["ip"] for x in mgmt["reservations"]} == {"192.168.1.100", "192.168.1.101", "192.168.1.102"}
    ctl = next(n for n in data["nodes"] if n["name"] == "controller")
    assert (ctl["vcpus"], ctl["memory"]) == (4, "8GiB")
    assert all(n["mac"].startswith("52:54:00:") for n in ctl["nics"])
    assert {v["name"]: v["capacity"] for v in data["volumes"]}["controller.qcow2"] == "240GiB"
    provider = next(n for n in data["networks"] if n["name"] == "br0")      # the host's bridge: nothing to do
    assert provider["external"] and provider["reservations"] == [] and provider["mode"] == "host-bridge"
    assert len(data["actions"]) == 17


def test_plan_runs_inside_the_lab_directory():
    r = run_cli("plan", "--offline", "--json", env={"PWD": EXAMPLES["standard"]}) if False else None
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "labvirt", "plan", "--offline", "--json"], cwd=EXAMPLES["standard"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["lab"] == "openstack"


def test_plan_xml_writes_one_valid_file_per_object(tmp_path):
    out = tmp_path / "xml"
    r = run_cli("plan", "-C", EXAMPLES["standard"], "--offline", "--xml", str(out))
    assert r.returncode == 0, r.stderr
    files = sorted(os.listdir(out))
    assert len(files) == 1 + 1 + 2 + 2 + 2      # networks (not default: the host's), pool, disks, seeds, domains
    if os.path.isdir(schema.SCHEMA_DIR):
        from lxml import etree

        for f in files:
            assert schema.errors(etree.parse(str(out / f)).getroot()) == [], f


def test_bad_lab_exits_2_with_one_line_naming_file_and_field(tmp_path):
    from .test_loader import make

    d = make(tmp_path, nets={"mgmt": 'mode = "isolated"\nsubnet = "10.5.116.0/8"\n',
                             "provider": 'mode = "nat"\nsubnet = "10.6.0.0/24"\n'})
    r = run_cli("plan", "-C", d, "--offline")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "mgmt.toml: subnet" in lines[0] and "10.0.0.0/8" in lines[0]


def test_init_scaffolds_a_lab_that_plans(tmp_path):
    d = tmp_path / "mylab"
    r = run_cli("init", str(d))
    assert r.returncode == 0, r.stderr
    r = run_cli("plan", "-C", str(d), "--offline", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["lab"] == "mylab"
    r = run_cli("init", str(d))
    assert r.returncode == 1 and "already holds a lab" in r.stderr


def test_unreachable_libvirt_is_one_line_suggesting_the_simulator():
    r = run_cli("status", "-C", EXAMPLES["standard"], "--connect", "qemu+unix:///system?socket=/nonexistent/sock")
    assert r.returncode == 1
    assert "cannot reach libvirt" in r.stderr and "--connect sim" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
