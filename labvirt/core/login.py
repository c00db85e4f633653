"""Logging in to nodes: login addresses, the ssh options, ssh argv, an Ansible inventory. Pure.

The ssh options live in one place (`ssh_options`): `labvirt ssh`, `packstack run` and the Ansible
inventory all log in with the lab's key only, labvirt's own known_hosts file (strict: labvirt made
every node's host key), batch mode and a connect timeout, and, for nodes on a qemu+ssh host, a jump
through that host.

Ansible groups: `labvirt_ROLE` per role (`labvirt_controller`, `labvirt_compute`, ...) and
`labvirt_nodes` holding them all, which carries the connection variables (not `all`, so an inventory
combined with others does not hand the lab's key to foreign hosts). Node names cannot contain '_'
(see core.fields.NAME_RE), so no group can share a name with a host, which Ansible warns about and
resolves by turning the host's variables into the group's.
"""

from __future__ import annotations

import shlex

from labvirt.core.desired import DesiredDomain, DesiredLab
from labvirt.core.errors import LabvirtError

GROUP_PREFIX = "labvirt_"
NODES_GROUP = "labvirt_nodes"
ANSIBLE_RESERVED = ("all", "ungrouped")     # Ansible's implicit groups: a host of that name collides


def login_address(dom: DesiredDomain) -> str | None:
    """The node's first static address (the one /etc/hosts gives its name)."""
    return next((str(n.address) for n in dom.nics if n.address is not None), None)


CONNECT_TIMEOUT = 10     # seconds; a node that does not answer is reported, not waited for


def ssh_options(key: str, known_hosts: str | None = None, jump: str | None = None) -> list[str]:
    """The ssh client options for logging in to a lab node (also valid for scp and sftp): the lab's
    key only; host keys checked strictly against labvirt's own known_hosts (labvirt made every node's
    host key, so there is nothing to trust on first use, and the user's ~/.ssh/known_hosts is neither
    read for nodes nor written); batch mode, so ssh never sits at a password prompt; a connect timeout."""
    opts = ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}"]
    if known_hosts:
        opts += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                 "-o", "StrictHostKeyChecking=yes"]
    else:
        opts += ["-o", "StrictHostKeyChecking=accept-new"]
    if jump:
        opts += ["-J", jump]
    return opts


def ssh_argv(address: str, user: str, key: str, known_hosts: str, jump: str | None = None,
             command: list[str] = ()) -> list[str]:
    argv = ["ssh", *ssh_options(key, known_hosts, jump), f"{user}@{address}"]
    if command:
        argv += ["--", *command]
    return argv


def role_group(role: str) -> str:
    return GROUP_PREFIX + role


def _ini_value(value: str) -> str:
    """A value Ansible's INI parser reads back exactly: it evaluates values as Python literals."""
    return repr(value)


def inventory(desired: DesiredLab, user: str, key: str, known_hosts: str | None = None,
              jump: str | None = None) -> str:
    """Ansible INI inventory: a group per role, every node's login address, the lab's ssh options."""
    groups: dict[str, list[str]] = {}
    for dom in desired.domains:
        if dom.key in ANSIBLE_RESERVED:
            raise LabvirtError(f"node {dom.key!r}: Ansible reserves this name for a group of hosts; "
                               f"rename domains/{dom.key}.toml to use 'labvirt inventory'")
        address = login_address(dom)
        host = dom.key + (f" ansible_host={address}" if address else "")
        groups.setdefault(role_group(dom.role), []).append(host)
    lines = [f"# labvirt lab {desired.copy.prefix}: groups {NODES_GROUP} and {GROUP_PREFIX}ROLE"]
    for group in sorted(groups):
        lines += [f"[{group}]", *groups[group], ""]
    lines += [f"[{NODES_GROUP}:children]", *sorted(groups), ""]
    lines += [f"[{NODES_GROUP}:vars]",
              f"ansible_user={_ini_value(user)}",
              f"ansible_ssh_private_key_file={_ini_value(key)}",
              f"ansible_ssh_common_args={_ini_value(shlex.join(ssh_options(key, known_hosts, jump)))}", ""]
    return "\n".join(lines)
