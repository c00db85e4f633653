"""The lab's SSH key pair, kept in the lab copy's state directory (private key 0600)."""

from __future__ import annotations

import os
import subprocess

from labvirt.core.errors import LabvirtError
from labvirt.driver.state_files import lab_state_dir

KEY_NAME = "id_ed25519"


def lab_key(lab: str, student: str = "") -> tuple[str, str]:
    """(private key path, public key text), generated once with ssh-keygen."""
    path = os.path.join(lab_state_dir(lab, student), KEY_NAME)
    if not os.path.exists(path):
        comment = f"labvirt-{lab}" + (f"-{student}" if student else "")
        try:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                           check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise LabvirtError("ssh-keygen not found: install openssh-client") from None
        except subprocess.CalledProcessError as e:
            raise LabvirtError(f"ssh-keygen failed: {e.stderr.strip()}") from None
    os.chmod(path, 0o600)
    with open(path + ".pub") as f:
        return path, f.read().strip()
