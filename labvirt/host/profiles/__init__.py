"""Fake hosts as directory trees (proc/, sys/, dev/, etc/), read by labvirt.host.facts.read_host(root).

Used by tests, by `labvirt check --host-root`, and by the simulator (`labvirt check --connect sim`
gives the simulated host's profile verdict).
"""

from __future__ import annotations

import os

from labvirt.core.errors import LabvirtError

PROFILES: tuple[str, ...] = ("intel-nested", "intel-no-nested", "amd-nested", "no-virt", "pvm")
DESCRIPTIONS = {
    "intel-nested": "Intel CPU with vmx, kvm_intel loaded, nested on, libvirt's default network (virbr0) up",
    "intel-no-nested": "Intel CPU with vmx, kvm_intel nested off; modprobe.d attempts that do not work "
                       "('option' keyword, a file not ending in .conf, a later file setting nested=0)",
    "amd-nested": "AMD CPU with svm, kvm_amd loaded, nested on; a leftover kvm_intel line in modprobe.d",
    "no-virt": "a cloud VM without vmx/svm and without KVM: software emulation only",
    "pvm": "like the machine labvirt was written on: kvm_pvm provides /dev/kvm, the CPU shows neither vmx "
           "nor svm, KVM does not work for ordinary guests",
}


def profile_root(name: str) -> str:
    """The directory to pass as host root for profile `name`."""
    if name not in PROFILES:
        raise LabvirtError(f"no host profile {name!r}; known: {', '.join(PROFILES)}")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
