"""Lab files -> LabSpec: the example labs load, and every kind of bad input is refused in one line."""

from __future__ import annotations

import os
from ipaddress import ip_address, ip_network

import pytest

from labvirt.core.errors import SpecError
from labvirt.core.loader import load_lab

from .conftest import EXAMPLES, write_lab

NETS = {
    "mgmt": 'mode = "isolated"\nsubnet = "192.168.1.0/24"\n',
    "provider": 'mode = "nat"\nsubnet = "10.5.116.0/24"\n',
}
CONTROLLER = '''
role = "controller"
vcpus = 4
memory = "8GiB"
disk = "240GiB"
[[nic]]
network = "mgmt"
address = "192.168.1.100"
[[nic]]
network = "provider"
address = "10.5.116.100"
'''
COMPUTE = CONTROLLER.replace('"controller"', '"compute"').replace(".100", ".101").replace('"8GiB"', '"4GiB"')


def make(tmp_path, nets=None, nodes=None, lab_extra="", name="lab1", images=None):
    return write_lab(tmp_path / "lab", name, networks=nets if nets is not None else dict(NETS),
                     nodes=nodes if nodes is not None else {"controller": CONTROLLER, "compute1": COMPUTE},
                     lab_extra=lab_extra, images=images)


def test_three_node_example_matches_the_course():
    spec = load_lab(EXAMPLES["three-node"])
    assert [n.name for n in spec.nodes] == ["compute1", "compute2", "controller"]
    ctl = spec.node("controller")
    assert (ctl.vcpus, ctl.memory, ctl.disk) == (4, 8 * 2**30, 240 * 2**30)
    for c in ("compute1", "compute2"):
        n = spec.node(c)
        assert (n.vcpus, n.memory, n.disk, n.role, n.nested) == (4, 4 * 2**30, 120 * 2**30, "compute", True)
    assert spec.network("mgmt").subnet == ip_network("192.168.1.0/24") and spec.network("mgmt").mode == "isolated"
    provider = spec.network("provider")
    assert (provider.subnet, provider.mode, provider.bridge) == (ip_network("10.5.116.0/24"), "host-bridge", "br0")
    assert provider.external and str(provider.gateway) == "10.5.116.1"
    nat = load_lab(EXAMPLES["three-node-nat"])        # the same lab for a machine without a host bridge
    assert nat.network("provider").mode == "nat" and nat.network("provider").subnet == provider.subnet
    assert [(n.name, n.vcpus, n.memory, n.disk, n.nics) for n in nat.nodes] == \
        [(n.name, n.vcpus, n.memory, n.disk, n.nics) for n in spec.nodes]
    addrs = {n.name: [str(nic.address) for nic in n.nics] for n in spec.nodes}
    assert addrs == {"controller": ["192.168.1.100", "10.5.116.100"], "compute1": ["192.168.1.101", "10.5.116.101"],
                     "compute2": ["192.168.1.102", "10.5.116.102"]}


def test_standard_lab_is_controller_and_compute_default_eth0_hostonly_eth1():
    spec = load_lab(EXAMPLES["standard"])
    assert {n.name for n in spec.nodes} == {"controller", "compute"}
    for node, host in (("controller", 100), ("compute", 110)):
        eth0, eth1 = spec.node(node).nics
        public, internal = spec.network(eth0.network), spec.network(eth1.network)
        assert (public.mode, public.existing, str(public.subnet)) == ("existing", "default", "192.168.122.0/24")
        assert internal.mode == "isolated" and str(internal.subnet) == "192.168.90.0/24"
        assert (str(eth0.address), str(eth1.address)) == (f"192.168.122.{host}", f"192.168.90.{host}")


def test_defaults(tmp_path):
    spec = load_lab(make(tmp_path))
    net = spec.network("mgmt")
    assert net.gateway == ip_address("192.168.1.1")
    assert (net.dhcp_start, net.dhcp_end) == (ip_address("192.168.1.128"), ip_address("192.168.1.254"))
    assert spec.node("compute1").nested and not spec.node("controller").nested
    assert spec.domain_type == "auto"


BAD = [
    # (what, mutate(files) -> files, file suffix, field, words in message)
    ("unknown key in a node", lambda n, d: (n, {**d, "controller": 'vcpu = 2\n' + CONTROLLER}),
     "controller.toml", "vcpu", "did you mean 'vcpus'"),
    ("unknown key in lab", None, "lab.toml", "lab.nmae", "did you mean 'name'"),
    ("missing memory", lambda n, d: (n, {**d, "controller": CONTROLLER.replace('memory = "8GiB"\n', "")}),
     "controller.toml", "memory", "missing required field"),
    ("missing subnet", lambda n, d: ({**n, "mgmt": 'mode = "isolated"\n'}, d), "mgmt.toml", "subnet", "missing"),
    ("host bits set", lambda n, d: ({**n, "provider": 'mode = "nat"\nsubnet = "10.5.116.0/8"\n'}, d),
     "provider.toml", "subnet", "host bits set; did you mean '10.5.116.0/24'? ('10.0.0.0/8' is the /8"),
    ("overlapping subnets", lambda n, d: ({**n, "other": 'mode = "isolated"\nsubnet = "192.168.0.0/16"\n'}, d),
     "other.toml", "subnet", "overlaps 192.168.1.0/24"),
    ("address outside subnet", lambda n, d: (n, {**d, "compute1": COMPUTE.replace("192.168.1.101", "192.168.2.101")}),
     "compute1.toml", "nic[0].address", "outside mgmt's subnet"),
    ("network address", lambda n, d: (n, {**d, "compute1": COMPUTE.replace("192.168.1.101", "192.168.1.0")}),
     "compute1.toml", "nic[0].address", "network or broadcast"),
    ("broadcast address", lambda n, d: (n, {**d, "compute1": COMPUTE.replace("192.168.1.101", "192.168.1.255")}),
     "compute1.toml", "nic[0].address", "network or broadcast"),
    ("gateway address", lambda n, d: (n, {**d, "compute1": COMPUTE.replace("192.168.1.101", "192.168.1.1")}),
     "compute1.toml", "nic[0].address", "gateway"),
    ("duplicate address", lambda n, d: (n, {**d, "compute1": COMPUTE.replace("192.168.1.101", "192.168.1.100")}),
     "controller.toml", "nic[0].address", "already given to"),
    ("duplicate node name", lambda n, d: (n, {**d, "other": 'name = "controller"\n' + COMPUTE.replace(".101", ".150")}),
     ".toml", "name", "already used"),
    ("node name libvirt/Linux reject", lambda n, d: (n, {**d, "Compute_1": COMPUTE}),
     "Compute_1.toml", "name", "lowercase letters"),
    ("network name rejected", lambda n, d: ({**n, "bad": 'name = "my net"\nmode = "isolated"\nsubnet = "10.9.0.0/24"\n'}, d),
     "bad.toml", "name", "lowercase letters"),
    ("bridge name too long", lambda n, d: ({**n, "mgmt": NETS["mgmt"] + 'bridge = "br-management-net"\n'}, d),
     "mgmt.toml", "bridge", "15 characters"),
    ("zero vcpus", lambda n, d: (n, {**d, "controller": CONTROLLER.replace("vcpus = 4", "vcpus = 0")}),
     "controller.toml", "vcpus", "allowed: 1 to 256"),
    ("absurd memory", lambda n, d: (n, {**d, "controller": CONTROLLER.replace('"8GiB"', '"800TiB"')}),
     "controller.toml", "memory", "allowed: 64MiB to 4TiB"),
    ("memory without unit", lambda n, d: (n, {**d, "controller": CONTROLLER.replace('"8GiB"', '8192')}),
     "controller.toml", "memory", "with a unit"),
    ("negative disk", lambda n, d: (n, {**d, "controller": CONTROLLER.replace('"240GiB"', '"-5GiB"')}),
     "controller.toml", "disk", "with a unit"),
    ("node on a missing network", lambda n, d: (n, {**d, "compute1": COMPUTE.replace('"provider"', '"provider2"')}),
     "compute1.toml", "nic[1].network", "no network 'provider2'; known: mgmt, provider"),
    ("bad mode", lambda n, d: ({**n, "mgmt": 'mode = "host-onyl"\nsubnet = "192.168.1.0/24"\n'}, d),
     "mgmt.toml", "mode", "allowed: nat, isolated"),
    ("bad address text", lambda n, d: (n, {**d, "compute1": COMPUTE.replace("192.168.1.101", "192.168.1.301")}),
     "compute1.toml", "nic[0].address", "an IPv4 address"),
    ("missing image recipe", lambda n, d: (n, {**d, "compute1": 'image = "centos9"\n' + COMPUTE}),
     "compute1.toml", "image", "no image recipe 'centos9'"),
    ("node without nic", lambda n, d: (n, {**d, "compute1": 'memory = "1GiB"\n'}), "compute1.toml", "nic", "at least one"),
    ("dhcp range outside", lambda n, d: ({**n, "mgmt": NETS["mgmt"] + 'dhcp_range = ["192.168.1.10", "192.168.2.20"]\n'}, d),
     "mgmt.toml", "dhcp_range", "not a host address"),
    ("prefix too small", lambda n, d: ({**n, "mgmt": 'mode = "isolated"\nsubnet = "192.168.1.0/30"\n'}, d),
     "mgmt.toml", "subnet", "/8 to /29"),
    ("not TOML", lambda n, d: (n, {**d, "compute1": "memory = \n"}), "compute1.toml", "", "not valid TOML"),
]


@pytest.mark.parametrize("what,mutate,file,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_with_file_field_and_allowed(tmp_path, what, mutate, file, field, words):
    nets, nodes = dict(NETS), {"controller": CONTROLLER, "compute1": COMPUTE}
    lab_extra = ""
    if mutate is None:
        lab_extra = 'nmae = "x"\n'
    else:
        nets, nodes = mutate(nets, nodes)
    directory = make(tmp_path, nets, nodes, lab_extra=lab_extra)
    with pytest.raises(SpecError) as e:
        load_lab(directory)
    assert e.value.file.endswith(file), e.value
    assert e.value.field == field, e.value
    assert words in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_missing_lab_file(tmp_path):
    with pytest.raises(SpecError, match="lab.toml not found"):
        load_lab(str(tmp_path))


def test_lab_name_must_be_a_name(tmp_path):
    with pytest.raises(SpecError) as e:
        load_lab(make(tmp_path, name="My Lab"))
    assert e.value.field == "lab.name" and "lowercase" in str(e.value)


def test_secrets_are_never_inline(tmp_path):
    img = {"base": 'template = "centos-7.5"\nroot_password = "hunter2"\n'}
    with pytest.raises(SpecError) as e:
        load_lab(make(tmp_path, images=img))
    assert e.value.field == "root_password" and "hunter2" not in str(e.value)


def test_files_are_read_only(tmp_path):
    directory = make(tmp_path)
    before = sorted(os.listdir(directory))
    load_lab(directory)
    assert sorted(os.listdir(directory)) == before


def test_default_sizes_are_bytes(tmp_path):
    """A node without 'disk' and a recipe without 'size' get their defaults as numbers, not as text."""
    nodes = {"controller": 'image = "x"\n' + CONTROLLER.replace('disk = "240GiB"\n', "")}
    spec = load_lab(make(tmp_path, nodes=nodes, images={"x": 'template = "centosstream-9"\n'}))
    assert spec.node("controller").disk == 10 * 2**30 and spec.images[0].size == 20 * 2**30
