"""The tiny real guest (tests/support/guest.py) boots under the real libvirtd.

Plain libvirt-python, not labvirt's engine: this proves the kit itself. Each test makes an isolated
network (no <forward>) on an unused 10.254.N.0/24 with a DHCP reservation for the guest's MAC, boots
the guest paused (so the console is open before the kernel prints), resumes it, waits for the lease
and the console marker, types commands on the serial console, and checks that every frame the guest
sent to the bridge was DHCP (or an ARP reply). Skips only when apt/dpkg cannot fetch the packages.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest
from lxml import etree
from lxml.builder import E

from .support import guest, netns

pytestmark = pytest.mark.slow

LEASE_TIMEOUT = 90
MARKER_TIMEOUT = 120


def _kit(flavour: str) -> guest.GuestKit:
    try:
        return guest.tiny_guest_kit(flavour=flavour)
    except guest.GuestKitUnavailable as e:
        pytest.skip(f"cannot fetch the guest's Debian packages with apt/dpkg: {e}")


def test_kit_is_cached_and_well_formed(tmp_path):
    first = _kit("cloud")
    before = {k: os.stat(v).st_mtime_ns for k, v in first.boot().items() if k in ("kernel", "initrd")}
    again = guest.tiny_guest()
    after = {k: os.stat(again[k]).st_mtime_ns for k in before}
    print(f"\nkit: {first.package} {first.version}; first build {first.build_seconds} s; "
          f"initrd {first.initrd_bytes} bytes")   # timings: bench/README.md
    assert before == after and len(before) == 2    # the second call reused the cached files
    assert again == first.boot()
    assert again["cmdline"].startswith("console=ttyS0") and "ipv6.disable=1" in again["cmdline"]
    assert os.path.getsize(again["kernel"]) > 1_000_000
    with open(again["initrd"], "rb") as f:
        assert f.read(2) == b"\x1f\x8b"   # gzip
    assert {"virtio_pci", "virtio_net", "virtio_blk"} <= set(first.modules)
    toml = guest.boot_toml(again)
    assert toml.startswith("[boot]\n") and f'kernel = "{again["kernel"]}"' in toml


# --- helpers ------------------------------------------------------------------------------------

def _used_third_octets(conn) -> set[int]:
    used = set()
    for net in conn.listAllNetworks():
        for ip in etree.fromstring(net.XMLDesc(0)).iter("ip"):
            addr = ip.get("address", "")
            if addr.startswith("10.254."):
                used.add(int(addr.split(".")[2]))
    try:
        r = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    except FileNotFoundError:   # no iproute2: libvirt refuses a subnet in use anyway
        return used
    for line in r.stdout.splitlines():
        for word in line.split():
            if word.startswith("10.254."):
                used.add(int(word.split(".")[2]))
    return used


def _network_xml(name: str, bridge: str, subnet: ipaddress.IPv4Network, mac: str, host: str,
                 ip: str) -> str:
    hosts = list(subnet.hosts())
    root = E.network(
        E.name(name),
        E.bridge(name=bridge, stp="on", delay="0"),
        E.dns(enable="no"),
        E.ip(E.dhcp(E.range(start=str(hosts[99]), end=str(hosts[199])), E.host(mac=mac, name=host, ip=ip)),
             address=str(hosts[0]), netmask=str(subnet.netmask)))
    return etree.tostring(root, encoding="unicode")


def _domain_xml(name: str, boot: dict, disk: str, network: str, mac: str, seed: str | None) -> str:
    devices = E.devices(
        E.disk(E.driver(name="qemu", type="qcow2"), E.source(file=disk), E.target(dev="vda", bus="virtio"),
               type="file", device="disk"))
    if seed:
        devices.append(E.disk(E.driver(name="qemu", type="raw"), E.source(file=seed),
                              E.target(dev="sda", bus="sata"), E.readonly(), type="file", device="cdrom"))
    devices.append(E.interface(E.mac(address=mac), E.source(network=network), E.model(type="virtio"),
                               type="network"))
    devices.append(E.serial(E.target(port="0"), type="pty"))
    devices.append(E.console(E.target(type="serial", port="0"), type="pty"))
    devices.append(E.memballoon(model="none"))
    root = E.domain(
        E.name(name),
        E.memory("262144", unit="KiB"),
        E.vcpu("1"),
        E.os(E.type("hvm", arch="x86_64", machine="q35"), E.kernel(boot["kernel"]), E.initrd(boot["initrd"]),
             E.cmdline(boot["cmdline"])),
        E.features(E.acpi(), E.apic()),
        E.on_poweroff("destroy"), E.on_reboot("destroy"), E.on_crash("destroy"),
        devices,
        type="qemu")
    return etree.tostring(root, encoding="unicode")


class FrameWatch:
    """Every Ethernet frame with the guest's source MAC that reaches the bridge (AF_PACKET, bounded)."""

    def __init__(self, bridge: str, mac: str):
        self.mac = bytes.fromhex(mac.replace(":", ""))
        self.kinds: dict[str, int] = {}
        self._stop = threading.Event()
        # the bridge lives where libvirtd runs: in its network namespace (scripts/libvirtd-up)
        if netns.daemon_netns():
            self.sock = netns.socket_in_netns(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        else:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((bridge, 0))
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                frame = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if frame[6:12] == self.mac:
                kind = self.classify(frame)
                self.kinds[kind] = self.kinds.get(kind, 0) + 1

    @staticmethod
    def classify(frame: bytes) -> str:
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        if ethertype == 0x0806:
            return "arp-reply" if struct.unpack_from("!H", frame, 20)[0] == 2 else "arp-request"
        if ethertype == 0x0800:
            ihl = (frame[14] & 0x0F) * 4
            if frame[23] == 17:
                sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
                if (sport, dport) == (68, 67):
                    return "dhcp"
                return f"udp {sport}->{dport}"
            return f"ipv4 proto {frame[23]}"
        return f"ethertype 0x{ethertype:04x}"

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()
        return dict(self.kinds)


def _boot_and_check(daemon: str, tmp_path, kit: guest.GuestKit, seed_meta: dict | None = None) -> dict:
    """Boot `kit` on a fresh isolated network; check lease, marker, console; return timings."""
    import libvirt

    libvirt.registerErrorHandler(lambda *a: None, None)
    guest.start_event_loop()               # before the connection is opened
    conn = libvirt.open(daemon)
    tag = uuid.uuid4().hex[:6]
    name, host = f"lvgk-{tag}", f"gk-{tag}"
    mac = "52:54:00:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))
    disk = os.path.join(str(tmp_path), f"{name}.qcow2")
    seed = None
    net = dom = console = watch = None
    timings = {}
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "64M"], check=True,
                       capture_output=True)
        if seed_meta is not None:
            from labvirt.core.seed import build_seed_iso

            seed = os.path.join(str(tmp_path), f"{name}-seed.iso")
            meta = "".join(f"{k}: {v}\n" for k, v in seed_meta.items())
            with open(seed, "wb") as f:
                f.write(build_seed_iso({"meta-data": meta, "user-data": "#cloud-config\n"}))
        used = _used_third_octets(conn)
        for n in random.sample([n for n in range(1, 255) if n not in used], 5):
            subnet = ipaddress.ip_network(f"10.254.{n}.0/24")
            ip = str(subnet.network_address + 50)
            try:
                net = conn.networkCreateXML(_network_xml(name, f"lvgk{tag}", subnet, mac, host, ip))
                break
            except libvirt.libvirtError:   # raced with someone else for that subnet: take another
                continue
        assert net is not None, "could not create an isolated network on any free 10.254.N.0/24"
        try:
            watch = FrameWatch(f"lvgk{tag}", mac)
        except PermissionError:   # no CAP_NET_RAW: the lease and the console are still checked
            watch = None
        xml = _domain_xml(name, kit.boot(), disk, name, mac, seed)
        dom = conn.createXML(xml, libvirt.VIR_DOMAIN_START_PAUSED | libvirt.VIR_DOMAIN_START_AUTODESTROY)
        console = guest.SerialConsole(conn, dom)
        t0 = time.monotonic()
        dom.resume()
        lease_at = marker_at = None
        deadline = t0 + MARKER_TIMEOUT
        while (lease_at is None or marker_at is None) and time.monotonic() < deadline:
            if lease_at is None:
                addrs = dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0)
                if any(a["addr"] == ip for i in addrs.values() for a in i.get("addrs") or []):
                    lease_at = time.monotonic() - t0
                elif time.monotonic() - t0 > LEASE_TIMEOUT:
                    break
            if marker_at is None and guest.READY_RE.search(console.text):
                marker_at = time.monotonic() - t0
            time.sleep(0.1)
        assert lease_at is not None, f"no DHCP lease for {ip} in {LEASE_TIMEOUT} s; console:\n{console.text[-2000:]}"
        m = console.wait_for(guest.READY_RE, max(1.0, deadline - time.monotonic()))
        timings.update(boot_to_lease=round(lease_at, 2), boot_to_marker=round(marker_at or 0, 2))
        want_host = seed_meta["local-hostname"] if seed_meta else host
        assert m.groups() == (want_host, ip), console.text[-2000:]
        if seed_meta is not None:
            s = console.wait_for(guest.SEED_RE, 1)
            assert s.groups() == (seed_meta["instance-id"], seed_meta["local-hostname"])
        else:
            assert guest.SEED_RE.search(console.text) is None
        console.wait_for(guest.PROMPT.rstrip(), 30, m.end())
        t = time.monotonic()
        status, out = console.run("echo changed > /tmp/state; cat /tmp/state")
        timings["command_roundtrip"] = round(time.monotonic() - t, 2)
        assert (status, out) == (0, "changed\n")
        status, out = console.run("uname -r; hostname; ip -4 -o addr show dev eth0")
        assert status == 0
        lines = out.splitlines()
        assert lines[0] == kit.release and lines[1] == want_host and f"inet {ip}/24" in lines[2], out
        assert console.run("false")[0] == 1
        if watch is not None:
            time.sleep(1)
            kinds = watch.stop()
            watch = None
            assert kinds.get("dhcp", 0) >= 2, kinds           # DISCOVER + REQUEST at least
            assert set(kinds) <= {"dhcp", "arp-reply"}, f"the guest sent more than DHCP: {kinds}"
            timings["frames"] = kinds
        else:
            timings["frames"] = "not watched (no CAP_NET_RAW)"
        return timings
    finally:
        if watch is not None:
            watch.stop()
        if console is not None:
            console.close()
        if dom is not None:
            try:
                dom.destroy()
            except libvirt.libvirtError:
                pass
        if net is not None:
            try:
                net.destroy()
            except libvirt.libvirtError:
                pass
        for path in (disk, seed):
            if path and os.path.exists(path):
                os.unlink(path)
        conn.close()


@pytest.mark.daemon
def test_tiny_guest_boots_leases_and_answers_on_the_serial_console(daemon, tmp_path):
    t = time.monotonic()
    kit = _kit("cloud")
    kit_seconds = time.monotonic() - t
    timings = _boot_and_check(daemon, tmp_path, kit)
    print(f"\ncloud guest {kit.release}: kit {kit_seconds:.2f} s (cached={kit.cached}, first build "
          f"{kit.build_seconds} s); {timings}")


@pytest.mark.daemon
def test_generic_kernel_guest_reads_the_sata_seed_cdrom(daemon, tmp_path):
    t = time.monotonic()
    kit = _kit("generic")
    kit_seconds = time.monotonic() - t
    assert kit.seed_capable, kit.modules
    meta = {"instance-id": "iid-" + uuid.uuid4().hex[:8], "local-hostname": "seedy"}
    timings = _boot_and_check(daemon, tmp_path, kit, seed_meta=meta)
    print(f"\ngeneric guest {kit.release}: kit {kit_seconds:.2f} s (cached={kit.cached}, first build "
          f"{kit.build_seconds} s); {timings}")
