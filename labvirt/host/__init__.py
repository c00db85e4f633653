"""Host checks: can this machine run KVM guests (L0), will the lab VMs see vmx/svm (L1), and how
nova inside the compute nodes must run its instances (L2).

  facts.read_host(root)        the only place that reads /proc, /sys, /dev and /etc
  modprobe.parse_modprobe(...) what modprobe.d will do at the next module load (pure)
  verdict.verdict(facts)       the L0/L1/L2 answers (pure)
  findings.findings(...)       one row per check, with status, explanation and fix (pure)
  nested.plan_nested(...)      `labvirt nested enable|disable` as file edits (pure) + a thin apply
  profiles.profile_root(name)  host trees for tests and the simulator
  imagebuild.image_findings()  can this host build golden images: virt-builder, appliance, xfs (pure)
  appliance.read_appliance()   what libguestfs' appliance is built from + the cached real probe
"""

from __future__ import annotations

# Every module here is one or the other; tests/test_layers.py checks both lists against the folder and
# imports the pure ones with libvirt, typer, rich and subprocess blocked.
PURE = ("facts", "findings", "imagebuild", "modprobe", "networks", "profiles", "refusals", "verdict")
EDGE = ("appliance", "check", "libvirt_info", "nested", "tools")
