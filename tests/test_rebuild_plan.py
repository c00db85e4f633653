"""A class rebuild as one plan (core.rebuild, pure): each node dropped and made again in its own chain."""

from __future__ import annotations

from labvirt.core import plan as p
from labvirt.core import rebuild
from labvirt.core.observed import Observed
from labvirt.core.record import replace

from .test_plan import desired_for, observed_from
from .test_schedule import waits


def rebuild_plan(d, obs):
    gone = rebuild.removal(d, obs)
    return gone, rebuild.pipeline(d, gone, p.plan_up(d, gone.after))


def test_each_node_is_dropped_and_made_again_in_its_own_chain():
    d = desired_for()
    gone, plan = rebuild_plan(d, observed_from(d))
    assert not plan.blockers
    for dom in d.domains:
        vols = {f"{v.pool}/{v.name}" for v in d.volumes if v.node == dom.key}
        chain = [(a.verb, a.target) for a in plan.actions if a.chain_key == dom.name]
        assert chain[0] == ("DestroyDomain", dom.name)
        assert {t for v, t in chain if v == "DeleteVolume"} == vols
        assert {t for v, t in chain if v in ("CreateVolume", "CreateSeed")} == vols
        assert [v for v, _ in chain[-2:]] == ["DefineDomain", "StartDomain"]
        assert max(i for i, (v, _) in enumerate(chain) if v == "DeleteVolume") < \
            min(i for i, (v, _) in enumerate(chain) if v in ("CreateVolume", "CreateSeed"))


def test_no_node_waits_for_another_nodes_removal():
    d = desired_for()
    _, plan = rebuild_plan(d, observed_from(d))
    w = waits(plan)
    for dom in d.domains:
        others = {x.name for x in d.domains if x.name != dom.name}
        mine = [k for k, a in zip(w, plan.actions) if a.chain_key == dom.name]
        for k in mine:
            waited = {t for _, t in w[k]}
            assert not waited & others, (k, w[k])


def test_networks_and_the_pool_stay():
    d = desired_for()
    _, plan = rebuild_plan(d, observed_from(d))
    assert not {a.verb for a in plan.actions} & {"DeleteNetwork", "DeletePool", "DefineNetwork", "DefinePool",
                                                  "StartNetwork"}


def test_the_prediction_is_the_host_without_the_nodes_and_their_disks():
    d = desired_for()
    obs = observed_from(d)
    gone = rebuild.removal(d, obs)
    assert gone.after.domains == {} and gone.after.pools[d.pool.name].volumes == ()
    assert gone.after.networks == obs.networks
    assert p.plan_up(d, gone.after).actions     # so up makes every node and disk again


def test_a_missing_node_or_disk_is_only_made():
    d = desired_for()
    obs = observed_from(d)
    ctl = next(x for x in d.domains if x.key == "controller")
    pool = obs.pools[d.pool.name]
    obs = replace(obs, domains={k: v for k, v in obs.domains.items() if k != ctl.name},
                  pools={pool.name: replace(pool, volumes=tuple(v for v in pool.volumes
                                                                 if not v.name.startswith("controller")))})
    _, plan = rebuild_plan(d, obs)
    chain = [a.verb for a in plan.actions if a.chain_key == ctl.name]
    assert "DestroyDomain" not in chain and "DeleteVolume" not in chain
    assert chain[-2:] == ["DefineDomain", "StartDomain"]


def test_a_foreign_object_with_a_nodes_name_blocks_everything():
    d = desired_for()
    obs = observed_from(d)
    ctl = next(x for x in d.domains if x.key == "controller")
    obs = replace(obs, domains={**obs.domains, ctl.name: replace(obs.domains[ctl.name], owner=None)})
    _, plan = rebuild_plan(d, obs)
    assert plan.blockers and any(ctl.name in b for b in plan.blockers)


def test_nothing_there_is_a_plain_up():
    d = desired_for()
    gone, plan = rebuild_plan(d, Observed())
    assert gone.actions == () and [a.verb for a in plan.actions] == [a.verb for a in p.plan_up(d, Observed()).actions]


def test_a_golden_image_not_built_blocks_everything_before_removal():
    d = desired_for()
    assert d.images, "the example lab uses golden images"
    obs = observed_from(d)
    gone = rebuild.removal(d, obs)
    plan = rebuild.pipeline(d, gone, p.plan_up(d, gone.after, images_present=frozenset()))
    assert any("not built yet" in b for b in plan.blockers) and plan.missing_images
    assert any(a.verb == "DestroyDomain" for a in plan.actions)    # engine.apply runs nothing of a blocked plan
