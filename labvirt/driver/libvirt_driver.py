"""The thin libvirt layer: translates calls, maps errors, never decides.

Every method takes names and XML produced by the pure core. libvirt errors become labvirt errors:
"not found" codes -> NotFoundError, everything else -> DriverError carrying libvirt's own message.
The same class serves qemu:///system, remote URIs and the simulator (libvirt's test driver); the
simulator subclass only overrides what the test driver cannot do.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time

import libvirt

from labvirt.core.errors import ConnectionFailed, DriverError, UnsupportedError
from labvirt.core.observed import Observed, parse_domain, parse_network, parse_pool, parse_volume
from labvirt.driver import host_networks
from labvirt.driver.libvirt_errors import libvirt_errors, vanishing
from labvirt.driver.libvirt_snapshots import Snapshots

STATES = {libvirt.VIR_DOMAIN_NOSTATE: "nostate", libvirt.VIR_DOMAIN_RUNNING: "running",
          libvirt.VIR_DOMAIN_BLOCKED: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
          libvirt.VIR_DOMAIN_SHUTDOWN: "shutting-down", libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
          libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended"}
# How long start_domain waits for a start already under way in libvirtd (one whose client died: an
# `up` killed mid-start leaves the domain "paused: starting up" until libvirtd's start job ends).
START_WAIT = 120.0


def domain_state(state: int, reason: int) -> str:
    """labvirt's name for a domain's (state, reason): "starting" while libvirtd is still starting it
    (QEMU runs paused until the start job resumes it), a state name from STATES otherwise."""
    if state == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP:
        return "starting"
    return STATES.get(state, "unknown")


# libvirtd serves at most max_client_requests calls of one connection at a time (5 unless its config
# says otherwise). Past that it stops reading the connection, keepalive replies and stream packets
# included; when a volume upload's stream failed in that state, the connection stayed stalled for good
# (seen here: `class up` of 30 students, 8 students x 4 workers on one connection, hung in rep 3 of 5).
# So at most CALLS_IN_FLIGHT driver calls use one connection at once (Driver.rpc), and volume uploads
# stream over a connection of their own.
CALLS_IN_FLIGHT = 4


def open_libvirt(uri: str) -> libvirt.virConnect:
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as e:
        msg = (e.get_error_message() or str(e)).strip().splitlines()[0]
        raise ConnectionFailed(f"cannot reach libvirt at {uri}: {msg}. Try the simulator: --connect sim") from None


class Driver(Snapshots):
    simulated = False

    def __init__(self, conn: libvirt.virConnect, uri: str):
        self.conn = conn
        self.uri = uri
        self._first_validation = threading.Lock()
        self._validated_once = False
        self._gate = threading.BoundedSemaphore(CALLS_IN_FLIGHT)
        self._inside = threading.local()       # this thread's depth of nested rpc() blocks

    @contextlib.contextmanager
    def rpc(self, what: str):
        """Calls on this connection, `what` naming them in errors (libvirt_errors): at most CALLS_IN_FLIGHT
        threads are inside at once; a thread already inside goes on (nested driver methods)."""
        depth = getattr(self._inside, "depth", 0)
        if depth == 0:
            self._gate.acquire()
        self._inside.depth = depth + 1
        try:
            with libvirt_errors(what):
                yield
        finally:
            self._inside.depth = depth
            if depth == 0:
                self._gate.release()

    def _validated(self, call, *args):
        """Run a define with VALIDATE. libxml2 registers its XML Schema datatypes library on first
        RelaxNG use without a lock: two first validations at once (the test driver validates in this
        process) fail with "type 'unsignedInt' is not exported". So the first one runs alone."""
        if not self._validated_once:
            with self._first_validation:
                if not self._validated_once:       # whoever waited here runs concurrently afterwards
                    result = call(*args)
                    self._validated_once = True
                    return result
        return call(*args)

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()

    # -- reading ------------------------------------------------------------------------------
    def observe(self, prefix: str | None = None) -> Observed:
        """Everything labvirt may care about. `prefix` (a lab copy's prefix) limits domains and networks
        to '<prefix>-*' and pools to the copy's pool and the image pool (bridges: all networks).

        Other processes may remove objects while we look: an object that vanishes is skipped.
        """
        domains, networks, pools, bridges, every_network = {}, {}, {}, set(), []
        with self.rpc("listing domains"):
            for dom in self.conn.listAllDomains():
                with vanishing():
                    if prefix and not dom.name().startswith(prefix + "-"):
                        continue
                    domains[dom.name()] = self._observe_domain(dom)
        with self.rpc("listing networks"):
            listed = self.conn.listAllNetworks()
            # then which run and which autostart: two listings, not two calls per network (a class host has 60+)
            active = {n.UUIDString() for n in self.conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE)}
            autostart = {n.UUIDString() for n in self.conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_AUTOSTART)}
            for net in listed:
                with vanishing():
                    uuid = net.UUIDString()
                    obs = parse_network(self._network_xml(net), uuid in active, uuid in autostart)
                    every_network.append(obs)
                    if obs.bridge:
                        bridges.add(obs.bridge)
                    if not prefix or obs.name.startswith(prefix + "-"):
                        networks[obs.name] = obs
        with self.rpc("listing storage pools"):
            for pool in self.conn.listAllStoragePools():
                with vanishing():
                    name = pool.name()
                    if prefix and name not in (f"labvirt-{prefix}", "labvirt-images"):
                        continue
                    active = bool(pool.isActive())
                    vols = self._observe_volumes(pool) if active else ()
                    pools[name] = parse_pool(pool.XMLDesc(0), active, bool(pool.autostart()), vols)
        return Observed(domains=domains, networks=networks, pools=pools, bridges=frozenset(bridges),
                        host_networks=tuple(every_network))

    # the host's own networks and bridges that labs attach to (read only): driver/host_networks.py
    def networks_named(self, names) -> dict:
        return host_networks.networks_named(self, names)

    def host_bridges(self) -> dict[str, bool] | None:
        with self.rpc("listing the host's bridges"):
            return host_networks.host_bridges(self.conn)

    def leases(self, network: str) -> tuple[tuple[str, str], ...]:
        with self.rpc(f"leases of network {network}"):
            return host_networks.leases(self.conn, network)

    @staticmethod
    def _observe_volumes(pool) -> tuple:
        out = []
        for vol in pool.listAllVolumes():
            with vanishing():
                out.append(parse_volume(vol.XMLDesc(0)))
        return tuple(out)

    def _network_xml(self, net) -> str:
        """The persistent definition (what labvirt redefines), where the host can tell it apart."""
        try:
            return net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
        except libvirt.libvirtError as e:
            if e.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:    # the test driver: no such flag
                raise
            return net.XMLDesc(0)

    def _observe_domain(self, dom):
        state = domain_state(*dom.state())
        current = None
        names: tuple[str, ...] = ()
        if dom.hasCurrentSnapshot():
            current = dom.snapshotCurrent().getName()
        names = tuple(dom.snapshotListNames())
        return parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), state, current, names)

    def capabilities(self) -> str:
        with self.rpc("host capabilities"):
            return self.conn.getCapabilities()

    def host_info(self) -> dict:
        with self.rpc("host info"):
            model, memory_mib, cpus, *_ = self.conn.getInfo()
            return {"cpus": cpus, "memory": memory_mib * 2**20, "hostname": self.conn.getHostname(),
                    "version": self.conn.getLibVersion()}

    def addresses(self, name: str) -> tuple[dict[str, list[dict]], dict[str, str]]:
        """Observed addresses by MAC, from each source that can answer; and what each source said.

        Sources: DHCP lease (libvirt's dnsmasq), guest agent, ARP. Each failure is tolerated and
        reported (on some kernels libvirt 9.0's ARP lookup fails with 'wrong nlmsg len').
        """
        found: dict[str, list[dict]] = {}
        said: dict[str, str] = {}
        with self.rpc(f"domain {name}"):
            dom = self.conn.lookupByName(name)
            if not dom.isActive():
                return found, {"all": "not running"}
        sources = (("lease", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE),
                   ("agent", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT),
                   ("arp", libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP))
        for source, flag in sources:
            try:
                ifaces = dom.interfaceAddresses(flag, 0) or {}
            except libvirt.libvirtError as e:
                said[source] = (e.get_error_message() or str(e)).strip()
                continue
            n = 0
            for iface in ifaces.values():
                for addr in iface.get("addrs") or []:
                    if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                        found.setdefault((iface.get("hwaddr") or "").lower(), []).append(
                            {"ip": addr["addr"], "prefix": addr.get("prefix"), "source": source})
                        n += 1
            said[source] = f"{n} address(es)"
        return found, said

    # -- networks -----------------------------------------------------------------------------
    def define_network(self, xml: str) -> None:
        with self.rpc("defining network"):
            self._validated(self.conn.networkDefineXMLFlags, xml, libvirt.VIR_NETWORK_DEFINE_VALIDATE)

    def start_network(self, name: str) -> None:
        with self.rpc(f"starting network {name}"):
            net = self.conn.networkLookupByName(name)
            if not net.isActive():
                net.create()

    def autostart_network(self, name: str) -> None:
        with self.rpc(f"autostart of network {name}"):
            self.conn.networkLookupByName(name).setAutostart(1)

    def update_network_hosts(self, name: str, section: str, xml: str, add: bool, live: bool) -> None:
        """Add or remove one <host> of the network's DHCP ("dhcp") or DNS ("dns") section, in its
        definition and, when `live`, in the running dnsmasq."""
        which, what = {"dhcp": (libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, "DHCP"),
                       "dns": (libvirt.VIR_NETWORK_SECTION_DNS_HOST, "DNS")}[section]
        cmd = libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST if add else libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG | (libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE if live else 0)
        with self.rpc(f"updating {what} hosts of network {name}"):
            self.conn.networkLookupByName(name).update(cmd, which, -1, xml, flags)

    def delete_network(self, name: str) -> None:
        with self.rpc(f"removing network {name}"):
            net = self.conn.networkLookupByName(name)
            if net.isActive():
                net.destroy()
            net.undefine()

    # -- storage ------------------------------------------------------------------------------
    def define_pool(self, xml: str) -> None:
        with self.rpc("defining storage pool"):
            self.conn.storagePoolDefineXML(xml, 0)

    def start_pool(self, name: str) -> None:
        """Build (mkdir, idempotent), start and autostart: a re-run after an interruption finishes it."""
        with self.rpc(f"starting storage pool {name}"):
            pool = self.conn.storagePoolLookupByName(name)
            if not pool.isActive():
                pool.build(0)
                pool.create(0)
            if not pool.autostart():
                pool.setAutostart(1)

    def create_volume(self, pool: str, xml: str) -> None:
        with self.rpc(f"creating volume in pool {pool}"):
            self.conn.storagePoolLookupByName(pool).createXML(xml, 0)

    def upload_volume(self, pool: str, name: str, data: bytes | None = None, path: str | None = None) -> None:
        """Write bytes or a local file into an existing volume through libvirt's stream (works remotely),
        over a connection of its own (see CALLS_IN_FLIGHT): stream packets count as calls in libvirtd.

        Files are sent in 4 MiB chunks, so memory stays flat whatever the image size.
        """
        size = len(data) if data is not None else os.path.getsize(path)
        conn = open_libvirt(self.uri)
        try:
            with libvirt_errors(f"uploading {pool}/{name}"):
                vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
                stream = conn.newStream(0)
                vol.upload(stream, 0, size, 0)
                try:
                    with (io.BytesIO(data) if data is not None else open(path, "rb")) as f:
                        while chunk := f.read(4 << 20):
                            view = memoryview(chunk)
                            while view:
                                sent = stream.send(bytes(view))
                                view = view[sent:]
                    stream.finish()
                except BaseException:
                    with contextlib.suppress(libvirt.libvirtError):
                        stream.abort()
                    raise
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def delete_volume(self, pool: str, name: str) -> None:
        with self.rpc(f"deleting volume {pool}/{name}"):
            self.conn.storagePoolLookupByName(pool).storageVolLookupByName(name).delete(0)

    def delete_pool(self, name: str) -> None:
        with self.rpc(f"removing storage pool {name}"):
            pool = self.conn.storagePoolLookupByName(name)
            if pool.isActive():
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.delete(0)              # the (now empty) directory; libvirt needs the pool inactive
            pool.undefine()

    # -- domains ------------------------------------------------------------------------------
    def define_domain(self, xml: str) -> None:
        with self.rpc("defining domain"):
            self._validated(self.conn.defineXMLFlags, xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)

    def start_domain(self, name: str, wait: float = START_WAIT) -> None:
        """Start the domain. If libvirtd is already starting it (another client's start, whose client may be
        gone), wait for that start to end, at most `wait` seconds; the wait holds no place among the
        connection's calls in flight (rpc)."""
        what = f"starting {name}"
        with self.rpc(what):
            dom = self.conn.lookupByName(name)
            if not dom.isActive():
                dom.create()
                return
        deadline = time.monotonic() + wait
        while True:
            with self.rpc(what):
                if domain_state(*dom.state()) != "starting":
                    return
            if time.monotonic() >= deadline:
                raise DriverError(f"{what}: libvirt still reports it paused while starting up after {wait:.0f} s "
                                  f"(a start another client began); see 'virsh domstate --reason {name}'")
            time.sleep(0.1)

    def attach_nic(self, name: str, xml: str, attach: bool = True) -> None:
        """Live only: the persistent definition is updated separately by redefining the domain."""
        with self.rpc(f"{'attaching' if attach else 'detaching'} NIC on {name}"):
            dom = self.conn.lookupByName(name)
            if attach:
                dom.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            else:
                dom.detachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def shutdown_domain(self, name: str, timeout: float = 60.0) -> str:
        """Graceful shutdown, bounded; then destroy. Returns 'shutdown' or 'destroyed'. The wait holds no
        place among the connection's calls in flight (rpc)."""
        what = f"shutting down {name}"
        with self.rpc(what):
            dom = self.conn.lookupByName(name)
            if not dom.isActive():
                return "shutdown"
            if timeout > 0:
                with contextlib.suppress(libvirt.libvirtError):
                    dom.shutdown()
        deadline = time.monotonic() + timeout
        delay = 0.05
        while timeout > 0 and time.monotonic() < deadline:
            with self.rpc(what):
                if not dom.isActive():
                    return "shutdown"
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        with self.rpc(what), contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        return "destroyed"

    def customize_disk(self, argv: list[str]) -> None:
        """Run virt-customize on a volume's file: it must be on this machine."""
        from labvirt.core.uris import is_local

        if not is_local(self.uri):
            raise UnsupportedError(f"virt-customize identity needs the disks on this machine, not on {self.uri}; "
                                   "use identity = \"cloud-init\" in the image recipe")
        from labvirt.driver.virt_builder import guestfs_env, run_builder

        run_builder(argv, guestfs_env(), lambda line: None)

    def destroy_domain(self, name: str) -> None:
        """Stop at once and undefine with its snapshot metadata, managed save and NVRAM."""
        with self.rpc(f"removing {name}"):
            dom = self.conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            base = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            try:
                dom.undefineFlags(base | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:   # "unsupported flags": older/test hosts
                    raise
                dom.undefineFlags(base)
