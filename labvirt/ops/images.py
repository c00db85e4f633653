"""Golden images kept as volumes in labvirt's image pool, keyed by a hash of their recipe.

A golden image's volume is named `<recipe>-<hash>.qcow2`: an unchanged recipe finds its image and is
not rebuilt; a changed one builds a new volume beside the old. Which labs use an image is read from
libvirt (overlays whose backing store is the image), never from a side file.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable

from labvirt.core.desired import GoldenImage, golden_image, image_pool, image_pool_path
from labvirt.core.errors import LabvirtError, NotFoundError
from labvirt.core.record import Record
from labvirt.ops.volumes import removed_on_failure
from labvirt.core.identity import IMAGE_POOL
from labvirt.core.observed import Observed
from labvirt.core.render import render_pool, render_volume, tostring
from labvirt.core.spec import DEFAULT_POOL_DIR, ImageSpec, LabSpec


class ImageInfo(Record):
    name: str
    volume: str
    recipe_hash: str
    path: str
    capacity: int
    allocation: int
    used_by: tuple[str, ...]     # "pool/volume" of overlays backed by it
    current: bool                # matches the lab's recipe as it is now
    built: float | None = None   # when (the volume's mtime), where the host says


def recipe(spec: LabSpec, name: str) -> ImageSpec:
    for image in spec.images:
        if image.name == name:
            return image
    known = ", ".join(i.name for i in spec.images) or "none"
    raise LabvirtError(f"no image recipe {name!r} in {spec.directory}/images; known: {known}")


def images_dir(spec: LabSpec | None, host, observed: Observed) -> str:
    """The host's image pool directory: where it is, else where this lab would put it."""
    pool = observed.pools.get(IMAGE_POOL)
    if pool is not None and pool.path:
        return pool.path
    if host.image_dir:
        return host.image_dir
    return image_pool_path(host.pool_dir or (spec.pool_dir if spec else DEFAULT_POOL_DIR))


def ensure_pool(driver, directory: str):
    """Define (where missing) and start labvirt's image pool, as it is now on the host: other processes may
    have removed it since the caller looked (`image remove` of its last image). Returns the pool as observed
    once it runs. Refuses a pool of that name labvirt did not create."""
    pool = driver.observe(IMAGE_POOL).pools.get(IMAGE_POOL)
    want = image_pool(directory)
    if pool is None:
        driver.define_pool(tostring(render_pool(want)))
    elif pool.uuid != want.uuid:
        raise LabvirtError(f"storage pool {IMAGE_POOL!r} exists but was not created by labvirt; not touching it")
    elif pool.active:
        return pool
    driver.start_pool(IMAGE_POOL)
    return driver.observe(IMAGE_POOL).pools[IMAGE_POOL]      # started: its volumes show now


def stopped_pool(observed: Observed):
    """labvirt's image pool when it is defined but not running (its directory was removed, or the host
    started without it), else None. A stopped pool shows no volumes."""
    pool = observed.pools.get(IMAGE_POOL)
    return pool if pool is not None and not pool.active else None


def restart_stopped_pool(driver, observed: Observed, directory: str) -> bool:
    """Start labvirt's stopped image pool again (an empty directory is made where it is missing), so its
    images can be seen and removed. Refuses a pool of that name labvirt did not create. True when started."""
    if stopped_pool(observed) is None:
        return False
    ensure_pool(driver, directory)
    return True


def list_images(spec: LabSpec | None, observed: Observed, directory: str) -> list[ImageInfo]:
    pool = observed.pools.get(IMAGE_POOL)
    if pool is None:
        return []
    current = {golden_image(i, directory).volume for i in spec.images} if spec else set()
    users: dict[str, list[str]] = {}
    for p in observed.pools.values():
        for v in p.volumes:
            if v.backing:
                users.setdefault(v.backing, []).append(f"{p.name}/{v.name}")
    out = []
    for v in pool.volumes:
        stem = v.name[:-len(".qcow2")] if v.name.endswith(".qcow2") else v.name
        name, _, h = stem.rpartition("-")
        out.append(ImageInfo(name=name or stem, volume=v.name, recipe_hash=h, path=v.path, capacity=v.capacity,
                             allocation=v.allocation, used_by=tuple(sorted(users.get(v.path, []))),
                             current=v.name in current, built=v.modified))
    return sorted(out, key=lambda i: (i.name, i.volume))


def build(spec: LabSpec, name: str, driver, directory: str, force: bool = False,
          on_line: Callable[[str], None] = lambda line: None) -> tuple[GoldenImage, str]:
    """Build (or find) the golden image of recipe `name` in the image pool as it is now. Returns it and what
    happened."""
    image = recipe(spec, name)
    golden = golden_image(image, directory)
    exists = ensure_pool(driver, directory).volume(golden.volume) is not None
    if exists and not force:
        return golden, "up to date"
    if exists:
        in_use = [i for i in list_images(spec, driver.observe(), directory) if i.volume == golden.volume and i.used_by]
        if in_use:
            raise LabvirtError(f"image {name!r} is used by {', '.join(in_use[0].used_by)}; "
                               "destroy those labs before rebuilding it with --force")
        driver.delete_volume(IMAGE_POOL, golden.volume)
    vol_xml = tostring(render_volume(_volume(golden, image)))
    if driver.simulated:
        on_line("simulated host: no virt-builder run; the golden image is an empty volume of the recipe's size")
        driver.create_volume(IMAGE_POOL, vol_xml)
        return golden, "built (simulated)"
    from labvirt.driver import virt_builder as builder

    with tempfile.TemporaryDirectory(prefix="labvirt-build-") as work:
        out = os.path.join(work, golden.volume)
        password_file = builder.root_password_file(image, spec.name)
        env = builder.builder_env(image, work)
        for argv in builder.build_commands(image, out, password_file):
            on_line("$ " + " ".join(argv))
            builder.run_builder(argv, env, on_line)
        # again: while virt-builder ran (minutes), another process may have removed the pool with its
        # last image (`image remove`); it is made again then
        ensure_pool(driver, directory)
        driver.create_volume(IMAGE_POOL, vol_xml)
        with removed_on_failure(driver, IMAGE_POOL, golden.volume):
            driver.upload_volume(IMAGE_POOL, golden.volume, path=out)
    return golden, "built"


def _volume(golden: GoldenImage, image: ImageSpec):
    from labvirt.core.desired import DesiredVolume

    return DesiredVolume(pool=IMAGE_POOL, name=golden.volume, path=golden.path, capacity=image.size)


def remove(spec: LabSpec | None, name: str, driver, observed: Observed, directory: str) -> list[str]:
    """Remove every golden volume of recipe `name` (or one volume by its name); refuse while in use."""
    images = [i for i in list_images(spec, observed, directory) if name in (i.name, i.volume)]
    if not images:
        raise NotFoundError(f"no golden image {name!r} in pool {IMAGE_POOL} ({directory})")
    busy = [i for i in images if i.used_by]
    if busy:
        raise LabvirtError(f"image {busy[0].volume} is the backing store of {', '.join(busy[0].used_by)}; "
                           "destroy those labs first")
    for i in images:
        driver.delete_volume(IMAGE_POOL, i.volume)
    pool = driver.observe(IMAGE_POOL).pools.get(IMAGE_POOL)      # now: another build may have added one
    if pool is not None and pool.active and not pool.volumes:    # the last images: the pool goes too
        driver.delete_pool(IMAGE_POOL)
    return [i.volume for i in images]
