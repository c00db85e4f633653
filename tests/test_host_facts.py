"""labvirt.host.facts: reading a host (profiles and hand-made trees) and the profiles themselves."""

from __future__ import annotations

import os
from ipaddress import IPv4Network

import pytest

from labvirt.core.errors import LabvirtError
from labvirt.host.facts import Route, read_host
from labvirt.host.profiles import PROFILES, profile_root

PROFILE_FACTS = {
    # name: (vendor, cpu_virt, hypervisor flag, dev_kvm, modules, modules source, nested params)
    "intel-nested": ("intel", "vmx", False, "usable", ("kvm", "kvm_intel"), "/proc/modules", (("kvm_intel", "Y"),)),
    "intel-no-nested": ("intel", "vmx", False, "usable", ("kvm", "kvm_intel"), "/proc/modules", (("kvm_intel", "N"),)),
    "amd-nested": ("amd", "svm", False, "usable", ("kvm", "kvm_amd"), "/proc/modules", (("kvm_amd", "1"),)),
    "no-virt": ("intel", "none", True, "missing", (), "/proc/modules", ()),
    "pvm": ("amd", "none", True, "usable", ("kvm", "kvm_pvm"), "/sys/module", ()),
}


def write(root, path, text=""):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


def test_every_profile_is_described():
    assert set(PROFILE_FACTS) == set(PROFILES)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_facts(name):
    vendor, virt, hypervisor, dev, modules, source, nested = PROFILE_FACTS[name]
    f = read_host(profile_root(name))
    assert (f.cpu_vendor, f.cpu_virt, f.cpu_hypervisor, f.dev_kvm) == (vendor, virt, hypervisor, dev)
    assert (f.modules, f.modules_source, f.nested_params) == (modules, source, nested)
    assert f.cpus == 2
    assert f.memory > 1024**3
    assert f.real is False
    assert f.disk_free is None          # a host tree has no disks of its own


def test_profile_root_rejects_unknown_names():
    with pytest.raises(LabvirtError, match="known: intel-nested"):
        profile_root("sparc")


def test_profile_networks():
    f = read_host(profile_root("intel-nested"))
    assert f.bridges == ("virbr0",)
    assert set(f.interfaces) == {"eth0", "lo", "virbr0"}
    assert Route("virbr0", IPv4Network("192.168.122.0/24")) in f.routes
    assert all(r.network.prefixlen for r in f.routes)   # the default route is left out


def test_profile_modprobe_files_include_ignored_names():
    paths = [p for p, _ in read_host(profile_root("intel-no-nested")).modprobe_files]
    assert "/etc/modprobe.d/kvm-nested" in paths      # read, so the checks can say modprobe ignores it
    assert "/etc/modprobe.d/kvm.conf" in paths


def test_sys_module_when_proc_modules_is_missing(tmp_path):
    root = str(tmp_path)
    write(root, "sys/module/kvm/parameters/halt_poll_ns", "200000\n")
    write(root, "sys/module/kvm_intel/parameters/nested", "Y\n")
    write(root, "sys/module/kvm_intel/refcnt", "2\n")
    write(root, "sys/module/ext4/parameters/x", "1\n")
    f = read_host(root)
    assert f.modules == ("kvm", "kvm_intel")
    assert f.modules_source == "/sys/module"
    assert f.nested_param("kvm_intel") == "Y"
    assert f.users("kvm_intel") == 2


def test_proc_modules_wins_over_sys_module(tmp_path):
    root = str(tmp_path)
    write(root, "proc/modules", "kvm_amd 155648 0 - Live 0x0\nkvm 1146880 1 kvm_amd, Live 0x0\n")
    write(root, "sys/module/kvm_intel/parameters/nested", "Y\n")   # built-in leftovers are not consulted
    f = read_host(root)
    assert f.modules == ("kvm", "kvm_amd")
    assert f.nested_params == ()


def test_empty_root_is_a_host_with_nothing(tmp_path):
    f = read_host(str(tmp_path))
    assert (f.cpu_virt, f.cpus, f.memory, f.dev_kvm, f.modules, f.routes) == ("none", 0, 0, "missing", (), ())


@pytest.mark.parametrize("flags, virt", [
    ("fpu vme vmx sse", "vmx"),
    ("fpu svm sse", "svm"),
    ("fpu hypervisor sse", "none"),
    ("fpu vmxnet", "none"),            # a word containing 'vmx' is not the flag
])
def test_cpu_virt_from_flags(tmp_path, flags, virt):
    write(str(tmp_path), "proc/cpuinfo", f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {flags}\n")
    assert read_host(str(tmp_path)).cpu_virt == virt


def test_routes_parse_little_endian_hex(tmp_path):
    write(str(tmp_path), "proc/net/route",
          "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
          "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
          "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
          "br0\t0000100A\t00000000\t0001\t0\t0\t0\t0000F0FF\t0\t0\t0\n")
    assert read_host(str(tmp_path)).routes == (Route("eth0", IPv4Network("192.0.2.0/24")),
                                               Route("br0", IPv4Network("10.16.0.0/12")))


def test_dev_kvm_under_a_host_root_is_present_or_missing(tmp_path):
    root = str(tmp_path)
    assert read_host(root).dev_kvm == "missing"
    write(root, "dev/kvm")
    assert read_host(root).dev_kvm == "usable"


def test_real_root_reads_this_machine():
    f = read_host("/", disk_path="/var/lib/libvirt/images/labvirt-does-not-exist/x")
    assert f.real is True
    assert f.cpus >= 1 and f.memory > 0
    assert f.dev_kvm in ("usable", "denied", "missing") or f.dev_kvm.startswith("error")
    assert f.disk_path and os.path.isdir(f.disk_path)     # the nearest existing parent was measured
    assert f.disk_free is not None and f.disk_free >= 0
