"""What libvirt or the host would refuse later is refused at plan time, before anything changes:
large subnets, shared bridges, subnet collisions, memory, and the exit code of a blocked plan."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Network, ip_address

import libvirt
import pytest
from typer.testing import CliRunner

from labvirt.cli import app
from labvirt.core.errors import LabvirtError, SpecError
from labvirt.core.loader import load_lab
from labvirt.core.subnets import default_range, host_bits_hint, range_problem
from labvirt.driver import simulator as sim

from .conftest import write_lab

GiB = 2**30


def cli(*args):
    """(exit code, stdout, the error line) as `labvirt` itself would give them (main() maps errors)."""
    r = CliRunner().invoke(app, [str(a) for a in args])
    if isinstance(r.exception, LabvirtError):
        return r.exception.exit_code, r.stdout, str(r.exception)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, ""


def lab(directory, name="rf", subnet="10.240.1.0/24", memory="128MiB", extra_net="", nets=None):
    prefix = subnet.rsplit(".", 1)[0] if subnet.endswith(".0/24") else None
    address = f'address = "{prefix}.100"\n' if prefix else ""
    return write_lab(directory, name,
                     networks=nets or {"a": f'mode = "isolated"\nsubnet = "{subnet}"\n{extra_net}'},
                     nodes={"alpha": f'vcpus = 1\nmemory = "{memory}"\ndisk = "64MiB"\n[[nic]]\nnetwork = "a"\n{address}'},
                     lab_extra='domain_type = "qemu"\n')


def sim_view(name="default"):
    """Names of the simulated host's domains, networks and pools, read with libvirt directly."""
    path = os.path.join(sim.sim_dir(name), "node.xml")
    if not os.path.exists(path):
        return set(), set(), set()
    conn = libvirt.open(f"test://{path}")
    try:
        return ({d.name() for d in conn.listAllDomains()}, {n.name() for n in conn.listAllNetworks()},
                {p.name() for p in conn.listAllStoragePools()})
    finally:
        conn.close()


# -- 1. large subnets -----------------------------------------------------------------------------------

@pytest.mark.parametrize("subnet", ["10.0.0.0/8", "10.4.0.0/14", "10.2.0.0/15", "10.3.0.0/16", "10.3.4.0/24",
                                    "10.3.4.8/29"])
def test_default_dhcp_range_stays_inside_one_16(subnet):
    net = IPv4Network(subnet)
    start, end = default_range(net, net.network_address + 1)
    assert start in net and end in net and start <= end and range_problem(start, end) is None
    assert end not in (net.broadcast_address, net.network_address + 1)


def test_libvirt_itself_refuses_a_range_across_a_16_and_accepts_the_default():
    """The rule in core.subnets is libvirt's (the same conf code parses networks on every driver)."""
    conn = libvirt.open("test:///default")
    try:
        def define(start, end):
            xml = (f"<network><name>rng</name><bridge name='rngbr'/><ip address='10.0.0.1' netmask='255.0.0.0'>"
                   f"<dhcp><range start='{start}' end='{end}'/></dhcp></ip></network>")
            try:
                conn.networkDefineXML(xml).undefine()
                return None
            except libvirt.libvirtError as e:
                return e.get_error_message()
        assert "too large" in define("10.0.255.0", "10.1.0.255")        # 512 addresses, two /16s
        assert range_problem(ip_address("10.0.255.0"), ip_address("10.1.0.255"))
        assert define(*default_range(IPv4Network("10.0.0.0/8"), ip_address("10.0.0.1"))) is None
    finally:
        conn.close()


@pytest.mark.parametrize("subnet", ["10.0.0.0/8", "10.4.0.0/14"])
def test_large_subnet_goes_up_whole(tmp_path, subnet):
    d = lab(tmp_path / "lab", subnet=subnet)
    code, _, msg = cli("up", "-C", d, "-c", "sim")
    assert code == 0, msg
    assert "rf-alpha" in sim_view()[0] and "rf-a" in sim_view()[1]


def test_large_subnet_is_accepted_by_the_real_daemon(tmp_path, daemon):
    """Defined (not started) on qemu:///system: libvirt's own check of the range runs at define time."""
    from labvirt.core.desired import HostParams, desire
    from labvirt.core.identity import LabCopy
    from labvirt.core.render import render_network, tostring

    spec = load_lab(lab(tmp_path / "lab", name="h4big", subnet="10.0.0.0/8"))
    (net,) = desire(spec, LabCopy(spec.name), HostParams(domain_type="qemu")).networks
    conn = libvirt.open(daemon)
    try:
        conn.networkDefineXML(tostring(render_network(net))).undefine()
    finally:
        conn.close()


def test_explicit_range_across_a_16_is_a_lab_file_error(tmp_path):
    d = lab(tmp_path / "lab", subnet="10.0.0.0/8", extra_net='dhcp_range = ["10.0.0.10", "10.1.0.10"]\n')
    with pytest.raises(SpecError) as e:
        load_lab(d)
    assert e.value.file.endswith("networks/a.toml") and e.value.field == "dhcp_range"
    assert "one /16" in str(e.value) and "['10.0.0.10', '10.0.255.255']" in str(e.value)
    assert cli("plan", "-C", d, "--offline")[0] == 2


@pytest.mark.parametrize("text, hint", [
    ("10.5.116.0/8", "did you mean '10.5.116.0/24'? ('10.0.0.0/8' is the /8 that holds it)"),
    ("10.5.0.0/8", "did you mean '10.5.0.0/16'?"),
    ("192.168.1.7/24", "did you mean '192.168.1.0/24'?"),
])
def test_host_bits_hint_points_at_the_likely_subnet(text, hint):
    address, prefix = text.split("/")
    assert host_bits_hint(ip_address(address), int(prefix)).startswith(hint)


# -- 2. two networks, one bridge ------------------------------------------------------------------------

def test_two_networks_with_one_bridge_are_refused_naming_both_files(tmp_path):
    d = lab(tmp_path / "lab", nets={
        "a": 'mode = "isolated"\nsubnet = "10.240.1.0/24"\nbridge = "brlab"\n',
        "b": 'mode = "isolated"\nsubnet = "10.240.2.0/24"\nbridge = "brlab"\n'})
    with pytest.raises(SpecError) as e:
        load_lab(d)
    line = str(e.value)
    assert "\n" not in line and "networks/b.toml: bridge: 'brlab'" in line and "networks/a.toml" in line


# -- 3. subnet collisions -------------------------------------------------------------------------------

def test_up_refuses_a_subnet_of_libvirts_default_network_and_changes_nothing(tmp_path):
    d = lab(tmp_path / "lab", subnet="192.168.122.0/24")
    code, _, msg = cli("up", "-C", d, "-c", "sim")
    assert code == 1
    assert "network 'a' 192.168.122.0/24" in msg and "libvirt network 'default'" in msg and "set subnet" in msg
    assert sim_view() == (set(), {"default"}, set())      # the simulated host as it was made


def test_up_refuses_another_labs_subnet_and_a_rerun_of_its_own_lab_is_fine(tmp_path):
    first = lab(tmp_path / "one", name="one", subnet="10.240.7.0/24")
    second = lab(tmp_path / "two", name="two", subnet="10.240.7.0/24")
    assert cli("up", "-C", first, "-c", "sim")[0] == 0
    before = sim_view()
    code, _, msg = cli("up", "-C", second, "-c", "sim")
    assert code == 1 and "network 'a' 10.240.7.0/24" in msg and "libvirt network 'one-a' (10.240.7.0/24" in msg
    assert sim_view() == before
    assert cli("up", "-C", first, "-c", "sim") == (0, "", "")      # its own networks are no collision


def test_collision_refusals_name_routes_and_interfaces_of_this_machine(tmp_path):
    """Routes are this machine's (the session reads them only for local hosts): plain values here."""
    from labvirt.core.desired import HostParams, desire
    from labvirt.core.identity import LabCopy
    from labvirt.core.observed import Observed
    from labvirt.core.plan import plan_up
    from labvirt.host.facts import Route
    from labvirt.host.refusals import refusals

    spec = load_lab(lab(tmp_path / "lab", subnet="10.240.9.0/24"))
    desired = desire(spec, LabCopy(spec.name), HostParams(domain_type="qemu"))
    plan = plan_up(desired, Observed())
    (line,) = refusals(spec, desired, plan, routes=(Route("eth1", IPv4Network("10.240.0.0/16")),))
    assert "network 'a' 10.240.9.0/24" in line and "route to 10.240.0.0/16 via eth1" in line
    assert refusals(spec, desired, plan, routes=(Route("eth1", IPv4Network("10.241.0.0/16")),)) == []


def test_up_refuses_a_collision_with_a_network_on_the_real_daemon(tmp_path, daemon):
    """A network of this test's own (defined, not started) on qemu:///system; the lab changes nothing."""
    conn = libvirt.open(daemon)
    other = conn.networkDefineXML("<network><name>h4-collide</name><bridge name='h4collide'/>"
                                  "<ip address='10.253.77.1' netmask='255.255.255.0'/></network>")
    d = lab(tmp_path / "lab", name="h4col", subnet="10.253.77.0/24")
    try:
        code, _, msg = cli("up", "-C", d, "-c", daemon)
        assert code == 1 and "libvirt network 'h4-collide' (10.253.77.0/24" in msg
        assert not [n for n in conn.listAllNetworks() if n.name().startswith("h4col-")]
        assert not [x for x in conn.listAllDomains() if x.name().startswith("h4col-")]
        assert "labvirt-h4col" not in {p.name() for p in conn.listAllStoragePools()}
    finally:
        cli("destroy", "-C", d, "-c", daemon)      # whatever a regression made
        other.undefine()
        conn.close()


# -- 4. memory ------------------------------------------------------------------------------------------

def test_up_refuses_a_lab_that_does_not_fit_in_memory_unless_forced(tmp_path):
    sim.create_host("small", cpus=4, memory=2 * GiB)
    d = lab(tmp_path / "lab", memory="4GiB")
    code, _, msg = cli("up", "-C", d, "-c", "sim:///small")
    assert code == 1 and "does not fit in the host's memory" in msg and "--force" in msg and "alpha" in msg
    assert sim_view("small")[0] == set()
    assert cli("up", "-C", d, "-c", "sim:///small", "--no-start")[0] == 0    # nothing started: nothing to refuse
    assert cli("up", "-C", d, "-c", "sim:///small", "--force")[0] == 0
    assert sim_view("small")[0] == {"rf-alpha"}


# -- 5. plan's exit code --------------------------------------------------------------------------------

def test_a_blocked_plan_exits_1_and_still_prints_the_plan(tmp_path):
    d = lab(tmp_path / "lab", subnet="192.168.122.0/24")
    code, out, _ = cli("plan", "-C", d, "-c", "sim", "--json")
    assert code == 1
    (line,) = json.loads(out)["blockers"]
    assert "libvirt network 'default'" in line
    assert cli("up", "-C", d, "-c", "sim", "--dry-run", "--json")[0] == 1
    ok = lab(tmp_path / "ok", subnet="10.240.3.0/24")
    assert cli("plan", "-C", ok, "-c", "sim", "--json")[0] == 0


def test_a_plan_that_only_lacks_golden_images_is_not_refused(tmp_path):
    """`up` builds missing images first: its plan exits 0, unless --no-build would stop it."""
    from .conftest import EXAMPLES

    code, out, _ = cli("plan", "-C", EXAMPLES["standard"], "-c", "sim", "--json")
    assert code == 0 and any("not built yet" in b for b in json.loads(out)["blockers"])
    assert cli("up", "-C", EXAMPLES["standard"], "-c", "sim", "--dry-run", "--no-build", "--json")[0] == 1
