"""The virt-customize identity for images without cloud-init (labvirt.core.customize, core/guest_network):
each network stack's files, the argv, and the in-guest script run for real in a busybox chroot per stack."""

from __future__ import annotations

import configparser
import os
import shutil
import stat
import subprocess

import pytest
import yaml

from labvirt.core.cloudinit import hosts_block, nic_intents
from labvirt.core.customize import RELABEL, STACKS, STAGE, identity_argv, install_script, network_files
from labvirt.core.desired import HostParams, desire
from labvirt.core.guest_network import ifupdown
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab

from .conftest import EXAMPLES


def desired_lab(which: str):
    spec = load_lab(EXAMPLES[which])
    return desire(spec, LabCopy(spec.name), HostParams(domain_type="qemu"))


@pytest.fixture(scope="module")
def three():
    """three-node's compute1: eth0 on the host-only management network (no gateway), eth1 on the
    provider network (the default route and DNS through 10.5.116.1)."""
    desired = desired_lab("three-node")
    dom = next(d for d in desired.domains if d.key == "compute1")
    return desired, [n.mac for n in dom.nics]


def _files(desired, stack, node="compute1"):
    return {f.path: f for f in network_files(desired, node)[stack]}


def _ini(text):
    p = configparser.ConfigParser(interpolation=None, strict=False)
    p.optionxform = str
    p.read_string(text)
    return p


def test_ifcfg(three):
    desired, macs = three
    files = _files(desired, "ifcfg")
    assert set(files) == {"/etc/sysconfig/network-scripts/ifcfg-eth0", "/etc/sysconfig/network-scripts/ifcfg-eth1"}
    eth0 = dict(line.split("=", 1) for line in files["/etc/sysconfig/network-scripts/ifcfg-eth0"].content.splitlines())
    eth1 = dict(line.split("=", 1) for line in files["/etc/sysconfig/network-scripts/ifcfg-eth1"].content.splitlines())
    assert eth0 == {"DEVICE": "eth0", "NAME": "eth0", "HWADDR": macs[0], "TYPE": "Ethernet",
                    "ONBOOT": "yes", "NM_CONTROLLED": "no", "BOOTPROTO": "none", "IPADDR": "192.168.1.101",
                    "PREFIX": "24", "DEFROUTE": "no"}
    assert eth1["HWADDR"] == macs[1] and eth1["IPADDR"] == "10.5.116.101"
    assert eth1["GATEWAY"] == eth1["DNS1"] == "10.5.116.1" and eth1["DEFROUTE"] == "yes"


def test_networkmanager_keyfiles_match_by_mac_and_are_private(three):
    desired, macs = three
    files = _files(desired, "networkmanager")
    eth0 = files["/etc/NetworkManager/system-connections/labvirt-eth0.nmconnection"]
    eth1 = files["/etc/NetworkManager/system-connections/labvirt-eth1.nmconnection"]
    assert eth0.mode == eth1.mode == "0600"        # NetworkManager ignores keyfiles others can read
    a, b = _ini(eth0.content), _ini(eth1.content)
    assert a["connection"]["type"] == "ethernet" and a["connection"]["uuid"] != b["connection"]["uuid"]
    assert "interface-name" not in a["connection"]
    assert a["ethernet"]["mac-address"] == macs[0] and b["ethernet"]["mac-address"] == macs[1]
    assert dict(a["ipv4"]) == {"method": "manual", "address1": "192.168.1.101/24", "never-default": "true"}
    assert dict(b["ipv4"]) == {"method": "manual", "address1": "10.5.116.101/24", "gateway": "10.5.116.1",
                               "dns": "10.5.116.1;"}
    assert a["ipv6"]["method"] == "ignore"
    assert _files(desired, "networkmanager") == files       # deterministic (UUIDs from the MACs)


def test_ifupdown_stanzas(three):
    desired, _ = three
    (f,) = _files(desired, "ifupdown").values()
    assert f.path == "/etc/network/interfaces.d/labvirt" and f.mode == "0644"
    text = f.content
    assert "auto eth0\niface eth0 inet static\n    address 192.168.1.101\n    netmask 255.255.255.0\n\n" in text
    assert ("auto eth1\niface eth1 inet static\n    address 10.5.116.101\n    netmask 255.255.255.0\n"
            "    gateway 10.5.116.1\n    dns-nameservers 10.5.116.1\n") in text
    up = next(line for line in text.splitlines() if line.strip().startswith("up "))
    assert up == ("    up [ -L /etc/resolv.conf ] || grep -qs '^nameserver' /etc/resolv.conf || "
                  "printf 'nameserver 10.5.116.1\\n' > /etc/resolv.conf")


def test_ifupdown_dhcp_and_search_domain():
    desired = desired_lab("standard")
    text = ifupdown(nic_intents(desired, "controller"))
    assert "iface eth0 inet static" in text and "    gateway 192.168.122.1\n" in text
    assert text.count("    up ") == 1


def test_networkd_files(three):
    desired, macs = three
    files = _files(desired, "networkd")
    eth0 = _ini(files["/etc/systemd/network/10-labvirt-eth0.network"].content)
    eth1 = _ini(files["/etc/systemd/network/10-labvirt-eth1.network"].content)
    assert eth0["Match"]["MACAddress"] == macs[0] and dict(eth0["Network"]) == {"Address": "192.168.1.101/24"}
    assert eth1["Match"]["MACAddress"] == macs[1]
    assert dict(eth1["Network"]) == {"Address": "10.5.116.101/24", "Gateway": "10.5.116.1", "DNS": "10.5.116.1"}


def test_netplan_file(three):
    desired, macs = three
    (f,) = _files(desired, "netplan").values()
    assert f.path == "/etc/netplan/90-labvirt.yaml" and f.mode == "0600"     # netplan warns on readable files
    net = yaml.safe_load(f.content)["network"]
    assert net["version"] == 2
    eth1 = net["ethernets"]["eth1"]
    assert eth1["match"] == {"macaddress": macs[1]} and eth1["set-name"] == "eth1"
    assert eth1["addresses"] == ["10.5.116.101/24"] and eth1["routes"] == [{"to": "0.0.0.0/0", "via": "10.5.116.1"}]
    assert eth1["nameservers"]["addresses"] == ["10.5.116.1"]
    assert "routes" not in net["ethernets"]["eth0"]


def test_every_stack_is_rendered_in_the_order_tried(three):
    desired, _ = three
    assert list(network_files(desired, "compute1")) == [s for s, _ in STACKS]


# -- the argv -----------------------------------------------------------------------------------
def _ops(argv):
    """(option, value) pairs after the --add DISK --no-network prefix."""
    i = argv.index("--no-network") + 1
    return list(zip(argv[i::2], argv[i + 1::2]))


def test_identity_argv_without_secrets(three):
    desired, _ = three
    argv = identity_argv("/pool/lab/compute1.qcow2", desired, "compute1")
    assert argv[:6] == ["virt-customize", "--format", "qcow2", "--add", "/pool/lab/compute1.qcow2", "--no-network"]
    ops = _ops(argv)
    assert ops[0] == ("--hostname", "compute1")
    writes = dict(v.split(":", 1) for o, v in ops if o == "--write")
    assert writes["/etc/hosts"].endswith(hosts_block(desired))
    staged = {p for p in writes if p.startswith(STAGE + "/")}
    assert staged == {f"{STAGE}/{s}{f.path}" for s, fs in network_files(desired, "compute1").items() for f in fs}
    assert ("--chmod", f"0700:{STAGE}") in ops
    runs = [v for o, v in ops if o == "--run-command"]
    assert runs == [install_script(desired, "compute1"), RELABEL]     # relabelling last, on SELinux guests only
    # every staged file is in place before the script runs
    assert max(i for i, (o, _) in enumerate(ops) if o == "--write") < ops.index(("--run-command", runs[0]))
    assert not {"--root-password", "--upload", "--ssh-inject"} & {o for o, _ in ops}


def test_identity_argv_with_the_secrets_by_file(three, tmp_path):
    desired, _ = three
    key = str(tmp_path / "compute1_ed25519")
    argv = identity_argv("d.qcow2", desired, "compute1", password_file="/state/pw", host_key=key,
                         login_keys=("ssh-ed25519 AAAAC3Nz labvirt-lab",))
    ops = _ops(argv)
    assert ("--root-password", "file:/state/pw") in ops and ("--password-crypto", "sha512") in ops
    assert ("--upload", f"{key}:/etc/ssh/ssh_host_ed25519_key") in ops
    assert ("--upload", f"{key}.pub:/etc/ssh/ssh_host_ed25519_key.pub") in ops
    assert any(o == "--run-command" and "chmod 0600 /etc/ssh/ssh_host_ed25519_key" in v for o, v in ops)
    assert ("--ssh-inject", "root:string:ssh-ed25519 AAAAC3Nz labvirt-lab") in ops
    assert ops[-1] == ("--run-command", RELABEL)        # after everything it labels
    assert not any("PRIVATE KEY" in a for a in argv)


def test_identity_argv_for_another_login_user(three):
    desired, _ = three
    ops = _ops(identity_argv("d", desired, "compute1", login_keys=("ssh-ed25519 K c",), user="stack"))
    assert ("--ssh-inject", "stack:string:ssh-ed25519 K c") in ops
    assert ("--write", "/etc/sudoers.d/labvirt-stack:stack ALL=(ALL) NOPASSWD:ALL\n") in ops
    assert ("--chmod", "0440:/etc/sudoers.d/labvirt-stack") in ops
    assert any(o == "--run-command" and v.startswith("id -u stack ") for o, v in ops)


def test_the_scripts_are_posix_sh(three):
    desired, _ = three
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            for script in (install_script(desired, "compute1"), RELABEL):
                r = subprocess.run([shell, "-n"], input=script, text=True, capture_output=True)
                assert r.returncode == 0, (shell, r.stderr)


# -- the script inside a guest: a busybox chroot per stack ----------------------------------------
GUESTS = {   # stack -> what its disk holds (the markers) and what else a real guest has
    "ifcfg": {"/etc/sysconfig/network-scripts/ifup-eth": "", "/usr/sbin/NetworkManager": ""},
    "netplan": {"/usr/sbin/netplan": "", "/etc/netplan/50-cloud-init.yaml": "network: {version: 2}\n",
                "/usr/lib/systemd/systemd-networkd": ""},
    "ifupdown": {"/etc/network/interfaces": "auto lo\niface lo inet loopback\n\nallow-hotplug eth0\n"
                                            "iface eth0 inet dhcp\n    hostname x\n",
                 "/etc/network/interfaces.d/50-cloud-init": "auto eth1\niface eth1 inet dhcp\n",
                 "/lib/systemd/systemd-networkd": ""},
    "networkmanager": {"/etc/sysconfig/network-scripts/readme-ifcfg-rh.txt": "", "/usr/sbin/NetworkManager": "",
                       "/usr/lib/systemd/systemd-networkd": ""},
    "networkd": {"/usr/lib/systemd/systemd-networkd": ""},
    None: {"/etc/os-release": "ID=busybox\n"},
}


def _guest(root, markers):
    busybox = shutil.which("busybox")
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(os.path.join(root, "etc"))
    shutil.copy2(busybox, os.path.join(root, "bin", "busybox"))
    for applet in ("sh", "awk", "grep", "cp", "chmod", "chown", "mkdir", "rm", "cat", "printf", "echo", "id"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    os.makedirs(os.path.join(root, "usr", "bin"))
    with open(os.path.join(root, "usr", "bin", "systemctl"), "w") as f:      # records what is enabled
        f.write('#!/bin/sh\necho "$@" >> /systemctl.log\n')
    os.chmod(os.path.join(root, "usr", "bin", "systemctl"), 0o755)
    for path, content in markers.items():
        full = root + path
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(content)
        if "/bin/" in path or "/sbin/" in path or "/systemd/" in path or "/network-scripts/ifup" in path:
            os.chmod(full, 0o755)


def _customize(root, argv):
    """What virt-customize does with the network part of the argv: --mkdir, --write, --chmod, then the
    script with the guest's own /bin/sh (busybox here). Returns the script's result."""
    for option, value in _ops(argv):
        if option == "--mkdir":
            os.makedirs(root + value, exist_ok=True)
        elif option == "--write":
            path, content = value.split(":", 1)
            with open(root + path, "w") as f:
                f.write(content)
        elif option == "--chmod":
            mode, path = value.split(":", 1)
            os.chmod(root + path, int(mode, 8))
        elif option == "--run-command":
            return subprocess.run([shutil.which("chroot"), root, "/bin/sh", "-c", value], capture_output=True, text=True,
                                  env={"PATH": "/bin"})
    raise AssertionError("no --run-command")


needs_chroot = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("busybox") or not shutil.which("chroot"),
                                  reason="needs root, chroot and a static busybox")


@needs_chroot
@pytest.mark.parametrize("stack", [s for s, _ in STACKS])
def test_the_guest_picks_its_own_stack(three, tmp_path, stack):
    desired, _ = three
    root = str(tmp_path / "guest")
    _guest(root, GUESTS[stack])
    r = _customize(root, identity_argv("d", desired, "compute1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"labvirt: NICs configured for {stack}"
    assert not os.path.exists(root + STAGE)
    files = network_files(desired, "compute1")
    for other, fs in files.items():
        for f in fs:
            if other == stack:
                with open(root + f.path) as got:
                    assert got.read() == f.content
                st = os.stat(root + f.path)
                assert oct(stat.S_IMODE(st.st_mode)) == oct(int(f.mode, 8)) and st.st_uid == 0
            elif f.path not in GUESTS[stack]:
                assert not os.path.exists(root + f.path), (stack, f.path)
    enabled = open(root + "/systemctl.log").read() if os.path.exists(root + "/systemctl.log") else ""
    assert ("systemd-networkd" in enabled) == (stack == "networkd")


@needs_chroot
def test_ifupdown_sets_other_stanzas_for_the_same_nics_aside(three, tmp_path):
    desired, _ = three
    root = str(tmp_path / "guest")
    _guest(root, GUESTS["ifupdown"])
    assert _customize(root, identity_argv("d", desired, "compute1")).returncode == 0
    main = open(root + "/etc/network/interfaces").read()
    assert main.startswith("auto lo\niface lo inet loopback\n\n#labvirt# allow-hotplug eth0\n"
                           "#labvirt# iface eth0 inet dhcp\n#labvirt#     hostname x\n")
    assert main.endswith("\nsource /etc/network/interfaces.d/*\n")       # it had no source line
    assert open(root + "/etc/network/interfaces.d/50-cloud-init").read() == \
        "#labvirt# auto eth1\n#labvirt# iface eth1 inet dhcp\n"


@needs_chroot
def test_an_image_without_a_known_stack_fails_with_the_reason(three, tmp_path):
    desired, _ = three
    root = str(tmp_path / "guest")
    _guest(root, GUESTS[None])
    r = _customize(root, identity_argv("d", desired, "compute1"))
    assert r.returncode == 1 and "no known network stack in this image" in r.stderr
