"""`labvirt nested enable|disable`: plan the modprobe.d edits (pure), then apply them (thin).

The plan writes a labvirt-owned file with the right vendor's `options kvm_xxx nested=1|0`, and comments
out every line modprobe reads that would undo it or only looks like it sets nested (a wrong keyword,
a misspelled module, a bad value, a conflicting value). It never edits files modprobe ignores
(names not ending in .conf, shadowed files) or lines for the other vendor's module: those do nothing.
Applying reloads the module only on the real root, with no VM running; then reads the parameter back.
"""

from __future__ import annotations

import difflib
import os
import subprocess

from labvirt.core.errors import LabvirtError
from labvirt.core.record import Record
from labvirt.driver.state_files import write_atomic
from labvirt.host.facts import HostFacts, read_host
from labvirt.host.modprobe import CMDLINE, logical_lines, nested_state, parse_modprobe, without_nested
from labvirt.host.verdict import CPU_MODULE

OWN_FILE = "/etc/modprobe.d/labvirt-nested.conf"
_FIXABLE = ("keyword", "module-name", "dotted", "spacing", "value", "comment", "param-name", "no-such-param")


class NestedRefused(LabvirtError):
    """Nested virtualisation cannot be changed on this host (or not by this user)."""


class FileEdit(Record):
    path: str                 # on the host, e.g. /etc/modprobe.d/labvirt-nested.conf
    before: str | None        # None: a new file
    after: str
    reasons: tuple[str, ...]

    def diff(self) -> str:
        return "".join(difflib.unified_diff((self.before or "").splitlines(keepends=True),
                                            self.after.splitlines(keepends=True),
                                            "/dev/null" if self.before is None else f"a{self.path}", f"b{self.path}"))


class NestedPlan(Record):
    action: str                              # "enable" | "disable"
    module: str                              # kvm_intel | kvm_amd
    want: str                                # "on" | "off"
    current: str                             # nested in the loaded module: "on" | "off" | "not loaded"
    edits: tuple[FileEdit, ...]
    reload: tuple[tuple[str, ...], ...]      # argv lists, run in order
    notes: tuple[str, ...]                   # what editing files cannot fix, and what is left alone

    def diff(self) -> str:
        return "".join(e.diff() for e in self.edits)

    @property
    def reload_text(self) -> str:
        return " && ".join(" ".join(argv) for argv in self.reload)


class NestedResult(Record):
    written: tuple[str, ...]
    reloaded: bool
    nested: str                 # read back: "on" | "off" | "not loaded"
    messages: tuple[str, ...]
    error: str = ""             # the reload failed (files were written)


def _current(facts: HostFacts, module: str) -> str:
    value = facts.nested_param(module)
    if module not in facts.modules or value is None:
        return "not loaded"
    return nested_state(module, value) if nested_state(module, value) != "invalid" else "off"


def plan_nested(facts: HostFacts, action: str) -> NestedPlan:
    if action not in ("enable", "disable"):
        raise ValueError(action)
    if facts.cpu_virt == "none":
        why = ("kvm_pvm provides /dev/kvm here, but the CPU has no vmx/svm to pass on" if "kvm_pvm" in facts.modules
               else "the CPU shows neither vmx nor svm")
        raise NestedRefused(f"cannot {action} nested virtualisation: {why}; lab VMs run in software emulation")
    module = CPU_MODULE[facts.cpu_virt]
    want, value = ("on", "1") if action == "enable" else ("off", "0")
    config = parse_modprobe(facts.modprobe_files, facts.cmdline, module, facts.modules)
    texts = dict(facts.modprobe_files)
    fixes: dict[str, dict[int, tuple[int, list[str]]]] = {}   # path -> first line -> (last line, reasons)

    def mark(path, first, last, reason):
        if path == OWN_FILE or path == CMDLINE:
            return
        _, reasons = fixes.setdefault(path, {}).setdefault(first, (last or first, []))
        if reason not in reasons:
            reasons.append(reason)

    notes = []
    for s in config.settings:
        if s.module == module and s.state != want:
            if s.file == CMDLINE:
                notes.append(f"the kernel command line has {s.text}, which overrides modprobe.d: remove it from "
                             "GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and reboot")
            else:
                mark(s.file, s.line, s.end_line, f"sets nested {s.state}" if s.state != "invalid" else "bad value")
    for p in config.problems:
        if p.editable and p.kind in _FIXABLE and (p.module in (module, "") or p.kind == "no-such-param"):
            mark(p.file, p.line, p.end_line, p.why.split(":")[0])
        elif not p.editable or p.kind == "vendor":
            notes.append(f"left alone: {p.file}{f' line {p.line}' if p.line else ''}: {p.why}")
    edits = []
    for path, lines_fixed in sorted(fixes.items()):
        edits.append(_comment_out(path, texts[path], lines_fixed, action))
    own = (f"# Written by 'labvirt nested {action}': nested virtualisation for lab VMs ({module}).\n"
           f"# 'labvirt nested {'disable' if action == 'enable' else 'enable'}' changes it; deleting this file "
           "restores the kernel's default.\n"
           f"options {module} nested={value}\n")
    if texts.get(OWN_FILE) != own:
        edits.insert(0, FileEdit(OWN_FILE, texts.get(OWN_FILE), own, (f"{module} nested={value} at every load",)))
    current = _current(facts, module)
    reload: tuple[tuple[str, ...], ...] = ()
    if current == "not loaded":
        reload = (("modprobe", module),)
    elif current != want:
        reload = (("modprobe", "-r", module), ("modprobe", module))
    return NestedPlan(action, module, want, current, tuple(edits), reload, tuple(dict.fromkeys(notes)))


def _comment_out(path: str, text: str, fixes: dict, action: str) -> FileEdit:
    lines = text.splitlines()
    logical = {first: line for first, _, line in logical_lines(text)}
    out, reasons, number = [], [], 0
    while number < len(lines):
        first = number + 1
        if first not in fixes:
            out.append(lines[number])
            number += 1
            continue
        last, why = fixes[first]
        reason = "; ".join(why)
        reasons.append(f"line {first}: {reason}")
        out.append(f"# labvirt nested {action}: {reason}")
        out += [f"# {line}" for line in lines[number:last]]
        rest = without_nested(logical[first]) if logical.get(first, "").split()[:1] == ["options"] else None
        if rest:
            out.append(rest)
        number = last
    after = "\n".join(out) + ("\n" if out else "")
    return FileEdit(path, text, after, tuple(reasons))


def apply_nested(plan: NestedPlan, root: str = "/", running_vms: int | None = None, euid: int | None = None,
                 run=subprocess.run, real: bool | None = None) -> NestedResult:
    """Write the edits under `root`; on the real root (as root, no VM running) reload the module with
    `run`; read the parameter back. `real` defaults to "root is /" (tests set it to drive a fake run)."""
    real = os.path.realpath(root) == "/" if real is None else real
    euid = os.geteuid() if euid is None else euid
    if real and euid != 0:
        raise NestedRefused(f"'labvirt nested {plan.action}' edits /etc/modprobe.d and reloads {plan.module}: "
                            "run it as root (or see the changes with --dry-run)")
    written = []
    for edit in plan.edits:
        full = os.path.join(root, edit.path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        write_atomic(full, edit.after.encode())     # 0644; an interrupted write leaves no temporary file
        written.append(edit.path)
    messages, reloaded, error = [], False, ""
    users = read_host(root).users(plan.module) or 0
    if not plan.reload:
        messages.append(f"{plan.module} already has nested {plan.want}: no reload needed")
    elif not real:
        messages.append(f"host root {root}: would run: {plan.reload_text}")
    elif running_vms or users:
        count = running_vms or users
        messages.append(f"{count} VM(s) use {plan.module}: it cannot be reloaded now. Shut them down "
                        f"(virsh list), then run: {plan.reload_text}")
    else:
        for argv in plan.reload:
            done = run(list(argv), capture_output=True, text=True, check=False)
            if done.returncode != 0:
                error = f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip() or f'exit {done.returncode}'}"
                break
        else:
            reloaded = True
            messages.append(f"reloaded {plan.module}: {plan.reload_text}")
    after = _current(read_host(root), plan.module)
    return NestedResult(tuple(written), reloaded, after, tuple(messages), error)

