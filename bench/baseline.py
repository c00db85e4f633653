"""The sequential baseline: the objects labvirt would create, made and removed with libvirt-python one
call after another (what kcli, virt-lightning or a virt-install script does), every call timed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field

# -- what labvirt would create: the same XML, in creation order ---------------------------------------
@dataclass
class Documents:
    networks: list[tuple[str, str]]            # (name, xml)
    pool: tuple[str, str]
    volumes: list[tuple[str, str, str, int]]   # (name, xml, path, capacity)
    domains: list[tuple[str, str]]
    prefix: str


def documents(lab: str) -> Documents:
    """labvirt.core.render's XML for every object of the lab, checked against the XML labvirt's plan carries."""
    from labvirt.core import plan as p
    from labvirt.core.desired import HostParams, desire
    from labvirt.core.identity import LabCopy
    from labvirt.core.loader import load_lab
    from labvirt.core.observed import Observed
    from labvirt.core.render import render_domain, render_network, render_pool, render_volume, tostring

    spec = load_lab(lab)
    desired = desire(spec, LabCopy(spec.name), HostParams(domain_type="qemu", nested_cpu="default"))
    docs = Documents(
        networks=[(n.name, tostring(render_network(n))) for n in desired.networks],
        pool=(desired.pool.name, tostring(render_pool(desired.pool))),
        volumes=[(v.name, tostring(render_volume(v)), v.path, v.capacity) for v in desired.volumes],
        domains=[(d.name, tostring(render_domain(d))) for d in desired.domains],
        prefix=desired.copy.prefix)
    planned = {(type(a).__name__, a.target): a.xml for a in p.plan_up(desired, Observed()).actions
               if getattr(a, "xml", "")}
    mine = {("DefineNetwork", n): x for n, x in docs.networks}
    mine[("DefinePool", docs.pool[0])] = docs.pool[1]
    mine.update({("CreateVolume", f"{docs.pool[0]}/{n}"): x for n, x, *_ in docs.volumes})
    mine.update({("DefineDomain", n): x for n, x in docs.domains})
    if planned != mine:
        raise RuntimeError("the rendered XML differs from the XML in labvirt's plan; the baseline would not "
                           "do the same work")
    return docs


# -- timing --------------------------------------------------------------------------------------------
@dataclass
class Ops:
    """Timed operations done one after another."""

    rows: list[tuple[str, str, float]] = field(default_factory=list)   # (operation, object, seconds)

    def time(self, op: str, obj: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.rows.append((op, obj, time.perf_counter() - t0))
        return out

    @property
    def total(self) -> float:
        return sum(r[2] for r in self.rows)

    def by_op(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for op, _, s in self.rows:
            out[op] = out.get(op, 0.0) + s
        return out


def raw_up(conn, docs: Documents) -> Ops:
    """Create the lab's objects with libvirt-python, one call after another (what kcli & co. do)."""
    ops = Ops()
    for name, xml in docs.networks:
        net = ops.time("network define", name, conn.networkDefineXML, xml)
        ops.time("network start", name, net.create)
        ops.time("network autostart", name, net.setAutostart, 1)
    pname, pxml = docs.pool
    pool = ops.time("pool define", pname, conn.storagePoolDefineXML, pxml, 0)
    ops.time("pool build", pname, pool.build, 0)
    ops.time("pool start", pname, pool.create, 0)
    ops.time("pool autostart", pname, pool.setAutostart, 1)
    for name, xml, *_ in docs.volumes:
        ops.time("volume create", name, pool.createXML, xml, 0)
    for name, xml in docs.domains:
        dom = ops.time("domain define", name, conn.defineXML, xml)
        ops.time("domain start", name, dom.create)
    return ops


def raw_destroy(conn, docs: Documents) -> Ops:
    """Remove them again, one call after another."""
    import libvirt

    ops = Ops()
    for name, _ in docs.domains:
        dom = conn.lookupByName(name)
        if dom.isActive():
            ops.time("domain destroy", name, dom.destroy)
        ops.time("domain undefine", name, dom.undefineFlags, libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
    pname, _ = docs.pool
    pool = conn.storagePoolLookupByName(pname)
    for name, *_ in docs.volumes:
        vol = pool.storageVolLookupByName(name)
        ops.time("volume delete", name, vol.delete, 0)
    ops.time("pool stop", pname, pool.destroy)
    with contextlib.suppress(libvirt.libvirtError):     # the test driver has no directory to remove
        ops.time("pool delete", pname, pool.delete, 0)
    ops.time("pool undefine", pname, pool.undefine)
    for name, _ in docs.networks:
        net = conn.networkLookupByName(name)
        ops.time("network stop", name, net.destroy)
        ops.time("network undefine", name, net.undefine)
    return ops


def qemu_img_volumes(docs: Documents, directory: str) -> Ops:
    """`qemu-img create -f qcow2` of the same disks, one after another, in a scratch directory."""
    ops = Ops()
    os.makedirs(directory, exist_ok=True)
    for name, _, _, capacity in docs.volumes:
        path = os.path.join(directory, name)
        ops.time("qemu-img create", name, subprocess.run, ["qemu-img", "create", "-q", "-f", "qcow2", path,
                                                           str(capacity)], check=True)
        os.unlink(path)
    return ops




# -- the measured floor: the same calls, as concurrent as libvirt allows, by hand ------------------------
def _together(*jobs) -> None:
    """Run every job in its own thread; wait for all; raise the first failure."""
    import threading

    errors: list[BaseException] = []

    def run(job):
        try:
            job()
        except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def raw_up_concurrent(conn, docs: Documents) -> float:
    """Wall seconds of the same creations done by hand as concurrently as they can go: every network
    defined, started and autostarted in its own thread while one more thread makes the pool, the volumes
    and the domain definitions; then every domain started at once, one thread each (a domain needs its
    networks and disks). No scheduling, no checks: the least a tool can take on this host."""
    import libvirt

    def network(name, xml):
        def job():
            net = conn.networkDefineXML(xml)
            net.create()
            net.setAutostart(1)
        return job

    def storage_and_definitions():
        pool = conn.storagePoolDefineXML(docs.pool[1], 0)
        pool.build(0)
        pool.create(0)
        pool.setAutostart(1)
        for _, xml, *_ in docs.volumes:
            pool.createXML(xml, 0)
        for _, xml in docs.domains:
            conn.defineXML(xml)

    t0 = time.perf_counter()
    _together(storage_and_definitions, *(network(n, x) for n, x in docs.networks))
    _together(*(lambda name=name: conn.lookupByName(name).create() for name, _ in docs.domains))
    took = time.perf_counter() - t0
    assert all(conn.lookupByName(n).state()[0] == libvirt.VIR_DOMAIN_RUNNING for n, _ in docs.domains)
    return took


def raw_destroy_concurrent(conn, docs: Documents) -> float:
    """Wall seconds of the removals done by hand as concurrently as they can go: every domain destroyed
    and undefined in its own thread; then every network stopped and undefined in its own thread while
    one more thread removes the volumes and the pool."""
    import libvirt

    def domain(name):
        def job():
            dom = conn.lookupByName(name)
            dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        return job

    def network(name):
        def job():
            net = conn.networkLookupByName(name)
            net.destroy()
            net.undefine()
        return job

    def storage():
        pool = conn.storagePoolLookupByName(docs.pool[0])
        for name, *_ in docs.volumes:
            pool.storageVolLookupByName(name).delete(0)
        pool.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            pool.delete(0)
        pool.undefine()

    t0 = time.perf_counter()
    _together(*(domain(n) for n, _ in docs.domains))
    _together(storage, *(network(n) for n, _ in docs.networks))
    return time.perf_counter() - t0
