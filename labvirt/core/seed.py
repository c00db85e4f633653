"""cloud-init NoCloud seed ISOs in pure Python (pycdlib): render documents to bytes, parse them back.

What cloud-init's NoCloud source needs: an iso9660 (or vfat) filesystem labelled `cidata` (it also
accepts `CIDATA`) with `user-data` and `meta-data` in the root, optionally `network-config` and
`vendor-data`. Plain ISO 9660 names are upper-case 8.3 (`META_DAT.;1`), so the image also carries
Rock Ridge and Joliet names: Linux mounts show `meta-data`, as cloud-localds/genisoimage -R -J do.

Pure: no libvirt, no subprocess, no files (bytes in, bytes out).
"""

from __future__ import annotations

import io
import re

import pycdlib

SEED_LABEL = "cidata"
REQUIRED = ("meta-data", "user-data")
OPTIONAL = ("network-config", "vendor-data")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def iso9660_name(name: str) -> str:
    """The plain ISO 9660 (level 1) name: `meta-data` -> `/META_DAT.;1`."""
    stem = re.sub(r"[^A-Z0-9_]", "_", name.upper())[:8]
    return f"/{stem}.;1"


def build_seed_iso(documents: dict[str, str]) -> bytes:
    """A NoCloud seed ISO holding `documents` (file name -> text) in its root directory."""
    missing = [n for n in REQUIRED if n not in documents]
    if missing:
        raise ValueError(f"a NoCloud seed needs {', '.join(REQUIRED)}; missing {', '.join(missing)}")
    plain: dict[str, str] = {}
    for name in documents:
        if not _NAME.match(name):
            raise ValueError(f"seed file name {name!r}: allowed lower-case letters, digits, '.', '_', '-'")
        other = plain.setdefault(iso9660_name(name), name)
        if other != name:
            raise ValueError(f"seed files {other!r} and {name!r} share the ISO 9660 name {iso9660_name(name)}")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=SEED_LABEL, joliet=3, rock_ridge="1.09")
    try:
        for name in sorted(documents):
            data = documents[name].encode("utf-8")
            iso.add_fp(io.BytesIO(data), len(data), iso9660_name(name), rr_name=name, joliet_path=f"/{name}")
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def _open(data: bytes) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    return iso


def read_seed_iso(data: bytes) -> dict[str, str]:
    """The files in the root of a seed ISO, by their long (Rock Ridge, else Joliet) names."""
    iso = _open(data)
    try:
        if iso.has_rock_ridge():
            facet, key = iso.get_rock_ridge_facade(), "rr_path"
        elif iso.has_joliet():
            facet, key = iso.get_joliet_facade(), "joliet_path"
        else:
            facet, key = iso.get_iso9660_facade(), "iso_path"
        documents = {}
        for child in facet.list_children("/"):
            if child.is_dot() or child.is_dotdot() or not child.is_file():
                continue
            if key == "rr_path":
                path = name = child.rock_ridge.name().decode()
            elif key == "joliet_path":
                path = name = child.file_identifier().decode("utf-16_be")
            else:   # no long names: META_DAT.;1 is all there is
                path = child.file_identifier().decode()
                name = path.split(";")[0].rstrip(".").lower()
            out = io.BytesIO()
            facet.get_file_from_iso_fp(out, f"/{path}")
            documents[name] = out.getvalue().decode("utf-8")
        return documents
    finally:
        iso.close()


def seed_label(data: bytes) -> str:
    """The volume label cloud-init looks for (the primary volume descriptor's identifier)."""
    iso = _open(data)
    try:
        return iso.pvd.volume_identifier.decode().rstrip()
    finally:
        iso.close()
