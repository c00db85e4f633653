"""`labvirt init`: copy this package's template lab into a new directory.

The template is the repository's standard lab (the course's: controller + compute on libvirt's
`default` and a host-only 192.168.90.0/24), with the lab name left to fill in; tests/test_repositories.py
keeps the two identical."""

from __future__ import annotations

import os
import shutil

from labvirt.core.errors import LabvirtError
from labvirt.core.fields import NAME_RE, NAME_RULE

_HERE = os.path.dirname(__file__)


def scaffold(directory: str, name: str | None = None) -> str:
    name = name or os.path.basename(os.path.abspath(directory)).lower()
    if not NAME_RE.match(name):
        raise LabvirtError(f"lab name {name!r} is not allowed: {NAME_RULE}; give --name")
    if os.path.exists(os.path.join(directory, "lab.toml")):
        raise LabvirtError(f"{directory} already holds a lab (lab.toml exists); nothing changed")
    os.makedirs(directory, exist_ok=True)
    for sub in ("domains", "networks", "images", "checks"):
        shutil.copytree(os.path.join(_HERE, sub), os.path.join(directory, sub), dirs_exist_ok=True)
    with open(os.path.join(_HERE, "lab.toml")) as f:
        text = f.read().replace('name = "LABNAME"', f'name = "{name}"')
    with open(os.path.join(directory, "lab.toml"), "w") as f:
        f.write(text)
    return name
