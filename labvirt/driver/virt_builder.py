"""Golden images with virt-builder (or a local cloud image + virt-customize), and the root password.

Argv lists only, never a shell. The root password never appears in argv, logs or world-readable
files: virt-builder reads it with `--root-password file:PATH` from a 0600 file. `random` (or no
password in the recipe) means one generated password per lab copy, kept 0600 in the lab's state
directory and shown only on request. No Rich here: progress goes line by line to a callback.
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import shlex
import stat
from collections.abc import Callable, Mapping

from labvirt.core import repositories
from labvirt.core.crypt import sha512_crypt
from labvirt.core.errors import DriverError, NotFoundError, SpecError
from labvirt.driver.state_files import lab_state_dir, write_private
from labvirt.core.spec import ImageSpec

PASSWORD_FILE = "root-password"
_PASSWORD_CHARS = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # nothing to misread
_ERROR = re.compile(r"^[\w.-]+: error: ")


# -- the root password ------------------------------------------------------------------------
def _check_private(path: str, image: ImageSpec | None = None) -> None:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        problem = f"{path} is readable by others (mode {mode:04o}); run: chmod 600 {shlex.quote(path)}"
        raise SpecError(image.file, "root_password", problem) if image else DriverError(problem)


def root_password_file(image: ImageSpec, lab: str, student: str = "") -> str:
    """Path of the 0600 file holding the root password for this recipe and lab copy.

    `file:PATH` (relative to the recipe's directory) must exist and be 0600. `random` or nothing:
    created once per lab copy in its state directory, then reused."""
    given = image.root_password
    if given and given.startswith("file:"):
        path = os.path.expanduser(given[len("file:"):])
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(image.file) or ".", path)
        if not os.path.isfile(path):
            raise SpecError(image.file, "root_password", f"{path}: no such file")
        _check_private(path, image)
        return path
    return generated_password_file(lab, student)


def generated_password_file(lab: str, student: str = "") -> str:
    """The lab copy's generated root password (0600, made once): for `random` recipes and for nodes
    booted from a `base_image`, so every node with a seed has a root password for the console."""
    path = os.path.join(lab_state_dir(lab, student), PASSWORD_FILE)
    if os.path.exists(path):
        _check_private(path)
    else:
        write_private(path, "".join(secrets.choice(_PASSWORD_CHARS) for _ in range(16)) + "\n")
    return path


def read_password(path: str) -> str:
    """The first line of a password file (what virt-builder's file: selector reads)."""
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\n")


def show_root_password(lab: str, student: str = "") -> str:
    """The generated root password of a lab copy, for `labvirt ... --show-password` only."""
    path = os.path.join(lab_state_dir(lab, student, create=False), PASSWORD_FILE)
    if not os.path.exists(path):
        raise NotFoundError(f"no generated root password for lab {lab!r}" + (f" student {student!r}" if student else ""))
    return read_password(path)


def root_password_hash(path: str) -> str:
    """SHA-512 crypt hash of the password in `path` (for the cloud-init seed; never the password)."""
    return sha512_crypt(read_password(path))


# -- environment ------------------------------------------------------------------------------
def guestfs_needs_tcg(environ: Mapping[str, str] | None = None, pvm: str = "/sys/module/kvm_pvm",
                      cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Should the libguestfs appliance run in software emulation? Until the host check decides:
    yes when the environment names no backend and the host is a PVM guest or has no vmx/svm."""
    environ = os.environ if environ is None else environ
    if environ.get("LIBGUESTFS_BACKEND"):
        return False
    if os.path.exists(pvm):
        return True
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = {w for line in f if line.startswith("flags") for w in line.split(":", 1)[-1].split()}
    except OSError:
        return True
    return not flags & {"vmx", "svm"}


def local_repository(image: ImageSpec, repository: str | None = None) -> str | None:
    """file:// URI of the index of the local template repository (option first, then recipe)."""
    repo = repository or image.repository
    if not repo:
        return None
    if repo.startswith("file://"):
        repo = repo[len("file://"):]
    if "://" in repo:
        raise SpecError(image.file, "repository", f"{repo!r}: only a local repository (a directory or its index file)")
    if not os.path.isabs(repo):      # relative to the recipe's directory
        repo = os.path.join(os.path.dirname(os.path.abspath(image.file)) if image.file else os.getcwd(), repo)
    if os.path.isdir(repo):
        repo = os.path.join(repo, "index")
    return "file://" + os.path.abspath(repo)


def guestfs_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a libguestfs tool: software emulation where KVM does not work."""
    env = dict(os.environ if environ is None else environ)
    if guestfs_needs_tcg(env):
        env["LIBGUESTFS_BACKEND"] = "direct"
        env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    return env


def builder_env(image: ImageSpec, workdir: str, repository: str | None = None,
                environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for virt-builder/virt-customize. With a local repository, VIRT_BUILDER_DIRS and
    XDG_CONFIG_HOME point at empty directories of our own so no configured (remote) repository is read."""
    env = dict(os.environ if environ is None else environ)
    if local_repository(image, repository):
        for var, sub in (("VIRT_BUILDER_DIRS", "system-config"), ("XDG_CONFIG_HOME", "user-config")):
            path = os.path.join(os.path.abspath(workdir), sub)
            os.makedirs(path, mode=0o700, exist_ok=True)
            env[var] = path
    return guestfs_env(env)


# -- argv -------------------------------------------------------------------------------------
def size_arg(size: int) -> str:
    """Bytes as virt-builder/virt-resize take them (binary units): 42949672960 -> '40G'."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}b"


def _perl_literal(text: str) -> str:
    return re.sub(r"([\\$@{}])", r"\\\1", text)


def customize_options(image: ImageSpec, password_file: str, hostname: str | None = None) -> list[str]:
    """Options shared by virt-builder and virt-customize, in the order they are applied."""
    opts: list[str] = []
    if hostname:
        opts += ["--hostname", hostname]
    # sha512 everywhere (virt-builder would pick yescrypt for new Debian): the same scheme as the seed's hash
    opts += ["--root-password", f"file:{password_file}", "--password-crypto", "sha512"]
    for key in image.ssh_keys:
        kind = "file" if key.startswith(("/", "~")) else "string"
        opts += ["--ssh-inject", f"root:{kind}:{os.path.expanduser(key) if kind == 'file' else key}"]
    opts += repositories.before_install(image)       # the recipe's package repositories, before --install
    if image.packages:
        opts += ["--install", ",".join(image.packages)]
    for path, content in image.write:
        opts += ["--write", f"{path}:{content}"]
    for command in image.run:
        opts += ["--run-command", command]
    if image.kernel_args:
        args = _perl_literal(" ".join(image.kernel_args))
        opts += ["--edit", f'/etc/default/grub:s{{^GRUB_CMDLINE_LINUX="}}{{GRUB_CMDLINE_LINUX="{args} }}',
                 "--run-command", "grub2-mkconfig -o /boot/grub2/grub.cfg",
                 # EL8+ boot entries (BootLoaderSpec) keep their own kernel line: grubby edits them
                 "--run-command", "if command -v grubby >/dev/null 2>&1; then grubby --update-kernel=ALL "
                                  f"--args={shlex.quote(' '.join(image.kernel_args))}; fi"]
    for service in image.disable_services:
        opts += ["--run-command", f"systemctl disable {shlex.quote(service)}"]
    opts += repositories.at_the_end(image)           # keep_package_repositories = false: removed again
    if image.selinux:
        opts += ["--edit", f"/etc/selinux/config:s/^SELINUX=.*/SELINUX={image.selinux}/"]
        if image.selinux != "disabled":
            opts += ["--selinux-relabel"]
    return opts


def builder_argv(image: ImageSpec, output: str, password_file: str, *, hostname: str | None = None,
                 repository: str | None = None, fmt: str = "qcow2") -> list[str]:
    """virt-builder argv for a template recipe. A local repository makes it offline."""
    if image.template is None:
        raise ValueError(f"image {image.name!r} has no virt-builder template (use build_commands)")
    argv = ["virt-builder", image.template, "--output", output, "--format", fmt, "--size", size_arg(image.size)]
    source = local_repository(image, repository)
    if source:
        argv += ["--source", source, "--no-network", "--no-check-signature", "--no-cache"]
    return argv + customize_options(image, password_file, hostname)


def build_commands(image: ImageSpec, output: str, password_file: str, *, hostname: str | None = None,
                   repository: str | None = None) -> list[list[str]]:
    """Every command that makes the golden image: virt-builder for a template; for a local cloud
    image a qcow2 copy grown to the recipe's size (cloud-init grows the partition), then virt-customize."""
    if image.template is not None:
        return [builder_argv(image, output, password_file, hostname=hostname, repository=repository)]
    customize = ["virt-customize", "--format", "qcow2", "--add", output]     # --format must come first
    if not image.packages:
        customize.append("--no-network")
    return [["qemu-img", "convert", "-O", "qcow2", image.source_file, output],
            ["qemu-img", "resize", "-f", "qcow2", output, str(image.size)],
            customize + customize_options(image, password_file, hostname)]


# -- running ----------------------------------------------------------------------------------
def error_lines(lines: list[str], keep: int = 12) -> list[str]:
    """The tool's own error message: from its first `TOOL: error:` line up to the bug-report
    boilerplate; the last lines of output when there is no such line."""
    for i, line in enumerate(lines):
        if _ERROR.match(line):
            picked = []
            for rest in lines[i:]:
                if rest.startswith("If reporting bugs"):
                    break
                picked.append(rest)
            return [x for x in picked if x.strip()][:keep]
    return [x for x in lines if x.strip()][-keep:]


def run_builder(argv: list[str], env: Mapping[str, str] | None, on_line: Callable[[str], None]) -> None:
    """Run a libguestfs tool, passing each output line (stdout and stderr) to `on_line` as it comes.
    On failure raise DriverError carrying the tool's own error lines. Ctrl-C stops the tool."""
    from labvirt.driver.children import stream

    tail: collections.deque[str] = collections.deque(maxlen=200)

    def line(text: str) -> None:
        tail.append(text)
        on_line(text)

    try:
        rc = stream(argv, line, env=env)
    except FileNotFoundError:
        raise DriverError(f"{argv[0]} not found: install libguestfs-tools (apt-get install libguestfs-tools)") from None
    if rc != 0:
        lines = error_lines(list(tail))
        raise DriverError(f"{os.path.basename(argv[0])} failed (exit {rc}):\n" + "\n".join(lines))
