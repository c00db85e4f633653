"""The size of each node's cloud-init seed ISO, known at plan time. Pure.

The seed volume is created from the ISO, so its capacity is the ISO's length. That length depends
only on the names and byte lengths of the documents (pycdlib lays files out in 2 KiB sectors after
a fixed set of descriptors and directory records), so it is computed from documents of the same
shape, once per shape. The plan knows every document except the SSH key and the root password hash,
which are made at the first `up`: they add about 300 bytes to user-data and can add one sector.
The engine sizes the volume from the ISO it actually builds.
"""

from __future__ import annotations

from functools import lru_cache

from labvirt.core.desired import DesiredLab
from labvirt.core.record import replace


def seed_iso_size(documents: dict[str, str]) -> int:
    """Bytes of the seed ISO holding `documents` (what build_seed_iso returns for them)."""
    return _size(tuple(sorted((name, len(text.encode("utf-8"))) for name, text in documents.items())))


@lru_cache(maxsize=256)
def _size(shape: tuple[tuple[str, int], ...]) -> int:
    from labvirt.core.seed import build_seed_iso

    return len(build_seed_iso({name: "x" * length for name, length in shape}))


def with_seed_sizes(desired: DesiredLab, user: str = "root") -> DesiredLab:
    """`desired` with each seed volume's capacity set to the size of the ISO its documents make
    (`user`: the lab's login user, who gets a user entry of their own when not root)."""
    if not any(v.kind == "seed" for v in desired.volumes):
        return desired
    from labvirt.core.cloudinit import seed_documents    # PyYAML: only for labs with seeds

    volumes = tuple(replace(v, capacity=seed_iso_size(seed_documents(desired, v.node, user=user)))
                    if v.kind == "seed" else v for v in desired.volumes)
    return replace(desired, volumes=volumes)
