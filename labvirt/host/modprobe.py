"""What modprobe.d will do with `nested` at the next load of kvm_intel / kvm_amd. Pure.

How kmod reads its configuration (modprobe.d(5), checked against kmod's sources):
- only files whose names end in ".conf", from /etc, /run, /usr/local/lib, /usr/lib, /lib (modprobe.d);
  a name found in an earlier directory hides the same name in later ones;
- all files are sorted by name regardless of directory, and their `options` lines for one module are
  joined in that order into one string; the kernel applies the parameters left to right, so for the
  same parameter the last value wins; `kvm_intel.nested=...` on the kernel command line is appended last;
- '-' and '_' are interchangeable in module names; unknown commands are ignored;
- the kernel ignores unknown parameters, but a bad value for a known one makes the module fail to load.
kvm_intel's `nested` is a boolean (Y/N/1/0, on/off); kvm_amd's is an integer (1 on, 0 off).
"""

from __future__ import annotations

import os
import re

from labvirt.core.record import Record
from labvirt.core.suggest import closest, hint

NESTED_MODULES = ("kvm_intel", "kvm_amd")
VENDOR_MODULE = {"intel": "kvm_intel", "amd": "kvm_amd"}
COMMANDS = ("alias", "options", "install", "remove", "blacklist", "softdep", "weakdep")
REAL_KVM_MODULES = ("kvm", "kvm_intel", "kvm_amd", "kvm_pvm")
CMDLINE = "/proc/cmdline"
_INT = re.compile(r"^[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\n?$")


class Setting(Record):
    """One `nested=` that modprobe will pass to the kernel."""

    file: str
    line: int            # 0: the kernel command line
    text: str
    module: str          # kvm_intel | kvm_amd
    value: str | None    # as written; None for a bare `nested`
    state: str           # "on" | "off" | "invalid"
    end_line: int = 0    # last physical line of a continued line


class Problem(Record):
    """A line (or file) that looks like it sets nested but does not do what it seems to."""

    kind: str            # keyword | not-conf | shadowed | module-name | no-such-param | param-name | dotted
                         # | value | spacing | comment | conflict | vendor
    file: str
    line: int            # 0: the whole file
    text: str
    why: str
    fix: str
    module: str = ""     # the module the line is meant for (normalised), when known
    end_line: int = 0    # last physical line of a continued line
    editable: bool = True  # `labvirt nested` may comment it out (False: modprobe never reads it anyway)


class ModprobeConfig(Record):
    files: tuple[str, ...]          # the files modprobe reads, in the order it reads them
    settings: tuple[Setting, ...]   # in the order the kernel applies them
    problems: tuple[Problem, ...]

    def winner(self, module: str) -> Setting | None:
        found = [s for s in self.settings if s.module == module]
        return found[-1] if found else None

    def next_load(self, module: str) -> str:
        """"on" | "off" | "invalid" (the module will refuse to load) | "default" (no setting: the kernel's
        default, on in current kernels)."""
        found = [s for s in self.settings if s.module == module]
        if any(s.state == "invalid" for s in found):
            return "invalid"
        return found[-1].state if found else "default"


def norm(module: str) -> str:
    return module.replace("-", "_")


def nested_state(module: str, value: str | None) -> str:
    """What the kernel makes of `nested=value` for this module: "on", "off" or "invalid"."""
    if module == "kvm_intel":            # bool: kstrtobool; a bare name means true
        if value is None:
            return "on"
        v = value.lower()
        if v[:1] in ("y", "1") or v[:2] == "on":
            return "on"
        if v[:1] in ("n", "0") or v[:2] == "of":
            return "off"
        return "invalid"
    if value is None or not _INT.match(value):   # int: kstrtoint(base 0); no value is an error
        return "invalid"
    return "off" if int(value.strip(), 0) == 0 else "on"


def logical_lines(text: str):
    """(first line, last line, text) per command: a trailing '\\' joins the next line (as kmod does,
    without adding a space); blank lines and lines starting with '#' are skipped."""
    start, parts = 0, []
    lines = text.splitlines()
    for number, raw in enumerate(lines, 1):
        if not parts:
            start = number
        if raw.endswith("\\") and number < len(lines):
            parts.append(raw[:-1])
            continue
        parts.append(raw[:-1] if raw.endswith("\\") else raw)
        joined, parts = "".join(parts).strip(), []
        if joined and not joined.startswith("#"):
            yield start, number, joined


def _near(word: str, choices, known=()) -> str | None:
    if word in known:
        return None
    close = closest(word, choices, cutoff=0.7)
    return close[0] if close else None


def _is_nested_name(name: str) -> bool:
    return norm(name) == "nested" or _near(norm(name), ["nested"]) is not None


def without_nested(text: str) -> str | None:
    """An `options` line with its nested-related words removed; None when nothing else is left."""
    tokens = text.split()
    kept, i = [], 2
    while i < len(tokens):
        tok = tokens[i]
        name = tok.split("=", 1)[0]
        i += 1
        if not name or not _is_nested_name(name):
            kept.append(tok)
            continue
        if tok == name and i < len(tokens) and tokens[i].startswith("="):   # `nested = 1`, `nested =1`
            i += 2 if tokens[i] == "=" else 1
        elif tok.endswith("=") and i < len(tokens):                          # `nested= 1`
            i += 1
    return " ".join(tokens[:2] + kept) if kept else None


def parse_modprobe(files, cmdline: str = "", module: str | None = None,
                   known_modules=()) -> ModprobeConfig:
    """`files`: (path, text) pairs from the modprobe.d directories; `module`: the nested module this
    host's CPU uses (kvm_intel or kvm_amd), for wrong-vendor lines; `known_modules`: real module names
    (loaded ones), never reported as misspellings."""
    known = set(REAL_KVM_MODULES) | {norm(m) for m in known_modules}
    read, problems = _select(files, known)
    settings: list[Setting] = []
    for path, text in read:
        for first, last, line in logical_lines(text):
            _line(path, first, last, line, known, settings, problems)
    _cmdline(cmdline, settings)
    _conflicts(settings, problems)
    if module in NESTED_MODULES:
        for s in settings:
            if s.module != module:
                vendor = "an Intel" if module == "kvm_intel" else "an AMD"
                problems.append(Problem("vendor", s.file, s.line, s.text,
                                        f"this host has {vendor} CPU: {s.module} never loads here, so this line does nothing",
                                        f"options {module} nested=1", s.module, s.end_line, editable=False))
    problems.sort(key=lambda p: (p.file, p.line, p.kind))
    return ModprobeConfig(files=tuple(p for p, _ in read), settings=tuple(settings), problems=tuple(problems))


def _select(files, known) -> tuple[list[tuple[str, str]], list[Problem]]:
    """The files kmod reads, in its order; problems for nested-looking files it does not read."""
    chosen: dict[str, tuple[str, str]] = {}
    problems_out: list[Problem] = []
    for path, text in files:
        name = os.path.basename(path)
        if name.startswith("."):
            continue
        if not name.endswith(".conf"):
            if _looks_nested(text, known):
                if ".conf" in name:     # kvm.conf.bak, kvm.conf~, kvm.conf.dpkg-old
                    fix = (f"if it is a backup, delete it; else move its settings into "
                           f"{os.path.dirname(path)}/{name.split('.conf')[0]}.conf")
                else:
                    fix = f"rename it: mv {path} {path}.conf"
                problems_out.append(Problem("not-conf", path, 0, "", "modprobe reads only files ending in .conf: "
                                            "this file is ignored", fix, editable=False))
            continue
        if name in chosen:
            winner, winner_text = chosen[name]
            if text != winner_text and _looks_nested(text, known):
                problems_out.append(Problem("shadowed", path, 0, "", f"{winner} has the same name and is read "
                                            "instead: this file is ignored", f"put its settings in {winner}",
                                            editable=False))
            continue
        chosen[name] = (path, text)
    return [chosen[name] for name in sorted(chosen)], problems_out


def _looks_nested(text: str, known) -> bool:
    settings: list = []
    problems: list = []
    for first, last, line in logical_lines(text):
        _line("", first, last, line, known, settings, problems)
    return bool(settings or problems)


def _relevant_words(tokens, known) -> bool:
    return any("nested" in t.lower() for t in tokens) and any(
        norm(t.split(".")[0]) in NESTED_MODULES or _near(norm(t.split(".")[0]), NESTED_MODULES, known) for t in tokens)


def _line(path, first, last, line, known, settings, problems) -> None:
    tokens = line.split()
    cmd = tokens[0]

    def problem(kind, why, fix, module=""):
        problems.append(Problem(kind, path, first, line, why, fix, module, last))

    if cmd != "options":
        if cmd in COMMANDS or not _relevant_words(tokens, known):
            return
        head = norm(cmd.split(".")[0])
        if head in NESTED_MODULES or _near(head, NESTED_MODULES, known):
            problem("keyword", "a line must start with a command: modprobe ignores this one",
                    "options " + " ".join(tokens), head)
        else:
            problem("keyword", f"{cmd!r} is not a modprobe command (the keyword is 'options'): modprobe ignores this line",
                    " ".join(["options"] + tokens[1:]), norm(tokens[1]) if len(tokens) > 1 else "")
        return
    if len(tokens) < 2:
        return
    module = norm(tokens[1])
    if "." in module and "nested" in module:
        mod, _, rest = module.partition(".")
        problem("dotted", f"'{tokens[1]}' is kernel command-line syntax; here modprobe sees a module named "
                f"'{tokens[1]}' and the line does nothing", f"options {mod} {rest}", mod)
        return
    params = tokens[2:]
    if "#" in "".join(params) and any(_is_nested_name(t.split("=")[0]) for t in params[1:]):
        hash_at = next(i for i, t in enumerate(params) if "#" in t)
        if any(_is_nested_name(t.split("=")[0]) for t in params[hash_at:]):
            problem("comment", "modprobe.d has no comments after a command: the words after '#' go to the kernel "
                    "as parameters", "move the comment to a line of its own", module)
    for i, tok in enumerate(params):
        name, eq, value = tok.partition("=")
        if not _is_nested_name(name):
            continue
        if norm(name) != "nested":
            if module in NESTED_MODULES:
                problem("param-name", f"{module} has no parameter '{name}': the kernel ignores it",
                        f"options {module} nested=1", module)
            continue
        spaced = (not eq and i + 1 < len(params) and params[i + 1].startswith("=")) or (eq and not value and i + 1 < len(params))
        if module in NESTED_MODULES:
            state = nested_state(module, value if eq else None)
            settings.append(Setting(path, first, line, module, value if eq else None, state, last))
            if spaced:
                problem("spacing", f"spaces around '=' split the option: the kernel gets {tok!r} (nested {state}) "
                        "and the rest as unknown parameters", f"options {module} nested=1", module)
            elif state == "invalid":
                kind = "a boolean (Y/N, 1/0)" if module == "kvm_intel" else "an integer (1 or 0)"
                problem("value", f"{module}'s nested is {kind}: the kernel rejects {tok!r} and {module} then "
                        "fails to load (no KVM at all)", f"options {module} nested=1", module)
        elif module == "kvm":
            problem("no-such-param", "kvm has no 'nested' parameter (it belongs to kvm_intel or kvm_amd): "
                    "the kernel ignores it", "options kvm_intel nested=1 (Intel) or options kvm_amd nested=1 (AMD)")
        else:
            meant = _near(module, NESTED_MODULES, known)
            if meant:
                problem("module-name", f"there is no module '{tokens[1]}'{hint([meant])}: this line does nothing",
                        f"options {meant} {' '.join(params)}", meant)


def _cmdline(cmdline: str, settings) -> None:
    for tok in cmdline.split():
        if tok == "--":
            break
        head, dot, rest = tok.partition(".")
        module = norm(head)
        name, eq, value = rest.partition("=")
        if dot and module in NESTED_MODULES and norm(name) == "nested":
            val = value if eq else None
            settings.append(Setting(CMDLINE, 0, tok, module, val, nested_state(module, val)))


def _conflicts(settings, problems) -> None:
    for module in NESTED_MODULES:
        mine = [s for s in settings if s.module == module and s.state != "invalid"]
        if len({s.state for s in mine}) < 2:
            continue
        win = mine[-1]
        where = "the kernel command line" if win.file == CMDLINE else f"{win.file} line {win.line}"
        for s in mine:
            if s.state != win.state:
                problems.append(Problem(
                    "conflict", s.file, s.line, s.text,
                    f"sets nested {s.state}, but {where} sets it {win.state} later and the last value wins "
                    "(modprobe reads modprobe.d files in the lexical order of their names)",
                    f"remove this line or make it agree with {where}", module, s.end_line, editable=s.file != CMDLINE))
