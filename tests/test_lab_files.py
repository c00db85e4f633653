"""Lab files as they arrive from editors: other encodings, binary files, editors' leftovers, typos in
required keys. Each is refused in one line naming the file (exit 2) or, for leftovers, ignored."""

from __future__ import annotations

import os

import pytest

from labvirt.core.errors import SpecError
from labvirt.core.loader import is_lab_file, load_lab

from .conftest import run_cli
from .test_loader import CONTROLLER, make


def _refusal(directory) -> SpecError:
    with pytest.raises(SpecError) as e:
        load_lab(directory)
    assert "\n" not in str(e.value)
    return e.value


def test_lab_toml_in_latin1_is_refused_with_where_and_what_to_do(tmp_path):
    directory = make(tmp_path)
    path = os.path.join(directory, "lab.toml")
    with open(path, "ab") as f:
        f.write('description = "Cours d\'été"\n'.encode("latin-1"))
    e = _refusal(directory)
    assert e.file == path
    assert e.problem.startswith("not UTF-8 text (byte 0xe9 at line 3, column 24)"), e.problem
    assert "save it again as UTF-8" in e.problem


def test_binary_file_in_domains_is_refused_by_name(tmp_path):
    directory = make(tmp_path)
    path = os.path.join(directory, "domains", "logo.toml")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    e = _refusal(directory)
    assert e.file == path and "not UTF-8 text (byte 0x89 at line 1, column 1)" in e.problem
    assert "move it out of the lab directory if it is not a lab file" in e.problem


def test_undecodable_file_exits_2_with_one_line(tmp_path):
    directory = make(tmp_path)
    with open(os.path.join(directory, "domains", "compute1.toml"), "ab") as f:
        f.write(b"# \xff\xfe\n")
    r = run_cli("plan", "-C", directory, "--offline")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "compute1.toml: not UTF-8 text" in lines[0] and "Traceback" not in r.stderr


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    """Windows editors write one; TOML's parser would call the file invalid at line 1, column 1."""
    directory = make(tmp_path)
    path = os.path.join(directory, "domains", "controller.toml")
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + CONTROLLER.encode())
    assert load_lab(directory).node("controller").vcpus == 4


LEFTOVERS = [".#controller.toml", "#controller.toml#", "controller.toml~", ".controller.toml.swp",
             "controller.toml.bak", "controller.toml.orig", ".hidden.toml", "#scratch.toml"]


@pytest.mark.parametrize("name", LEFTOVERS)
def test_leftover_names_are_not_lab_files(name):
    assert not is_lab_file(name)


def test_editor_leftovers_do_not_break_loading(tmp_path):
    directory = make(tmp_path)
    before = load_lab(directory)
    for sub in ("domains", "networks"):
        folder = os.path.join(directory, sub)
        # emacs' lock file is a dangling symlink (user@host.pid); its backup and autosave, vim's swap file
        os.symlink("someone@host.4242:1700000000", os.path.join(folder, ".#controller.toml"))
        for name in LEFTOVERS[1:]:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(b"\x00\xff not toml [[[")
    assert load_lab(directory) == before


def test_a_mistyped_required_key_is_pointed_at(tmp_path):
    directory = make(tmp_path, nodes={"controller": CONTROLLER.replace("memory =", "memroy =")})
    e = _refusal(directory)
    assert (e.field, e.problem) == ("memory", "missing required field; 'memroy' is not a known key "
                                              "(did you mean 'memory'?)")


def test_a_mistyped_required_table_is_pointed_at(tmp_path):
    directory = make(tmp_path)
    path = os.path.join(directory, "lab.toml")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("[lab]", "[lba]"))
    e = _refusal(directory)
    assert str(e) == f"{path}: lab: missing required field; 'lba' is not a known key (did you mean 'lab'?)"


def test_a_missing_required_key_without_a_lookalike_says_only_that(tmp_path):
    directory = make(tmp_path, nodes={"controller": CONTROLLER.replace('memory = "8GiB"\n', 'colour = "blue"\n')})
    assert _refusal(directory).problem == "missing required field"
