"""`labvirt check` and `labvirt nested` through the CLI (conftest.run_cli; libvirt's built-in test driver)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from labvirt.host.profiles import PROFILES, profile_root

from .conftest import run_cli

TEST_URI = "test:///default"      # in-process fake libvirt: always reachable, has the 'default' network

# profile: (cpu_virt, kvm_usable, nested, guest_domain_type, l2_virt_type)
EXPECTED = {
    "intel-nested": ("vmx", True, "on", "kvm", "kvm"),
    "intel-no-nested": ("vmx", True, "off", "kvm", "qemu"),
    "amd-nested": ("svm", True, "on", "kvm", "kvm"),
    "no-virt": ("none", False, "unavailable", "qemu", "qemu"),
    "pvm": ("none", False, "unavailable", "qemu", "qemu"),
}


def invoke(*args):
    return run_cli(*[str(a) for a in args])


def check_json(*args):
    result = invoke("check", "--json", *args)
    return result, json.loads(result.stdout)


def make_lab(directory, subnet="10.77.0.0/24", memory="512MiB", domain_type="auto"):
    os.makedirs(directory / "networks")
    os.makedirs(directory / "domains")
    (directory / "lab.toml").write_text(f'[lab]\nname = "clitest"\ndomain_type = "{domain_type}"\n')
    (directory / "networks" / "public.toml").write_text(f'mode = "nat"\nsubnet = "{subnet}"\n')
    (directory / "domains" / "node1.toml").write_text(
        f'vcpus = 1\nmemory = "{memory}"\ndisk = "1GiB"\n[[nic]]\nnetwork = "public"\n')
    return directory


@pytest.mark.parametrize("name", PROFILES)
def test_check_profile_json_contract(tmp_path, name):
    result, data = check_json("--profile", name, "-c", TEST_URI, "-C", tmp_path)
    assert result.returncode == 0, result.stdout
    got = (data["cpu_virt"], data["kvm_usable"], data["nested"], data["guest_domain_type"], data["l2_virt_type"])
    assert got == EXPECTED[name]
    assert data["lab"] is None and "needs" not in data            # no lab here: lab checks are skipped
    assert data["findings"] and all(set(f) == {"id", "status", "message", "fix"} for f in data["findings"])
    assert {f["status"] for f in data["findings"]} <= {"ok", "warn"}


def test_host_root_reads_a_copied_tree(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(profile_root("pvm"), root)
    _, by_profile = check_json("--profile", "pvm", "-c", TEST_URI, "-C", tmp_path)
    result, by_root = check_json("--host-root", root, "-c", TEST_URI, "-C", tmp_path)
    assert result.returncode == 0
    assert by_root["host_root"] == str(root)
    assert {k: v for k, v in by_root.items() if k != "host_root"} == \
           {k: v for k, v in by_profile.items() if k != "host_root"}


def test_lab_that_fits(tmp_path):
    lab = make_lab(tmp_path / "lab")
    result, data = check_json("--profile", "intel-nested", "-c", TEST_URI, "-C", lab)
    assert result.returncode == 0
    assert data["lab"] == "clitest" and data["needs"]["vcpus"] == 1 and data["needs"]["nodes"] == 1
    status = {f["id"]: f["status"] for f in data["findings"]}
    assert status["network-public"] == "ok" and status["capacity-memory"] == "ok"


def test_a_class_that_does_not_fit_exits_1(tmp_path):
    lab = make_lab(tmp_path / "lab")
    result, data = check_json("--profile", "intel-nested", "-c", TEST_URI, "-C", lab, "--students", 200)
    assert result.returncode == 1
    assert data["ok"] is False and data["students"] == 200 and data["needs"]["nodes"] == 200
    assert [f["status"] for f in data["findings"] if f["id"] == "capacity-memory"] == ["fail"]


@pytest.mark.parametrize("subnet, against", [
    ("192.168.122.0/24", "libvirt network 'default'"),           # the test driver's default network
    ("192.168.100.0/24", "route to 192.168.100.0/24 via wlan0"),  # the profile's LAN
])
def test_subnet_collisions_exit_1(tmp_path, subnet, against):
    lab = make_lab(tmp_path / "lab", subnet=subnet)
    result, data = check_json("--profile", "intel-no-nested", "-c", TEST_URI, "-C", lab)
    assert result.returncode == 1
    (row,) = [f for f in data["findings"] if f["id"] == "network-public"]
    assert row["status"] == "fail" and against in row["message"] and row["fix"].startswith("set subnet")


def test_lab_forcing_kvm_on_a_host_without_it_exits_1(tmp_path):
    lab = make_lab(tmp_path / "lab", domain_type="kvm")
    result, data = check_json("--profile", "no-virt", "-c", TEST_URI, "-C", lab)
    assert result.returncode == 1
    assert [f["status"] for f in data["findings"] if f["id"] == "lab-domain-type"] == ["fail"]


def test_unreachable_libvirt_exits_1_with_a_finding(tmp_path):
    result, data = check_json("--profile", "intel-nested", "-c", "qemu+unix:///system?socket=/nonexistent/sock",
                              "-C", tmp_path)
    assert result.returncode == 1
    (row,) = [f for f in data["findings"] if f["id"] == "libvirt"]
    assert row["status"] == "fail" and "/nonexistent/sock" in row["message"]
    assert data["libvirt"] is None


def test_this_machine(tmp_path):
    """The real check, no host root. On a PVM host (like the one labvirt was written on) it must choose qemu."""
    result, data = check_json("-c", TEST_URI, "-C", tmp_path)
    assert result.returncode == 0
    assert data["host_root"] == "/"
    assert data["guest_domain_type"] == ("kvm" if data["kvm_usable"] else "qemu")
    if not os.path.isdir("/sys/module/kvm_pvm"):
        pytest.skip("not a PVM host (/sys/module/kvm_pvm is missing): the PVM verdict cannot be checked here")
    assert (data["kvm_usable"], data["guest_domain_type"], data["pvm"], data["l2_virt_type"]) == (False, "qemu", True, "qemu")
    assert data["cpu_virt"] == "none"
    (row,) = [f for f in data["findings"] if f["id"] == "kvm"]
    assert "kvm_pvm" in row["message"]


def test_table_output(tmp_path):
    result = invoke("check", "--profile", "intel-no-nested", "-c", TEST_URI, "-C", tmp_path)
    assert result.returncode == 0
    assert "lab VMs 'kvm', nested off, nova virt_type qemu" in result.stdout
    assert "modprobe-keyword" in result.stdout and "nothing blocks a lab here" in result.stdout


@pytest.mark.parametrize("profile,domain_type,l2", [("pvm", "qemu", "qemu"), ("intel-nested", "kvm", "kvm"),
                                                    ("intel-no-nested", "kvm", "qemu")])
def test_simulated_host_gives_its_profile_verdict_and_capacity(tmp_path, profile, domain_type, l2):
    from labvirt.driver import simulator as sim

    sim.create_host("h1", cpus=2, memory=4 * 2**30, profile=profile)
    from .conftest import EXAMPLES

    result = invoke("check", "-c", "sim:///h1", "-C", EXAMPLES["three-node"], "--json")
    data = json.loads(result.stdout)
    assert (data["guest_domain_type"], data["l2_virt_type"]) == (domain_type, l2)
    memory = next(f for f in data["findings"] if f["id"] == "capacity-memory")
    assert memory["status"] == "fail" and result.returncode == 1    # 16 GiB of nodes on a 4 GiB host


def test_bad_host_root(tmp_path):
    result = invoke("check", "--host-root", tmp_path / "missing", "-c", TEST_URI, "-C", tmp_path)
    assert result.returncode == 1 and "not a directory" in result.stderr


def test_nested_status_json():
    result = invoke("nested", "status", "--json", "--host-root", profile_root("intel-no-nested"))
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert (data["module"], data["nested"], data["nested_next_load"]) == ("kvm_intel", "off", "off")
    assert {f["id"] for f in data["findings"]} >= {"modprobe-keyword", "modprobe-not-conf", "modprobe-conflict"}


def tree(root):
    out = {}
    for d, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name)) as f:
                out[os.path.relpath(os.path.join(d, name), root)] = f.read()
    return out


def test_nested_enable_dry_run_changes_nothing(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(profile_root("intel-no-nested"), root)
    before = tree(root)
    result = invoke("nested", "enable", "--dry-run", "--host-root", root)
    assert result.returncode == 0
    assert "+options kvm_intel nested=1" in result.stdout and "-option kvm_intel nested=Y" in result.stdout
    assert tree(root) == before


def test_nested_enable_on_a_host_root(tmp_path):
    root = tmp_path / "host"
    shutil.copytree(profile_root("intel-no-nested"), root)
    result = invoke("nested", "enable", "--json", "--host-root", root)
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["result"]["written"][0] == "/etc/modprobe.d/labvirt-nested.conf"
    assert data["result"]["reloaded"] is False and "would run" in data["result"]["messages"][0]
    status = json.loads(invoke("nested", "status", "--json", "--host-root", root).stdout)
    assert status["nested_next_load"] == "on"
    assert [f["id"] for f in status["findings"] if f["id"].startswith("modprobe-")] == ["modprobe-not-conf"]


@pytest.mark.parametrize("name", ["pvm", "no-virt"])
def test_nested_enable_refused_without_vmx_or_svm(tmp_path, name):
    result = invoke("nested", "enable", "--host-root", profile_root(name))
    assert result.returncode == 1 and "error:" in result.stderr and "vmx" in result.stderr
