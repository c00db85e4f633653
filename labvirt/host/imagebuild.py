"""Can this host build the lab's golden images? Pure: findings over ApplianceFacts (read by
labvirt.host.appliance), the appliance probe's result and the lab's image recipes.

virt-builder and virt-customize run libguestfs' appliance: a small VM that supermin assembles from a
kernel of this host (/boot, with modules in /lib/modules) and the packages listed in libguestfs'
supermin.d. Three things break image building half-way, and are caught here first:

- virt-builder is missing;
- the appliance cannot be built or started (no kernel: supermin's "failed to find a suitable kernel";
  or any other reason libguestfs-test-tool reports);
- a template whose root filesystem is xfs while libguestfs has no xfs support: virt-resize then stops
  with "unknown/unavailable method for expanding the xfs filesystem". libguestfs decides this the
  way read_appliance reads it: the appliance holds xfsprogs only when supermin.d has packages-xfs
  (Debian's libguestfs-xfs).
"""

from __future__ import annotations

import re

from labvirt.core.record import Record
from labvirt.host.findings import FAIL, OK, WARN, Finding

# The root filesystem of virt-builder's own templates (libguestfs.org/download/builder). They are
# made by guestfs-tools' builder/templates/make-template.ml: CentOS and RHEL 3-6 get explicit ext3/ext4
# partitions in the kickstart; Alma, CentOS 7+, CentOS Stream, RHEL 7+ and Fedora use `autopart`,
# i.e. the installer's default filesystem, xfs (centos-7.5.ks: `autopart --type=plain`; Anaconda's
# Fedora Server profile: file_system_type = xfs; the course notes' own centos-7.5 virt-resize failure).
# Debian and Ubuntu templates come from preseed files with ext4. Older Fedora templates (before 26,
# made by earlier scripts) are not claimed either way.
_TEMPLATE = re.compile(r"^(?P<os>[a-z]+)-(?P<major>\d+)(?:\.(?P<minor>\d+))?(?:-[a-z0-9_]+)?$")
XFS_FROM = {"alma": 8, "centos": 7, "centosstream": 8, "rhel": 7, "fedora": 26}
EXT_BELOW = {"centos": 7, "rhel": 7}        # CentOS/RHEL 3-6: ext3/ext4
EXT_ALWAYS = ("debian", "ubuntu")


def template_filesystem(template: str) -> str | None:
    """'xfs', 'ext4' or None (unknown) for a virt-builder template name such as 'centos-7.5'."""
    m = _TEMPLATE.match(template or "")
    if m is None:
        return None
    os_name, major = m["os"], int(m["major"])
    if os_name in EXT_ALWAYS:
        return "ext4"
    if os_name in XFS_FROM and major >= XFS_FROM[os_name]:
        return "xfs"
    if os_name in EXT_BELOW and major < EXT_BELOW[os_name]:
        return "ext4"
    return None


class Kernel(Record):
    """The kernel supermin would pick (the same search order as supermin 5)."""
    path: str
    version: str
    modules: str                  # /lib/modules/VERSION
    readable: bool                # by this user (supermin copies it, QEMU boots it)
    source: str = "/boot"         # "SUPERMIN_KERNEL" | "/lib/modules" | "/boot"


class ApplianceFacts(Record):
    libguestfs: str = ""                    # the libguestfs0 package's version ("" when not installed)
    guestfs_dir: str = ""                   # where supermin.d is ("" when libguestfs is missing)
    fixed_appliance: str = ""               # a prebuilt appliance (LIBGUESTFS_PATH with README.fixed)
    kernel: Kernel | None = None
    boot_files: tuple[str, ...] = ()        # vmlinu?-* in /boot (for the message when none qualifies)
    xfs_packages: bool = False              # supermin.d/packages-xfs lists xfsprogs
    xfs_tools: bool = False                 # mkfs.xfs is on this host (supermin copies the host's files)


class ProbeResult(Record):
    ok: bool
    reason: str                   # one line: why it failed, or what passed
    seconds: float = 0.0
    cached: bool = False


class ImageNeeds(Record):
    """What the lab asks of image building: its recipes that nodes use, as (recipe, template | None)."""
    recipes: tuple[tuple[str, str | None], ...] = ()

    @property
    def used(self) -> bool:
        return bool(self.recipes)


def image_needs(spec) -> ImageNeeds:
    """The recipes that the lab's nodes use (a recipe nobody uses is never built)."""
    if spec is None:
        return ImageNeeds()
    used = {n.image for n in spec.nodes if getattr(n, "image", None)}
    return ImageNeeds(tuple((i.name, i.template) for i in spec.images if i.name in used))


def appliance_ready(a: ApplianceFacts) -> bool:
    """The static checks pass: worth launching the appliance."""
    return bool(a.guestfs_dir) and (bool(a.fixed_appliance) or (a.kernel is not None and a.kernel.readable))


def image_findings(a: ApplianceFacts, needs: ImageNeeds, has_virt_builder: bool,
                   probe: ProbeResult | None = None) -> list[Finding]:
    """`needs`: the lab's recipes (nothing used: problems are warnings, since no image is built);
    `probe`: libguestfs-test-tool's answer (None: not run)."""
    bad = FAIL if needs.used else WARN
    what = _what(needs)
    found = []
    if not has_virt_builder:
        if needs.used:
            found.append(Finding("image-build", FAIL, f"{what} needs virt-builder, which is not installed",
                                 "apt-get install libguestfs-tools"))
        return found
    if not a.guestfs_dir:
        found.append(Finding("appliance", bad, "virt-builder is installed but libguestfs' supermin.d is not: "
                             "libguestfs cannot build its appliance", "apt-get install --reinstall libguestfs0"))
        return found
    if a.fixed_appliance:
        found.append(Finding("appliance-kernel", OK, f"libguestfs uses the prebuilt appliance in {a.fixed_appliance}"))
    elif a.kernel is None:
        seen = f" (/boot has {', '.join(a.boot_files)}, but no /lib/modules/VERSION/modules.dep for it)" \
            if a.boot_files else " (/boot has none)"
        found.append(Finding("appliance-kernel", bad, "no kernel for libguestfs' appliance: supermin finds no "
                             f"vmlinuz with its modules{seen}; image building stops with 'supermin exited with "
                             "error status 1'", "apt-get install linux-image-amd64"))
    elif not a.kernel.readable and a.kernel.source == "SUPERMIN_KERNEL":
        found.append(Finding("appliance-kernel", bad, f"SUPERMIN_KERNEL={a.kernel.path} cannot be read: supermin "
                             "cannot build libguestfs' appliance", "unset SUPERMIN_KERNEL, or point it at a kernel"))
    elif not a.kernel.readable:
        found.append(Finding("appliance-kernel", bad, f"libguestfs' appliance kernel {a.kernel.path} is not "
                             "readable by this user: supermin cannot copy it",
                             f"run as root, or: chmod 0644 {a.kernel.path}"))
    else:
        found.append(Finding("appliance-kernel", OK, f"libguestfs' appliance kernel: {a.kernel.path} "
                             f"(modules {a.kernel.modules})"))
    if probe is not None:
        if probe.ok:
            how = "cached result" if probe.cached else f"{probe.seconds:.0f} s"
            found.append(Finding("appliance", OK, f"libguestfs' appliance starts (libguestfs-test-tool passed; "
                                 f"{how})"))
        else:
            found.append(Finding("appliance", bad, f"libguestfs' appliance does not start: {probe.reason}",
                                 "run libguestfs-test-tool for the whole story"))
    xfs_ok = a.xfs_packages and a.xfs_tools
    for recipe, template in needs.recipes:
        if template_filesystem(template or "") != "xfs":
            continue
        if xfs_ok:
            found.append(Finding(f"image-xfs-{recipe}", OK, f"image {recipe}: template {template} is xfs; "
                                 "libguestfs has xfs support"))
        else:
            why = "supermin.d has no packages-xfs" if not a.xfs_packages else "mkfs.xfs (xfsprogs) is missing"
            found.append(Finding(f"image-xfs-{recipe}", FAIL, f"image {recipe}: template {template} is xfs, but "
                                 f"libguestfs has no xfs support ({why}): virt-resize cannot grow it",
                                 "apt-get install libguestfs-xfs"))
    return found


def _what(needs: ImageNeeds) -> str:
    if not needs.used:
        return "image building"
    names = ", ".join(r for r, _ in needs.recipes)
    return f"the lab's image recipe{'s' if len(needs.recipes) > 1 else ''} {names}"


# -- reading libguestfs-test-tool's output (pure) ------------------------------------------------
_SUPERMIN_CHATTER = re.compile(r"^supermin: (build|kernel|ext2|version|package handler|acquiring|if-newer|"
                               r"deleting|renaming|reading|mapping|resolving|picked|chroot|running|"
                               r"copying|not copying|warning)\b")


def probe_reason(output: str, returncode: int) -> str:
    """One line saying why libguestfs-test-tool failed: supermin's own error when supermin failed,
    else libguestfs' last error, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("libguestfs: error:")]
    supermin = [line for line in lines if line.startswith("supermin: ") and not _SUPERMIN_CHATTER.match(line)]
    if supermin and (not errors or "supermin" in errors[-1]):
        return supermin[-1]
    if errors:
        return errors[-1].removeprefix("libguestfs: error:").strip().removesuffix(", see debug messages above")
    return lines[-1] if lines else f"exit status {returncode}"
