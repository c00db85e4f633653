"""A node's identity for images without cloud-init: the virt-customize argv that writes it into the
node's new overlay before its first boot (run at the edge: driver.customize_disk).

What a seeded node gets from cloud-init, this node gets from virt-customize: hostname, the lab's
/etc/hosts, its NICs (static address and prefix, default route and DNS through the NIC on a NAT or
external network), root's authorized keys (the lab's login key; another ssh_user is created with
sudo), the root password (`file:`, never in argv) and its ed25519 host key (uploaded from its 0600
file, never in argv); on an SELinux guest what was written is labelled (RELABEL).

The NICs are written for the network stack the guest has, decided inside the guest from what its
disk holds: every stack's files are staged under STAGE, and one POSIX sh script (`--run-command`)
picks the first stack in STACKS whose marker exists, installs its files (0600 where the stack wants
it: netplan, NetworkManager), and removes the stage. An image with none of them fails the customize
with a message, and the overlay is deleted again. Pure: builds text and argv only.
"""

from __future__ import annotations

import os
import shlex

from labvirt.core.cloudinit import hostname, hosts_file, nic_intents
from labvirt.core.desired import DesiredLab
from labvirt.core.guest_network import GuestFile, stack_files

STAGE = "/var/lib/labvirt-identity"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"

# (stack, paths any one of which means the guest uses it), in the order they are tried: legacy
# network-scripts first (EL7; EL8 with network-scripts installed), netplan before the stacks it
# drives (Ubuntu), ifupdown before NetworkManager (Debian with both: NetworkManager leaves
# interfaces that ifupdown configures alone), NetworkManager (EL8/EL9), systemd-networkd last.
# Files written in libguestfs' appliance carry no SELinux label: on an SELinux guest, label what was
# written (setfiles reads the policy's file contexts; no policy need be loaded), else at next boot.
RELABEL = ("if [ -f /etc/selinux/config ] && [ -x /usr/sbin/setfiles ]; then . /etc/selinux/config; "
           "/usr/sbin/setfiles -F /etc/selinux/${SELINUXTYPE:-targeted}/contexts/files/file_contexts "
           "/etc /root /home || touch /.autorelabel; fi")

STACKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ifcfg", ("/etc/sysconfig/network-scripts/ifup-eth", "/usr/libexec/network-scripts/ifup-eth")),
    ("netplan", ("/usr/sbin/netplan", "/usr/bin/netplan", "/sbin/netplan")),
    ("ifupdown", ("/etc/network/interfaces",)),
    ("networkmanager", ("/usr/sbin/NetworkManager", "/usr/bin/NetworkManager")),
    ("networkd", ("/usr/lib/systemd/systemd-networkd", "/lib/systemd/systemd-networkd")),
)


def network_files(desired: DesiredLab, node_key: str) -> dict[str, tuple[GuestFile, ...]]:
    """stack -> the files for this node's NICs (every stack in STACKS)."""
    files = stack_files(desired, node_key, nic_intents(desired, node_key))
    assert [s for s, _ in STACKS] == list(files), "STACKS and guest_network.stack_files disagree"
    return files


def _ifupdown_steps(desired: DesiredLab, node_key: str) -> list[str]:
    """Set aside other stanzas for the same NICs (a Debian install puts its NIC in /etc/network/interfaces),
    and make sure interfaces.d is read."""
    intents = nic_intents(desired, node_key)
    names = " " + " ".join(n.name for n in intents) + " "
    awk = ("BEGIN{skip=0} "
           "/^[ \\t]*(auto|allow-[a-z-]+)[ \\t]/{n=0; for(i=2;i<=NF;i++) if(index(N,\" \"$i\" \")) n++; "
           "if(n>0 && n==NF-1){print \"#labvirt# \"$0; next}} "
           "/^[ \\t]*(iface|mapping|source|source-directory|auto|allow-[a-z-]+)[ \\t]/{skip=0} "
           "/^[ \\t]*iface[ \\t]/{if(index(N,\" \"$2\" \")) skip=1} "
           "{if(skip) print \"#labvirt# \"$0; else print}")
    steps = [
        "for f in /etc/network/interfaces /etc/network/interfaces.d/*; do "
        f"[ -f \"$f\" ] && [ \"$f\" != /etc/network/interfaces.d/labvirt ] || continue; "
        f"awk -v N={shlex.quote(names)} {shlex.quote(awk)} \"$f\" > \"$f.labvirt-new\" && "
        "cat \"$f.labvirt-new\" > \"$f\" && rm -f \"$f.labvirt-new\"; done",
        "grep -Eqs '^[[:space:]]*(source[[:space:]]+/etc/network/interfaces\\.d/|source-directory[[:space:]]+"
        "(/etc/network/)?interfaces\\.d)' /etc/network/interfaces || "
        "printf '\\nsource /etc/network/interfaces.d/*\\n' >> /etc/network/interfaces",
    ]
    return steps


def install_script(desired: DesiredLab, node_key: str) -> str:
    """The POSIX sh script run inside the guest (virt-customize --run-command) after the stage is written."""
    files = network_files(desired, node_key)
    lines = ["set -eu", "export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH", f"S={STAGE}",
             'has() { for p in "$@"; do [ -e "$p" ] && return 0; done; return 1; }',
             'put() { mkdir -p "${2%/*}"; cp "$S/$stack$2" "$2"; chown 0:0 "$2"; chmod "$1" "$2"; }']
    for i, (stack, markers) in enumerate(STACKS):
        lines.append(f"{'if' if i == 0 else 'elif'} has {' '.join(markers)}; then stack={stack}")
    tried = ", ".join(m[0] for _, m in STACKS)
    lines += [f"else echo 'labvirt: no known network stack in this image (looked for {tried}); "
              "its NICs cannot be configured without cloud-init' >&2; rm -rf \"$S\"; exit 1; fi",
              'case $stack in']
    for stack, _ in STACKS:
        body = [f"put {f.mode} {f.path}" for f in files[stack]]
        if stack == "ifupdown":
            body += _ifupdown_steps(desired, node_key)
        elif stack == "networkd":
            body.append("systemctl enable systemd-networkd")
        elif stack == "networkmanager":
            body.append("systemctl enable NetworkManager || true")
        lines.append(f"{stack}) " + "; ".join(body) + " ;;")
    lines += ["esac", 'rm -rf "$S"', 'echo "labvirt: NICs configured for $stack"']
    return "\n".join(lines) + "\n"


def identity_argv(disk: str, desired: DesiredLab, node_key: str, *, password_file: str | None = None,
                  host_key: str | None = None, login_keys: tuple[str, ...] = (), user: str = "root") -> list[str]:
    """virt-customize argv for one node's new overlay (see the module's docstring). `host_key`: path of
    the node's private ed25519 host key (its .pub beside it); `login_keys`: public keys for `user`."""
    argv = ["virt-customize", "--format", "qcow2", "--add", disk, "--no-network",
            "--hostname", hostname(desired, node_key),
            "--write", f"/etc/hosts:{hosts_file(desired)}"]
    if password_file:
        argv += ["--root-password", f"file:{password_file}", "--password-crypto", "sha512"]
    staged = [(f"{STAGE}/{stack}{f.path}", f.content) for stack, fs in network_files(desired, node_key).items()
              for f in fs]
    argv += ["--mkdir", STAGE, "--chmod", f"0700:{STAGE}"]
    for directory in sorted({os.path.dirname(path) for path, _ in staged}):
        argv += ["--mkdir", directory]
    for path, content in staged:
        argv += ["--write", f"{path}:{content}"]
    argv += ["--run-command", install_script(desired, node_key)]
    if host_key:
        argv += ["--mkdir", "/etc/ssh", "--upload", f"{host_key}:{HOST_KEY}", "--upload", f"{host_key}.pub:{HOST_KEY}.pub",
                 "--run-command", f"chown 0:0 {HOST_KEY} {HOST_KEY}.pub && chmod 0600 {HOST_KEY} && "
                                  f"chmod 0644 {HOST_KEY}.pub"]
    if user != "root" and login_keys:
        q = shlex.quote(user)
        argv += ["--run-command", f"id -u {q} >/dev/null 2>&1 || useradd -m -s /bin/bash {q}",
                 "--mkdir", "/etc/sudoers.d", "--write", f"/etc/sudoers.d/labvirt-{user}:{user} ALL=(ALL) NOPASSWD:ALL\n",
                 "--chmod", f"0440:/etc/sudoers.d/labvirt-{user}"]
    for key in login_keys:
        argv += ["--ssh-inject", f"{user}:string:{key}"]
    return argv + ["--run-command", RELABEL]
