"""plan(desired, observed): pure, table-driven with plain values and with libvirt's own XML."""

from __future__ import annotations

import pytest

from labvirt.core import plan as p
from labvirt.core.desired import HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.observed import Observed, Owner, parse_domain, parse_network, parse_pool, parse_volume
from labvirt.core.record import replace
from labvirt.core.render import render_domain, render_network, render_pool, render_volume, tostring

from .conftest import EXAMPLES


def desired_for(example="three-node-nat", domain_type="kvm"):
    spec = load_lab(EXAMPLES[example])
    return desire(spec, LabCopy(spec.name), HostParams(domain_type=domain_type))


def observed_from(desired, state="running"):
    """What libvirt would report after 'up': parsed from the very XML labvirt renders."""
    vols = tuple(parse_volume(tostring(render_volume(v)).replace("<target>", f"<target><path>{v.path}</path>"))
                 for v in desired.volumes)
    return Observed(
        domains={d.name: parse_domain(tostring(render_domain(d)), state) for d in desired.domains},
        networks={n.name: parse_network(tostring(render_network(n)), True, True) for n in desired.networks},
        pools={desired.pool.name: parse_pool(tostring(render_pool(desired.pool)), True, True, vols)},
        bridges=frozenset(n.bridge for n in desired.networks))


def verbs(plan):
    return [(a.verb, a.target) for a in plan.actions]


def test_empty_observed_plans_everything_in_phases():
    d = desired_for()
    plan = p.plan_up(d, Observed())
    counts = {}
    for a in plan.actions:
        counts[a.verb] = counts.get(a.verb, 0) + 1
    assert counts == {"DefineNetwork": 2, "StartNetwork": 2, "AutostartNetwork": 2, "DefinePool": 1, "StartPool": 1,
                      "CreateVolume": 3, "CreateSeed": 3, "DefineDomain": 3, "StartDomain": 3}
    assert [a.phase for a in plan.actions] == sorted(a.phase for a in plan.actions)
    assert not plan.blockers


def test_matching_observed_plans_nothing():
    d = desired_for()
    plan = p.plan_up(d, observed_from(d))
    assert plan.actions == () and plan.blockers == () and plan.notes == ()


def test_stopped_nodes_are_started():
    d = desired_for()
    plan = p.plan_up(d, observed_from(d, state="shutoff"))
    assert {v for v, _ in verbs(plan)} == {"StartDomain"}


def test_a_node_libvirt_is_still_starting_gets_a_start_that_waits_for_it():
    """An `up` killed mid-start leaves a node "paused: starting up" in libvirtd ("starting"); the re-run
    plans a StartDomain (the driver waits for that start) instead of calling the lab up while it is paused.
    A node the user paused is left paused."""
    d = desired_for()
    plan = p.plan_up(d, observed_from(d, state="starting"))
    assert {v for v, _ in verbs(plan)} == {"StartDomain"}
    assert not p.plan_up(d, observed_from(d, state="paused")).actions
    assert not p.plan_up(d, observed_from(d, state="starting"), start=False).actions


def test_foreign_domain_with_our_name_blocks():
    d = desired_for()
    obs = observed_from(d)
    name = d.domains[0].name
    obs.domains[name] = replace(obs.domains[name], owner=None)
    plan = p.plan_up(d, obs)
    assert any(name in b and "no labvirt metadata" in b for b in plan.blockers)
    assert not [a for a in plan.actions if a.target == name]
    destroy = p.plan_destroy(d, obs)
    assert name not in [a.target for a in destroy.actions] and destroy.blockers


def test_domain_of_another_lab_blocks():
    d = desired_for()
    obs = observed_from(d)
    name = d.domains[0].name
    obs.domains[name] = replace(obs.domains[name], owner=Owner("node", "otherlab", "", "x", "y"))
    assert any("belongs to lab 'otherlab'" in b for b in p.plan_up(d, obs).blockers)


def test_foreign_network_and_pool_block():
    d = desired_for()
    obs = observed_from(d)
    net = d.networks[0].name
    obs.networks[net] = replace(obs.networks[net], owner=None)
    obs.pools[d.pool.name] = replace(obs.pools[d.pool.name], uuid="00000000-0000-0000-0000-000000000000")
    blockers = p.plan_up(d, obs).blockers
    assert any(net in b for b in blockers) and any(d.pool.name in b for b in blockers)


def test_bridge_taken_by_another_network_blocks():
    d = desired_for()
    plan = p.plan_up(d, Observed(bridges=frozenset({d.networks[0].bridge})))
    assert any("already used" in b for b in plan.blockers)


def test_added_nic_is_attached_live_and_persistently_without_recreate():
    d = desired_for()
    obs = observed_from(d)
    ctl = next(x for x in d.domains if x.key == "controller")
    one_nic = replace(ctl, nics=ctl.nics[:1])
    obs.domains[ctl.name] = parse_domain(tostring(render_domain(
        replace(one_nic, spec="old"))), "running")
    plan = p.plan_up(d, obs)
    got = verbs(plan)
    assert got == [("UpdateDomain", ctl.name), ("AttachNic", ctl.name)]
    assert "add eth1" in plan.actions[0].describe()
    assert ctl.nics[1].mac in plan.actions[1].xml


def test_memory_change_updates_definition_and_says_restart():
    d = desired_for()
    obs = observed_from(d)
    ctl = next(x for x in d.domains if x.key == "controller")
    obs.domains[ctl.name] = parse_domain(tostring(render_domain(replace(ctl, memory=2**30, spec="old"))), "running")
    plan = p.plan_up(d, obs)
    assert verbs(plan) == [("UpdateDomain", ctl.name)]
    assert any("next restart" in n for n in plan.notes)


def test_shape_change_needs_explicit_recreate():
    d = desired_for()
    obs = observed_from(d)
    ctl = next(x for x in d.domains if x.key == "controller")
    obs.domains[ctl.name] = parse_domain(tostring(render_domain(replace(ctl, spec="old", shape="old"))), "running")
    plan = p.plan_up(d, obs)
    assert plan.actions == () and any("--recreate" in n for n in plan.notes)
    plan = p.plan_up(d, obs, recreate=True)
    assert verbs(plan) == [("DestroyDomain", ctl.name), ("DefineDomain", ctl.name), ("StartDomain", ctl.name)]


def test_new_reservation_updates_dhcp_in_place():
    d = desired_for()
    obs = observed_from(d)
    net = d.networks[0]
    fewer = replace(net, hosts=net.hosts[:-1], spec="old")
    obs.networks[net.name] = parse_network(tostring(render_network(fewer)), True, True)
    plan = p.plan_up(d, obs)
    assert [a.verb for a in plan.actions] == ["AddDhcpHost", "AddDnsHost", "DefineNetwork"]
    assert net.hosts[-1].mac in plan.actions[0].xml
    assert f'ip="{net.hosts[-1].ip}"' in plan.actions[1].xml and net.hosts[-1].hostname in plan.actions[1].xml
    assert all(a.live for a in plan.actions[:2])            # the running dnsmasq too, not only the file


def test_a_dropped_node_loses_its_dns_name():
    d = desired_for()
    obs = observed_from(d)
    net = d.networks[0]
    fewer = replace(net, hosts=net.hosts[:-1], spec="new")
    plan = p.plan_up(replace(d, networks=(fewer, *d.networks[1:])), obs)
    assert [a.verb for a in plan.actions if a.target == net.name][:2] == ["RemoveDhcpHost", "RemoveDnsHost"]


def test_missing_golden_image_blocks_with_the_command():
    d = desired_for()
    plan = p.plan_up(d, Observed(), images_present=frozenset())
    assert plan.blockers == ("golden image 'centos-stream9' is not built yet: run 'labvirt image build centos-stream9'",)


def test_destroy_removes_only_this_copy():
    d = desired_for()
    obs = observed_from(d)
    other = desire(load_lab(EXAMPLES["three-node"]), LabCopy("openstack3", "alice"), HostParams())
    obs.domains.update(observed_from(other).domains)
    plan = p.plan_destroy(d, obs)
    targets = {a.target for a in plan.actions}
    assert all("alice" not in t for t in targets)
    assert {x.name for x in d.domains} <= targets and {n.name for n in d.networks} <= targets


@pytest.mark.parametrize("domain_type,compute_cpu,controller_cpu", [
    ("kvm", "host-passthrough", "host-model"), ("qemu", "default", "default")])
def test_domain_type_from_host_sets_cpu_modes(domain_type, compute_cpu, controller_cpu):
    d = desired_for(domain_type=domain_type)
    modes = {x.key: (x.domain_type, x.cpu_mode) for x in d.domains}
    assert modes["compute1"] == (domain_type, compute_cpu)
    assert modes["controller"] == (domain_type, controller_cpu)


def test_every_static_address_is_a_dhcp_reservation():
    d = desired_for()
    reserved = {(h.mac, str(h.ip)) for n in d.networks for h in n.hosts}
    nics = {(nic.mac, str(nic.address)) for dom in d.domains for nic in dom.nics}
    assert reserved == nics and len(reserved) == 6


def test_customize_runs_in_the_new_overlays_chain_before_the_domain_starts():
    d = desired_for()
    plan = p.plan_up(d, Observed(), customize={"controller": ("virt-customize", "--add", "x")})
    chain = [a for a in plan.actions if a.target.endswith("/controller.qcow2")]
    assert [a.verb for a in chain] == ["CreateVolume", "CustomizeDisk"]
    assert chain[1].phase < next(a.phase for a in plan.actions if a.verb == "StartDomain")
    assert p.plan_up(d, observed_from(d), customize={"controller": ("x",)}).actions == ()   # only for new disks
