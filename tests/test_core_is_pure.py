"""The core imports neither libvirt, typer, rich nor subprocess (STYLE.md: pure core)."""

import subprocess
import sys

CORE = ["labvirt.spec", "labvirt.loader", "labvirt.identity", "labvirt.desired", "labvirt.render",
        "labvirt.observed", "labvirt.plan", "labvirt.summary", "labvirt.status", "labvirt.units", "labvirt.schema",
        "labvirt.cloudinit", "labvirt.seed", "labvirt.classroom", "labvirt.capacity", "labvirt.addresses",
        "labvirt.access", "labvirt.uris", "labvirt.packstack.answers"]

PROBE = f"""
import sys
for banned in ("libvirt", "typer", "rich", "subprocess"):
    sys.modules[banned] = None      # any import of them now raises ImportError
import importlib
for m in {CORE!r}:
    importlib.import_module(m)
from labvirt.loader import load_lab
from labvirt.identity import LabCopy
from labvirt.desired import desire, HostParams
from labvirt.plan import plan_up
from labvirt.observed import Observed
spec = load_lab(sys.argv[1])
plan = plan_up(desire(spec, LabCopy(spec.name), HostParams()), Observed())
print(len(plan.actions))
"""


def test_core_plans_without_libvirt_typer_rich_or_subprocess():
    from .conftest import EXAMPLES

    r = subprocess.run([sys.executable, "-c", PROBE, EXAMPLES["three-node"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == 20     # 17 libvirt objects + 3 cloud-init seeds
