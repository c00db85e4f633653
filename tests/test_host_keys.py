"""Host keys known in advance: labvirt makes each node's SSH host key, hands it to the guest, and keeps
a known_hosts of its own per lab copy, so ssh checks strictly from the first login and after rebuilds."""

import os
import stat

import yaml

from labvirt.core.desired import HostParams
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.observed import Observed
from labvirt.driver.ssh_keys import host_key, known_hosts_path
from labvirt.ops.session import plan_up_for

from .conftest import EXAMPLES, run_cli


def _seeds(spec, copy):
    desired, plan = plan_up_for(spec, copy, HostParams(domain_type="qemu"), Observed(), has_driver=True, for_apply=True)
    return desired, {a.target.split("/")[1].split("-seed")[0]: dict(a.documents) for a in plan.actions
                     if type(a).__name__ == "CreateSeed"}


def test_seed_carries_the_nodes_host_key_and_known_hosts_lists_it():
    spec = load_lab(EXAMPLES["standard"])
    copy = LabCopy(spec.name)
    desired, seeds = _seeds(spec, copy)
    assert set(seeds) == {"controller", "compute"}
    lines = open(known_hosts_path(copy.lab)).read().splitlines()
    for node, docs in seeds.items():
        user = yaml.safe_load(docs["user-data"])
        path, public = host_key(copy.lab, "", node)
        assert user["ssh_keys"]["ed25519_public"] == public
        assert user["ssh_keys"]["ed25519_private"] == open(path).read()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        dom = next(d for d in desired.domains if d.key == node)
        names = [str(n.address) for n in dom.nics if n.address] + [node]
        assert f"{','.join(names)} {' '.join(public.split()[:2])}" in lines


def test_a_rebuild_keeps_the_host_keys():
    spec = load_lab(EXAMPLES["standard"])
    copy = LabCopy(spec.name, "alice")
    _, first = _seeds(spec, copy)
    known = open(known_hosts_path(copy.lab, "alice")).read()
    _, again = _seeds(spec, copy)
    keys = {n: yaml.safe_load(d["user-data"])["ssh_keys"] for n, d in first.items()}
    assert keys == {n: yaml.safe_load(d["user-data"])["ssh_keys"] for n, d in again.items()}
    assert open(known_hosts_path(copy.lab, "alice")).read() == known


def test_the_private_host_key_is_never_printed(tmp_path):
    lab = EXAMPLES["standard"]
    env = {"LABVIRT_STATE_DIR": str(tmp_path / "state")}
    for args in (["up", "-c", "sim"], ["plan", "-c", "sim", "--json"], ["status", "-c", "sim", "--json"],
                 ["up", "-c", "sim", "--dry-run", "--json"]):
        r = run_cli(*args, "-C", lab, env=env)
        assert r.returncode == 0, r.stderr
        assert "PRIVATE KEY" not in r.stdout + r.stderr


def test_virt_customize_uploads_the_host_key_from_its_file():
    from labvirt.core.desired import desire
    from labvirt.core.customize import identity_argv

    spec = load_lab(EXAMPLES["standard"])
    desired = desire(spec, LabCopy(spec.name), HostParams())
    path, _ = host_key(spec.name, "", "controller")
    argv = identity_argv("/x/controller.qcow2", desired, "controller", host_key=path)
    assert f"{path}:/etc/ssh/ssh_host_ed25519_key" in argv
    assert any("chmod 0600 /etc/ssh/ssh_host_ed25519_key" in a for a in argv)
    assert not any("PRIVATE KEY" in a for a in argv)
