"""Where a NoCloud seed must be attached so that BOTH Debian kernels' cloud-init reads it.

labvirt attaches its seed as a SATA CD-ROM; Debian's cloud kernel (linux-image-cloud-amd64) has no
AHCI driver and never sees it. A CD-ROM on a virtio-scsi controller is seen by both kernels (and by
every kernel with virtio_scsi + sr_mod + isofs, which RHEL-family kernels have). This test boots the
real Debian guest (tests/support/debian_guest.py) with each kernel, the seed attached as SEED_XML
below (domain XML written here, not by labvirt), and checks cloud-init's own verdict over ssh.

Pitfall found on the way: with `bus='scsi'` the target name picks the controller (sda-sdg:
controller 0, sdz: controller 3). A target beyond controller 0's units makes libvirt add LSI
controllers (sym53c8xx), which only the generic kernel drives. Give the address explicitly.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from .support import netns as ns
from .support.debian_lab import require_kit

pytestmark = [pytest.mark.daemon, pytest.mark.slow]

SUBNET = "10.232.62"
FLAVOURS = {"cloud": 21, "generic": 22}     # flavour -> host part of its address
BOOT_TO_SSH = 600

SEED_XML = """
<controller type='scsi' index='0' model='virtio-scsi'/>
<disk type='file' device='cdrom'>
  <driver name='qemu' type='raw'/>
  <source file='{iso}'/>
  <target dev='sda' bus='scsi'/>
  <readonly/>
  <address type='drive' controller='0' bus='0' target='0' unit='0'/>
</disk>
"""


def _domain_xml(name, kit, flavour, disk, iso, net, mac, log):
    b = kit.boot(flavour)
    return f"""<domain type='qemu'>
  <name>{name}</name><memory unit='MiB'>640</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{b['kernel']}</kernel><initrd>{b['initrd']}</initrd>
    <cmdline>{b['cmdline']}</cmdline></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
      <target dev='vda' bus='virtio'/></disk>
    {SEED_XML.format(iso=iso)}
    <interface type='network'><source network='{net}'/><mac address='{mac}'/><model type='virtio'/></interface>
    <serial type='pty'><log file='{log}' append='off'/></serial><console type='pty'/>
  </devices>
</domain>"""


def _seed_iso(path, hostname, address, mac, pubkey):
    d = path + ".d"
    os.makedirs(d)
    docs = {
        "meta-data": f"instance-id: {uuid.uuid4()}\nlocal-hostname: {hostname}\n",
        "user-data": "#cloud-config\ndisable_root: false\nssh_authorized_keys: [" + json.dumps(pubkey) + "]\n",
        "network-config": f"version: 1\nconfig:\n- type: physical\n  name: eth0\n  mac_address: '{mac}'\n"
                          f"  subnets:\n  - type: static\n    address: {address}/24\n",
    }
    for name, text in docs.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    subprocess.run(["genisoimage", "-quiet", "-o", path, "-V", "cidata", "-J", "-R", d], check=True)


def _ssh(key, address, command, timeout=30):
    # the test's own key and throw-away host keys: this checks the seed, not labvirt's ssh
    argv = ns.in_netns(["ssh", "-i", key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                        "-o", "LogLevel=ERROR", f"root@{address}", command])
    try:
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout} s")


@pytest.fixture(scope="module")
def seeded_guests(tmp_path_factory, netns, daemon):
    """Both kernels booted concurrently with the seed on virtio-scsi; {flavour: (address, hostname)}."""
    import libvirt

    kit = require_kit()
    work = tmp_path_factory.mktemp("seed")
    key = str(work / "id")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    pubkey = open(key + ".pub").read().strip()
    tag = "lvgseed" + os.urandom(3).hex()
    net = f"{tag}-net"
    conn = libvirt.open("qemu:///system")
    doms = []
    try:
        n = conn.networkDefineXML(
            f"<network><name>{net}</name><bridge name='{tag}br' stp='off' delay='0'/>"
            f"<ip address='{SUBNET}.1' netmask='255.255.255.0'/></network>")
        n.create()
        guests = {}
        for flavour, host in FLAVOURS.items():
            name = f"{tag}-{flavour}"
            disk, iso = str(work / f"{flavour}.qcow2"), str(work / f"{flavour}-seed.iso")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", kit.disk, disk, "4G"],
                           check=True)
            mac = f"52:54:00:fe:62:{host:02x}"
            address, hostname = f"{SUBNET}.{host}", f"seeded-{flavour}"
            _seed_iso(iso, hostname, address, mac, pubkey)
            dom = conn.defineXML(_domain_xml(name, kit, flavour, disk, iso, net, mac,
                                             f"/var/log/libvirt/qemu/{name}-serial.log"))
            doms.append(dom)
            dom.create()
            guests[flavour] = (address, hostname)
        started = time.monotonic()
        waiting = dict(guests)
        while waiting and time.monotonic() - started < BOOT_TO_SSH:
            for flavour, (address, _h) in list(waiting.items()):
                if _ssh(key, address, "true").returncode == 0:
                    print(f"\n{flavour} kernel: ssh after {time.monotonic() - started:.0f} s")
                    del waiting[flavour]
            time.sleep(3)
        assert not waiting, f"no ssh within {BOOT_TO_SSH} s to the {sorted(waiting)} kernel guest(s)"
        yield {"key": key, "guests": guests}
    finally:
        for dom in doms:
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            except libvirt.libvirtError:
                pass
        try:
            n = conn.networkLookupByName(net)
            if n.isActive():
                n.destroy()
            n.undefine()
        except libvirt.libvirtError:
            pass
        conn.close()


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_both_kernels_read_a_virtio_scsi_seed(seeded_guests, flavour):
    address, hostname = seeded_guests["guests"][flavour]
    key = seeded_guests["key"]
    r = _ssh(key, address, "uname -r; hostname; cloud-init status --wait; cat /run/cloud-init/status.json",
             timeout=400)
    assert r.returncode == 0, r.stdout + r.stderr
    head, brace, status_json = r.stdout.partition("{")
    lines = head.split("\n")         # `status --wait` prints its progress dots and a newline first
    release, host = lines[0], lines[1]
    assert release.endswith("-cloud-amd64") == (flavour == "cloud"), release
    assert host == hostname                       # local-hostname from the seed's meta-data
    assert "status: done" in lines, r.stdout
    v1 = json.loads(brace + status_json)["v1"]
    assert v1["datasource"].startswith("DataSourceNoCloud [seed=/dev/sr0]"), v1["datasource"]
