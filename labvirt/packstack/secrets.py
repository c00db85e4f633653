"""Per-lab packstack passwords: generated once, kept 0600 in the lab copy's state directory.

Stable across calls, so an answer file generated again for the same lab copy carries the same
passwords. Never printed here; `answers.mask` hides them for display.
"""

from __future__ import annotations

import json
import os
import stat
from secrets import token_urlsafe

from labvirt.core.errors import LabvirtError
from labvirt.driver.state_files import lab_state_dir, write_private

PASSWORDS_FILE = "packstack-passwords.json"
PASSWORD_BYTES = 12   # 16 URL-safe characters: also a valid CONFIG_HEAT_AUTH_ENC_KEY (16, 24 or 32 chars)


def passwords_path(lab: str, student: str = "") -> str:
    return os.path.join(lab_state_dir(lab, student), PASSWORDS_FILE)


def new_password() -> str:
    """16 characters of [A-Za-z0-9_-], never starting with '-' (command lines would take it for an option)."""
    while True:
        value = token_urlsafe(PASSWORD_BYTES)
        if not value.startswith("-"):
            return value


def _read(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise LabvirtError(f"{path}: cannot read the lab's packstack passwords ({e}); "
                           "repair it, or move it away to generate new ones") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise LabvirtError(f"{path}: not a labvirt password file (expected a JSON object of strings); "
                           "repair it, or move it away to generate new ones")
    return data


def lab_passwords(lab: str, student: str, keys) -> dict[str, str]:
    """{key: password} for `keys` (in that order); missing ones are generated and stored, existing ones kept."""
    path = passwords_path(lab, student)
    stored = _read(path)
    missing = [k for k in dict.fromkeys(keys) if k not in stored]
    for key in missing:
        stored[key] = new_password()
    if missing:
        write_private(path, json.dumps(stored, indent=2, sort_keys=True) + "\n")
    elif os.path.exists(path) and stat.S_IMODE(os.stat(path).st_mode) & 0o077:
        os.chmod(path, 0o600)
    return {k: stored[k] for k in keys}
