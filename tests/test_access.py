"""hosts, inventory and ssh: what a user logs in with."""

from __future__ import annotations

from labvirt.core.login import inventory, ssh_argv
from labvirt.core.desired import HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.uris import jump_host

from .conftest import EXAMPLES, run_cli, small_lab


def test_inventory_groups_by_role_with_login_addresses():
    spec = load_lab(EXAMPLES["three-node"])
    text = inventory(desire(spec, LabCopy(spec.name), HostParams()), "root", "/k")
    assert "[labvirt_controller]\ncontroller ansible_host=192.168.1.100\n" in text
    assert "[labvirt_compute]\ncompute1 ansible_host=192.168.1.101\ncompute2 ansible_host=192.168.1.102\n" in text
    assert "ansible_ssh_private_key_file='/k'" in text


def test_ssh_goes_through_the_libvirt_host_for_remote_uris():
    assert jump_host("qemu+ssh://admin@kvm2/system") == "admin@kvm2"
    assert jump_host("qemu:///system") is None
    argv = ssh_argv("10.0.0.5", "root", "/k", "/kh", "kvm2", ["uptime"])
    assert argv[:3] == ["ssh", "-i", "/k"] and ["-J", "kvm2"] == argv[argv.index("-J"):argv.index("-J") + 2]
    assert argv[-3:] == ["root@10.0.0.5", "--", "uptime"]
    assert not any("password" in a.lower() for a in argv)


def test_hosts_and_inventory_commands(tmp_path):
    r = run_cli("hosts", "-C", EXAMPLES["standard"])
    assert r.returncode == 0
    assert "192.168.122.100 controller\n" in r.stdout and r.stdout.startswith("# BEGIN labvirt openstack")
    r = run_cli("inventory", "-C", EXAMPLES["standard"])
    assert r.returncode == 0 and "[labvirt_compute]\ncompute ansible_host=192.168.122.110" in r.stdout


def test_ssh_on_the_simulator_says_there_is_nothing_to_log_in_to(tmp_path):
    lab = small_lab(tmp_path)
    run_cli("up", "-C", lab, "-c", "sim")
    r = run_cli("ssh", "alpha", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "simulator" in r.stderr
