"""virt-builder/virt-customize argv, environment, the root password file and the output streaming."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from labvirt.driver import virt_builder as builder
from labvirt.driver.virt_builder import (build_commands, builder_argv, builder_env, error_lines, guestfs_needs_tcg,
                             read_password, root_password_file, root_password_hash, run_builder,
                             show_root_password, size_arg)
from labvirt.core.crypt import sha512_crypt
from labvirt.core.desired import HostParams, desire
from labvirt.core.errors import DriverError, NotFoundError, SpecError
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.spec import ImageSpec

from .conftest import EXAMPLES

GiB = 1024**3


@pytest.fixture
def centos7():
    return next(i for i in load_lab(EXAMPLES["standard"]).images if i.name == "centos7")


@pytest.fixture
def stream9():
    return next(i for i in load_lab(EXAMPLES["standard"]).images if i.name == "centos-stream9")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# -- the root password ------------------------------------------------------------------------
def test_random_password_is_generated_once_per_lab_copy_0600(centos7, state_dir):
    path = root_password_file(centos7, "openstack")
    assert path.startswith(str(state_dir)) and mode(path) == 0o600
    assert mode(os.path.dirname(path)) == 0o700
    password = read_password(path)
    assert len(password) == 16 and password.isalnum()
    assert root_password_file(centos7, "openstack") == path and read_password(path) == password
    other = root_password_file(centos7, "openstack", "alice")
    assert other != path and read_password(other) != password
    assert show_root_password("openstack") == password
    assert show_root_password("openstack", "alice") == read_password(other)


def test_no_password_in_recipe_means_random(centos7):
    recipe = ImageSpec(name="x", size=GiB, template="centos-7.5")
    assert mode(root_password_file(recipe, "lab")) == 0o600


def test_show_password_when_none_was_generated():
    with pytest.raises(NotFoundError):
        show_root_password("never-built")


def test_file_password_must_be_private(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    recipe = ImageSpec(name="x", size=GiB, template="t", root_password=f"file:{secret}", file=str(tmp_path / "x.toml"))
    with pytest.raises(SpecError, match="chmod 600"):
        root_password_file(recipe, "lab")
    secret.chmod(0o600)
    assert root_password_file(recipe, "lab") == str(secret)
    relative = ImageSpec(name="x", size=GiB, template="t", root_password="file:pw", file=str(tmp_path / "x.toml"))
    assert root_password_file(relative, "lab") == str(secret)
    missing = ImageSpec(name="x", size=GiB, template="t", root_password="file:/nonexistent/pw", file="x.toml")
    with pytest.raises(SpecError, match="no such file"):
        root_password_file(missing, "lab")


def test_tampered_state_file_is_refused(centos7):
    path = root_password_file(centos7, "lab")
    os.chmod(path, 0o644)
    with pytest.raises(DriverError, match="readable by others"):
        root_password_file(centos7, "lab")


def test_password_hash_for_the_seed(centos7):
    path = root_password_file(centos7, "lab")
    h = root_password_hash(path)
    salt = h.split("$")[2]
    assert h == sha512_crypt(read_password(path), salt) and read_password(path) not in h


# -- argv -------------------------------------------------------------------------------------
def test_builder_argv_for_the_course_image(centos7):
    path = root_password_file(centos7, "openstack")
    argv = builder_argv(centos7, "/pool/_images/centos7.qcow2", path)
    password = read_password(path)
    assert not any(password in a for a in argv)
    assert argv[:8] == ["virt-builder", "centos-7.5", "--output", "/pool/_images/centos7.qcow2",
                        "--format", "qcow2", "--size", "40G"]
    i = argv.index("--root-password")
    assert argv[i + 1] == f"file:{path}" and argv[i + 2:i + 4] == ["--password-crypto", "sha512"]
    assert argv[argv.index("--install") + 1] == "cloud-init,qemu-guest-agent"
    runs = [argv[j + 1] for j, a in enumerate(argv) if a == "--run-command"]
    vault = runs.pop(0)                 # the template's repositories set aside (see test_repositories.py)
    assert vault.startswith("mkdir -p /etc/yum.repos.d.labvirt-set-aside")
    assert runs == ["grub2-mkconfig -o /boot/grub2/grub.cfg",
                    "if command -v grubby >/dev/null 2>&1; then grubby --update-kernel=ALL "
                    "--args='net.ifnames=0 biosdevname=0'; fi",
                    "systemctl disable NetworkManager", "systemctl disable firewalld"]
    edits = [argv[j + 1] for j, a in enumerate(argv) if a == "--edit"]
    assert edits == ['/etc/default/grub:s{^GRUB_CMDLINE_LINUX="}{GRUB_CMDLINE_LINUX="net.ifnames=0 biosdevname=0 }',
                     "/etc/selinux/config:s/^SELINUX=.*/SELINUX=permissive/"]
    assert argv[-1] == "--selinux-relabel"
    assert "--no-network" not in argv and "--source" not in argv      # no local repository: the configured ones


def test_builder_argv_for_the_default_image(stream9):
    """centos-stream9: RDO Epoxy's release package with the first --install, packstack after CRB is on."""
    argv = builder_argv(stream9, "/pool/_images/c9.qcow2", "/state/pw")
    assert argv[:8] == ["virt-builder", "centosstream-9", "--output", "/pool/_images/c9.qcow2",
                        "--format", "qcow2", "--size", "40G"]
    packages = argv[argv.index("--install") + 1].split(",")
    assert {"cloud-init", "qemu-guest-agent", "centos-release-openstack-epoxy", "dnf-plugins-core"} == set(packages)
    runs = [argv[j + 1] for j, a in enumerate(argv) if a == "--run-command"]
    assert runs[:2] == ["dnf config-manager --set-enabled crb", "dnf -y install openstack-packstack"]
    assert argv.index("--install") < argv.index("dnf -y install openstack-packstack")
    assert "systemctl disable firewalld" in runs and "systemctl disable NetworkManager" not in runs
    assert "--write" not in argv and "--delete" not in argv      # no repository overrides: the template's own


def test_write_run_keys_and_hostname():
    recipe = ImageSpec(name="x", size=3 * 1024**2 + 512, template="t", ssh_keys=("ssh-ed25519 AAAA k@h", "/keys/id.pub"),
                       write=(("/etc/motd", "hello: world\n"),), run=("touch /x",), kernel_args=("a=$x@{}",))
    argv = builder_argv(recipe, "out.qcow2", "/pw", hostname="node1")
    assert argv[argv.index("--size") + 1] == f"{3 * 1024**2 + 512}b"
    assert argv[argv.index("--hostname") + 1] == "node1"
    assert [argv[j + 1] for j, a in enumerate(argv) if a == "--ssh-inject"] == [
        "root:string:ssh-ed25519 AAAA k@h", "root:file:/keys/id.pub"]
    assert argv[argv.index("--write") + 1] == "/etc/motd:hello: world\n"
    assert r'GRUB_CMDLINE_LINUX="a=\$x\@\{\} }' in argv[argv.index("--edit") + 1]


@pytest.mark.parametrize("size, text", [(40 * GiB, "40G"), (2 * 1024**4, "2T"), (1536 * 1024**2, "1536M"),
                                        (64 * 1024**2, "64M"), (1025, "1025b")])
def test_size_arg(size, text):
    assert size_arg(size) == text


def test_local_repository_makes_it_offline(tmp_path, centos7):
    repo = tmp_path / "repo"
    repo.mkdir()
    recipe = ImageSpec(name="t", size=GiB, template="tiny", repository=str(repo))
    argv = builder_argv(recipe, "o.qcow2", "/pw")
    assert argv[argv.index("--source") + 1] == f"file://{repo}/index"
    assert {"--no-network", "--no-check-signature", "--no-cache"} <= set(argv)
    # an option overrides the recipe (and a recipe's relative path is relative to its file)
    argv = builder_argv(centos7, "o.qcow2", "/pw", repository=f"file://{repo}/index")
    assert argv[argv.index("--source") + 1] == f"file://{repo}/index"
    (tmp_path / "images" / "repo").mkdir(parents=True)
    rel = ImageSpec(name="t", size=GiB, template="tiny", repository="repo", file=str(tmp_path / "images" / "t.toml"))
    argv = builder_argv(rel, "o", "/pw")
    assert argv[argv.index("--source") + 1] == f"file://{tmp_path}/images/repo/index"
    with pytest.raises(SpecError, match="only a local repository"):
        builder_argv(ImageSpec(name="t", size=GiB, template="x", repository="https://example.com/index"), "o", "/pw")


def test_local_repository_env(tmp_path):
    recipe = ImageSpec(name="t", size=GiB, template="tiny", repository=str(tmp_path))
    env = builder_env(recipe, str(tmp_path / "work"), environ={"PATH": "/usr/bin", "LIBGUESTFS_BACKEND": "direct"})
    assert env["VIRT_BUILDER_DIRS"] == str(tmp_path / "work" / "system-config")
    assert env["XDG_CONFIG_HOME"] == str(tmp_path / "work" / "user-config")
    for var in ("VIRT_BUILDER_DIRS", "XDG_CONFIG_HOME"):
        assert os.path.isdir(env[var]) and os.listdir(env[var]) == []     # no repos.d: no remote repository
    assert env["PATH"] == "/usr/bin" and "LIBGUESTFS_BACKEND_SETTINGS" not in env
    plain = builder_env(ImageSpec(name="t", size=GiB, template="x"), str(tmp_path / "w2"),
                        environ={"LIBGUESTFS_BACKEND": "libvirt"})
    assert "VIRT_BUILDER_DIRS" not in plain and "XDG_CONFIG_HOME" not in plain


@pytest.mark.parametrize("env, pvm, flags, expected", [
    ({}, True, "vmx", True),                          # PVM guest: KVM does not work for the appliance
    ({}, False, "fpu vme sse2", True),                # no vmx/svm
    ({}, False, "fpu vmx sse2", False),
    ({}, False, "fpu svm", False),
    ({"LIBGUESTFS_BACKEND": "direct"}, True, "", False),   # the environment decided already
])
def test_guestfs_needs_tcg(tmp_path, env, pvm, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    pvm_path = tmp_path / "kvm_pvm"
    if pvm:
        pvm_path.mkdir()
    assert guestfs_needs_tcg(env, pvm=str(pvm_path), cpuinfo=str(cpuinfo)) is expected


def test_tcg_env_is_set_when_needed(tmp_path, monkeypatch):
    monkeypatch.setattr(builder, "guestfs_needs_tcg", lambda env: True)
    env = builder_env(ImageSpec(name="t", size=GiB, template="x"), str(tmp_path), environ={})
    assert env["LIBGUESTFS_BACKEND"] == "direct" and env["LIBGUESTFS_BACKEND_SETTINGS"] == "force_tcg"


def test_build_commands_for_a_local_cloud_image():
    recipe = ImageSpec(name="c", size=20 * GiB, source_file="/images/CentOS-7.qcow2", ssh_keys=("ssh-rsa AAA k",))
    convert, resize, customize = build_commands(recipe, "/pool/c.qcow2", "/state/pw")
    assert convert == ["qemu-img", "convert", "-O", "qcow2", "/images/CentOS-7.qcow2", "/pool/c.qcow2"]
    assert resize == ["qemu-img", "resize", "-f", "qcow2", "/pool/c.qcow2", str(20 * GiB)]
    assert customize[:6] == ["virt-customize", "--format", "qcow2", "--add", "/pool/c.qcow2", "--no-network"]
    assert "file:/state/pw" in customize
    with pytest.raises(ValueError):
        builder_argv(recipe, "o", "/pw")


def test_build_commands_for_a_template(centos7):
    assert build_commands(centos7, "o", "/pw") == [builder_argv(centos7, "o", "/pw")]


# -- running ----------------------------------------------------------------------------------
FAKE = """
import sys, time
print("[   0.1] Downloading: file:///repo/index", flush=True)
sys.stderr.write("[   1.0] Opening the new disk\\r[   1.5] still opening\\n"); sys.stderr.flush()
if sys.argv[1] == "fail":
    sys.stderr.write("virt-builder: error: libguestfs error: could not create appliance through \\n"
                     "libvirt.\\n\\nTry running qemu directly without libvirt using this environment "
                     "variable:\\nexport LIBGUESTFS_BACKEND=direct\\n\\n"
                     "If reporting bugs, run virt-builder with debugging enabled and include the \\n"
                     "complete output:\\n\\n  virt-builder -v -x [...]\\n")
    sys.exit(1)
if sys.argv[1] == "noise":
    for i in range(40):
        print(f"line {i}")
    sys.exit(3)
print("done")
"""


def fake(*args):
    return [sys.executable, "-c", FAKE, *args]


def test_run_builder_streams_lines():
    lines = []
    run_builder(fake("ok"), None, lines.append)
    assert lines == ["[   0.1] Downloading: file:///repo/index", "[   1.0] Opening the new disk",
                     "[   1.5] still opening", "done"]


def test_run_builder_passes_lines_on_while_the_tool_runs(tmp_path):
    """The tool waits for a file that only the callback for its first line creates: if lines were
    delivered at the end, it would give up and fail."""
    flag = tmp_path / "seen"
    script = ("import os, sys, time\n"
              "print('first', flush=True)\n"
              "for _ in range(1000):\n"
              "    if os.path.exists(sys.argv[1]): print('second'); sys.exit(0)\n"
              "    time.sleep(0.01)\n"
              "sys.exit('virt-builder: error: first line was not delivered live')\n")
    lines = []

    def on_line(line):
        lines.append(line)
        flag.touch()

    run_builder([sys.executable, "-c", script, str(flag)], None, on_line)
    assert lines == ["first", "second"]


def test_run_builder_raises_the_tools_own_error_lines():
    lines = []
    with pytest.raises(DriverError) as err:
        run_builder(fake("fail"), dict(os.environ), lines.append)
    message = str(err.value)
    assert "failed (exit 1)" in message
    assert "virt-builder: error: libguestfs error: could not create appliance" in message
    assert "export LIBGUESTFS_BACKEND=direct" in message
    assert "If reporting bugs" not in message and "Traceback" not in message
    assert lines[0].startswith("[   0.1]")


def test_run_builder_without_an_error_line_shows_the_last_lines():
    with pytest.raises(DriverError) as err:
        run_builder(fake("noise"), None, lambda line: None)
    assert "failed (exit 3)" in str(err.value) and "line 39" in str(err.value) and "line 20" not in str(err.value)


def test_run_builder_missing_tool():
    with pytest.raises(DriverError, match="install libguestfs-tools"):
        run_builder(["/nonexistent/virt-builder"], None, print)


def test_error_lines_keeps_only_the_error():
    assert error_lines(["[  1.0] x", "virt-customize: error: no such file", "", "If reporting bugs, ..."]) == [
        "virt-customize: error: no such file"]
