"""The core imports neither libvirt, typer, rich nor subprocess (STYLE.md: pure core)."""

import subprocess
import sys

CORE = ["labvirt.core.spec", "labvirt.core.loader", "labvirt.core.identity", "labvirt.core.desired", "labvirt.core.render",
        "labvirt.core.observed", "labvirt.core.plan", "labvirt.core.summary", "labvirt.core.status", "labvirt.core.units", "labvirt.core.schema",
        "labvirt.core.cloudinit", "labvirt.core.seed", "labvirt.core.class_layout", "labvirt.core.capacity", "labvirt.core.addresses",
        "labvirt.core.login", "labvirt.core.uris", "labvirt.packstack.answers"]

PROBE = f"""
import sys
for banned in ("libvirt", "typer", "rich", "subprocess"):
    sys.modules[banned] = None      # any import of them now raises ImportError
import importlib
for m in {CORE!r}:
    importlib.import_module(m)
from labvirt.core.loader import load_lab
from labvirt.core.identity import LabCopy
from labvirt.core.desired import desire, HostParams
from labvirt.core.plan import plan_up
from labvirt.core.observed import Observed
spec = load_lab(sys.argv[1])
plan = plan_up(desire(spec, LabCopy(spec.name), HostParams()), Observed())
print(len(plan.actions))
"""


def test_core_plans_without_libvirt_typer_rich_or_subprocess():
    from .conftest import EXAMPLES

    r = subprocess.run([sys.executable, "-c", PROBE, EXAMPLES["three-node"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == 20     # 17 libvirt objects + 3 cloud-init seeds
