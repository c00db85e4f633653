"""Conventions a libvirt user brings: `labvirt -c URI CMD` like `virsh -c URI CMD`, and shell completion.

The connection tests run on the simulator (`sim`, kept in the test's own state directory); a URI
naming a simulated host that does not exist (`sim:///nosuch`) shows which URI a command used, because
opening it fails with a message naming it.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from labvirt.cli import app
from labvirt.core.errors import LabvirtError

from .conftest import run_cli, small_lab

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def plan_uri(result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)["host"]["uri"]


# -- --connect before the command ------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["-c", "--connect"])
def test_connect_before_the_command_is_used_by_it(tmp_path, flag):
    lab = small_lab(tmp_path)
    assert plan_uri(invoke(flag, "sim", "plan", "-C", lab, "--json")) == "sim"


def test_connect_after_the_command_still_works(tmp_path):
    lab = small_lab(tmp_path)
    assert plan_uri(invoke("plan", "-C", lab, "--json", "--connect", "sim")) == "sim"


def test_the_commands_own_connect_wins_over_the_global_one(tmp_path):
    lab = small_lab(tmp_path)
    assert plan_uri(invoke("-c", "sim:///nosuch", "plan", "-C", lab, "-c", "sim", "--json")) == "sim"


def test_the_global_connect_is_not_dropped_for_a_bad_uri(tmp_path):
    lab = small_lab(tmp_path)
    result = invoke("-c", "sim:///nosuch", "plan", "-C", lab, "--json")
    assert isinstance(result.exception, LabvirtError) and "'nosuch'" in str(result.exception)


def test_the_global_connect_beats_libvirt_default_uri(tmp_path):
    lab = small_lab(tmp_path)
    result = invoke("-c", "sim", "plan", "-C", lab, "--json", env={"LIBVIRT_DEFAULT_URI": "sim:///nosuch"})
    assert plan_uri(result) == "sim"


def test_the_global_connect_reaches_commands_inside_groups(tmp_path):
    lab = small_lab(tmp_path)
    result = invoke("-c", "sim:///nosuch", "snapshot", "list", "-C", lab, "--json")
    assert isinstance(result.exception, LabvirtError) and "'nosuch'" in str(result.exception)
    result = invoke("-c", "sim", "snapshot", "list", "-C", lab, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["snapshots"] == []


def test_connect_before_the_command_in_a_real_process(tmp_path):
    lab = small_lab(tmp_path)
    r = run_cli("--connect", "sim", "up", "-C", lab)
    assert r.returncode == 0, r.stderr
    r = run_cli("-c", "sim", "status", "-C", lab, "--json")
    assert r.returncode == 0, r.stderr
    assert {n["name"]: n["state"] for n in json.loads(r.stdout)["nodes"]} == {"alpha": "running", "beta": "running"}
    r = run_cli("-c", "sim:///nosuch", "destroy", "-C", lab)
    assert r.returncode == 1 and "'nosuch'" in r.stderr and "No such option" not in r.stderr
    r = run_cli("-c", "sim:///nosuch", "destroy", "-C", lab, "-c", "sim")
    assert r.returncode == 0, r.stderr


# -- shell completion --------------------------------------------------------------------------------
SCRIPT_MARK = {
    "bash": "complete -o default -F _labvirt_completion labvirt",
    "zsh": "compdef _labvirt_completion labvirt",
    "fish": "complete --command labvirt",
}


@pytest.mark.parametrize("shell", sorted(SCRIPT_MARK))
def test_show_completion_prints_the_script_for_the_named_shell(shell):
    result = invoke("--show-completion", shell)
    assert result.exit_code == 0, result.output
    assert SCRIPT_MARK[shell] in result.stdout and "_LABVIRT_COMPLETE=complete_" + shell in result.stdout


def test_show_completion_in_a_real_process_names_the_installed_command():
    r = run_cli("--show-completion", "bash")      # python -m labvirt: the script still completes `labvirt`
    assert r.returncode == 0 and SCRIPT_MARK["bash"] in r.stdout and r.stderr == ""


def test_an_unsupported_shell_is_refused():
    result = invoke("--show-completion", "tcsh")
    assert result.exit_code == 2 and "tcsh" in result.output


def _complete(shell: str, line: str, cword: int | None = None):
    env = {"_LABVIRT_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        env.update(COMP_WORDS=line, COMP_CWORD=str(cword))
    else:
        env["_TYPER_COMPLETE_ARGS"] = line
        if shell == "fish":
            env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    r = run_cli(env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_scripts_get_candidates_in_their_own_format():
    # what the installed scripts run on <TAB>; click's own formats (`plain,up`) would break them
    assert _complete("bash", "labvirt u", 1).split() == ["up"]
    assert _complete("bash", "labvirt -c sim class re", 4).split() == ["revert", "rebuild"]
    assert '"snapshot":"Whole-lab snapshots' in _complete("zsh", "labvirt sn")
    fish = _complete("fish", "labvirt snapshot ").splitlines()
    assert [line.split("\t")[0] for line in fish] == ["create", "list", "revert", "delete"]


INSTALLED = {
    "bash": (".bash_completions/labvirt.sh", ".bashrc"),
    "zsh": (".zfunc/_labvirt", ".zshrc"),
    "fish": (".config/fish/completions/labvirt.fish", None),
}


@pytest.mark.parametrize("shell", sorted(INSTALLED))
def test_install_completion_writes_into_home_once(tmp_path, shell):
    home = tmp_path / "home"
    home.mkdir()
    for _ in range(2):
        r = run_cli("--install-completion", shell, env={"HOME": str(home)})
        assert r.returncode == 0, r.stderr
        assert f"{shell} completion for labvirt installed" in r.stderr and r.stdout == ""
    script, rc = INSTALLED[shell]
    assert SCRIPT_MARK[shell] in (home / script).read_text()
    if rc:
        lines = [line for line in (home / rc).read_text().splitlines() if line.strip()]
        assert any(script.split("/")[0] in line for line in lines), lines
        assert len(lines) == len(set(lines)), f"installed twice: {lines}"
