"""labvirt.host.verdict and labvirt.host.findings: the L0/L1/L2 answers and the rows `labvirt check` shows."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from labvirt.core.capacity import Capacity, Needs
from labvirt.host.facts import HostFacts, Route, read_host
from labvirt.host.findings import blocked, findings
from labvirt.core.capabilities import parse_capabilities
from labvirt.host.libvirt_info import LibvirtInfo, version_string
from labvirt.host.networks import LabNetwork, free_subnet
from labvirt.host.profiles import PROFILES, profile_root
from labvirt.host.tools import Tool
from labvirt.host.verdict import verdict
from labvirt.core.record import replace
from labvirt.core.observed import ObservedNetwork, Owner

GiB = 1024**3

# profile: (kvm_usable, guest_domain_type, nested, l1_virt, l2_virt_type, nested_cpu, pvm)
VERDICTS = {
    "intel-nested": (True, "kvm", "on", True, "kvm", "host-passthrough", False),
    "intel-no-nested": (True, "kvm", "off", False, "qemu", "host-passthrough", False),
    "amd-nested": (True, "kvm", "on", True, "kvm", "host-passthrough", False),
    "no-virt": (False, "qemu", "unavailable", False, "qemu", "default", False),
    "pvm": (False, "qemu", "unavailable", False, "qemu", "default", True),
}


def profile(name):
    return read_host(profile_root(name))


@pytest.mark.parametrize("name", PROFILES)
def test_profile_verdicts(name):
    v = verdict(profile(name))
    assert (v.kvm_usable, v.guest_domain_type, v.nested, v.l1_virt, v.l2_virt_type, v.nested_cpu, v.pvm) == VERDICTS[name]


def test_pvm_is_explained():
    v = verdict(profile("pvm"))
    assert "kvm_pvm" in v.l0 and "neither vmx nor svm" in v.l0 and "type='kvm' fail" in v.l0 and "labvirt uses type='qemu'" in v.l0_fix
    assert v.as_dict()["levels"]["L0"]["answer"] == "qemu"


def test_nested_off_says_what_to_do():
    v = verdict(profile("intel-no-nested"))
    assert v.nested_next_load == "off"
    assert v.l1_fix.startswith("labvirt nested enable")


BASE = HostFacts(root="/x", real=False, cpu_vendor="intel", cpu_virt="vmx", cpus=4, memory=16 * GiB,
                 dev_kvm="usable", modules=("kvm", "kvm_intel"), nested_params=(("kvm_intel", "Y"),))


@pytest.mark.parametrize("change, usable, nested, in_l0", [
    ({}, True, "on", "KVM works"),
    ({"modules": ("kvm",), "nested_params": ()}, False, "unavailable", "kvm_intel is not loaded"),
    ({"dev_kvm": "missing"}, False, "unavailable", "/dev/kvm is missing"),
    ({"dev_kvm": "denied"}, True, "on", "not by this user"),
    ({"dev_kvm": "error: Device busy"}, False, "unavailable", "Device busy"),
    ({"cpu_virt": "none", "modules": (), "nested_params": (), "dev_kvm": "missing"}, False, "unavailable", "firmware"),
    ({"nested_params": (("kvm_intel", "N"),)}, True, "off", "KVM works"),
    ({"nested_params": ()}, True, "unavailable", "KVM works"),       # an old kernel without the parameter
])
def test_verdict_rules(change, usable, nested, in_l0):
    v = verdict(replace(BASE, **change))
    assert (v.kvm_usable, v.nested) == (usable, nested)
    assert v.guest_domain_type == ("kvm" if usable else "qemu")
    assert v.l2_virt_type == ("kvm" if nested == "on" else "qemu")
    assert in_l0 in v.l0


def test_nested_off_now_but_on_at_next_load_says_reload():
    facts = replace(BASE, nested_params=(("kvm_intel", "N"),),
                                modprobe_files=(("/etc/modprobe.d/kvm.conf", "options kvm_intel nested=1\n"),))
    v = verdict(facts)
    assert (v.nested, v.nested_next_load) == ("off", "on")
    assert "modprobe -r kvm_intel && modprobe kvm_intel" in v.l1_fix


def ids(found, status=None):
    return [f.id for f in found if status is None or f.status == status]


@pytest.mark.parametrize("name, warn_ids", [
    ("intel-nested", []),
    ("intel-no-nested", ["nested", "l2-virt-type", "nested-next-load", "modprobe-conflict", "modprobe-not-conf",
                         "modprobe-keyword"]),
    ("amd-nested", ["modprobe-vendor"]),
    ("no-virt", ["cpu-virt", "dev-kvm", "kvm", "nested", "l2-virt-type"]),
    ("pvm", ["cpu-virt", "kvm-modules", "kvm", "nested", "l2-virt-type"]),
])
def test_profile_findings(name, warn_ids):
    f = profile(name)
    found = findings(f, verdict(f))
    assert ids(found, "warn") == warn_ids
    assert not blocked(found)
    assert all(x.status == "ok" or x.fix or x.id in ("dev-kvm", "kvm-modules", "nested", "l2-virt-type")
               for x in found)


def info(**kw):
    base = dict(uri="qemu:///system", hypervisor="QEMU", version="9.0.0", hypervisor_version="7.2.0",
                host_arch="x86_64", domain_types=("kvm", "qemu"))
    return LibvirtInfo(**{**base, **kw})


@pytest.mark.parametrize("name, kw, lab_type, expect", [
    ("intel-nested", {}, "auto", {"libvirt": "ok", "domain-types": "ok"}),
    ("pvm", {}, "auto", {"libvirt": "ok", "domain-types": "warn"}),        # libvirt offers kvm; it does not work
    ("pvm", {"domain_types": ("kvm",)}, "auto", {"domain-types": "fail"}),
    ("intel-nested", {"hypervisor": "TEST", "domain_types": ("test",)}, "auto", {"domain-types": "ok"}),
    ("pvm", {}, "kvm", {"lab-domain-type": "fail"}),
    ("intel-nested", {}, "qemu", {"lab-domain-type": "warn"}),
])
def test_libvirt_findings(name, kw, lab_type, expect):
    f = profile(name)
    found = findings(f, verdict(f), info(**kw), lab="lab", lab_domain_type=lab_type)
    assert {x.id: x.status for x in found if x.id in expect} == expect


def test_unreachable_libvirt_blocks():
    f = profile("intel-nested")
    found = findings(f, verdict(f), None, libvirt_error="cannot reach libvirt at qemu:///system: no socket")
    assert [(x.id, x.status) for x in found if x.id == "libvirt"] == [("libvirt", "fail")]
    assert blocked(found)


def test_capabilities_and_versions():
    xml = ("<capabilities><host><cpu><arch>x86_64</arch></cpu></host>"
           "<guest><arch name='i686'><domain type='qemu'/></arch></guest>"
           "<guest><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest></capabilities>")
    caps = parse_capabilities(xml)
    assert (caps.host_arch, caps.domain_types) == ("x86_64", {"i686": ("qemu",), "x86_64": ("kvm", "qemu")})
    assert caps.types_for_host() == ("kvm", "qemu") and not caps.hardware_virt
    assert parse_capabilities(xml.replace("<arch>x86_64</arch>", "<arch>x86_64</arch><feature name='vmx'/>")).hardware_virt
    assert version_string(9000000) == "9.0.0" and version_string(7002022) == "7.2.22"


@pytest.mark.parametrize("needs, capacity, expect", [
    (Needs(4, 8 * GiB, 40 * GiB, 10 * GiB, 2), Capacity(4, 16 * GiB, 100 * GiB),
     {"capacity-cpu": "ok", "capacity-memory": "ok", "capacity-disk": "ok"}),
    (Needs(20, 8 * GiB, 40 * GiB, 10 * GiB, 2), Capacity(4, 16 * GiB, 100 * GiB), {"capacity-cpu": "warn"}),
    (Needs(4, 20 * GiB, 40 * GiB, 10 * GiB, 2), Capacity(4, 16 * GiB, 100 * GiB), {"capacity-memory": "fail"}),
    (Needs(4, 8 * GiB, 400 * GiB, 10 * GiB, 2), Capacity(4, 16 * GiB, 100 * GiB), {"capacity-disk": "warn"}),
    (Needs(4, 8 * GiB, 400 * GiB, 200 * GiB, 2), Capacity(4, 16 * GiB, 100 * GiB), {"capacity-disk": "fail"}),
    (Needs(4, 8 * GiB, 400 * GiB, 200 * GiB, 2), Capacity(4, 16 * GiB, None), {"capacity-disk": "warn"}),
])
def test_capacity_findings(needs, capacity, expect):
    f = profile("intel-nested")
    found = findings(f, verdict(f), needs=needs, capacity=capacity)
    assert {x.id: x.status for x in found if x.id in expect} == expect


def net(name, subnet, bridge):
    return LabNetwork(name, f"lab-{name}", IPv4Network(subnet), bridge, f"/lab/networks/{name}.toml")


DEFAULT = ObservedNetwork("default", "u1", None, True, True, "virbr0", ("192.168.122.1/24",))
MINE = ObservedNetwork("lab-public", "u2", Owner("network", "lab", "", "public", "x"), True, True, "lvmine",
                       ("192.168.100.1/24",))
OTHER_LAB = ObservedNetwork("other-public", "u3", Owner("network", "other", "", "public", "x"), True, True, "lvother",
                            ("10.9.0.1/24",))


@pytest.mark.parametrize("lab_net, status, words, fix", [
    (net("public", "192.168.100.0/24", "lvmine"), "ok", "no collision", ""),   # this lab's own network and bridge
    (net("public", "192.168.122.0/24", "lvx"), "fail", "libvirt network 'default'", "set subnet = "),
    (net("public", "192.168.122.128/25", "lvx"), "fail", "192.168.122.0/24", "set subnet = "),
    (net("public", "10.9.0.0/16", "lvx"), "fail", "'other-public'", "set subnet = "),   # another lab's network
    (net("public", "192.0.2.0/24", "lvx"), "fail", "route to 192.0.2.0/24 via eth0", "set subnet = "),
    (net("public", "172.30.0.0/24", "eth0"), "fail", "interface named eth0", "another bridge name"),
    (net("public", "172.30.0.0/24", "virbr0"), "fail", "uses bridge virbr0", "another bridge name"),
    (net("public", "172.30.0.0/24", "lvx"), "ok", "no collision", ""),
])
def test_network_collisions(lab_net, status, words, fix):
    facts = replace(BASE, interfaces=("eth0", "lo", "virbr0", "lvmine"), bridges=("virbr0", "lvmine"),
                                routes=(Route("eth0", IPv4Network("192.0.2.0/24")),
                                        Route("virbr0", IPv4Network("192.168.122.0/24")),
                                        Route("lvmine", IPv4Network("192.168.100.0/24"))))
    found = findings(facts, verdict(facts), info(networks=(DEFAULT, MINE, OTHER_LAB)), networks=(lab_net,), lab="lab")
    (row,) = [x for x in found if x.id == "network-public"]
    assert row.status == status and words in row.message
    assert fix in row.fix
    if "set subnet" in fix:      # the suggested subnet is really free
        suggested = IPv4Network(row.fix.split('"')[1])
        assert not any(suggested.overlaps(IPv4Network(n)) for n in
                       ("192.0.2.0/24", "192.168.122.0/24", "10.9.0.0/24", str(lab_net.subnet)))


def test_free_subnet_skips_taken_ones():
    taken = [IPv4Network("192.168.0.0/24"), IPv4Network("192.168.2.0/23")]
    assert free_subnet(24, taken) == IPv4Network("192.168.1.0/24")
    assert free_subnet(16, [IPv4Network("192.168.0.0/16")]) == IPv4Network("172.16.0.0/16")


@pytest.mark.parametrize("name, env, status", [
    ("pvm", {}, "warn"),
    ("pvm", {"LIBGUESTFS_BACKEND": "direct", "LIBGUESTFS_BACKEND_SETTINGS": "force_tcg"}, "ok"),
    ("intel-nested", {}, "ok"),
    ("no-virt", {}, "ok"),       # no /dev/kvm: libguestfs falls back to emulation by itself
])
def test_tools_and_libguestfs_backend(name, env, status):
    tools = (Tool("qemu-img", "qemu-utils", "disks"), Tool("virt-builder", "libguestfs-tools", "images", "/usr/bin/virt-builder", "1.48.2"))
    f = profile(name)
    found = {x.id: x for x in findings(f, verdict(f), tools=tools, env=env)}
    assert found["tool-qemu-img"].status == "warn" and found["tool-qemu-img"].fix == "apt-get install qemu-utils"
    assert found["tool-virt-builder"].status == "ok"
    assert found["libguestfs-backend"].status == status


def test_remote_uri_warns_that_l0_is_this_machine():
    f = profile("intel-nested")
    (row,) = [x for x in findings(f, verdict(f), remote="lab-host") if x.id == "remote"]
    assert row.status == "warn" and "lab-host" in row.fix
