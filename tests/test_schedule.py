"""Pipelined apply: what each action waits for (core.schedule, pure) and the engine that runs each
action as soon as that is done. The engine tests drive the real simulator, made slow where libvirtd is
slow (a network start, 0.3 s) by a subclass: only a clock can show overlap, and the test driver has none."""

from __future__ import annotations

import threading
import time

import pytest

from labvirt.core import plan as p
from labvirt.core import schedule
from labvirt.core.errors import LabvirtError
from labvirt.core.observed import Observed
from labvirt.driver import simulator as sim
from labvirt.ops import engine

from .test_plan import desired_for, observed_from


def waits(plan):
    """{(verb, target): {(verb, target) it waits for}}"""
    acts = list(plan.actions)
    return {(a.verb, a.target): {(acts[j].verb, acts[j].target) for j in pre}
            for a, pre in zip(acts, schedule.prerequisites(acts))}


def test_a_node_starts_after_its_own_networks_disks_and_seed_and_is_defined_at_once():
    d = desired_for()
    w = waits(p.plan_up(d, Observed()))
    ctl = next(x for x in d.domains if x.key == "controller")
    assert w[("DefineDomain", ctl.name)] == set()                 # overlaps the network starts
    start = w[("StartDomain", ctl.name)]
    assert ("DefineDomain", ctl.name) in start
    nets = {n.network for n in ctl.nics}
    assert {t for v, t in start if v == "AutostartNetwork"} == nets    # the last action of each network
    vols = {f"{v.pool}/{v.name}" for v in d.volumes if v.node == "controller"}
    assert vols <= {t for _, t in start}
    assert not {t for _, t in start} & {f"{v.pool}/{v.name}" for v in d.volumes if v.node != "controller"}


def test_destroy_removes_a_network_once_the_nodes_on_it_are_gone_and_volumes_after_every_node():
    d = desired_for()
    obs = observed_from(d)
    w = waits(p.plan_destroy(d, obs))
    for net in d.networks:
        on_it = {("DestroyDomain", x.name) for x in d.domains if any(n.network == net.name for n in x.nics)}
        assert w[("DeleteNetwork", net.name)] == on_it
    nodes = {("DestroyDomain", x.name) for x in d.domains}
    first_volume = next(k for k in w if k[0] == "DeleteVolume")
    assert w[first_volume] == nodes
    assert all(w[("DestroyDomain", x.name)] == set() for x in d.domains)


def test_volumes_are_made_at_once_once_their_pool_exists():
    d = desired_for()
    w = waits(p.plan_up(d, Observed()))
    pool = {(v, t) for v, t in w if t == d.pool.name}
    vols = [(v, t) for v, t in w if v in ("CreateVolume", "CreateSeed")]
    assert len(vols) == len(d.volumes) >= 4
    assert {v for v, _ in pool} >= {"DefinePool", "StartPool"}
    for k in vols:          # the pool's actions, and no other volume's
        assert w[k] == pool


def test_destroy_removes_volumes_at_once_and_the_pool_after_them_all():
    d = desired_for()
    w = waits(p.plan_destroy(d, observed_from(d)))
    nodes = {("DestroyDomain", x.name) for x in d.domains}
    vols = {k for k in w if k[0] == "DeleteVolume"}
    assert len(vols) == len(d.volumes) and all(w[k] == nodes for k in vols)
    assert w[("DeletePool", d.pool.name)] == nodes | vols


def test_a_circle_is_refused():
    a = p.StartDomain(0, "x", needs=("y",))
    b = p.StartDomain(0, "y", needs=("x",))
    with pytest.raises(ValueError, match="circle"):
        schedule.prerequisites([a, b])


class SlowNetworks(sim.SimDriver):
    """The simulator, with libvirtd's one-at-a-time network start (0.3 s each) and a clock per action."""

    def __init__(self, host, fail_network=None):
        super().__init__(host)
        self.fail_network, self.log, self._serial = fail_network, [], threading.Lock()

    def start_network(self, name):
        with self._serial:
            t0 = time.monotonic()
            time.sleep(0.3)
            if name == self.fail_network:
                raise LabvirtError(f"network {name}: simulated failure")
            super().start_network(name)
            self.log.append(("StartNetwork", name, t0, time.monotonic()))

    def define_domain(self, xml):
        t0 = time.monotonic()
        super().define_domain(xml)
        self.log.append(("DefineDomain", xml.split("<name>")[1].split("<")[0], t0, time.monotonic()))

    def start_domain(self, name):
        t0 = time.monotonic()
        super().start_domain(name)
        self.log.append(("StartDomain", name, t0, time.monotonic()))


def test_nodes_are_defined_while_the_networks_start_and_started_after_theirs():
    d = desired_for()
    sim.create_host("pipe", cpus=64, memory=2**40, disk=2**44)
    with SlowNetworks(sim.load_host("pipe")) as drv:
        started = time.monotonic()
        result = engine.apply(p.plan_up(d, drv.observe(d.copy.prefix)), drv)
        took = time.monotonic() - started
        log = drv.log
    assert result.ok
    net_end = {n: end for v, n, _, end in log if v == "StartNetwork"}
    defined = [t0 for v, _, t0, _ in log if v == "DefineDomain"]
    assert max(defined) < max(net_end.values())               # defined before the last network is up
    for x in d.domains:
        t0 = next(t for v, n, t, _ in log if v == "StartDomain" and n == x.name)
        assert all(t0 >= net_end[n.network] for n in x.nics)
    assert took < 0.3 * len(net_end) + 1.0                    # about the serial network starts, no more


def test_a_failed_network_skips_only_the_nodes_on_it():
    d = desired_for()
    bad = d.networks[-1].name
    sim.create_host("pipe2", cpus=64, memory=2**40, disk=2**44)
    with SlowNetworks(sim.load_host("pipe2"), fail_network=bad) as drv:
        with pytest.raises(engine.ApplyError) as e:
            engine.apply(p.plan_up(d, drv.observe(d.copy.prefix)), drv)
        started = {n for v, n, _, _ in drv.log if v == "StartDomain"}
        defined = {n for v, n, _, _ in drv.log if v == "DefineDomain"}
    result = e.value.result
    assert defined == {x.name for x in d.domains}                 # nothing waited for the failed network
    good = {n.name for n in d.networks} - {bad}
    assert {a.target for a in result.done if a.verb == "AutostartNetwork"} == good
    on_bad = {x.name for x in d.domains if any(n.network == bad for n in x.nics)}
    assert [a.describe() for a, _ in result.failed] == [f"StartNetwork {bad}"]
    assert {a.target for a in result.skipped if a.verb == "StartDomain"} == on_bad
    assert started == {x.name for x in d.domains} - on_bad
