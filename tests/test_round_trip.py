"""Every render_* has a parse_*: what labvirt writes into libvirt XML, it reads back.

Each desired object goes through libvirt's test driver (define, then XMLDesc: libvirt normalises the
XML) and back through labvirt's parser. Every field of the desired record is listed below, either
with how it is read back or as write-only with the reason; a field added to a Desired* class and
forgotten here fails `test_every_field_is_accounted_for`.
"""

from ipaddress import ip_interface

import libvirt
import pytest

from labvirt.core.desired import DesiredDomain, DesiredNetwork, DesiredPool, DesiredVolume, HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.record import field_names
from labvirt.core.observed import parse_dns_hosts, parse_domain, parse_network, parse_pool, parse_volume
from labvirt.core.render import render_domain, render_network, render_pool, render_volume, tostring

from .conftest import EXAMPLES

WRITE_ONLY = object()

# desired field -> (what it should equal, read from the observed object) or WRITE_ONLY with the reason
NETWORK = {
    "key": (lambda d: d.key, lambda o: o.owner.name),
    "name": (lambda d: d.name, lambda o: o.name),
    "uuid": (lambda d: d.uuid, lambda o: o.uuid),
    "mode": (lambda d: None if d.mode == "isolated" else d.mode, lambda o: o.forward),
    "bridge": (lambda d: d.bridge, lambda o: o.bridge),
    "subnet": (lambda d: d.subnet, lambda o: ip_interface(o.addresses[0]).network),
    "gateway": (lambda d: d.gateway, lambda o: ip_interface(o.addresses[0]).ip),
    "dhcp_start": WRITE_ONLY,   # the range is libvirt's business; labvirt plans by reservations
    "dhcp_end": WRITE_ONLY,
    "hosts": (lambda d: sorted((h.mac, str(h.ip), h.hostname) for h in d.hosts),
              lambda o: sorted((h.mac, h.ip, h.hostname) for h in o.hosts)),
    "domain": WRITE_ONLY,       # dnsmasq's domain: shown to guests, never compared
    "lab": (lambda d: d.lab, lambda o: o.owner.lab),
    "student": (lambda d: d.student, lambda o: o.owner.student),
    "spec": (lambda d: d.spec, lambda o: o.owner.spec),
    "origin": (lambda d: d.origin, lambda o: o.owner.origin),
    "external": WRITE_ONLY,     # an external network is never rendered (only NICs on it, read back below)
}
POOL = {
    "name": (lambda d: d.name, lambda o: o.name),
    "uuid": (lambda d: d.uuid, lambda o: o.uuid),
    "path": (lambda d: d.path, lambda o: o.path),
}
VOLUME = {
    "pool": WRITE_ONLY,          # the pool a volume is created in, not part of its XML
    "name": (lambda d: d.name, lambda o: o.name),
    "path": WRITE_ONLY,          # the pool decides the path (checked on the real daemon elsewhere)
    "capacity": (lambda d: d.capacity, lambda o: o.capacity),
    "format": (lambda d: d.format, lambda o: o.format),
    "backing": (lambda d: d.backing, lambda o: o.backing),
    "backing_format": WRITE_ONLY,    # libvirt reports the backing file's path, not its format
    "node": WRITE_ONLY,          # labvirt's own bookkeeping
    "kind": WRITE_ONLY,
}
DOMAIN = {
    "key": (lambda d: d.key, lambda o: o.owner.name),
    "name": (lambda d: d.name, lambda o: o.name),
    "uuid": (lambda d: d.uuid, lambda o: o.uuid),
    "role": WRITE_ONLY,          # in the spec hash below
    "domain_type": WRITE_ONLY,   # in the shape hash below
    "vcpus": (lambda d: d.vcpus, lambda o: o.vcpus),
    "memory": (lambda d: d.memory, lambda o: o.memory),
    "cpu_mode": WRITE_ONLY,      # in the shape hash below
    "nics": (lambda d: [(n.mac, n.network, n.model, n.bridge) for n in d.nics],
             lambda o: [(n.mac, n.network, n.model, n.bridge) for n in o.nics]),
    "disk": (lambda d: d.disk, lambda o: o.disks[0]),
    "seed": (lambda d: d.seed, lambda o: next((x.source for x in o.disk_devices if x.device == "cdrom"), None)),
    "boot": WRITE_ONLY,          # in the shape hash below
    "lab": (lambda d: d.lab, lambda o: o.owner.lab),
    "student": (lambda d: d.student, lambda o: o.owner.student),
    "spec": (lambda d: d.spec, lambda o: o.owner.spec),
    "shape": (lambda d: d.shape, lambda o: o.owner.shape),
    "origin": (lambda d: d.origin, lambda o: o.owner.origin),
}
PAIRS = [(DesiredNetwork, NETWORK), (DesiredPool, POOL), (DesiredVolume, VOLUME), (DesiredDomain, DOMAIN)]


@pytest.mark.parametrize("cls, table", PAIRS, ids=lambda x: getattr(x, "__name__", ""))
def test_every_field_is_accounted_for(cls, table):
    fields = set(field_names(cls))
    assert fields == set(table), f"{cls.__name__}: add to the table {sorted(fields - set(table))}, " \
                                 f"remove {sorted(set(table) - fields)}"


def _check(desired, observed, table):
    for name, how in table.items():
        if how is WRITE_ONLY:
            continue
        want, got = how
        assert want(desired) == got(observed), f"{type(desired).__name__}.{name}"


@pytest.fixture(params=sorted(EXAMPLES))
def desired(request, tmp_path):
    spec = load_lab(EXAMPLES[request.param])
    return desire(spec, LabCopy(spec.name, "alice"), HostParams(domain_type="qemu", pool_dir=str(tmp_path)))


def test_networks_pools_volumes_domains_survive_libvirt(desired):
    libvirt.registerErrorHandler(lambda *a: None, None)
    conn = libvirt.open("test:///default")
    try:
        for net in (n for n in desired.networks if not n.external):    # the host's own: never defined
            back = conn.networkDefineXML(tostring(render_network(net)))
            _check(net, parse_network(back.XMLDesc(0)), NETWORK)
            # <dns><host> is derived from the hosts (and the domain): read back as written
            names = {str(h.ip): (h.hostname, *([f"{h.hostname}.{net.domain}"] if net.domain else [])) for h in net.hosts}
            assert sorted(parse_dns_hosts(back.XMLDesc(0))) == sorted(names.items())
        pool = conn.storagePoolDefineXML(tostring(render_pool(desired.pool)))
        _check(desired.pool, parse_pool(pool.XMLDesc(0)), POOL)
        pool.create()
        for vol in (v for v in desired.volumes if not v.backing):
            back = pool.createXML(tostring(render_volume(vol)), 0)
            _check(vol, parse_volume(back.XMLDesc(0)), VOLUME)
        for vol in (v for v in desired.volumes if v.backing):   # the test driver drops backing stores
            _check(vol, parse_volume(tostring(render_volume(vol))), VOLUME)
        for dom in desired.domains:
            back = conn.defineXML(tostring(render_domain(dom)))
            _check(dom, parse_domain(back.XMLDesc(0)), DOMAIN)
    finally:
        conn.close()
