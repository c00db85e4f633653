"""Logging in to nodes: login addresses, ssh argv, an Ansible inventory. Pure."""

from __future__ import annotations

from labvirt.core.desired import DesiredDomain, DesiredLab

GROUPS = {"controller": "controller", "compute": "compute", "network": "network", "storage": "storage"}


def login_address(dom: DesiredDomain) -> str | None:
    """The node's first static address (the one /etc/hosts gives its name)."""
    return next((str(n.address) for n in dom.nics if n.address is not None), None)


def ssh_argv(address: str, user: str, key: str, known_hosts: str, jump: str | None = None,
             command: list[str] = ()) -> list[str]:
    argv = ["ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=accept-new"]
    if jump:
        argv += ["-J", jump]
    argv.append(f"{user}@{address}")
    if command:
        argv += ["--", *command]
    return argv


def inventory(desired: DesiredLab, user: str, key: str) -> str:
    """Ansible INI inventory: groups by role (controller, compute, ...), login address per host."""
    groups: dict[str, list[str]] = {}
    for dom in desired.domains:
        address = login_address(dom)
        host = dom.key + (f" ansible_host={address}" if address else "")
        groups.setdefault(GROUPS.get(dom.role, "other"), []).append(host)
    lines = [f"# labvirt lab {desired.copy.prefix}"]
    for group in sorted(groups):
        lines += [f"[{group}]", *groups[group], ""]
    lines += ["[all:vars]", f"ansible_user={user}", f"ansible_ssh_private_key_file={key}",
              "ansible_ssh_common_args='-o StrictHostKeyChecking=accept-new'", ""]
    return "\n".join(lines)
