"""Package repository overrides in a real image (offline): the guest shell lines that set the
template's repositories aside and put them back really run, in the order the unit tests assume.

Stage 1 builds the tiny busybox template with virt-builder, giving it apt sources of its own (the
busybox tree has none). Stage 2 is a `source_file` recipe on that image (qemu-img + virt-customize,
the same customize options as virt-builder) with an apt [[package_repository]],
disable_template_repositories and keep_package_repositories = false; its `run` line records what the
guest saw between --write and the end. No package manager runs: there is no apt in busybox and no
network here, so --install itself is not exercised (see the README).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from labvirt.core.spec import ImageSpec, PackageRepositorySpec
from labvirt.driver.virt_builder import build_commands, builder_argv, builder_env, root_password_file, run_builder
from .support.tinyrepo import make_tiny_repo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("virt-builder") is None,
                       reason="virt-builder not installed (apt-get install libguestfs-tools)"),
]

TEMPLATE_SOURCES = ("mkdir -p /etc/apt/sources.list.d && echo 'deb http://gone.example/debian old main' "
                    "> /etc/apt/sources.list && echo 'deb http://gone.example/extra old main' "
                    "> /etc/apt/sources.list.d/extra.list")
DURING = ("{ echo sources.list.d:; ls /etc/apt/sources.list.d; echo set-aside:; ls -R /etc/apt/labvirt-set-aside; "
          "echo ours:; cat /etc/apt/sources.list.d/labvirt-mirror.list; } > /etc/labvirt-during")


def test_set_aside_written_then_put_back_in_a_real_guest(tmp_path):
    repo = make_tiny_repo()
    work = str(tmp_path / "work")
    first = ImageSpec(name="tiny", size=repo.size, template=repo.template, repository=repo.directory,
                      run=(TEMPLATE_SOURCES,))
    stage1 = str(tmp_path / "stage1.qcow2")
    password = root_password_file(first, "repolab")
    lines: list[str] = []
    run_builder(builder_argv(first, stage1, password), builder_env(first, work), lines.append)

    second = ImageSpec(name="tiny2", size=repo.size, source_file=stage1, run=(DURING,),
                       package_repositories=(PackageRepositorySpec(name="mirror", kind="apt",
                                                                   url="http://deb.example.org/debian",
                                                                   suite="bookworm"),),
                       disable_template_repositories=True, keep_package_repositories=False)
    stage2 = str(tmp_path / "stage2.qcow2")
    env = builder_env(second, work)
    for argv in build_commands(second, stage2, password):
        run_builder(argv, env, lines.append)

    shown = subprocess.run(["virt-cat", "-a", stage2, "/etc/labvirt-during", "/etc/apt/sources.list",
                            "/etc/apt/sources.list.d/extra.list"], env=env, capture_output=True, text=True,
                           timeout=600)
    assert shown.returncode == 0, shown.stderr
    during, restored = shown.stdout.split("ours:\n")
    # while building: only labvirt's file in sources.list.d, the template's set aside
    assert during.startswith("sources.list.d:\nlabvirt-mirror.list\nset-aside:\n"), during
    assert "sources.list\n" in during and "extra.list\n" in during
    assert restored == ("# Written by labvirt for image recipe tiny2.\n"
                        "deb http://deb.example.org/debian bookworm main\n"
                        "deb http://gone.example/debian old main\n"          # put back at the end
                        "deb http://gone.example/extra old main\n")
    listing = subprocess.run(["virt-ls", "-a", stage2, "/etc/apt"], env=env, capture_output=True, text=True,
                             timeout=600)
    assert listing.returncode == 0 and "labvirt-set-aside" not in listing.stdout      # removed again
    listing = subprocess.run(["virt-ls", "-a", stage2, "/etc/apt/sources.list.d"], env=env, capture_output=True,
                             text=True, timeout=600)
    assert listing.stdout.split() == ["extra.list"]                                   # labvirt's file deleted
