"""labvirt.host.nested: `labvirt nested enable|disable` planned as file edits and applied on host roots."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from labvirt.host.facts import read_host
from labvirt.host.nested import OWN_FILE, NestedRefused, apply_nested, plan_nested
from labvirt.host.profiles import profile_root
from labvirt.host.verdict import verdict


def copy_profile(tmp_path, name):
    root = str(tmp_path / name)
    shutil.copytree(profile_root(name), root)
    return root


def text(root, path):
    with open(os.path.join(root, path.lstrip("/"))) as f:
        return f.read()


class Recorder:
    """A stand-in for subprocess.run that records argv lists."""

    def __init__(self, returncode=0, stderr=""):
        self.calls, self.returncode, self.stderr = [], returncode, stderr

    def __call__(self, argv, **kw):
        self.calls.append(argv)
        return subprocess.CompletedProcess(argv, self.returncode, "", self.stderr)


def test_enable_fixes_the_traps_and_is_idempotent(tmp_path):
    root = copy_profile(tmp_path, "intel-no-nested")
    plan = plan_nested(read_host(root), "enable")
    assert [e.path for e in plan.edits] == [OWN_FILE, "/etc/modprobe.d/kvm-intel.conf", "/etc/modprobe.d/kvm.conf"]
    assert "+options kvm_intel nested=1" in plan.diff()
    assert plan.reload == (("modprobe", "-r", "kvm_intel"), ("modprobe", "kvm_intel"))
    assert any("kvm-nested" in n and "left alone" in n for n in plan.notes)
    run = Recorder()
    result = apply_nested(plan, root, run=run)
    assert run.calls == []                                  # never reloads under a host root
    assert any("would run: modprobe -r kvm_intel && modprobe kvm_intel" in m for m in result.messages)
    assert result.nested == "off"                           # the loaded module is unchanged until reloaded
    assert text(root, OWN_FILE).endswith("options kvm_intel nested=1\n")
    # the conflicting line is disabled but its other parameter is kept
    assert text(root, "/etc/modprobe.d/kvm-intel.conf").splitlines()[1:] == [
        "# labvirt nested enable: sets nested off", "# options kvm-intel nested=0 enable_apicv=1",
        "options kvm-intel enable_apicv=1"]
    v = verdict(read_host(root))
    assert v.nested_next_load == "on"
    assert [p.kind for p in v.modprobe.problems] == ["not-conf"]     # modprobe ignores that file anyway
    again = plan_nested(read_host(root), "enable")
    assert again.edits == ()


def test_disable_after_enable(tmp_path):
    root = copy_profile(tmp_path, "intel-nested")
    apply_nested(plan_nested(read_host(root), "enable"), root)
    plan = plan_nested(read_host(root), "disable")
    assert {e.path for e in plan.edits} == {OWN_FILE, "/etc/modprobe.d/kvm.conf"}   # kvm.conf turns it on
    apply_nested(plan, root)
    assert verdict(read_host(root)).nested_next_load == "off"
    assert "options kvm_intel nested=0" in text(root, OWN_FILE)


def test_amd_uses_kvm_amd_and_leaves_the_intel_line_alone(tmp_path):
    root = copy_profile(tmp_path, "amd-nested")
    plan = plan_nested(read_host(root), "enable")
    assert [e.path for e in plan.edits] == [OWN_FILE]
    assert "options kvm_amd nested=1" in plan.edits[0].after
    assert plan.reload == ()                                # already on
    assert any("kvm_intel never loads here" in n for n in plan.notes)


def test_module_not_loaded_is_loaded(tmp_path):
    root = copy_profile(tmp_path, "intel-nested")
    os.remove(os.path.join(root, "proc/modules"))
    shutil.rmtree(os.path.join(root, "sys/module/kvm_intel"))
    plan = plan_nested(read_host(root), "enable")
    assert (plan.current, plan.reload) == ("not loaded", (("modprobe", "kvm_intel"),))


@pytest.mark.parametrize("name, words", [("pvm", "kvm_pvm"), ("no-virt", "neither vmx nor svm")])
def test_refused_without_a_virtualisation_extension(tmp_path, name, words):
    with pytest.raises(NestedRefused, match=words):
        plan_nested(read_host(profile_root(name)), "enable")


def test_refused_without_root_on_the_real_root(tmp_path):
    root = copy_profile(tmp_path, "intel-no-nested")
    plan = plan_nested(read_host(root), "enable")
    with pytest.raises(NestedRefused, match="as root"):
        apply_nested(plan, root, euid=1000, real=True)
    assert not os.path.exists(os.path.join(root, OWN_FILE.lstrip("/")))


@pytest.mark.parametrize("running, refcnt, returncode, reloaded", [
    (0, 0, 0, True),
    (2, 0, 0, False),        # running VMs: say what to do, do not reload
    (None, 1, 0, False),     # libvirt cannot tell, but the module is in use
    (0, 0, 1, False),        # modprobe fails: the error is reported
])
def test_reload_on_the_real_root(tmp_path, running, refcnt, returncode, reloaded):
    root = copy_profile(tmp_path, "intel-no-nested")
    with open(os.path.join(root, "sys/module/kvm_intel/refcnt"), "w") as f:
        f.write(f"{refcnt}\n")
    run = Recorder(returncode, "modprobe: FATAL: Module kvm_intel is in use.")
    plan = plan_nested(read_host(root), "enable")
    result = apply_nested(plan, root, running_vms=running, euid=0, run=run, real=True)
    assert result.reloaded is reloaded
    if running or refcnt:
        assert run.calls == [] and "Shut them down" in result.messages[0]
    elif returncode:
        assert run.calls == [["modprobe", "-r", "kvm_intel"]] and "in use" in result.error
    else:
        assert run.calls == [["modprobe", "-r", "kvm_intel"], ["modprobe", "kvm_intel"]] and not result.error
    assert os.path.exists(os.path.join(root, OWN_FILE.lstrip("/")))    # the files are written in every case
