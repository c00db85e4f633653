"""labvirt.host.modprobe: what modprobe.d does with `nested`, and the traps that look right but are not."""

from __future__ import annotations

import pytest

from labvirt.host.modprobe import logical_lines, nested_state, parse_modprobe, without_nested

E = "/etc/modprobe.d/"


@pytest.mark.parametrize("module, value, state", [
    ("kvm_intel", "1", "on"), ("kvm_intel", "Y", "on"), ("kvm_intel", "y", "on"), ("kvm_intel", "on", "on"),
    ("kvm_intel", "0", "off"), ("kvm_intel", "N", "off"), ("kvm_intel", "off", "off"),
    ("kvm_intel", None, "on"),            # a bare boolean parameter means true
    ("kvm_intel", "true", "invalid"), ("kvm_intel", "", "invalid"),
    ("kvm_amd", "1", "on"), ("kvm_amd", "0", "off"), ("kvm_amd", "0x1", "on"), ("kvm_amd", "2", "on"),
    ("kvm_amd", "Y", "invalid"),          # kvm_amd's nested is an int: Y makes the module fail to load
    ("kvm_amd", None, "invalid"), ("kvm_amd", "1.0", "invalid"),
])
def test_nested_state(module, value, state):
    assert nested_state(module, value) == state


# (files, cmdline, host module) -> (next load for that module, problem kinds in order)
CASES = {
    "nothing": ([], "", "kvm_intel", "default", []),
    "plain on": ([(E + "kvm.conf", "options kvm_intel nested=1\n")], "", "kvm_intel", "on", []),
    "dash in module name is fine": ([(E + "kvm.conf", "options kvm-intel nested=Y\n")], "", "kvm_intel", "on", []),
    "option keyword": ([(E + "kvm.conf", "option kvm_intel nested=1\n")], "", "kvm_intel", "default", ["keyword"]),
    "no keyword": ([(E + "kvm.conf", "kvm_intel nested=1\n")], "", "kvm_intel", "default", ["keyword"]),
    "not .conf": ([(E + "kvm-nested", "options kvm_intel nested=1\n")], "", "kvm_intel", "default", ["not-conf"]),
    ".conf.bak": ([(E + "kvm.conf.bak", "options kvm_intel nested=1\n")], "", "kvm_intel", "default", ["not-conf"]),
    "misspelled module": ([(E + "kvm.conf", "options kvm_itnel nested=1\n")], "", "kvm_intel", "default",
                          ["module-name"]),
    "kvm has no nested": ([(E + "kvm.conf", "options kvm nested=1\n")], "", "kvm_intel", "default",
                          ["no-such-param"]),
    "misspelled parameter": ([(E + "kvm.conf", "options kvm_intel nestd=1\n")], "", "kvm_intel", "default",
                             ["param-name"]),
    "bad bool": ([(E + "kvm.conf", "options kvm_intel nested=true\n")], "", "kvm_intel", "invalid", ["value"]),
    "bad int": ([(E + "kvm.conf", "options kvm_amd nested=Y\n")], "", "kvm_amd", "invalid", ["value"]),
    "spaces around =": ([(E + "kvm.conf", "options kvm_intel nested = 0\n")], "", "kvm_intel", "on", ["spacing"]),
    "command-line syntax": ([(E + "kvm.conf", "options kvm_intel.nested=1\n")], "", "kvm_intel", "default",
                            ["dotted"]),
    "inline comment": ([(E + "kvm.conf", "options kvm_intel nested=1 # nested=0 broke it\n")], "", "kvm_intel",
                       "off", ["comment", "conflict"]),
    "wrong vendor": ([(E + "kvm.conf", "options kvm_intel nested=1\n")], "", "kvm_amd", "default", ["vendor"]),
    "conflict: later file wins": ([(E + "a.conf", "options kvm_intel nested=1\n"),
                                   (E + "b.conf", "options kvm_intel nested=0\n")], "", "kvm_intel", "off",
                                  ["conflict"]),
    "conflict: same file, later line wins": ([(E + "a.conf", "options kvm_intel nested=0\noptions kvm_intel nested=1\n")],
                                             "", "kvm_intel", "on", ["conflict"]),
    "agreeing files are no conflict": ([(E + "a.conf", "options kvm_intel nested=1\n"),
                                        (E + "b.conf", "options kvm_intel nested=Y\n")], "", "kvm_intel", "on", []),
    "kernel command line wins": ([(E + "z.conf", "options kvm_intel nested=1\n")], "quiet kvm-intel.nested=0",
                                 "kvm_intel", "off", ["conflict"]),
    "after -- is init's": ([], "quiet -- kvm_intel.nested=0", "kvm_intel", "default", []),
    "continued line": ([(E + "kvm.conf", "options kvm_intel \\\n  nested=1\n")], "", "kvm_intel", "on", []),
    "commented out": ([(E + "kvm.conf", "# options kvm_intel nested=0\n")], "", "kvm_intel", "default", []),
    "other modules are not ours": ([(E + "x.conf", "options bonding max_bonds=0\nblacklist kvm_intel_x\n")], "",
                                   "kvm_intel", "default", []),
}


@pytest.mark.parametrize("case", CASES)
def test_modprobe_traps(case):
    files, cmdline, module, next_load, kinds = CASES[case]
    config = parse_modprobe(files, cmdline, module)
    assert config.next_load(module) == next_load
    assert [p.kind for p in config.problems] == kinds


def test_lexical_order_across_directories():
    """modprobe sorts by file name regardless of directory: /usr/lib/.../z.conf comes after /etc/.../a.conf."""
    config = parse_modprobe([(E + "a.conf", "options kvm_intel nested=1\n"),
                             ("/usr/lib/modprobe.d/z.conf", "options kvm_intel nested=0\n")], "", "kvm_intel")
    assert config.files == (E + "a.conf", "/usr/lib/modprobe.d/z.conf")
    assert config.winner("kvm_intel").file == "/usr/lib/modprobe.d/z.conf"
    (conflict,) = config.problems
    assert conflict.file == E + "a.conf" and "/usr/lib/modprobe.d/z.conf line 1" in conflict.why


def test_same_name_in_etc_hides_the_lib_file():
    config = parse_modprobe([(E + "kvm.conf", "options kvm_intel nested=1\n"),
                             ("/lib/modprobe.d/kvm.conf", "options kvm_intel nested=0\n")], "", "kvm_intel")
    assert config.files == (E + "kvm.conf",)
    assert config.next_load("kvm_intel") == "on"
    assert [(p.kind, p.file, p.editable) for p in config.problems] == [("shadowed", "/lib/modprobe.d/kvm.conf", False)]


def test_identical_copies_through_a_symlinked_lib_are_not_reported():
    text = "options kvm_intel nested=1\n"
    config = parse_modprobe([("/usr/lib/modprobe.d/kvm.conf", text), ("/lib/modprobe.d/kvm.conf", text)], "", "kvm_intel")
    assert config.problems == ()


def test_problem_names_file_line_and_fix():
    config = parse_modprobe([(E + "kvm.conf", "# a comment\n\noption kvm_intel nested=Y\n")], "", "kvm_intel")
    (p,) = config.problems
    assert (p.file, p.line, p.text) == (E + "kvm.conf", 3, "option kvm_intel nested=Y")
    assert p.fix == "options kvm_intel nested=Y"
    assert "'options'" in p.why


def test_loaded_modules_are_not_misspellings():
    files = [(E + "x.conf", "options kvm_intelx nested=1\n")]
    assert [p.kind for p in parse_modprobe(files, "", "kvm_intel").problems] == ["module-name"]
    assert parse_modprobe(files, "", "kvm_intel", known_modules=("kvm_intelx",)).problems == ()


def test_logical_lines_join_continuations_like_kmod():
    text = "# c\noptions kvm_intel \\\n nested=1\n\n  blacklist x\noptions a nes\\\nted=1\n"
    assert list(logical_lines(text)) == [(2, 3, "options kvm_intel  nested=1"), (5, 5, "blacklist x"),
                                         (6, 7, "options a nested=1")]


@pytest.mark.parametrize("line, rest", [
    ("options kvm_intel nested=1", None),
    ("options kvm_intel nested=0 enable_apicv=1", "options kvm_intel enable_apicv=1"),
    ("options kvm_intel nested = 1 ept=1", "options kvm_intel ept=1"),
    ("options kvm_intel nested= 1 ept=1", "options kvm_intel ept=1"),
    ("options kvm_intel ept=1 nested =1", "options kvm_intel ept=1"),
    ("options kvm_intel nestd=1 ept=0", "options kvm_intel ept=0"),
])
def test_without_nested(line, rest):
    assert without_nested(line) == rest
