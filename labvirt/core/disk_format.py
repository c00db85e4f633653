"""A disk image's format, read from its first bytes, never guessed from its name. Pure.

Ubuntu's cloud images are qcow2 files named `*.img`: a name says nothing. qemu-img and libvirt read
the header; so does labvirt (ops/session.py reads the bytes, this decides)."""

from __future__ import annotations

HEADER_BYTES = 512
SIGNATURES = (
    (b"QFI\xfb", "qcow2"),
    (b"KDMV", "vmdk"),
    (b"conectix", "vpc"),
    (b"vhdxfile", "vhdx"),
    (b"QED\x00", "qed"),
)


def format_from_header(header: bytes) -> str:
    """qcow2, vmdk, vpc, vhdx, qed from their magic; VDI from its signature at 0x40; otherwise raw."""
    for magic, name in SIGNATURES:
        if header.startswith(magic):
            return name
    if header[0x40:0x44] == b"\x7f\x10\xda\xbe":
        return "vdi"
    return "raw"
