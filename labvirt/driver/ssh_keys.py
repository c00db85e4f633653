"""SSH keys a lab copy owns, kept in its state directory (private keys 0600, never printed):

- the login key pair (`lab_key`), whose public half goes to every node;
- one host key pair per node (`host_key`), handed to the guest (seed or virt-customize) so that the
  lab's own known_hosts (`write_known_hosts`) verifies it strictly, before the first login and after
  every rebuild. The user's ~/.ssh/known_hosts is never read for nodes nor written.
"""

from __future__ import annotations

import os

from labvirt.core.errors import LabvirtError
from labvirt.driver.children import capture
from labvirt.driver.state_files import lab_state_dir

KEY_NAME = "id_ed25519"


def lab_key(lab: str, student: str = "") -> tuple[str, str]:
    """(private key path, public key text), generated once with ssh-keygen."""
    path = os.path.join(lab_state_dir(lab, student), KEY_NAME)
    if not os.path.exists(path):
        comment = f"labvirt-{lab}" + (f"-{student}" if student else "")
        _keygen(path, comment)
    os.chmod(path, 0o600)
    with open(path + ".pub") as f:
        return path, f.read().strip()


def _keygen(path: str, comment: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        r = capture(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    except FileNotFoundError:
        raise LabvirtError("ssh-keygen not found: install openssh-client") from None
    if r.returncode != 0:
        raise LabvirtError(f"ssh-keygen failed: {r.stderr.strip()}")


def host_key_path(lab: str, student: str, node: str) -> str:
    return os.path.join(lab_state_dir(lab, student), "host-keys", f"{node}_ed25519")


def host_key(lab: str, student: str, node: str) -> tuple[str, str]:
    """(private key path, public key text) of `node`'s ed25519 host key, generated on first use and
    kept, so a rebuilt node presents the same key."""
    path = host_key_path(lab, student, node)
    if not os.path.exists(path):
        _keygen(path, f"{node}@labvirt-{lab}" + (f"-{student}" if student else ""))
    os.chmod(path, 0o600)
    with open(path + ".pub") as f:
        return path, f.read().strip()


def public_host_keys(lab: str, student: str, nodes: list[str]) -> dict[str, str]:
    """node -> public host key, for the nodes that have one (nothing is generated)."""
    found = {}
    for node in nodes:
        pub = host_key_path(lab, student, node) + ".pub"
        if os.path.exists(pub):
            with open(pub) as f:
                found[node] = f.read().strip()
    return found


def known_hosts_path(lab: str, student: str = "") -> str:
    return os.path.join(lab_state_dir(lab, student), "known_hosts")


def write_known_hosts(lab: str, student: str, text: str) -> str:
    """Replace the lab copy's known_hosts (atomically); returns its path."""
    from labvirt.driver.state_files import write_atomic

    path = known_hosts_path(lab, student)
    write_atomic(path, text.encode())
    return path
