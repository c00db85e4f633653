"""`labvirt inventory` read by ansible-core itself (`ansible-inventory --list`, a test dependency).

Ansible runs in a subprocess that reads no user or system configuration (ANSIBLE_CONFIG names an
empty file) and writes only below the test's tmp directory (HOME, ANSIBLE_HOME, ANSIBLE_LOCAL_TEMP).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from labvirt.core.desired import HostParams, desire
from labvirt.core.errors import LabvirtError
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.login import inventory, ssh_argv, ssh_options

from .conftest import EXAMPLES, run_cli, small_lab

ANSIBLE_INVENTORY = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")


def ansible_list(text: str, tmp_path) -> tuple[dict, str]:
    """(the JSON of `ansible-inventory --list`, its stderr) for an inventory file holding `text`."""
    path = tmp_path / "inventory"            # no extension: the INI plugin takes any file name
    path.write_text(text)
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("")
    home = tmp_path / "ansible-home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "HOME": str(home),
           "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_HOME": str(home / ".ansible"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
           # what is checked is ansible's own warnings about the file (its Display's [WARNING] lines), not
           # Python's import-time notices, such as the DSA deprecation newer cryptography releases print
           # while ansible imports them (a UserWarning subclass)
           "PYTHONWARNINGS": "ignore::UserWarning,ignore::DeprecationWarning"}
    r = subprocess.run([ANSIBLE_INVENTORY, "-i", str(path), "--list"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def three_node():
    spec = load_lab(EXAMPLES["three-node"])
    return desire(spec, LabCopy(spec.name), HostParams())


def test_the_inventory_loads_in_ansible_without_a_warning(tmp_path):
    key = str(tmp_path / "state dir" / "it's" / "id_ed25519")      # a space and a quote survive
    known = str(tmp_path / "state dir" / "known_hosts")
    data, stderr = ansible_list(inventory(three_node(), "root", key, known, "admin@kvm2"), tmp_path)
    assert "warning" not in stderr.lower(), stderr
    hostvars = data["_meta"]["hostvars"]
    assert {h: v["ansible_host"] for h, v in hostvars.items()} == {
        "controller": "192.168.1.100", "compute1": "192.168.1.101", "compute2": "192.168.1.102"}
    assert data["labvirt_controller"]["hosts"] == ["controller"]
    assert data["labvirt_compute"]["hosts"] == ["compute1", "compute2"]
    assert sorted(data["labvirt_nodes"]["children"]) == ["labvirt_compute", "labvirt_controller"]
    assert "labvirt_nodes" in data["all"]["children"]
    for v in hostvars.values():
        assert v["ansible_user"] == "root" and v["ansible_ssh_private_key_file"] == key
        assert shlex.split(v["ansible_ssh_common_args"]) == ssh_options(key, known, "admin@kvm2")


def test_no_group_takes_a_hosts_variables(tmp_path):
    # the old inventory had a group and a host both called 'controller'; Ansible made ansible_host the group's
    data, _ = ansible_list(inventory(three_node(), "root", "/k"), tmp_path)
    groups = {g for g in data if g != "_meta"}
    assert not groups & set(data["_meta"]["hostvars"])
    assert all("vars" not in data[g] for g in groups)


def test_the_inventory_command_output_loads_in_ansible(tmp_path):
    r = run_cli("inventory", "-C", EXAMPLES["standard"])
    assert r.returncode == 0, r.stderr
    data, stderr = ansible_list(r.stdout, tmp_path)
    assert "warning" not in stderr.lower(), stderr
    assert data["labvirt_controller"]["hosts"] == ["controller"]
    assert data["labvirt_compute"]["hosts"] == ["compute"]
    assert data["_meta"]["hostvars"]["compute"]["ansible_host"] == "192.168.122.110"
    key = data["_meta"]["hostvars"]["compute"]["ansible_ssh_private_key_file"]
    assert key.startswith(os.environ["LABVIRT_STATE_DIR"]) and os.path.exists(key)


def test_roles_without_a_special_group_get_their_own(tmp_path):
    lab = small_lab(tmp_path, roles={"alpha": "network"})       # beta is generic
    spec = load_lab(lab)
    text = inventory(desire(spec, LabCopy(spec.name), HostParams()), "root", "/k")
    data, stderr = ansible_list(text, tmp_path)
    assert "warning" not in stderr.lower(), stderr
    assert data["labvirt_network"]["hosts"] == ["alpha"] and data["labvirt_generic"]["hosts"] == ["beta"]


def test_ssh_and_ansible_log_in_with_the_same_options():
    opts = ssh_options("/k", "/kh", "kvm2")
    assert ssh_argv("10.0.0.5", "root", "/k", "/kh", "kvm2") == ["ssh", *opts, "root@10.0.0.5"]
    assert opts[:2] == ["-i", "/k"] and "UserKnownHostsFile=/kh" in opts and opts[-2:] == ["-J", "kvm2"]
    assert "UserKnownHostsFile" not in " ".join(ssh_options("/k"))    # no file given: ssh's default


@pytest.mark.parametrize("name", ["all", "ungrouped"])
def test_a_node_named_like_an_ansible_group_is_refused(tmp_path, name):
    lab = small_lab(tmp_path, nodes=(name, "beta"))
    spec = load_lab(lab)
    with pytest.raises(LabvirtError, match=f"node '{name}': Ansible reserves"):
        inventory(desire(spec, LabCopy(spec.name), HostParams()), "root", "/k")
