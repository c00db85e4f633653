"""Networks labvirt does not own (labvirt.core.external): lab files, XML, plans, checks against the host,
class addresses; and on the simulator, the standard lab leaves libvirt's `default` as it was."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Network

import pytest

from labvirt.core import plan as p
from labvirt.core import schema
from labvirt.core.desired import HostParams, desire
from labvirt.core.errors import LabvirtError, SpecError
from labvirt.core.external import (HostNetworkFacts, allocate_addresses, external_check, facts_of, missing_ranges)
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.observed import Observed, parse_domain, parse_network
from labvirt.core.render import render_domain, tostring

from .conftest import EXAMPLES, run_cli, write_lab

NODE = '''
    memory = "1GiB"
    [[nic]]
    network = "public"
    address = "{public}"
    [[nic]]
    network = "provider"
    address = "10.5.116.{last}"
    [[nic]]
    network = "internal"
    address = "192.168.90.{last}"
'''
DEFAULT = HostNetworkFacts("default", True, True, IPv4Network("192.168.122.0/24"), IPv4Address("192.168.122.1"),
                           ((IPv4Address("192.168.122.2"), IPv4Address("192.168.122.254")),), "virbr0")


def lab(tmp_path, public_net='existing = "default"\n', provider=None, nodes=None, extra=""):
    return write_lab(tmp_path / "lab", "ext", networks={
        "public": public_net,
        "provider": provider or 'mode = "host-bridge"\nbridge = "br0"\nsubnet = "10.5.116.0/24"\ngateway = "10.5.116.1"\n',
        "internal": 'mode = "isolated"\nsubnet = "192.168.90.0/24"\n'},
        nodes=nodes or {"controller": NODE.format(public="192.168.122.100", last=100),
                        "compute": NODE.format(public="192.168.122.110", last=110)}, lab_extra=extra)


def desired_of(directory, facts=(DEFAULT,), copy=None):
    spec = load_lab(directory)
    return spec, desire(spec, copy or LabCopy(spec.name), HostParams(domain_type="qemu", networks=facts))


# -- lab files ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("network, field, words", [
    ('existing = "default"\nsubnet = "192.168.122.1/24"\n', "subnet", "host bits set"),
    ('existing = "default"\ngateway = "192.168.122.1"\n', "gateway", "unknown key"),
    ('existing = "bad name!"\n', "existing", "the name of a libvirt network"),
    ('mode = "existing"\n', "existing", "missing required field"),
    ('mode = "host-bridge"\nsubnet = "10.0.0.0/24"\n', "bridge", "missing required field"),
    ('mode = "host-bridge"\nbridge = "br0"\n', "subnet", "cannot be read from libvirt"),
    ('mode = "host-bridge"\nbridge = "a-very-long-bridge-name"\nsubnet = "10.0.0.0/24"\n', "bridge", "1-15 characters"),
    ('mode = "host-bridge"\nbridge = "br9"\nsubnet = "10.0.0.0/24"\ngateway = "10.0.1.1"\n', "gateway", "not a host address"),
    ('mode = "bridged"\nsubnet = "10.0.0.0/24"\n', "mode", "allowed: nat, isolated, existing, host-bridge"),
])
def test_bad_external_network_files_name_file_and_field(tmp_path, network, field, words):
    directory = lab(tmp_path, public_net=network)
    with pytest.raises(SpecError) as e:
        load_lab(directory)
    assert e.value.file.endswith("networks/public.toml") and e.value.field == field and words in str(e.value)


def test_two_lab_networks_on_one_bridge_are_refused(tmp_path):
    directory = lab(tmp_path, public_net='mode = "host-bridge"\nbridge = "br0"\nsubnet = "10.9.0.0/24"\n')
    with pytest.raises(SpecError) as e:
        load_lab(directory)
    assert e.value.field == "bridge" and "one lab network per existing network or bridge" in str(e.value)


def test_existing_subnet_comes_from_libvirt_or_is_refused_as_unknown(tmp_path):
    directory = lab(tmp_path)
    spec, desired = desired_of(directory)
    public = next(n for n in desired.networks if n.key == "public")
    assert (str(public.subnet), str(public.gateway), public.bridge, public.external) == \
        ("192.168.122.0/24", "192.168.122.1", "virbr0", True)
    with pytest.raises(SpecError) as e:          # offline and not stated: nothing to go by
        desire(spec, LabCopy(spec.name), HostParams())
    assert e.value.field == "subnet" and "state it" in str(e.value)


# -- XML and plan -----------------------------------------------------------------------------------------
def test_nics_render_on_the_existing_network_and_the_host_bridge(tmp_path):
    _, desired = desired_of(lab(tmp_path))
    dom = next(d for d in desired.domains if d.key == "controller")
    xml = tostring(render_domain(dom))
    assert "<interface type=\"network\">" in xml and "<source network=\"default\"/>" in xml
    assert "<interface type=\"bridge\">" in xml and "<source bridge=\"br0\"/>" in xml
    if os.path.isdir(schema.SCHEMA_DIR):
        assert schema.errors(render_domain(dom)) == []
    nics = parse_domain(xml).nics
    assert [(n.network, n.bridge) for n in nics][:2] == [("default", False), ("br0", True)]


def test_plan_never_touches_external_networks(tmp_path):
    _, desired = desired_of(lab(tmp_path))
    up = p.plan_up(desired, Observed())
    touched = {a.target for a in up.actions if isinstance(a, (p.DefineNetwork, p.StartNetwork, p.AutostartNetwork,
                                                                p.AddDhcpHost))}
    assert touched == {"ext-internal"}
    # DHCP reservations only on the network labvirt owns
    internal = next(n for n in desired.networks if n.key == "internal")
    assert len(internal.hosts) == 2
    assert all(not n.hosts for n in desired.networks if n.external)
    default = parse_network("<network><name>default</name><uuid>2188264e-7dcc-4670-b801-f3e628ccdbeb</uuid>"
                            "<bridge name='virbr0'/><ip address='192.168.122.1' netmask='255.255.255.0'/></network>",
                            active=True)
    gone = p.plan_destroy(desired, Observed(networks={"default": default}))
    assert not gone.blockers and not [a for a in gone.actions if isinstance(a, p.DeleteNetwork)]


def test_seed_routes_through_the_existing_network(tmp_path):
    from labvirt.core.cloudinit import network_config

    _, desired = desired_of(lab(tmp_path))
    config = network_config(desired, "controller")["config"]
    eth0 = config[0]["subnets"][0]
    assert eth0["address"] == "192.168.122.100" and eth0["routes"][0]["gateway"] == "192.168.122.1"
    assert config[-1] == {"type": "nameserver", "address": ["192.168.122.1"]}


# -- checks against the host --------------------------------------------------------------------------------
def check(directory, facts=(DEFAULT,), bridges=None, leases=None):
    spec, desired = desired_of(directory, facts)
    return external_check(spec, desired, facts, {"br0": True} if bridges is None else bridges, leases or {})


def test_static_address_inside_the_dhcp_range_is_a_warning_not_a_refusal(tmp_path):
    v = check(lab(tmp_path))
    assert v.refusals == ()
    assert len(v.warnings) == 2 and all("inside public's DHCP range 192.168.122.2-192.168.122.254" in w
                                        for w in v.warnings)
    assert "domains/compute.toml: nic[0].address: 192.168.122.110" in v.warnings[0]


def test_address_leased_to_another_mac_is_refused_and_to_its_own_node_is_not(tmp_path):
    directory = lab(tmp_path)
    _, desired = desired_of(directory)
    own = next(d for d in desired.domains if d.key == "controller").nics[0].mac
    v = check(directory, leases={"default": (("52:54:00:aa:bb:cc", "192.168.122.110"), (own, "192.168.122.100"))})
    assert len(v.refusals) == 1
    assert "compute.toml: nic[0].address: 192.168.122.110 is already leased on 'default' to 52:54:00:aa:bb:cc" in v.refusals[0]


@pytest.mark.parametrize("facts, bridges, words", [
    ((), None, "public.toml: existing: the host has no libvirt network 'default'"),
    ((HostNetworkFacts("default", True, False, DEFAULT.subnet, DEFAULT.gateway),), None, "is not active"),
    ((DEFAULT,), {"virbr0": True}, "provider.toml: bridge: the host has no bridge 'br0'"),
])
def test_missing_or_inactive_is_refused(tmp_path, facts, bridges, words):
    directory = lab(tmp_path, public_net='existing = "default"\nsubnet = "192.168.122.0/24"\n')
    v = check(directory, facts, bridges)
    assert any(words in r for r in v.refusals), v.refusals


def test_stated_subnet_that_disagrees_is_refused(tmp_path):
    directory = lab(tmp_path, public_net='existing = "default"\nsubnet = "192.168.123.0/24"\n',
                    nodes={"controller": NODE.format(public="192.168.123.100", last=100)})
    v = check(directory)
    assert any("public.toml: subnet: 192.168.123.0/24 disagrees with libvirt network 'default' (192.168.122.0/24)"
               in r for r in v.refusals)


def test_address_outside_libvirts_subnet_is_refused(tmp_path):
    directory = lab(tmp_path, nodes={"controller": NODE.format(public="10.1.1.1", last=100)})
    v = check(directory)
    assert any("controller.toml: nic[0].address: 10.1.1.1 is not a host address of public's subnet" in r
               for r in v.refusals)


def test_facts_come_from_libvirts_network_xml():
    obs = parse_network("<network><name>default</name><uuid>2188264e-7dcc-4670-b801-f3e628ccdbeb</uuid>"
                        "<forward mode='nat'/><bridge name='virbr0'/><ip address='192.168.122.1' "
                        "netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/>"
                        "</dhcp></ip></network>", active=True)
    assert facts_of("default", obs) == DEFAULT
    assert facts_of("default", None) == HostNetworkFacts("default")


# -- class mode ---------------------------------------------------------------------------------------------------
def test_class_without_a_range_is_refused_saying_what_to_set(tmp_path):
    spec = load_lab(lab(tmp_path))
    why = missing_ranges(spec, {})
    assert "lab.toml: class.external.provider: missing" in why and '[class.external] provider = "A.B.C.D/NN"' in why
    why = missing_ranges(spec, {"provider": IPv4Network("10.5.116.128/25")})
    assert "class.external.public: missing; students share libvirt network 'default'" in why


def test_class_addresses_are_distinct_stable_and_bounded(tmp_path):
    spec = load_lab(lab(tmp_path, extra='[class.external]\npublic = "192.168.122.128/29"\nprovider = "10.5.116.128/25"\n'))
    ranges = {"public": IPv4Network("192.168.122.128/29"), "provider": IPv4Network("10.5.116.128/25")}
    got = allocate_addresses(spec, ["s01", "s02"], ranges, {})
    # student, then node order (compute before controller: the order of the node files)
    assert got["s01"]["public"] == {"192.168.122.110": "192.168.122.129", "192.168.122.100": "192.168.122.130"}
    assert got["s02"]["public"] == {"192.168.122.110": "192.168.122.131", "192.168.122.100": "192.168.122.132"}
    again = allocate_addresses(spec, ["s01", "s02", "s03"], ranges, got)      # recorded ones stay
    assert again["s01"] == got["s01"] and again["s02"] == got["s02"]
    assert set(again["s03"]["public"].values()) == {"192.168.122.133", "192.168.122.134"}
    with pytest.raises(LabvirtError) as e:                                    # a /29 has 6 hosts
        allocate_addresses(spec, ["s01", "s02", "s03", "s04"], ranges, {})
    assert "class.external.public: 192.168.122.128/29 has too few free addresses" in str(e.value)
    copy = LabCopy(spec.name, "s02", external=tuple((n, IPv4Address(a), IPv4Address(b))
                                                    for n, pairs in got["s02"].items() for a, b in pairs.items()))
    _, desired = desired_of(os.path.dirname(spec.directory + "/"), copy=copy)
    ctl = next(d for d in desired.domains if d.key == "controller")
    assert [str(n.address) for n in ctl.nics][:2] == ["192.168.122.132", "10.5.116.132"]


@pytest.mark.parametrize("value, words", [
    ('nope = "192.168.122.128/25"', "no external network 'nope'"),
    ('public = "192.168.122.1/25"', "without host bits"),
    ('provider = "10.5.117.0/25"', "is not inside provider's subnet 10.5.116.0/24"),
])
def test_bad_class_ranges_are_refused_with_the_lab_file(tmp_path, value, words):
    with pytest.raises(SpecError) as e:
        load_lab(lab(tmp_path, extra=f"[class.external]\n{value}\n"))
    assert e.value.file.endswith("lab.toml") and e.value.field.startswith("class.external.") and words in str(e.value)


# -- the simulator -------------------------------------------------------------------------------------------------
def _default_network(state_dir) -> str:
    from lxml import etree

    node = etree.parse(os.path.join(str(state_dir), "sim", "default", "node.xml"))
    return " ".join(etree.tostring(node.find("network")).decode().split())


def test_standard_lab_up_and_destroy_on_the_simulator_leave_default_as_it_was(state_dir):
    r = run_cli("plan", "-C", EXAMPLES["standard"], "-c", "sim")     # the simulated host as libvirt writes it
    assert r.returncode == 0, r.stderr
    before = _default_network(state_dir)
    r = run_cli("up", "-C", EXAMPLES["standard"], "-c", "sim")
    assert r.returncode == 0, r.stderr
    assert "inside public's DHCP range" in r.stderr          # a warning, not a refusal
    status = json.loads(run_cli("status", "-C", EXAMPLES["standard"], "-c", "sim", "--json").stdout)
    nets = {n["name"]: n for n in status["networks"]}
    assert nets["default"]["external"] and nets["default"]["active"] and status["drift"] == []
    r = run_cli("destroy", "-C", EXAMPLES["standard"], "-c", "sim")
    assert r.returncode == 0, r.stderr
    assert _default_network(state_dir) == before


def test_simulated_host_declares_its_bridges(state_dir):
    assert run_cli("sim", "create", "nobr", "--bridge", "").returncode == 0
    r = run_cli("up", "-C", EXAMPLES["three-node"], "-c", "sim:///nobr", "--dry-run")
    assert r.returncode == 1 and "bridge: the host has no bridge 'br0'" in r.stdout + r.stderr
    assert run_cli("sim", "create", "withbr", "--bridge", "br0").returncode == 0
    r = run_cli("up", "-C", EXAMPLES["three-node"], "-c", "sim:///withbr", "--dry-run", "--no-build")
    assert "the host has no bridge" not in r.stdout + r.stderr


def test_class_up_without_a_range_is_refused_before_anything_exists(tmp_path):
    import shutil

    directory = tmp_path / "lab"
    shutil.copytree(EXAMPLES["standard"], directory, ignore=shutil.ignore_patterns(
        ".git", "tests", "labvirt", "docs", "bench", "examples", "scripts", "*.md", ".venv"))
    text = (directory / "lab.toml").read_text()
    (directory / "lab.toml").write_text(text[: text.index("[class.external]")])
    r = run_cli("class", "up", "--students", "2", "-C", str(directory), "-c", "sim")
    assert r.returncode == 1
    assert "class.external.public: missing" in r.stderr and '[class.external] public = "A.B.C.D/NN"' in r.stderr
    r = run_cli("class", "status", "--json", "-C", str(directory), "-c", "sim")
    assert json.loads(r.stdout)["students"] == []
    # with the range (as the standard lab has it) two students get distinct addresses on default
    r = run_cli("class", "up", "--students", "2", "-C", EXAMPLES["standard"], "-c", "sim")
    assert r.returncode == 0, r.stderr
    rows = json.loads(run_cli("class", "status", "--json", "-C", EXAMPLES["standard"], "-c", "sim").stdout)["students"]
    eth0 = [n["nics"][0]["planned"] for row in rows for n in row["nodes"]]
    assert sorted(eth0) == ["192.168.122.129", "192.168.122.130", "192.168.122.131", "192.168.122.132"]
