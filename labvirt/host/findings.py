"""One Finding per host check: status (ok / warn / fail), a one-line explanation, the exact fix. Pure.

`fail` means the lab cannot run as asked (the CLI exits 1); `warn` means it runs, worse or riskier.
"""

from __future__ import annotations

from labvirt.core.capacity import Overcommit, usage
from labvirt.core.record import Record, as_dict
from labvirt.core.units import format_size
from labvirt.host.facts import HostFacts
from labvirt.host.networks import network_verdicts
from labvirt.host.verdict import EXTENSION, Verdict

OK, WARN, FAIL = "ok", "warn", "fail"


class Finding(Record):
    id: str
    status: str       # "ok" | "warn" | "fail"
    message: str
    fix: str = ""

    def as_dict(self) -> dict:
        return as_dict(self)


def blocked(found) -> bool:
    return any(f.status == FAIL for f in found)


def findings(facts: HostFacts, verdict: Verdict, libvirt_info=None, needs=None, capacity=None, networks=(), *,
             lab: str = "", lab_domain_type: str = "auto", libvirt_error: str = "", remote: str = "",
             overcommit: Overcommit = Overcommit(), tools=None, env=None) -> list[Finding]:
    """`networks`: the lab's LabNetwork values (labvirt.host.networks.lab_networks), owned by `lab`;
    `remote`: the libvirt host's name when the URI points elsewhere; `tools`: labvirt.host.tools.Tool
    values (None: not probed); `env`: the environment (for libguestfs' settings)."""
    found = _host(facts, verdict, remote) + modprobe_findings(verdict)
    found += _libvirt(verdict, libvirt_info, libvirt_error, lab_domain_type if lab else "auto")
    if tools is not None:
        found += _tools(tools, verdict, facts, env or {})
    if needs is not None and capacity is not None:
        found += _capacity(needs, capacity, overcommit)
    if networks:
        found += _networks(networks, lab, libvirt_info, facts)
    return found


def _host(facts: HostFacts, v: Verdict, remote: str) -> list[Finding]:
    found = []
    if remote:
        found.append(Finding("remote", WARN, f"libvirt runs on {remote}, but the CPU, KVM and nested checks below "
                             "read this machine", f"run 'labvirt check' on {remote} for its L0/L1/L2 verdict"))
    model = f"{facts.cpu_model}: " if facts.cpu_model else ""
    if facts.cpu_virt != "none":
        found.append(Finding("cpu-virt", OK, f"{model}{EXTENSION[facts.cpu_virt]}"))
    else:
        vm = " (the 'hypervisor' flag: this machine is a VM)" if facts.cpu_hypervisor else ""
        found.append(Finding("cpu-virt", WARN, f"{model}neither vmx nor svm in /proc/cpuinfo{vm}", v.l0_fix))
    dev = facts.dev_kvm
    if dev == "usable":
        found.append(Finding("dev-kvm", OK, "/dev/kvm is present" + (" and opens read-write" if facts.real else "")))
    elif dev == "denied":
        found.append(Finding("dev-kvm", WARN, "/dev/kvm is present but this user cannot open it (fine for "
                             "qemu:///system; qemu:///session needs it)", "usermod -aG kvm $USER, then log in again"))
    elif dev == "missing":
        fix = f"modprobe {v.module}" if facts.cpu_virt != "none" else ""
        found.append(Finding("dev-kvm", WARN, "/dev/kvm is missing: no KVM on this host", fix))
    else:
        found.append(Finding("dev-kvm", WARN, f"/dev/kvm: {dev}", "check dmesg for kvm errors"))
    loaded = ", ".join(facts.modules) or "none"
    source = f" ({facts.modules_source})" if facts.modules_source else ""
    if v.pvm:
        found.append(Finding("kvm-modules", WARN, f"KVM modules: {loaded}{source}: kvm_pvm provides /dev/kvm, "
                             "no kvm_intel/kvm_amd"))
    elif facts.cpu_virt != "none" and v.module not in facts.modules:
        found.append(Finding("kvm-modules", WARN, f"KVM modules: {loaded}{source}; {v.module} is not loaded",
                             f"modprobe {v.module}"))
    else:
        found.append(Finding("kvm-modules", OK, f"KVM modules: {loaded}{source}"))
    found.append(Finding("kvm", OK if v.kvm_usable else WARN,
                         f"L0: lab VMs use domain type '{v.guest_domain_type}': {v.l0}", v.l0_fix))
    found.append(Finding("nested", OK if v.l1_virt else WARN, f"L1: {v.l1}", v.l1_fix))
    found.append(Finding("l2-virt-type", OK if v.l2_virt_type == "kvm" else WARN, f"L2: {v.l2}",
                         v.l1_fix if v.kvm_usable else ""))
    return found


def modprobe_findings(v: Verdict) -> list[Finding]:
    config = v.modprobe
    if config is None or v.module is None:
        return []
    found = []
    win = config.winner(v.module)
    where = "" if win is None else (" (kernel command line)" if win.line == 0 else f" ({win.file} line {win.line})")
    nl = v.nested_next_load
    if nl == "invalid":
        found.append(Finding("nested-next-load", WARN, f"modprobe.d gives {v.module} a bad 'nested' value: the next "
                             f"'modprobe {v.module}' (or reboot) fails and KVM is gone", "labvirt nested enable"))
    elif nl == "off" and v.cpu_virt != "none":
        found.append(Finding("nested-next-load", WARN, f"at the next load of {v.module}, nested will be off{where}",
                             "labvirt nested enable"))
    elif nl == "on":
        found.append(Finding("nested-next-load", OK, f"at the next load of {v.module}, nested will be on{where}"))
    elif nl == "default":
        found.append(Finding("nested-next-load", OK, f"modprobe.d does not set {v.module}'s nested: the kernel's "
                             "default applies at the next load (on in current kernels)"))
    for p in config.problems:
        at = p.file if not p.line else f"{p.file} line {p.line}"
        text = f": {p.text!r}" if p.text else ""
        found.append(Finding(f"modprobe-{p.kind}", WARN, f"{at}{text}: {p.why}", p.fix))
    return found


def _libvirt(v: Verdict, info, error: str, lab_domain_type: str) -> list[Finding]:
    found = []
    if info is None:
        if error:
            found.append(Finding("libvirt", FAIL, error, "start libvirtd ('systemctl start libvirtd', or "
                                 "'libvirtd -d' without systemd) and check the URI (--connect) and your access "
                                 "(group libvirt)"))
        return found
    hv = f"{info.hypervisor} {info.hypervisor_version}".strip()
    found.append(Finding("libvirt", OK, f"libvirt {info.version} at {info.uri} ({hv})"))
    offered = ", ".join(info.domain_types) or "none"
    if info.hypervisor.upper() == "TEST":
        found.append(Finding("domain-types", OK, f"libvirt's test driver (offers {offered}) accepts any domain type"))
    elif v.guest_domain_type not in info.domain_types:
        found.append(Finding("domain-types", FAIL, f"libvirt offers domain types {offered} for {info.host_arch}, "
                             f"not '{v.guest_domain_type}'", "apt-get install qemu-system-x86, then restart libvirtd"))
    elif "kvm" in info.domain_types and not v.kvm_usable:
        found.append(Finding("domain-types", WARN, f"libvirt offers {offered} (it sees /dev/kvm), but type='kvm' "
                             "does not work for guests here: labvirt uses 'qemu'",
                             "keep domain_type = 'auto' (or 'qemu') in lab.toml"))
    else:
        found.append(Finding("domain-types", OK, f"libvirt offers {offered}; labvirt uses '{v.guest_domain_type}'"))
    if lab_domain_type == "kvm" and not v.kvm_usable:
        found.append(Finding("lab-domain-type", FAIL, "lab.toml asks for domain_type = 'kvm', but KVM does not work "
                             "for guests on this host", "set domain_type = 'auto' in lab.toml"))
    elif lab_domain_type == "qemu" and v.kvm_usable:
        found.append(Finding("lab-domain-type", WARN, "lab.toml asks for domain_type = 'qemu' (software emulation) "
                             "although KVM works here: much slower", "set domain_type = 'auto' in lab.toml"))
    return found


def _tools(tools, v: Verdict, facts: HostFacts, env) -> list[Finding]:
    found = []
    for t in tools:
        if t.path is None:
            found.append(Finding(f"tool-{t.name}", WARN, f"{t.name} is not installed ({t.purpose})",
                                 f"apt-get install {t.package}"))
        elif t.error:
            found.append(Finding(f"tool-{t.name}", WARN, f"{t.path} does not work: {t.error}",
                                 f"apt-get install --reinstall {t.package}"))
        else:
            found.append(Finding(f"tool-{t.name}", OK, f"{t.name} {t.version} ({t.path})"))
    if any(t.name == "virt-builder" and t.path for t in tools):
        backend = env.get("LIBGUESTFS_BACKEND") or "the default"
        settings = env.get("LIBGUESTFS_BACKEND_SETTINGS", "")
        if facts.dev_kvm != "missing" and not v.kvm_usable and "force_tcg" not in settings:
            found.append(Finding("libguestfs-backend", WARN, f"libguestfs' appliance (backend {backend}) will try "
                                 "/dev/kvm, which does not work for guests here",
                                 "export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg"))
        else:
            extra = f", settings {settings}" if settings else ""
            found.append(Finding("libguestfs-backend", OK, f"libguestfs backend: {backend}{extra}"))
    return found


def _capacity(needs, capacity, overcommit: Overcommit) -> list[Finding]:
    found = []
    copies = f" ({needs.nodes} nodes)" if needs.nodes else ""
    for u in usage(needs, capacity, overcommit):
        if u.resource == "cpu":
            shown = f"{u.need} vCPUs{copies} on {u.have} CPUs"
            limit = f"{u.limit} vCPUs"
        elif u.have is None:
            found.append(Finding("capacity-disk", WARN, f"disk: needs {format_size(u.need)} (virtual), "
                                 "free space unknown", "check free space where the lab's pool_dir is"))
            continue
        else:
            shown = f"{format_size(u.need)} of {format_size(u.have)}"
            limit = format_size(u.limit)
        ratio = f"overcommit {u.overcommit:.2f}" if u.overcommit is not None else "the host reports none"
        message = f"{u.resource}: {shown} ({ratio}, allowed {u.ratio:g}: up to {limit})"
        if u.resource == "disk":
            message = (f"disk (virtual sizes): {shown} free ({ratio}); a fresh lab writes about "
                       f"{format_size(needs.disk_estimate)}")
            if needs.disk_estimate > u.have:
                found.append(Finding("capacity-disk", FAIL, message, "free disk space or move storage.pool_dir"))
            elif not u.ok:
                found.append(Finding("capacity-disk", WARN, message + ": guests can fill the host's disk later",
                                     "free disk space, or use smaller node disks"))
            else:
                found.append(Finding("capacity-disk", OK, message))
        elif u.ok:
            found.append(Finding(f"capacity-{u.resource}", OK, message))
        elif u.resource == "cpu":
            found.append(Finding("capacity-cpu", WARN, message + ": it runs, slowly", "fewer vCPUs or fewer copies"))
        else:
            found.append(Finding("capacity-memory", FAIL, message + " (QEMU's overhead included)",
                                 "give nodes less memory, run fewer copies (--students), or use a bigger host"))
    return found


def _networks(networks, lab: str, info, facts: HostFacts) -> list[Finding]:
    libvirt_nets = info.networks if info is not None else ()
    owner = next((n.copy for n in networks if n.copy is not None), lab)
    found = []
    for v in network_verdicts(networks, owner, libvirt_nets, facts.interfaces, facts.routes):
        net = v.network
        if not v.collides:
            found.append(Finding(f"network-{net.name}", OK, f"network {net.name} {net.subnet} (bridge {net.bridge}): "
                                 "no collision"))
        else:
            found.append(Finding(f"network-{net.name}", FAIL, f"network {net.name} {net.subnet} (bridge {net.bridge}) "
                                 f"collides with {v.collides}", v.fix))
    return found
