"""The lab's SSH key pair, kept in the lab copy's state directory (private key 0600)."""

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
        try:
            r = capture(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
        except FileNotFoundError:
            raise LabvirtError("ssh-keygen not found: install openssh-client") from None
        if r.returncode != 0:
            raise LabvirtError(f"ssh-keygen failed: {r.stderr.strip()}")
    os.chmod(path, 0o600)
    with open(path + ".pub") as f:
        return path, f.read().strip()
