"""The engine on the simulator: state persists across processes, locks, foreign objects."""

from __future__ import annotations

import json
import os

import libvirt
import pytest

from labvirt.driver import simulator as sim
from labvirt.core.errors import LockedError

from .conftest import run_cli, small_lab


def virsh_view(name="default"):
    """What the persisted simulated host holds, read with libvirt directly."""
    path = os.path.join(sim.sim_dir(name), "node.xml")
    conn = libvirt.open(f"test://{path}")
    try:
        return ({d.name(): d.state()[0] for d in conn.listAllDomains()},
                {n.name() for n in conn.listAllNetworks()},
                {p.name(): [v.name() for v in p.listAllVolumes()] for p in conn.listAllStoragePools()})
    finally:
        conn.close()


def test_up_twice_status_down_up_destroy_across_processes(tmp_path):
    lab = small_lab(tmp_path, name="simlab")
    r = run_cli("up", "-C", lab, "-c", "sim")
    assert r.returncode == 0, r.stderr
    r2 = run_cli("up", "-C", lab, "-c", "sim")
    assert r2.returncode == 0 and "nothing to do" in r2.stderr
    r = run_cli("status", "-C", lab, "-c", "sim", "--json")
    data = json.loads(r.stdout)
    assert data["simulated"] and {n["state"] for n in data["nodes"]} == {"running"} and data["drift"] == []
    domains, networks, pools = virsh_view()
    assert set(domains) == {"simlab-alpha", "simlab-beta"} and {"simlab-a", "simlab-b", "default"} == networks
    assert sorted(pools["labvirt-simlab"]) == ["alpha.qcow2", "beta.qcow2"]
    assert run_cli("down", "-C", lab, "-c", "sim").returncode == 0
    assert set(virsh_view()[0].values()) == {libvirt.VIR_DOMAIN_SHUTOFF}
    assert run_cli("up", "-C", lab, "-c", "sim").returncode == 0
    assert set(virsh_view()[0].values()) == {libvirt.VIR_DOMAIN_RUNNING}
    assert run_cli("destroy", "-C", lab, "-c", "sim").returncode == 0
    domains, networks, pools = virsh_view()
    assert domains == {} and networks == {"default"} and pools == {}


def test_foreign_domain_with_a_lab_name_is_refused_and_kept(tmp_path):
    lab = small_lab(tmp_path, name="simlab")
    with sim.SimDriver(sim.load_host("default")) as d:
        d.conn.defineXML("<domain type='test'><name>simlab-alpha</name><memory>1024</memory>"
                         "<os><type>hvm</type></os></domain>")
    r = run_cli("up", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "'simlab-alpha' exists but has no labvirt metadata" in r.stderr
    assert virsh_view()[0] == {"simlab-alpha": libvirt.VIR_DOMAIN_SHUTOFF}    # nothing else was created
    r = run_cli("destroy", "-C", lab, "-c", "sim")
    assert "simlab-alpha" in virsh_view()[0]


def test_second_process_is_told_the_host_is_busy(tmp_path, monkeypatch):
    monkeypatch.setenv("LABVIRT_LOCK_WAIT", "0.2")
    host = sim.load_host("default")
    with sim.SimDriver(host):
        with pytest.raises(LockedError, match="another labvirt process"):
            sim.SimDriver(sim.load_host("default"))
        lab = small_lab(tmp_path, name="simlab")
        r = run_cli("up", "-C", lab, "-c", "sim", env={"LABVIRT_LOCK_WAIT": "0.2"})
        assert r.returncode == 1 and f"(pid {os.getpid()})" in r.stderr


def test_named_simulated_hosts_are_separate(tmp_path):
    sim.create_host("small", cpus=4, memory=8 * 2**30, profile="pvm")
    lab = small_lab(tmp_path, name="simlab")
    assert run_cli("up", "-C", lab, "-c", "sim:///small").returncode == 0
    assert set(virsh_view("small")[0]) == {"simlab-alpha", "simlab-beta"}
    assert not os.path.exists(os.path.join(sim.sim_dir("default"), "node.xml"))


def test_snapshots_and_flags_survive_a_round_trip():
    with sim.SimDriver(sim.load_host("default")) as d:
        d.conn.networkDefineXML("<network><name>n1</name><bridge name='br-n1'/></network>")
        d.conn.networkLookupByName("n1").setAutostart(1)
        dom = d.conn.defineXML("<domain type='test'><name>x</name><memory>1024</memory><os><type>hvm</type></os></domain>")
        dom.create()
        dom.snapshotCreateXML("<domainsnapshot><name>s1</name><description>first</description></domainsnapshot>")
        dom.snapshotCreateXML("<domainsnapshot><name>s2</name></domainsnapshot>")
    with sim.SimDriver(sim.load_host("default")) as d:
        net = d.conn.networkLookupByName("n1")
        assert net.autostart() and not net.isActive()
        dom = d.conn.lookupByName("x")
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert dom.snapshotListNames() and dom.snapshotCurrent().getName() == "s2"
        assert dom.snapshotLookupByName("s2").getParent().getName() == "s1"


def test_unknown_simulator_name_is_explained(tmp_path):
    r = run_cli("status", "-c", "sim:///nope", "-C", small_lab(tmp_path))
    assert r.returncode == 1 and "no simulated host 'nope'" in r.stderr and "labvirt sim create nope" in r.stderr


def test_change_that_needs_recreate_is_only_done_with_the_option(tmp_path):
    lab = small_lab(tmp_path, name="simlab")
    assert run_cli("up", "-C", lab, "-c", "sim").returncode == 0
    node = os.path.join(lab, "domains", "alpha.toml")
    with open(node) as f:
        text = f.read()
    with open(node, "w") as f:
        f.write('cpu = "maximum"\n' + text)            # a CPU mode change: not possible in place
    r = run_cli("up", "-C", lab, "-c", "sim")
    assert r.returncode == 0 and "up --recreate" in r.stderr
    r = run_cli("status", "-C", lab, "-c", "sim", "--json")
    assert any("recreate" in d for d in json.loads(r.stdout)["drift"])
    r = run_cli("up", "--recreate", "-C", lab, "-c", "sim")
    assert r.returncode == 0, r.stderr
    assert json.loads(run_cli("status", "-C", lab, "-c", "sim", "--json").stdout)["drift"] == []
    assert sorted(virsh_view()[2]["labvirt-simlab"]) == ["alpha.qcow2", "beta.qcow2"]   # the disk was kept


def test_dry_run_changes_nothing_and_the_generated_password_is_shown_only_on_request(tmp_path):
    from .conftest import EXAMPLES

    r = run_cli("up", "--dry-run", "--json", "-C", EXAMPLES["standard"], "-c", "sim")
    assert r.returncode == 0 and len(json.loads(r.stdout)["actions"]) == 13      # no action on libvirt's default network (external)
    assert virsh_view()[0] == {}
    r = run_cli("password", "-C", EXAMPLES["standard"])
    assert r.returncode == 1 and "no generated root password" in r.stderr
    assert run_cli("up", "-C", EXAMPLES["standard"], "-c", "sim").returncode == 0    # seeds: password made
    r = run_cli("password", "-C", EXAMPLES["standard"])
    assert r.returncode == 0 and len(r.stdout.strip()) >= 12
    from labvirt.driver.state_files import lab_state_dir

    secret = os.path.join(lab_state_dir("openstack"), "root-password")
    assert oct(os.stat(secret).st_mode & 0o777) == "0o600"
    assert r.stdout.strip() not in open(os.path.join(sim.sim_dir("default"), "node.xml")).read()


def test_down_purge_removes_everything_and_image_build_force_rebuilds(tmp_path):
    from .conftest import EXAMPLES

    lab = EXAMPLES["standard"]
    assert run_cli("image", "build", "-c", "sim", "-C", lab).returncode == 0
    r = run_cli("image", "build", "--force", "-c", "sim", "-C", lab)
    assert r.returncode == 0 and "built (simulated)" in r.stderr          # not "up to date"
    assert run_cli("up", "-c", "sim", "-C", lab).returncode == 0
    r = run_cli("image", "build", "--force", "-c", "sim", "-C", lab)
    assert r.returncode == 1 and "used by" in r.stderr                    # not under running overlays
    assert run_cli("down", "--purge", "-c", "sim", "-C", lab).returncode == 0
    domains, networks, pools = virsh_view()
    assert domains == {} and networks == {"default"} and list(pools) == ["labvirt-images"]


def test_a_stopped_image_pool_is_reported_by_list_and_started_again_by_build():
    """A pool labvirt made, stopped since (its directory removed, a daemon restart without it): `image
    list` says so instead of failing, `image build` starts it again and builds into it."""
    from labvirt.core.identity import IMAGE_POOL
    from .conftest import EXAMPLES

    lab = EXAMPLES["standard"]
    assert run_cli("image", "build", "-c", "sim", "-C", lab).returncode == 0
    with sim.SimDriver(sim.load_host("default")) as d:
        d.conn.storagePoolLookupByName(IMAGE_POOL).destroy()
    assert list(virsh_view()[2]) == [IMAGE_POOL]                 # still defined, stopped (kept so)
    r = run_cli("image", "list", "--json", "-c", "sim", "-C", lab)
    assert r.returncode == 0 and json.loads(r.stdout) == [] and "defined but stopped" in r.stderr
    r = run_cli("image", "build", "-c", "sim", "-C", lab)
    assert r.returncode == 0 and "built (simulated)" in r.stderr, r.stderr
    assert len(json.loads(run_cli("image", "list", "--json", "-c", "sim", "-C", lab).stdout)) == 1


def test_image_remove_starts_a_stopped_pool_to_remove_its_images():
    """In-process: a stopped pool shows no volumes; remove starts it again first (on a real daemon the
    volumes are files in its directory and reappear; the simulator keeps them in memory)."""
    from labvirt.core.identity import IMAGE_POOL
    from labvirt.ops import images
    from .conftest import EXAMPLES

    assert run_cli("image", "build", "-c", "sim", "-C", EXAMPLES["standard"]).returncode == 0
    with sim.SimDriver(sim.load_host("default")) as d:
        d.conn.storagePoolLookupByName(IMAGE_POOL).destroy()
        observed = d.observe()
        where = observed.pools[IMAGE_POOL].path
        assert images.stopped_pool(observed) is not None and images.list_images(None, observed, where) == []
        assert images.restart_stopped_pool(d, observed, where)
        observed = d.observe()
        assert images.stopped_pool(observed) is None
        (image,) = images.list_images(None, observed, where)
        assert images.restart_stopped_pool(d, observed, where) is False      # running: nothing to do
        assert images.remove(None, image.volume, d, observed, where) == [image.volume]
        assert IMAGE_POOL not in d.observe().pools


def test_a_build_makes_the_image_pool_again_when_another_process_removed_it_meanwhile():
    """`image remove` of the last image removes the shared pool; a build in another process that saw the
    pool before (virt-builder runs for minutes) makes it again instead of failing on "pool not found".
    And remove keeps the pool while it still holds a volume another build added after remove looked."""
    from labvirt.core.identity import IMAGE_POOL
    from labvirt.core.loader import load_lab
    from labvirt.ops import images
    from .conftest import EXAMPLES

    spec = load_lab(EXAMPLES["standard"])
    recipe = spec.nodes[0].image
    assert run_cli("image", "build", "-c", "sim", "-C", EXAMPLES["standard"]).returncode == 0
    with sim.SimDriver(sim.load_host("default")) as d:
        seen = d.observe()                                  # what the building process saw first
        where = seen.pools[IMAGE_POOL].path
        (image,) = images.list_images(spec, seen, where)
        assert images.remove(spec, image.volume, d, d.observe(), where) == [image.volume]
        assert IMAGE_POOL not in d.observe().pools          # the last image: the pool went with it
        golden, what = images.build(spec, recipe, d, where)
        assert what == "built (simulated)"
        assert [v.name for v in d.observe().pools[IMAGE_POOL].volumes] == [golden.volume]
        stale = d.observe()
        d.create_volume(IMAGE_POOL, "<volume><name>other.qcow2</name><capacity>1</capacity></volume>")
        assert images.remove(spec, golden.volume, d, stale, where) == [golden.volume]
        assert [v.name for v in d.observe().pools[IMAGE_POOL].volumes] == ["other.qcow2"]   # pool kept
        d.delete_volume(IMAGE_POOL, "other.qcow2")
        d.delete_pool(IMAGE_POOL)
