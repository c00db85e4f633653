"""Can this host build golden images? labvirt.host.imagebuild (pure findings) over
labvirt.host.appliance (what libguestfs' appliance is built from, and the libguestfs-test-tool probe).

Host roots are small directory trees written here; the probe's subprocess is replaced by a recorded
answer only in the cache tests (no libvirt driver can stand in for libguestfs-test-tool); the last
tests run the real libguestfs-test-tool and `labvirt check` on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from labvirt.host.appliance import cache_path, cached_probe, dpkg_version, probe_appliance, read_appliance
from labvirt.host.findings import FAIL, OK, WARN
from labvirt.host.imagebuild import (ApplianceFacts, ImageNeeds, Kernel, ProbeResult, appliance_ready, image_findings,
                                     image_needs, probe_reason, template_filesystem)

from .conftest import ROOT, run_cli, write_lab

GUESTFS = "/usr/lib/x86_64-linux-gnu/guestfs"


@pytest.mark.parametrize("template, fs", [
    ("centos-7.5", "xfs"), ("centos-7.8", "xfs"), ("centos-8.2", "xfs"), ("centos-7.5-aarch64", "xfs"),
    ("centosstream-9", "xfs"), ("alma-8.5", "xfs"), ("rhel-9.4", "xfs"), ("rhel-7.9", "xfs"),
    ("fedora-26", "xfs"), ("fedora-40", "xfs"),
    ("centos-6", "ext4"), ("rhel-6.10", "ext4"), ("debian-12", "ext4"), ("ubuntu-22.04", "ext4"),
    ("fedora-20", None), ("tiny", None), ("opensuse-42.1", None), ("", None), ("freebsd-11.1", None),
])
def test_template_filesystem(template, fs):
    assert template_filesystem(template) == fs


# -- the reader, on host trees --------------------------------------------------------------------
def tree(root, files):
    for path, text in files.items():
        full = os.path.join(str(root), path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return str(root)


DEBIAN = {f"{GUESTFS}/supermin.d/packages": "acl\nbash\n", "/boot/vmlinuz-6.1.0-57-amd64": "k",
          "/lib/modules/6.1.0-57-amd64/modules.dep": ""}
STATUS = ("Package: libguestfs0\nStatus: install ok installed\nVersion: 1:1.48.6-2\n\n"
          "Package: libguestfs-xfs\nStatus: deinstall ok config-files\nVersion: 1:1.48.6-2\n")


@pytest.mark.parametrize("files, env, want", [
    ({}, {}, {"guestfs_dir": "", "kernel": None}),
    (DEBIAN, {}, {"guestfs_dir": GUESTFS, "kernel": "/boot/vmlinuz-6.1.0-57-amd64", "xfs_packages": False}),
    # a kernel whose modules are missing does not count (supermin needs modules.dep)
    ({**DEBIAN, "/lib/modules/6.1.0-57-amd64/modules.dep": None}, {}, {"kernel": None,
                                                                       "boot_files": ("vmlinuz-6.1.0-57-amd64",)}),
    # the newest by version, not by string; xen kernels never
    ({**DEBIAN, "/boot/vmlinuz-6.1.0-10-amd64": "k", "/lib/modules/6.1.0-10-amd64/modules.dep": "",
      "/boot/vmlinuz-6.1.0-9-amd64": "k", "/lib/modules/6.1.0-9-amd64/modules.dep": "",
      "/boot/vmlinuz-6.1.0-99-xen-amd64": "k", "/lib/modules/6.1.0-99-xen-amd64/modules.dep": ""},
     {}, {"kernel": "/boot/vmlinuz-6.1.0-57-amd64"}),
    # another architecture's kernel only when none of this one's is there
    ({"/boot/vmlinuz-5.10-arm64": "k", "/lib/modules/5.10-arm64/modules.dep": ""}, {},
     {"kernel": "/boot/vmlinuz-5.10-arm64"}),
    # Fedora style: /lib/modules/VERSION/vmlinuz wins over /boot
    ({**DEBIAN, "/lib/modules/6.5.0-1.fc39.x86_64/vmlinuz": "k"}, {},
     {"kernel": "/lib/modules/6.5.0-1.fc39.x86_64/vmlinuz"}),
    (DEBIAN, {"SUPERMIN_KERNEL": "/opt/vmlinuz-custom", "SUPERMIN_KERNEL_VERSION": "6.9"},
     {"kernel": "/opt/vmlinuz-custom", "kernel_readable": False}),
    ({**DEBIAN, f"{GUESTFS}/supermin.d/packages-xfs": "xfsprogs\n", "/usr/sbin/mkfs.xfs": "#!"}, {},
     {"xfs_packages": True, "xfs_tools": True}),
    ({**DEBIAN, f"{GUESTFS}/supermin.d/packages-xfs": "xfsprogs\n"}, {}, {"xfs_packages": True, "xfs_tools": False}),
    ({**DEBIAN, "/var/lib/dpkg/status": STATUS}, {}, {"libguestfs": "1:1.48.6-2"}),
    ({**DEBIAN, "/opt/appliance/README.fixed": ""}, {"LIBGUESTFS_PATH": "/opt/appliance"},
     {"fixed_appliance": "/opt/appliance"}),
])
def test_read_appliance_on_host_trees(tmp_path, files, env, want):
    root = tree(tmp_path, {k: v for k, v in files.items() if v is not None})
    a = read_appliance(root, env, arch="x86_64")
    got = {"guestfs_dir": a.guestfs_dir, "kernel": a.kernel.path if a.kernel else None,
           "kernel_readable": a.kernel.readable if a.kernel else None, "boot_files": a.boot_files,
           "xfs_packages": a.xfs_packages, "xfs_tools": a.xfs_tools, "libguestfs": a.libguestfs,
           "fixed_appliance": a.fixed_appliance}
    assert {k: got[k] for k in want} == want


def test_dpkg_version_only_counts_installed_packages():
    assert dpkg_version(STATUS, "libguestfs0") == "1:1.48.6-2"
    assert dpkg_version(STATUS, "libguestfs-xfs") == ""
    assert dpkg_version("", "libguestfs0") == ""


# -- the findings, on fake facts ------------------------------------------------------------------
KERNEL = Kernel("/boot/vmlinuz-6.1.0-57-amd64", "6.1.0-57-amd64", "/lib/modules/6.1.0-57-amd64", True)
READY = ApplianceFacts(libguestfs="1:1.48.6-2", guestfs_dir=GUESTFS, kernel=KERNEL, xfs_packages=True, xfs_tools=True)
NO_KERNEL = ApplianceFacts(guestfs_dir=GUESTFS, boot_files=("vmlinuz-6.1.0-57-amd64",))
NO_XFS = ApplianceFacts(guestfs_dir=GUESTFS, kernel=KERNEL)
CENTOS = ImageNeeds((("centos7", "centos-7.5"),))
DEBIAN_IMAGE = ImageNeeds((("deb", "debian-12"),))
NOTHING = ImageNeeds()
FAILED = ProbeResult(False, "supermin: failed to find a suitable kernel (host_cpu=x86_64).")


@pytest.mark.parametrize("facts, needs, builder, probe, want", [
    # (a) no virt-builder: blocks a lab with recipes, says nothing otherwise (the tool row warns)
    (READY, CENTOS, False, None, {"image-build": (FAIL, "apt-get install libguestfs-tools")}),
    (READY, NOTHING, False, None, {}),
    # (b) no kernel: supermin cannot build the appliance
    (NO_KERNEL, CENTOS, True, None, {"appliance-kernel": (FAIL, "apt-get install linux-image-amd64"),
                                     "image-xfs-centos7": (FAIL, "apt-get install libguestfs-xfs")}),
    (NO_KERNEL, NOTHING, True, None, {"appliance-kernel": (WARN, "apt-get install linux-image-amd64")}),
    (ApplianceFacts(guestfs_dir=GUESTFS, kernel=Kernel("/boot/vmlinuz-x", "x", "/lib/modules/x", False)), NOTHING,
     True, None, {"appliance-kernel": (WARN, "run as root, or: chmod 0644 /boot/vmlinuz-x")}),
    (ApplianceFacts(), CENTOS, True, None, {"appliance": (FAIL, "apt-get install --reinstall libguestfs0")}),
    # (b) the probe's own reason
    (READY, CENTOS, True, FAILED, {"appliance-kernel": (OK, ""), "appliance": (FAIL, "run libguestfs-test-tool for "
                                                                               "the whole story"),
                                   "image-xfs-centos7": (OK, "")}),
    (READY, CENTOS, True, ProbeResult(True, "passed", 24.0), {"appliance-kernel": (OK, ""), "appliance": (OK, ""),
                                                               "image-xfs-centos7": (OK, "")}),
    # (c) xfs template, no xfs in libguestfs: only for xfs templates the lab uses
    (NO_XFS, CENTOS, True, None, {"appliance-kernel": (OK, ""), "image-xfs-centos7": (FAIL, "apt-get install "
                                                                                       "libguestfs-xfs")}),
    (NO_XFS, DEBIAN_IMAGE, True, None, {"appliance-kernel": (OK, "")}),
    (ApplianceFacts(guestfs_dir=GUESTFS, kernel=KERNEL, xfs_packages=True), CENTOS, True, None,
     {"appliance-kernel": (OK, ""), "image-xfs-centos7": (FAIL, "apt-get install libguestfs-xfs")}),
])
def test_image_findings(facts, needs, builder, probe, want):
    found = image_findings(facts, needs, builder, probe)
    assert {f.id: (f.status, f.fix) for f in found} == want


def test_messages_name_the_reason_in_one_line():
    (row,) = [f for f in image_findings(READY, CENTOS, True, FAILED) if f.id == "appliance"]
    assert row.message == ("libguestfs' appliance does not start: supermin: failed to find a suitable kernel "
                           "(host_cpu=x86_64).")
    (row,) = [f for f in image_findings(NO_XFS, CENTOS, True) if f.id == "image-xfs-centos7"]
    assert "centos-7.5 is xfs" in row.message and "virt-resize cannot grow it" in row.message
    (row,) = [f for f in image_findings(NO_KERNEL, CENTOS, True) if f.id == "appliance-kernel"]
    assert "supermin exited with error status 1" in row.message and "\n" not in row.message


def test_appliance_ready():
    assert appliance_ready(READY) and not appliance_ready(NO_KERNEL) and not appliance_ready(ApplianceFacts())
    assert appliance_ready(ApplianceFacts(guestfs_dir=GUESTFS, fixed_appliance="/opt/appliance"))


SUPERMIN_FAILS = """\
supermin: build: 4225 files, after munging
supermin: kernel: looking for kernels in /boot ...
supermin: failed to find a suitable kernel (host_cpu=x86_64).

I looked for kernels in /boot and modules in /lib/modules.
libguestfs: error: /usr/bin/supermin exited with error status 1, see debug messages above
libguestfs: closing guestfs handle 0x55d9989a28b0 (state 0)
"""
QEMU_FAILS = """\
supermin: build: 4225 files, after munging
libguestfs: error: could not create appliance through libvirt.
"""


@pytest.mark.parametrize("output, rc, reason", [
    (SUPERMIN_FAILS, 1, "supermin: failed to find a suitable kernel (host_cpu=x86_64)."),
    (QEMU_FAILS, 1, "could not create appliance through libvirt."),
    ("something odd\n", 2, "something odd"),
    ("", 139, "exit status 139"),
])
def test_probe_reason(output, rc, reason):
    assert probe_reason(output, rc) == reason


def test_image_needs_counts_only_recipes_that_nodes_use(tmp_path):
    from labvirt.core.loader import load_lab

    assert image_needs(load_lab(ROOT)) == ImageNeeds((("centos-stream9", "centosstream-9"),))   # not the replica
    lab = write_lab(tmp_path / "lab", "nouse", networks={"n": 'mode = "isolated"\nsubnet = "10.251.0.0/24"\n'},
                    nodes={"a": 'memory = "128MiB"\ndisk = "64MiB"\n[[nic]]\nnetwork = "n"\n'},
                    images={"unused": 'template = "centos-7.5"\nsize = "8GiB"\n'})
    assert not image_needs(load_lab(lab)).used
    assert not image_needs(None).used


def test_findings_module_is_pure():
    probe = ("import sys\nfor banned in ('libvirt', 'typer', 'rich', 'subprocess'):\n    sys.modules[banned] = None\n"
             "import labvirt.host.imagebuild\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# -- the probe's cache (libguestfs-test-tool replaced by recorded answers: nothing else can stand in) --
def fake_tool(answers):
    calls = []

    def run(argv, **kw):
        calls.append((argv, kw["env"]))
        rc, out = answers.pop(0)
        return SimpleNamespace(returncode=rc, stdout=out)
    return run, calls


def test_a_pass_is_cached_per_kernel_and_a_failure_is_not(tmp_path):
    root = tree(tmp_path / "host", DEBIAN)
    kernel = Kernel(os.path.join(root, "boot/vmlinuz-6.1.0-57-amd64"), "6.1.0-57-amd64",
                    os.path.join(root, "lib/modules/6.1.0-57-amd64"), True)
    facts = ApplianceFacts(guestfs_dir=os.path.join(root, GUESTFS.lstrip("/")), kernel=kernel)
    env = {"LABVIRT_CACHE_DIR": str(tmp_path / "cache"), "LIBGUESTFS_BACKEND": "direct"}
    which = lambda name: "/usr/bin/libguestfs-test-tool"   # noqa: E731
    run, calls = fake_tool([(1, SUPERMIN_FAILS), (0, "===== TEST FINISHED OK =====\n"),
                            (0, "===== TEST FINISHED OK =====\n")])
    first = probe_appliance(facts, env, run=run, which=which)
    assert not first.ok and first.reason.startswith("supermin: failed")
    assert cached_probe(facts, env) is None and not os.path.exists(cache_path(env))
    second = probe_appliance(facts, env, run=run, which=which)
    assert second.ok and not second.cached
    assert calls[-1][1]["LIBGUESTFS_BACKEND"] == "direct"          # labvirt's own libguestfs settings
    third = probe_appliance(facts, env, run=run, which=which)
    assert third.ok and third.cached and len(calls) == 2
    with open(kernel.path, "w") as f:                             # a new kernel: probe again
        f.write("another kernel")
    assert cached_probe(facts, env) is None
    assert probe_appliance(facts, env, run=run, which=which).ok and len(calls) == 3
    with open(cache_path(env)) as f:
        assert json.load(f)["ok"] is True


def test_no_probe_when_the_static_checks_fail(tmp_path):
    run, calls = fake_tool([])
    assert probe_appliance(NO_KERNEL, {"LABVIRT_CACHE_DIR": str(tmp_path)}, run=run, which=lambda n: "/bin/x") is None
    assert calls == []


# -- this machine: the real libguestfs-test-tool and `labvirt check` ------------------------------
real = pytest.mark.skipif(shutil.which("virt-builder") is None,
                          reason="virt-builder not installed (apt-get install libguestfs-tools)")


@pytest.fixture(scope="module")
def probe_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("probe-cache"))


@real
@pytest.mark.slow
def test_this_machine_can_build_images(probe_cache):
    """scripts/setup --test installs what the appliance needs: a kernel, xfs support; the real probe passes."""
    facts = read_appliance("/")
    assert facts.guestfs_dir and facts.kernel is not None, facts
    assert appliance_ready(facts), facts
    assert facts.xfs_packages and facts.xfs_tools, facts
    result = probe_appliance(facts, dict(os.environ, LABVIRT_CACHE_DIR=probe_cache), use_cache=False)
    assert result is not None and result.ok, result
    print(f"\nlibguestfs-test-tool passed in {result.seconds:.1f} s with kernel {facts.kernel.path}")


@real
@pytest.mark.slow
def test_check_reports_image_building_for_a_lab_with_an_xfs_recipe(tmp_path, probe_cache):
    lab = write_lab(tmp_path / "lab", "imgchk", networks={"n": 'mode = "isolated"\nsubnet = "10.251.7.0/24"\n'},
                    nodes={"a": 'memory = "128MiB"\ndisk = "1GiB"\nimage = "c7"\n[[nic]]\nnetwork = "n"\n'},
                    images={"c7": 'template = "centos-7.5"\nsize = "8GiB"\n'})
    r = run_cli("check", "--json", "-c", "test:///default", "-C", lab, env={"LABVIRT_CACHE_DIR": probe_cache})
    rows = {f["id"]: f for f in json.loads(r.stdout)["findings"]}
    assert [rows[i]["status"] for i in ("appliance-kernel", "appliance", "image-xfs-c7")] == [OK, OK, OK], rows
    assert not [f for f in rows.values() if f["status"] == FAIL] and r.returncode == 0, r.stderr
