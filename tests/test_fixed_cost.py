"""What a command leaves out to start faster changes nothing it does (issue 15, the fixed cost).

`labvirt` (main) builds only the command it is asked for and converts plain option values without
Typer's pydantic adapters. These tests run the real `labvirt` process on the simulator (main()
changes Typer for its own process, so never in pytest's) and compare with what Typer itself does.
No timing here: bench/bench_fixed_cost.py measures.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from labvirt.cli import app, app_for, command_word

from .conftest import run_cli, small_lab


@pytest.mark.parametrize("argv,word", [
    ([], None), (["--help"], None), (["-h", "up"], None), (["up"], "up"), (["up", "--help"], "up"),
    (["-c", "sim", "status"], "status"), (["--connect", "sim", "ip"], "ip"), (["--connect=sim", "ip"], "ip"),
    (["-csim", "plan"], "plan"), (["-c"], None), (["class", "up"], "class"),
    (["--show-completion", "bash"], None),
])
def test_the_command_word_follows_the_global_options(argv, word):
    assert command_word(argv) == word


def names(typer_app):
    from typer.main import get_command_name

    return ({c.name or get_command_name(c.callback.__name__) for c in typer_app.registered_commands}
            | {g.name for g in typer_app.registered_groups})


def test_one_command_is_built_alone_and_everything_else_gets_the_whole_app():
    assert names(app_for(["up", "-C", "x"])) == {"up"}
    assert names(app_for(["-c", "sim", "class", "status"])) == {"class"}
    assert app_for(["--help"]) is app and app_for([]) is app
    assert app_for(["upp"]) is app            # unknown: the full app says "did you mean"
    assert names(app) >= {"up", "status", "ip", "class", "snapshot", "check", "destroy"}
    assert app.registered_commands and len(names(app)) > 10     # the shared app is untouched


def env(tmp_path):
    return {"LABVIRT_STATE_DIR": str(tmp_path / "state")}


def test_up_status_ip_through_the_light_path(tmp_path):
    lab = small_lab(tmp_path)
    up = run_cli("-c", "sim", "up", "-C", lab, "--workers", "3", env=env(tmp_path))
    assert up.returncode == 0, up.stderr
    again = run_cli("up", "-C", lab, "--connect=sim", "--json", env=env(tmp_path))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["actions"] == []        # nothing to do the second time
    status = run_cli("status", "-C", lab, "-c", "sim", "--json", env=env(tmp_path))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["uri"] == "sim"
    ip = run_cli("ip", "-C", lab, "-c", "sim", "--timeout", "1.5", "--json", env=env(tmp_path))
    assert ip.returncode == 0, ip.stderr
    assert {n["node"] for n in json.loads(ip.stdout)["nodes"]} == {"alpha", "beta"}


@pytest.mark.parametrize("value,message", [
    ("0", "greater than or equal to 1"),          # in range is plain; out of range is Typer's check
    ("65", "less than or equal to 64"),
    ("x", "valid integer"),
    ("1.5", "valid integer"),
])
def test_values_that_are_not_plain_get_typers_own_errors(tmp_path, value, message):
    lab = small_lab(tmp_path)
    r = run_cli("up", "-C", lab, "-c", "sim", "--workers", value, env=env(tmp_path))
    assert r.returncode == 2
    assert message in " ".join(r.stderr.split()), r.stderr


def test_an_unknown_command_still_gets_did_you_mean(tmp_path):
    r = run_cli("upp", env=env(tmp_path))
    assert r.returncode == 2 and "Did you mean 'up'" in r.stderr


def test_a_command_imports_neither_pydantic_nor_the_other_commands_click_objects(tmp_path):
    lab = small_lab(tmp_path)
    code = ("import sys\n"
            f"sys.argv = ['labvirt', 'plan', '-C', {lab!r}, '-c', 'sim', '--json']\n"
            "from labvirt.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('PYDANTIC', 'pydantic' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, **env(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "PYDANTIC False"


def test_a_students_list_is_read_without_pydantic_and_means_the_same(tmp_path):
    """`--student` (a list of strings) is plain too: `class rebuild -s s02` must not pay pydantic's import."""
    lab = small_lab(tmp_path, name="fc")
    e = env(tmp_path)
    up = run_cli("class", "up", "-n", "3", "--no-start", "-C", lab, "-c", "sim", env=e)
    assert up.returncode == 0, up.stderr
    code = ("import sys\n"
            f"sys.argv = ['labvirt', 'class', 'snapshot', 'pre', '-s', 's03', '--student', 's01', '-C', {lab!r},"
            " '-c', 'sim']\n"
            "from labvirt.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('PYDANTIC', 'pydantic' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, **e})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "PYDANTIC False"
    assert "2 of 2 students ok" in " ".join(r.stderr.split())
    assert "s01" in r.stderr and "s03" in r.stderr and "s02" not in r.stderr
