"""The seed volume's size: known at plan time (`plan --json`, `plan --xml`), real when the volume is made."""

from __future__ import annotations

import json
import os

import pytest
from lxml import etree

from labvirt.core.cloudinit import seed_documents
from labvirt.core.desired import HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.seed import build_seed_iso
from labvirt.core.seed_size import seed_iso_size

from .conftest import EXAMPLES, run_cli, small_lab

SECTOR = 2048


@pytest.mark.parametrize("user_data", [
    "#cloud-config\n",
    "#cloud-config\n" + "a" * (SECTOR - 20),
    "#cloud-config\n" + "a" * (SECTOR - 15),          # exactly one sector
    "#cloud-config\n" + "a" * (SECTOR - 14),          # one byte into the next
    "#cloud-config\n" + "é" * 1500,                   # two bytes per character
])
def test_the_size_is_that_of_the_iso_build_seed_iso_makes(user_data):
    docs = {"meta-data": "instance-id: x\n", "user-data": user_data, "network-config": "version: 1\n"}
    assert seed_iso_size(docs) == len(build_seed_iso(docs))


def test_desired_seed_volumes_are_sized_from_their_documents():
    spec = load_lab(EXAMPLES["three-node"])
    desired = desire(spec, LabCopy(spec.name), HostParams())
    seeds = [v for v in desired.volumes if v.kind == "seed"]
    assert len(seeds) == 3
    for v in seeds:
        size = len(build_seed_iso(seed_documents(desired, v.node, user=spec.ssh_user)))
        assert v.capacity == size and size > 0 and size % SECTOR == 0


def test_plan_json_and_xml_show_the_seed_size(tmp_path):
    xml_dir = tmp_path / "xml"
    r = run_cli("plan", "-C", EXAMPLES["standard"], "--offline", "--json", "--xml", str(xml_dir))
    assert r.returncode == 0, r.stderr
    seeds = {v["name"]: v for v in json.loads(r.stdout)["volumes"] if v["kind"] == "seed"}
    assert set(seeds) == {"controller-seed.iso", "compute-seed.iso"}
    for name, v in seeds.items():
        assert v["capacity_bytes"] > 0 and v["capacity"] != "0B"
        tree = etree.parse(os.path.join(xml_dir, f"volume-{v['pool']}-{name}.xml"))
        assert int(tree.findtext("capacity")) == v["capacity_bytes"]


def test_the_volume_is_made_with_the_size_of_the_iso_built_for_it(tmp_path):
    # the simulator keeps no contents, but libvirt's test driver records the capacity the volume got
    from labvirt.core.plan import CreateSeed
    from labvirt.ops.engine import apply
    from labvirt.ops.session import Session

    lab = small_lab(tmp_path, boot="seed = true")
    with Session.open(lab, "sim") as s:
        desired, plan = s.plan_up(for_apply=True)      # with the lab's SSH key and root password hash
        built = {a.name: len(build_seed_iso(dict(a.documents))) for a in plan.actions if isinstance(a, CreateSeed)}
        assert set(built) == {"alpha-seed.iso", "beta-seed.iso"}
        apply(plan, s.driver)
        pool = s.observe().pools[desired.pool.name]
        assert {name: pool.volume(name).capacity for name in built} == built
        # the plan's figure (without key and hash) is the same here: user-data stays within its sectors
        assert {v.name: v.capacity for v in desired.volumes if v.kind == "seed"} == built
