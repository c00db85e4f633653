"""The L0/L1/L2 verdict from HostFacts. Pure.

  L0  the host: can it run KVM guests at all?   -> the lab's domain type (kvm or qemu)
  L1  the lab VMs: will they see vmx/svm?       -> only with KVM, nesting on and a passthrough CPU
  L2  the instances nova starts inside compute nodes -> nova's virt_type (kvm or qemu)

KVM is usable for guests when /dev/kvm is usable AND the CPU shows vmx/svm AND kvm_intel/kvm_amd is
loaded. /dev/kvm alone proves nothing: kvm_pvm (PVM, KVM on page tables for cloud VMs without
hardware virtualisation) provides it too, and ordinary QEMU guests with type='kvm' fail there.
"""

from __future__ import annotations

from labvirt.core.record import Record, compared_without, repr_without
from labvirt.host.facts import HostFacts
from labvirt.host.modprobe import VENDOR_MODULE, ModprobeConfig, nested_state, parse_modprobe

CPU_MODULE = {"vmx": "kvm_intel", "svm": "kvm_amd"}
EXTENSION = {"vmx": "vmx (Intel VT-x)", "svm": "svm (AMD-V)"}


class Verdict(Record):
    cpu_vendor: str
    cpu_virt: str                 # "vmx" | "svm" | "none"
    module: str | None            # the KVM module this CPU uses (kvm_intel | kvm_amd); None if unknown
    kvm_usable: bool              # L0: KVM works for ordinary guests
    pvm: bool                     # /dev/kvm comes from kvm_pvm on a CPU without vmx/svm
    guest_domain_type: str        # "kvm" | "qemu": the lab VMs' domain type
    nested: str                   # "on" | "off" | "unavailable": nesting as the loaded module has it now
    nested_next_load: str         # "on" | "off" | "default" | "invalid" | "unavailable": after a reload/reboot
    nested_cpu: str               # CPU mode for nodes that need nested virt: "host-passthrough" | "default"
    l1_virt: bool                 # L1: nodes that need it see vmx/svm
    l2_virt_type: str             # "kvm" | "qemu": nova's virt_type on the compute nodes
    l0: str                       # one explanation per level
    l1: str
    l2: str
    l0_fix: str = ""              # what would improve the level ("" when nothing)
    l1_fix: str = ""
    modprobe: ModprobeConfig | None = None

    __eq__, __hash__ = compared_without("modprobe")
    __repr__ = repr_without("modprobe")

    def as_dict(self) -> dict:
        return {"cpu_vendor": self.cpu_vendor, "cpu_virt": self.cpu_virt, "kvm_module": self.module,
                "kvm_usable": self.kvm_usable, "pvm": self.pvm, "guest_domain_type": self.guest_domain_type,
                "nested": self.nested, "nested_next_load": self.nested_next_load, "nested_cpu": self.nested_cpu,
                "l1_virt": self.l1_virt, "l2_virt_type": self.l2_virt_type,
                "levels": {"L0": {"answer": self.guest_domain_type, "why": self.l0, "fix": self.l0_fix},
                           "L1": {"answer": "vmx/svm visible" if self.l1_virt else "no vmx/svm", "why": self.l1,
                                  "fix": self.l1_fix},
                           "L2": {"answer": self.l2_virt_type, "why": self.l2}}}


def verdict(facts: HostFacts) -> Verdict:
    module = CPU_MODULE.get(facts.cpu_virt) or VENDOR_MODULE.get(facts.cpu_vendor)
    config = parse_modprobe(facts.modprobe_files, facts.cmdline, module, facts.modules)
    kvm_usable, pvm, l0, l0_fix = _level0(facts, module)
    nested = "unavailable"
    if kvm_usable and facts.nested_param(module) is not None:
        nested = "on" if nested_state(module, facts.nested_param(module)) == "on" else "off"
    next_load = config.next_load(module) if facts.cpu_virt != "none" and module else "unavailable"
    l1_virt, l1, l1_fix = _level1(facts, module, kvm_usable, nested, next_load)
    l2_type = "kvm" if l1_virt else "qemu"
    if l1_virt:
        l2 = "nova uses virt_type=kvm: instances run on the vmx/svm the compute nodes see"
    elif kvm_usable:
        l2 = ("nova must use virt_type=qemu: instances run in software emulation inside KVM-accelerated "
              "compute nodes (slow; small images such as CirrOS work)")
    else:
        l2 = ("nova must use virt_type=qemu: instances run in software emulation inside software-emulated "
              "compute nodes (two levels of emulation: very slow, keep instances tiny, e.g. CirrOS)")
    return Verdict(cpu_vendor=facts.cpu_vendor, cpu_virt=facts.cpu_virt, module=module, kvm_usable=kvm_usable,
                   pvm=pvm, guest_domain_type="kvm" if kvm_usable else "qemu", nested=nested,
                   nested_next_load=next_load, nested_cpu="host-passthrough" if kvm_usable else "default",
                   l1_virt=l1_virt, l2_virt_type=l2_type, l0=l0, l1=l1, l2=l2, l0_fix=l0_fix, l1_fix=l1_fix,
                   modprobe=config)


def _level0(facts: HostFacts, module: str | None) -> tuple[bool, bool, str, str]:
    """(kvm usable, PVM host, explanation, fix)."""
    tcg = "lab VMs run in software emulation (domain type 'qemu', TCG): slower, but they work"
    dev = facts.dev_kvm
    if facts.cpu_virt == "none":
        if "kvm_pvm" in facts.modules and dev != "missing":
            return False, True, (
                "/dev/kvm exists, but it comes from kvm_pvm (PVM: KVM without hardware virtualisation, for "
                "cloud VMs) and the CPU shows neither vmx nor svm; ordinary QEMU guests with type='kvm' fail on "
                f"it (KVM emulation failures, 'failed to set MSR' at start), so {tcg}"), (
                "nothing to change here: labvirt uses type='qemu'; for KVM speed use a machine or cloud VM "
                "type with VT-x/AMD-V or nested virtualisation")
        if facts.cpu_hypervisor:
            return False, False, (
                "the CPU shows neither vmx nor svm: this machine is itself a VM and its hypervisor does not pass "
                f"hardware virtualisation through, so {tcg}"), (
                "enable nested virtualisation for this VM on its hypervisor (e.g. cpu mode host-passthrough "
                "there), then reboot this VM")
        return False, False, (
            f"the CPU shows neither vmx nor svm: hardware virtualisation is missing or disabled in the firmware, so {tcg}"), (
            "enable Intel VT-x or AMD-V (SVM) in the BIOS/UEFI setup, then reboot")
    ext = EXTENSION[facts.cpu_virt]
    if module not in facts.modules:
        return False, False, f"the CPU has {ext} but {module} is not loaded, so {tcg}", (
            f"modprobe {module} (if it fails with 'Operation not supported', enable virtualisation in the "
            "BIOS/UEFI setup)")
    if dev == "missing":
        return False, False, f"{module} is loaded but /dev/kvm is missing, so {tcg}", (
            f"reload the module (modprobe -r {module} && modprobe {module}) and check dmesg for kvm errors")
    if dev.startswith("error"):
        return False, False, f"/dev/kvm cannot be opened ({dev[7:]}), so {tcg}", "check dmesg for kvm errors"
    who = ""
    if dev == "denied":
        who = " (not by this user: fine for qemu:///system, whose QEMU runs in group kvm)"
    return True, False, f"KVM works: the CPU has {ext}, {module} is loaded and /dev/kvm is usable{who}", ""


def _level1(facts: HostFacts, module, kvm_usable: bool, nested: str, next_load: str) -> tuple[bool, str, str]:
    if not kvm_usable:
        return False, ("without KVM on the host there is no nested virtualisation: lab VMs get no usable "
                       "vmx/svm, so KVM cannot work inside the compute nodes"), ""
    if nested == "on":
        return True, (f"nested is on ({module} nested={facts.nested_param(module)}): nodes that need it (compute) "
                      f"get cpu mode host-passthrough and see {facts.cpu_virt}"), ""
    reload = f"modprobe -r {module} && modprobe {module}"
    if nested == "unavailable":
        return False, f"{module} has no 'nested' parameter (kernel too old?): lab VMs do not see {facts.cpu_virt}", ""
    if next_load == "on":
        return False, (f"nested is off now ({module} nested={facts.nested_param(module)}), but modprobe.d turns it "
                       f"on at the next load of {module}"), f"with no VM running, as root: {reload}"
    return False, f"nested is off ({module} nested={facts.nested_param(module)}): lab VMs do not see {facts.cpu_virt}", (
        "labvirt nested enable (as root, with no VM running)")
