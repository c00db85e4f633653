"""A node's network as each common guest network stack reads it, rendered from one NicIntent per NIC.

For images without cloud-init (the virt-customize identity): the same facts as the seed's network
config (labvirt.core.cloudinit.network_config), written as the stack's own files:

| stack            | files                                                  | NIC matched by           |
| ---------------- | ------------------------------------------------------ | ------------------------ |
| ifcfg            | /etc/sysconfig/network-scripts/ifcfg-ethN              | HWADDR (and renamed)     |
| netplan          | /etc/netplan/90-labvirt.yaml (0600)                    | macaddress + set-name    |
| ifupdown         | /etc/network/interfaces.d/labvirt                      | name (net.ifnames=0)     |
| NetworkManager   | /etc/NetworkManager/system-connections/labvirt-ethN.nmconnection (0600) | mac-address |
| systemd-networkd | /etc/systemd/network/10-labvirt-ethN.network           | MACAddress               |

Which stack a guest has is decided inside the guest, from what its disk holds (labvirt.core.customize).
Pure: no I/O.
"""

from __future__ import annotations

import uuid

from labvirt.core.cloudinit import NicIntent, network_config, resolv_conf, to_yaml
from labvirt.core.desired import DesiredLab
from labvirt.core.record import Record

IFCFG_DIR = "/etc/sysconfig/network-scripts"
NM_DIR = "/etc/NetworkManager/system-connections"
NETWORKD_DIR = "/etc/systemd/network"
IFUPDOWN_FILE = "/etc/network/interfaces.d/labvirt"
NETPLAN_FILE = "/etc/netplan/90-labvirt.yaml"
_NM_NAMESPACE = uuid.UUID("5b0c7a52-6c1b-4c0e-9a55-6c6162766972")      # labvirt's, for profile UUIDs


class GuestFile(Record):
    path: str
    content: str
    mode: str = "0644"


# -- ifcfg (RHEL family with network-scripts) -------------------------------------------------
def ifcfg(intent: NicIntent) -> str:
    """/etc/sysconfig/network-scripts/ifcfg-ethN: HWADDR makes udev give this MAC this name."""
    n = intent
    lines = [f"DEVICE={n.name}", f"NAME={n.name}", f"HWADDR={n.mac}", "TYPE=Ethernet", "ONBOOT=yes",
             "NM_CONTROLLED=no"]
    if n.address is None:
        lines.append("BOOTPROTO=dhcp")
        if n.gateway is None:
            lines += ["PEERDNS=no"]
    else:
        lines += ["BOOTPROTO=none", f"IPADDR={n.address.ip}", f"PREFIX={n.address.network.prefixlen}"]
        if n.gateway is not None:
            lines.append(f"GATEWAY={n.gateway}")
        lines += [f"DNS{i}={a}" for i, a in enumerate(n.nameservers, 1)]
        if n.search:
            lines.append(f"DOMAIN={' '.join(n.search)}")
    lines.append("DEFROUTE=yes" if n.gateway is not None else "DEFROUTE=no")
    return "\n".join(lines) + "\n"


# -- NetworkManager keyfile (EL8/EL9 without network-scripts, desktops) -------------------------
def nm_keyfile(intent: NicIntent) -> str:
    """A keyfile profile bound to the NIC's MAC (NetworkManager compares it with the permanent
    address, so a bridge that borrows the MAC is not matched). NetworkManager ignores keyfiles that
    are not 0600 root."""
    n = intent
    lines = ["[connection]", f"id=labvirt-{n.name}", f"uuid={uuid.uuid5(_NM_NAMESPACE, n.mac)}", "type=ethernet",
             "autoconnect=true", "autoconnect-priority=100", "", "[ethernet]", f"mac-address={n.mac}", "", "[ipv4]"]
    if n.address is None:
        lines.append("method=auto")
        if n.gateway is None:
            lines += ["never-default=true", "ignore-auto-dns=true"]
    else:
        lines += ["method=manual", f"address1={n.address}"]
        if n.gateway is not None:
            lines.append(f"gateway={n.gateway}")
        else:
            lines.append("never-default=true")
        if n.nameservers:
            lines.append("dns=" + "".join(f"{a};" for a in n.nameservers))
        if n.search:
            lines.append("dns-search=" + "".join(f"{d};" for d in n.search))
    lines += ["", "[ipv6]", "method=ignore"]
    return "\n".join(lines) + "\n"


# -- ifupdown (Debian, older Ubuntu) ------------------------------------------------------------
def ifupdown(intents: list[NicIntent]) -> str:
    """One interfaces.d file for every NIC: address and netmask (every ifupdown reads them), the
    gateway, and the name servers (dns-nameservers where resolvconf is installed; otherwise an `up`
    line writes /etc/resolv.conf when it is neither a link nor has a nameserver)."""
    stanzas = ["# labvirt: this node's NICs (written before its first boot)"]
    for n in intents:
        if n.address is None:
            stanzas.append(f"auto {n.name}\niface {n.name} inet dhcp")
            continue
        body = [f"auto {n.name}", f"iface {n.name} inet static", f"    address {n.address.ip}",
                f"    netmask {n.address.netmask}"]
        if n.gateway is not None:
            body.append(f"    gateway {n.gateway}")
        if n.nameservers:
            body.append(f"    dns-nameservers {' '.join(n.nameservers)}")
        if n.search:
            body.append(f"    dns-search {' '.join(n.search)}")
        resolver = resolv_conf([n])
        if resolver:    # without resolvconf nothing applies dns-nameservers: write it, unless managed or written
            text = resolver.replace("\n", "\\n")
            body.append(f"    up [ -L /etc/resolv.conf ] || grep -qs '^nameserver' /etc/resolv.conf || "
                        f"printf '{text}' > /etc/resolv.conf")
        stanzas.append("\n".join(body))
    return "\n\n".join(stanzas) + "\n"


# -- systemd-networkd -------------------------------------------------------------------------
def networkd(intent: NicIntent) -> str:
    n = intent
    lines = ["[Match]", f"MACAddress={n.mac}", "", "[Network]"]
    if n.address is None:
        lines.append("DHCP=ipv4")
        if n.gateway is None:
            lines += ["", "[DHCPv4]", "UseDNS=false", "UseRoutes=false"]
    else:
        lines.append(f"Address={n.address}")
        if n.gateway is not None:
            lines.append(f"Gateway={n.gateway}")
        lines += [f"DNS={a}" for a in n.nameservers]
        if n.search:
            lines.append(f"Domains={' '.join(n.search)}")
    return "\n".join(lines) + "\n"


# -- every stack --------------------------------------------------------------------------------
def stack_files(desired: DesiredLab, node_key: str, intents: list[NicIntent]) -> dict[str, tuple[GuestFile, ...]]:
    """stack -> the files that configure this node's NICs on it (the stacks in labvirt.core.customize.STACKS)."""
    netplan = {"network": network_config(desired, node_key, version=2)}
    return {
        "ifcfg": tuple(GuestFile(f"{IFCFG_DIR}/ifcfg-{n.name}", ifcfg(n)) for n in intents),
        "netplan": (GuestFile(NETPLAN_FILE, to_yaml(netplan), "0600"),),
        "ifupdown": (GuestFile(IFUPDOWN_FILE, ifupdown(intents)),),
        "networkmanager": tuple(GuestFile(f"{NM_DIR}/labvirt-{n.name}.nmconnection", nm_keyfile(n), "0600")
                                for n in intents),
        "networkd": tuple(GuestFile(f"{NETWORKD_DIR}/10-labvirt-{n.name}.network", networkd(n)) for n in intents),
    }
