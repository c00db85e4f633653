"""One lab name, two lab directories: each object records the lab directory that made it, and one
ownership check (core.observed.claim) keeps every command off another directory's objects."""

from __future__ import annotations

import os
import shutil

import pytest

from labvirt.core.desired import HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.observed import Observed, Owner, claim, parse_domain, parse_network
from labvirt.core.plan import DefineNetwork, UpdateDomain, plan_destroy, plan_up
from labvirt.core.record import replace
from labvirt.core.render import render_domain, render_network, tostring
from labvirt.driver import simulator as sim

from .conftest import write_lab
from .test_refusals import cli, lab, sim_view

COPY = LabCopy("lab", origin="/labs/one")


@pytest.mark.parametrize("owner, ours, adopt, words", [
    (None, False, False, "no labvirt metadata"),
    (Owner("node", "lab", "", "a", "s", origin="/labs/one"), True, False, ""),
    (Owner("node", "lab", "", "a", "s"), True, True, ""),                          # made before origins were recorded
    (Owner("node", "lab", "", "a", "s", origin="/labs/two"), False, False, "another lab named 'lab', in /labs/two"),
    (Owner("node", "lab", "s1", "a", "s", origin="/labs/one"), False, False, "student 's1'"),
    (Owner("node", "other", "", "a", "s", origin="/labs/one"), False, False, "belongs to lab 'other'"),
    (Owner("network", "lab", "", "a", "s", origin="/labs/one"), False, False, "(a network)"),
])
def test_claim(owner, ours, adopt, words):
    c = claim(owner, "node", COPY)
    assert (c.ours, c.adopt) == (ours, adopt) and words in c.why


def test_claim_with_adopt_takes_another_directorys_object_and_nothing_else():
    assert claim(Owner("node", "lab", "", "a", "s", origin="/labs/two"), "node", COPY, adopt=True).adopt
    assert not claim(Owner("node", "other", "", "a", "s"), "node", COPY, adopt=True).ours


def observed_as_made_by(desired):
    """What libvirt reports after `up` of `desired`: its own XML read back."""
    return Observed(domains={d.name: parse_domain(tostring(render_domain(d)), "running") for d in desired.domains},
                    networks={n.name: parse_network(tostring(render_network(n)), True, True) for n in desired.networks})


def desired_from(tmp_path, where, origin=None):
    spec = load_lab(lab(tmp_path / where, name="same"))
    return desire(spec, LabCopy(spec.name, origin=origin or ""), HostParams(domain_type="qemu"))


def test_the_lab_directory_is_recorded_and_read_back(tmp_path):
    d = desired_from(tmp_path, "one")
    (dom,) = observed_as_made_by(d).domains.values()
    assert dom.owner.origin == d.copy.origin == str(tmp_path / "one") and d.domains[0].origin == d.copy.origin


def test_another_directorys_lab_blocks_up_and_destroy_with_one_line(tmp_path):
    mine, theirs = desired_from(tmp_path, "one"), desired_from(tmp_path, "two")
    observed = observed_as_made_by(theirs)
    p = plan_up(mine, observed)
    (line,) = p.blockers
    assert f"another lab directory, {theirs.copy.origin}" in line and f"'labvirt destroy -C {theirs.copy.origin}'" in line
    assert "node same-alpha" in line and "network same-a" in line and "--adopt" in line
    gone = plan_destroy(mine, observed)
    assert gone.actions == () and len(gone.blockers) == 1


def test_objects_made_before_origins_were_recorded_are_taken_over_once(tmp_path):
    now = desired_from(tmp_path, "one")
    made = observed_as_made_by(now)
    legacy = Observed(domains={k: replace(v, owner=replace(v.owner, origin="")) for k, v in made.domains.items()},
                      networks={k: replace(v, owner=replace(v.owner, origin="")) for k, v in made.networks.items()})
    p = plan_up(now, legacy)
    assert p.blockers == ()
    kinds = {type(a) for a in p.actions}
    assert UpdateDomain in kinds and DefineNetwork in kinds
    assert any("record lab directory" in a.describe() for a in p.actions)
    assert not {UpdateDomain, DefineNetwork} & {type(a) for a in plan_up(now, made).actions}


def test_two_lab_directories_of_one_name_on_one_simulated_host(tmp_path):
    one = lab(tmp_path / "one", name="same")
    two = lab(tmp_path / "two", name="same", subnet="10.240.2.0/24")
    assert cli("up", "-C", one, "-c", "sim")[0] == 0
    before = sim_view()
    code, _, msg = cli("up", "-C", two, "-c", "sim")
    assert code == 1 and f"another lab directory, {one}" in msg and f"labvirt destroy -C {one}" in msg
    assert sim_view() == before
    code, _, msg = cli("snapshot", "create", "s1", "-C", two, "-c", "sim")
    assert code == 1 and "belongs to another lab named 'same'" in msg
    assert cli("destroy", "-C", two, "-c", "sim")[0] == 0
    assert sim_view() == before                       # neither the nodes nor the pool they share
    assert cli("up", "-C", one, "-c", "sim") == (0, "", "")
    with sim.SimDriver(sim.load_host("default")) as d:
        assert d.observe("same").domains["same-alpha"].owner.origin == one


def test_a_moved_lab_directory_is_refused_until_adopted(tmp_path):
    one = lab(tmp_path / "one", name="same")
    assert cli("up", "-C", one, "-c", "sim")[0] == 0
    moved = str(tmp_path / "moved")
    shutil.move(one, moved)
    code, _, msg = cli("up", "-C", moved, "-c", "sim")
    assert code == 1 and "if you moved that directory here, 'labvirt up --adopt'" in msg
    assert cli("up", "-C", moved, "-c", "sim", "--adopt")[0] == 0
    assert cli("up", "-C", moved, "-c", "sim") == (0, "", "")
    assert cli("destroy", "-C", moved, "-c", "sim")[0] == 0
    assert sim_view() == (set(), {"default"}, set())
    assert not os.path.exists(one)


def test_snapshot_uses_the_one_ownership_check(tmp_path):
    """ops.snapshots refuses through core.observed.claim: a node without metadata is named as such."""
    from labvirt.ops.snapshots import lab_nodes

    d = desired_from(tmp_path, "one")
    stranger = parse_domain(f"<domain type='qemu'><name>{d.domains[0].name}</name><uuid>{d.domains[0].uuid}</uuid>"
                            "<memory>1024</memory><os><type>hvm</type></os></domain>")
    with pytest.raises(Exception) as e:
        lab_nodes(d, Observed(domains={stranger.name: stranger}))
    assert "has no labvirt metadata" in str(e.value)


def test_two_lab_directories_and_a_move_on_the_real_daemon(tmp_path, daemon):
    """The origin survives libvirt's round trip (persistent XML of active networks and domains too)."""
    import libvirt

    def names():
        conn = libvirt.open(daemon)
        try:
            return ({d.name() for d in conn.listAllDomains() if d.name().startswith("h4same-")},
                    {n.name() for n in conn.listAllNetworks() if n.name().startswith("h4same-")})
        finally:
            conn.close()

    pool = f'[storage]\npool_dir = "{tmp_path / "pool"}"\n'
    one = write_lab(tmp_path / "one", "h4same", networks={"a": 'mode = "isolated"\nsubnet = "10.253.78.0/24"\n'},
                    nodes={"alpha": 'memory = "64MiB"\ndisk = "16MiB"\n[[nic]]\nnetwork = "a"\n'},
                    lab_extra='domain_type = "qemu"\n' + pool)
    two = str(tmp_path / "two")
    shutil.copytree(one, two)
    moved = str(tmp_path / "moved")
    try:
        assert cli("up", "-C", one, "-c", daemon, "--no-start")[0] == 0
        made = names()
        assert made == ({"h4same-alpha"}, {"h4same-a"})
        code, _, msg = cli("up", "-C", two, "-c", daemon, "--no-start")
        assert code == 1 and f"another lab directory, {one}" in msg
        assert cli("destroy", "-C", two, "-c", daemon)[0] == 0 and names() == made
        shutil.move(one, moved)
        assert cli("up", "-C", moved, "-c", daemon, "--no-start")[0] == 1
        assert cli("up", "-C", moved, "-c", daemon, "--no-start", "--adopt")[0] == 0
        assert cli("up", "-C", moved, "-c", daemon, "--no-start") == (0, "", "")
    finally:
        for d in (moved, one):
            if os.path.isdir(d):
                cli("destroy", "-C", d, "-c", daemon)
    assert names() == (set(), set())
