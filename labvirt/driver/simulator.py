"""The simulator: libvirt's test driver, persisted across processes.

A simulated host lives in a state directory (`labvirt.driver.state_files.sim_dir(NAME)`):
  node.xml   the test driver's host file: domains (with run state and inline snapshots), networks,
             pools and volumes; rewritten atomically after every command
  host.json  capacity (CPUs, memory, disk), host profile, its host bridges (default: br0, like a host
             set up for bridged guests; `labvirt sim create NAME --bridge br1`), and what the node file
             cannot hold (which networks are active or autostarted)
A simulated host has libvirt's `default` NAT network (192.168.122.0/24, DHCP .2-.254), like a fresh
libvirt install.
  lock       flock()ed while a process works on the host
Where the test driver cannot answer (DHCP leases, consoles, guest agent), the simulator answers from
labvirt's own plan and says the answer is simulated.
"""

from __future__ import annotations

import json
import os
import shutil

import libvirt
from lxml import etree
from lxml.builder import ElementMaker

from labvirt.core.errors import LabvirtError, StateError, UnsupportedError
from labvirt.core.record import MutableRecord, as_dict, field_names
from labvirt.core.units import GiB
from labvirt.driver.libvirt_driver import Driver
from labvirt.driver.libvirt_errors import libvirt_errors, one_line
from labvirt.driver.state_files import pid_lock, sim_dir, write_atomic

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
T = ElementMaker(namespace=TEST_NS, nsmap={"test": TEST_NS})
RUNSTATE = {libvirt.VIR_DOMAIN_RUNNING: 1, libvirt.VIR_DOMAIN_BLOCKED: 1, libvirt.VIR_DOMAIN_PAUSED: 3}


class SimHost(MutableRecord):
    name: str
    cpus: int = 16
    memory: int = 64 * GiB
    disk: int = 1024 * GiB
    profile: str = "intel-nested"
    networks_inactive: tuple = ()
    networks_autostart: tuple = ()
    pools_autostart: tuple = ()
    pools_inactive: tuple = ()        # stopped pools (their volumes are not kept: as a removed directory)
    bridges: tuple = ("br0",)

    @property
    def directory(self) -> str:
        return sim_dir(self.name)


DEFAULT_BRIDGES = ("br0",)


def create_host(name: str, cpus: int = 16, memory: int = 64 * GiB, disk: int = 1024 * GiB,
                profile: str = "intel-nested", replace: bool = False, bridges: tuple = DEFAULT_BRIDGES) -> SimHost:
    host = SimHost(name=name, cpus=cpus, memory=memory, disk=disk, profile=profile, bridges=tuple(bridges))
    d = host.directory
    if os.path.exists(os.path.join(d, "node.xml")) and not replace:
        raise LabvirtError(f"simulated host {name!r} already exists in {d}; remove it first")
    os.makedirs(d, exist_ok=True)
    with locked(d):
        _write_host(host)
        write_atomic(os.path.join(d, "node.xml"), etree.tostring(_empty_node(host), pretty_print=True))
    return host


def load_host(name: str) -> SimHost:
    """The simulated host `name` as host.json describes it; StateError naming the file when it is damaged."""
    path = os.path.join(sim_dir(name), "host.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return create_host(name) if name == "default" else _missing(name)
    except OSError as e:
        raise _damaged(name, path, f"cannot read: {e.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError as e:          # JSONDecodeError, UnicodeDecodeError
        raise _damaged(name, path, f"not valid JSON: {e}") from None
    problem = _host_problem(name, data)
    if problem:
        raise _damaged(name, path, problem)
    return SimHost(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _host_problem(name: str, data) -> str | None:
    """What makes host.json's content unusable, or None."""
    from labvirt.host.profiles import PROFILES

    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    unknown = sorted(set(data) - set(field_names(SimHost)))
    if unknown:
        return f"unknown key {unknown[0]!r}"
    if data.get("name") != name:
        return f"'name' is {data.get('name')!r}, expected {name!r}"
    for key in ("cpus", "memory", "disk"):
        value = data.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"{key!r} is {value!r}, expected a positive whole number"
    if data.get("profile", PROFILES[0]) not in PROFILES:
        return f"'profile' is {data['profile']!r}, expected one of {', '.join(PROFILES)}"
    for key in ("networks_inactive", "networks_autostart", "pools_autostart", "pools_inactive", "bridges"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"{key!r} is {value!r}, expected a list of names"
    return None


def _damaged(name: str, path: str, problem: str) -> StateError:
    return StateError(f"{path}: damaged simulated host file ({problem}); nothing was changed. Repair it, or "
                      f"start the simulated host over with 'labvirt sim create {name} --replace' "
                      "(what was simulated on it is lost)")


def _missing(name: str):
    raise LabvirtError(f"no simulated host {name!r}: create it with 'labvirt sim create {name}' "
                       "(the simulator 'sim' = 'sim:///default' is created on first use)")


def remove_host(name: str) -> None:
    """Forget the simulated host `name` and everything on it; works on a damaged host too."""
    d = sim_dir(name)
    if not os.path.isdir(d):
        _missing(name)
    with locked(d):
        shutil.rmtree(d)


def _empty_node(host: SimHost) -> etree._Element:
    E = ElementMaker()
    cpu = E.cpu(E.mhz("2400"), E.model("x86_64"), E.active(str(host.cpus)), E.nodes("1"), E.sockets("1"),
                E.cores(str(host.cpus)), E.threads("1"))
    # like a fresh libvirt install: the 'default' NAT network on 192.168.122.0/24
    default = E.network(E.name("default"), E.bridge(name="virbr0"), E.forward(mode="nat"),
                        E.ip(E.dhcp(E.range(start="192.168.122.2", end="192.168.122.254")),
                             address="192.168.122.1", netmask="255.255.255.0"))
    return E.node(cpu, E.memory(str(host.memory // 1024)), default)


def _write_host(host: SimHost) -> None:
    data = as_dict(host)
    write_atomic(os.path.join(host.directory, "host.json"), json.dumps(data, indent=2).encode())


def locked(directory: str, wait: float | None = None):
    """Hold the host's lock (`directory`/lock); wait a bounded time for another process
    ($LABVIRT_LOCK_WAIT seconds, default 10), then say who holds it."""
    wait = float(os.environ.get("LABVIRT_LOCK_WAIT", "10")) if wait is None else wait
    return pid_lock(os.path.join(directory, "lock"), wait=wait,
                    busy=lambda pid: f"simulated host in {directory} is busy: another labvirt process "
                                     f"(pid {pid}) is working on it; try again when it finishes")


class SimDriver(Driver):
    """Driver over a persisted test-driver host. Use as a context manager: saves on exit."""

    simulated = True

    def __init__(self, host: SimHost):
        self.host = host
        self._lock_cm = locked(host.directory)
        self._lock_cm.__enter__()
        try:
            node = os.path.join(host.directory, "node.xml")
            if not os.path.exists(node):
                write_atomic(node, etree.tostring(_empty_node(host), pretty_print=True))
            try:
                conn = libvirt.open(f"test://{node}")
            except libvirt.libvirtError as e:
                raise _damaged(host.name, node, "libvirt's test driver cannot load it: "
                               + one_line(e.get_error_message() or str(e))) from None
            super().__init__(conn, f"sim:///{host.name}")
            self._restore_flags()
        except BaseException:
            self._lock_cm.__exit__(None, None, None)
            raise

    def _restore_flags(self) -> None:
        for net in self.conn.listAllNetworks():
            if net.name() in self.host.networks_inactive and net.isActive():
                net.destroy()
            if net.name() in self.host.networks_autostart:
                net.setAutostart(1)
        for pool in self.conn.listAllStoragePools():
            if pool.name() in self.host.pools_autostart:
                pool.setAutostart(1)
            if pool.name() in self.host.pools_inactive and pool.isActive():
                pool.destroy()

    def save(self) -> None:
        """Write the whole host back to node.xml (atomically) and the flags to host.json."""
        with libvirt_errors(f"saving simulated host {self.host.name}"):
            self._save()

    def _save(self) -> None:
        E = ElementMaker()
        node = _empty_node(self.host)
        for child in list(node):
            if child.tag == "network":
                node.remove(child)
        inactive, autostart, pool_auto, pool_off = [], [], [], []
        for net in self.conn.listAllNetworks():
            node.append(etree.fromstring(net.XMLDesc(0).encode()))
            if not net.isActive():
                inactive.append(net.name())
            if net.autostart():
                autostart.append(net.name())
        for pool in self.conn.listAllStoragePools():
            el = etree.fromstring(pool.XMLDesc(0).encode())
            if pool.isActive():
                for vol in pool.listAllVolumes():
                    el.append(etree.fromstring(vol.XMLDesc(0).encode()))
            else:
                pool_off.append(pool.name())
            if pool.autostart():
                pool_auto.append(pool.name())
            node.append(el)
        for dom in self.conn.listAllDomains():
            if not dom.isPersistent():
                continue
            el = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE).encode())
            for old in el.findall("id"):
                el.remove(old)
            el.append(T.runstate(str(RUNSTATE.get(dom.state()[0], 5))))
            current = dom.snapshotCurrent().getName() if dom.hasCurrentSnapshot() else None
            for snap in dom.listAllSnapshots(libvirt.VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL):
                snap_el = etree.fromstring(snap.getXMLDesc(libvirt.VIR_DOMAIN_SNAPSHOT_XML_SECURE).encode())
                inline = T.domainsnapshot(*list(snap_el))
                for old in inline.findall("active"):
                    inline.remove(old)
                inline.append(E.active("1" if snap.getName() == current else "0"))
                el.append(inline)
            node.append(el)
        self.host.networks_inactive = tuple(inactive)
        self.host.networks_autostart = tuple(autostart)
        self.host.pools_autostart = tuple(pool_auto)
        self.host.pools_inactive = tuple(pool_off)
        write_atomic(os.path.join(self.host.directory, "node.xml"), etree.tostring(node, pretty_print=True))
        _write_host(self.host)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._lock_cm.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.save()
        finally:
            self.close()

    # -- what the test driver cannot do --------------------------------------------------------
    def define_network(self, xml: str) -> None:
        """The test driver keeps showing an active network's old definition after a redefinition (even
        across a restart): replace the network instead, keeping its state and autostart."""
        name = etree.fromstring(xml.encode()).findtext("name")
        try:
            net = self.conn.networkLookupByName(name)
        except libvirt.libvirtError:
            return super().define_network(xml)
        active, autostart = net.isActive(), net.autostart()
        with libvirt_errors(f"redefining network {name}"):
            if active:
                net.destroy()
            net.undefine()
        super().define_network(xml)
        with libvirt_errors(f"redefining network {name}"):
            net = self.conn.networkLookupByName(name)
            if active:
                net.create()
            if autostart:
                net.setAutostart(1)

    def attach_nic(self, name: str, xml: str, attach: bool = True) -> None:
        """No live devices in the test driver: the redefined persistent definition already has the NIC."""

    def upload_volume(self, pool: str, name: str, data: bytes | None = None, path: str | None = None) -> None:
        """The test driver keeps no volume contents; the seed's documents stay in labvirt's plan."""

    def shutdown_domain(self, name: str, timeout: float = 60.0) -> str:
        with libvirt_errors(f"shutting down {name}"):
            dom = self.conn.lookupByName(name)
            if dom.isActive():
                dom.shutdown()     # the test driver stops at once
        return "shutdown"

    def host_bridges(self) -> dict[str, bool]:
        """The simulated host's bridges, as host.json lists them (up): the test driver has no host interfaces."""
        return {b: True for b in self.host.bridges}

    def leases(self, network: str) -> tuple[tuple[str, str], ...]:
        return ()        # nothing runs here, so nothing holds a lease

    def addresses(self, name: str):
        """The test driver's answer is fake (and crashes on networks without <ip>): nothing is observed."""
        return {}, {"simulator": "no guests run here; addresses are the planned DHCP reservations"}

    def customize_disk(self, argv: list[str]) -> None:
        """Simulated disks have no files: the identity stays in labvirt's plan."""

    def sync_clock(self, name: str, timeout: float = 5.0) -> str | None:
        return "simulated: no guest clock"

    def console(self, name: str):
        raise UnsupportedError(f"the simulator has no consoles: {name} is simulated (use a real libvirt host)")

    def host_info(self) -> dict:
        return {"cpus": self.host.cpus, "memory": self.host.memory, "disk": self.host.disk,
                "hostname": f"sim:{self.host.name}", "version": self.conn.getLibVersion(),
                "profile": self.host.profile}
