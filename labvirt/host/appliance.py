"""Read what libguestfs' appliance is built from, and launch it once to see (thin I/O; the verdicts are
in labvirt.host.imagebuild).

  read_appliance(root, env)   cheap, every `check`: the kernel supermin would pick (its own search
                              order), supermin.d, xfs support, libguestfs' version. Under a host root.
  probe_appliance(facts, env) the real thing: libguestfs-test-tool (about 25 s here under TCG).
                              A pass is cached per (kernel file, modules, supermin.d files,
                              libguestfs version, backend settings, user); a failure is not
                              cached, so the next `check` after a fix sees the fix.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import platform
import re
import time

from labvirt.host.imagebuild import ApplianceFacts, Kernel, ProbeResult, appliance_ready, probe_reason

GUESTFS_DIRS = ("/usr/lib/x86_64-linux-gnu/guestfs", "/usr/lib/guestfs", "/usr/lib64/guestfs")
XFS_TOOLS = ("/usr/sbin/mkfs.xfs", "/sbin/mkfs.xfs")
PROBE_TIMEOUT = 600.0
_CPU_MODELS = {"x86_64": ("amd64", "x86_64"), "amd64": ("amd64", "x86_64"), "aarch64": ("aarch64",)}


def _under(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _read(root: str, path: str, limit: int = 8 * 1024 * 1024) -> str | None:
    try:
        with open(_under(root, path), encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return None


def dpkg_version(status: str, package: str) -> str:
    """The installed version of `package` in the text of /var/lib/dpkg/status ("" when not installed)."""
    for stanza in status.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.M))
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            return fields.get("Version", "")
    return ""


def _modules_dep(root: str, version: str) -> bool:
    return os.path.isfile(_under(root, f"/lib/modules/{version}/modules.dep"))


def _readable(root: str, path: str, real: bool) -> bool:
    full = _under(root, path)
    return os.access(full, os.R_OK) if real else os.path.exists(full)


def _version_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def find_kernel(root: str, env, arch: str | None = None, real: bool = True) -> tuple[Kernel | None, tuple[str, ...]]:
    """The kernel supermin 5 would pick: $SUPERMIN_KERNEL, else the newest /lib/modules/*/vmlinuz, else
    the newest /boot/vmlinu?-*-ARCH (then any vmlinu?-*) without 'xen' that has
    /lib/modules/VERSION/modules.dep. Also returns the vmlinu?-* files in /boot."""
    try:
        boot = sorted(n for n in os.listdir(_under(root, "/boot")) if fnmatch.fnmatchcase(n, "vmlinu?-*"))
    except OSError:
        boot = []
    if env.get("SUPERMIN_KERNEL"):
        path = env["SUPERMIN_KERNEL"]
        version = env.get("SUPERMIN_KERNEL_VERSION", "")
        modules = env.get("SUPERMIN_MODULES") or f"/lib/modules/{version}"
        return Kernel(path, version, modules, _readable(root, path, real), "SUPERMIN_KERNEL"), tuple(boot)
    try:
        in_modules = [v for v in os.listdir(_under(root, "/lib/modules"))
                      if os.path.isfile(_under(root, f"/lib/modules/{v}/vmlinuz"))]
    except OSError:
        in_modules = []
    if in_modules:
        v = max(in_modules, key=_version_key)
        path = f"/lib/modules/{v}/vmlinuz"
        return Kernel(path, v, env.get("SUPERMIN_MODULES") or f"/lib/modules/{v}", _readable(root, path, real),
                      "/lib/modules"), tuple(boot)
    models = _CPU_MODELS.get(arch or platform.machine(), (arch or platform.machine(),))

    def usable(patterns):
        return [n for n in boot if any(fnmatch.fnmatchcase(n, p) for p in patterns)
                and "xen" not in n and _modules_dep(root, n[8:])]

    files = usable([f"vmlinu?-*-{m}" for m in models]) or usable(["vmlinu?-*"])
    if not files:
        return None, tuple(boot)
    name = max(files, key=_version_key)
    path = f"/boot/{name}"
    return Kernel(path, name[8:], env.get("SUPERMIN_MODULES") or f"/lib/modules/{name[8:]}",
                  _readable(root, path, real)), tuple(boot)


def read_appliance(root: str = "/", env=None, arch: str | None = None) -> ApplianceFacts:
    env = os.environ if env is None else env
    real = os.path.realpath(root) == "/"
    version = dpkg_version(_read(root, "/var/lib/dpkg/status") or "", "libguestfs0")
    dirs = [d for d in (env.get("LIBGUESTFS_PATH") or "").split(":") if d] + list(GUESTFS_DIRS)
    fixed = next((d for d in dirs if os.path.isfile(_under(root, f"{d}/README.fixed"))
                  or os.path.isfile(_under(root, f"{d}/appliance/README.fixed"))), "")
    guestfs = next((d for d in dirs if os.path.isdir(_under(root, f"{d}/supermin.d"))), "")
    kernel, boot = find_kernel(root, env, arch, real)
    xfs_list = _read(root, f"{guestfs}/supermin.d/packages-xfs") if guestfs else None
    return ApplianceFacts(
        libguestfs=version, guestfs_dir=guestfs, fixed_appliance=fixed, kernel=kernel, boot_files=boot,
        xfs_packages=xfs_list is not None and "xfsprogs" in xfs_list.split(),
        xfs_tools=any(os.path.isfile(_under(root, p)) for p in XFS_TOOLS))


# -- the real probe -------------------------------------------------------------------------------
def cache_path(env=None) -> str:
    """$LABVIRT_CACHE_DIR, else $XDG_CACHE_HOME/labvirt, else ~/.cache/labvirt: appliance-probe.json."""
    env = os.environ if env is None else env
    base = env.get("LABVIRT_CACHE_DIR") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "labvirt")
    return os.path.join(base, "appliance-probe.json")


def probe_key(facts: ApplianceFacts, env) -> str:
    """What a passing probe depends on: the kernel file and its modules, libguestfs' supermin.d files
    and version, the backend settings labvirt gives libguestfs, and the user."""
    parts = [facts.libguestfs, str(os.geteuid()), env.get("LIBGUESTFS_BACKEND", ""),
             env.get("LIBGUESTFS_BACKEND_SETTINGS", ""), facts.fixed_appliance]
    paths = []
    if facts.kernel is not None:
        paths += [facts.kernel.path, os.path.join(facts.kernel.modules, "modules.dep")]
    if facts.guestfs_dir:
        sd = os.path.join(facts.guestfs_dir, "supermin.d")
        try:
            paths += [os.path.join(sd, n) for n in sorted(os.listdir(sd))]
        except OSError:
            pass
    for p in paths:
        try:
            st = os.stat(p)
            parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{p}:missing")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cached_probe(facts: ApplianceFacts, env) -> ProbeResult | None:
    try:
        with open(cache_path(env)) as f:
            data = json.load(f)
        if data.get("key") == probe_key(facts, env) and data.get("ok") is True:
            return ProbeResult(True, str(data.get("reason", "")), float(data.get("seconds", 0)), cached=True)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return None


def _remember(facts: ApplianceFacts, env, result: ProbeResult) -> None:
    path = cache_path(env)
    try:
        from labvirt.driver.state_files import write_atomic

        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, json.dumps({"key": probe_key(facts, env), "ok": result.ok, "reason": result.reason,
                                       "seconds": round(result.seconds, 1), "when": int(time.time())}).encode())
    except OSError:
        pass        # no cache: the next check probes again


def probe_appliance(facts: ApplianceFacts, env=None, *, use_cache: bool = True, timeout: float = PROBE_TIMEOUT,
                    run=None, which=None) -> ProbeResult | None:
    """libguestfs-test-tool with the environment labvirt gives libguestfs (software emulation where KVM
    does not work). None when the static checks already fail or the tool is missing."""
    import shutil
    import subprocess

    from labvirt.driver.virt_builder import guestfs_env

    env = dict(os.environ if env is None else env)
    if not appliance_ready(facts):
        return None
    tool_env = guestfs_env(env)
    if use_cache and (hit := cached_probe(facts, tool_env)) is not None:
        return hit
    tool = (which or shutil.which)("libguestfs-test-tool")
    if tool is None:
        return None
    run = run or subprocess.run
    started = time.monotonic()
    try:
        done = run([tool, "-t", str(int(timeout))], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, text=True, errors="replace", env=tool_env, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"libguestfs-test-tool did not finish in {timeout + 30:.0f} s",
                           time.monotonic() - started)
    except OSError as e:
        return ProbeResult(False, f"libguestfs-test-tool: {e}", time.monotonic() - started)
    seconds = time.monotonic() - started
    output = done.stdout or ""
    if done.returncode == 0 and "TEST FINISHED OK" in output:
        result = ProbeResult(True, "libguestfs-test-tool passed", seconds)
        _remember(facts, tool_env, result)
        return result
    return ProbeResult(False, probe_reason(output, done.returncode), seconds)
