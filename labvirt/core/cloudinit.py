"""Per-node identity as documents: cloud-init NoCloud seed files (images without cloud-init: core/customize).

Everything comes from the desired lab (the same MACs and addresses as the DHCP reservations), so a
node gets the same identity from its seed ISO, from dnsmasq and from /etc/hosts on every other node.
Pure: no libvirt, no subprocess, no I/O. YAML is written by PyYAML's safe dumper.

Network config is version 1: CentOS 7's cloud-init (0.7.9) does not read version 2 (cloud-init
issue #3024); in version 1 `name` + `mac_address` matches the NIC by MAC and renames it, like
version 2's `match` + `set-name`. `network_config(..., version=2)` exists for newer images. Both, and
each guest network stack's own files (core/guest_network, images without cloud-init), are rendered
from one NicIntent per NIC.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, ip_interface

import yaml

from labvirt.core.desired import DesiredDomain, DesiredLab, DesiredNetwork, DesiredNic
from labvirt.core.record import Record

LOCALHOST = ("127.0.0.1   localhost localhost.localdomain localhost4 localhost4.localdomain4\n"
             "::1         localhost localhost.localdomain localhost6 localhost6.localdomain6\n")


# -- lookups ----------------------------------------------------------------------------------
def _domain(desired: DesiredLab, node_key: str) -> DesiredDomain:
    for d in desired.domains:
        if d.key == node_key:
            return d
    raise KeyError(f"no node {node_key!r}; known: {', '.join(d.key for d in desired.domains)}")


def _network(desired: DesiredLab, nic: DesiredNic) -> DesiredNetwork:
    for net in desired.networks:
        if net.name == nic.network:
            return net
    raise KeyError(f"no network {nic.network!r} in the desired lab")


def _route_nic(desired: DesiredLab, domain: DesiredDomain) -> DesiredNic | None:
    """The NIC that carries the default route and DNS: the first one on a NAT network (or an external
    network with a gateway: libvirt's `default`, a host bridge's router)."""
    for nic in domain.nics:
        if _network(desired, nic).routed:
            return nic
    return None


def _fqdn(desired: DesiredLab, domain: DesiredDomain) -> str | None:
    for nic in domain.nics:
        net = _network(desired, nic)
        if nic.address is not None and net.domain:
            return f"{domain.key}.{net.domain}"
    return None


def hostname(desired: DesiredLab, node_key: str) -> str:
    """The node's /etc/hostname: its FQDN where one of its networks has a domain, else its name."""
    domain = _domain(desired, node_key)
    return _fqdn(desired, domain) or domain.key


# -- /etc/hosts -------------------------------------------------------------------------------
def hosts_block(desired: DesiredLab) -> str:
    """Every node of the lab copy: the first static address as the node's name (and FQDN), the
    others as NAME-NETWORK. Between BEGIN/END markers so it can be found and replaced."""
    lines = [f"# BEGIN labvirt {desired.copy.prefix}"]
    for d in desired.domains:
        first = True
        for nic in d.nics:
            if nic.address is None:
                continue
            net = _network(desired, nic)
            if first:
                names = [d.key] if not net.domain else [f"{d.key}.{net.domain}", d.key]
                first = False
            else:
                names = [f"{d.key}-{net.key}"]
            lines.append(f"{str(nic.address):<15} {' '.join(names)}")
    lines.append(f"# END labvirt {desired.copy.prefix}")
    return "\n".join(lines) + "\n"


def hosts_file(desired: DesiredLab) -> str:
    return LOCALHOST + hosts_block(desired)


# -- network: one intent per NIC, rendered as network-config v1, v2 and each stack's files (guest_network) --
class NicIntent(Record):
    """What one NIC of a node should look like in the guest, whatever writes it."""

    name: str                         # eth0, eth1, ...
    mac: str
    address: IPv4Interface | None     # None: DHCP
    gateway: IPv4Address | None       # the default route goes through this NIC
    nameservers: tuple[str, ...]      # on the NIC that carries the default route
    search: tuple[str, ...]


def nic_intents(desired: DesiredLab, node_key: str) -> list[NicIntent]:
    """Static addresses of the DHCP reservations, NICs matched by MAC and named eth0, eth1, ...;
    the default route and DNS through the NAT network's gateway only (its dnsmasq answers)."""
    domain = _domain(desired, node_key)
    route = _route_nic(desired, domain)
    intents = []
    for nic in domain.nics:
        net = _network(desired, nic)
        routed = nic is route
        intents.append(NicIntent(
            name=nic.name, mac=nic.mac,
            address=ip_interface(f"{nic.address}/{net.subnet.prefixlen}") if nic.address is not None else None,
            gateway=net.gateway if routed else None,
            nameservers=(str(net.gateway),) if routed else (),
            search=(net.domain,) if routed and net.domain else ()))
    return intents


def network_config(desired: DesiredLab, node_key: str, version: int = 1) -> dict:
    """cloud-init network config. Version 1 is written so every cloud-init from 0.7.9 on (CentOS 7.0-7.5)
    renders it the same: address plus netmask, the default route as a route (0.7.9 ignores a subnet's
    `gateway`), and the name servers in a top-level `nameserver` entry (the only place 0.7.9 reads
    them; 17.1 ignores subnet-level ones too). Checked with cloud-init's own renderers (sysconfig, ENI,
    netplan) in tests/test_cloudinit_render.py."""
    intents = nic_intents(desired, node_key)
    if version == 1:
        config: list[dict] = []
        for n in intents:
            if n.address is None:
                subnet: dict = {"type": "dhcp"}
            else:
                subnet = {"type": "static", "address": str(n.address.ip), "netmask": str(n.address.netmask)}
                if n.gateway is not None:
                    subnet["routes"] = [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": str(n.gateway)}]
            config.append({"type": "physical", "name": n.name, "mac_address": n.mac, "subnets": [subnet]})
        servers = [a for n in intents for a in n.nameservers]
        if servers:
            entry: dict = {"type": "nameserver", "address": servers}
            search = [d for n in intents for d in n.search]
            if search:
                entry["search"] = search
            config.append(entry)
        return {"version": 1, "config": config}
    if version == 2:
        ethernets = {}
        for n in intents:
            eth: dict = {"match": {"macaddress": n.mac}, "set-name": n.name}
            if n.address is None:
                eth["dhcp4"] = True
            else:
                eth["addresses"] = [str(n.address)]
                if n.gateway is not None:
                    eth["routes"] = [{"to": "0.0.0.0/0", "via": str(n.gateway)}]
            if n.nameservers:
                eth["nameservers"] = {"addresses": list(n.nameservers), "search": list(n.search)}
            ethernets[n.name] = eth
        return {"version": 2, "ethernets": ethernets}
    raise ValueError(f"network config version {version}: allowed 1 or 2")


def resolv_conf(intents: list[NicIntent]) -> str | None:
    """/etc/resolv.conf for these NICs' name servers and search domains; None without name servers."""
    servers = [a for n in intents for a in n.nameservers]
    if not servers:
        return None
    search = [d for n in intents for d in n.search]
    return "".join(f"nameserver {a}\n" for a in servers) + (f"search {' '.join(search)}\n" if search else "")


def resolver_fallback(desired: DesiredLab, node_key: str) -> list[str] | None:
    """A boot command that writes /etc/resolv.conf when nothing else did: ifupdown without the
    resolvconf package ignores `dns-nameservers`, and the guest would have no DNS. Where a resolver
    manager (systemd-resolved, NetworkManager, resolvconf, cloud-init's sysconfig renderer) wrote a
    nameserver line, it changes nothing."""
    text = resolv_conf(nic_intents(desired, node_key))
    if text is None:
        return None
    text = text.replace("\n", "\\n")          # one printf argument
    return ["sh", "-c", f"grep -qs '^nameserver' /etc/resolv.conf || {{ rm -f /etc/resolv.conf; printf '{text}' > /etc/resolv.conf; }}"]


def route_fallback(desired: DesiredLab, node_key: str) -> list[str] | None:
    """A boot command that adds the default route when the network stack did not: cloud-init's ENI
    renderer (Debian's ifupdown) writes it as `post-up route add ... || true`, and without the
    net-tools package (Debian's minimal and cloud images) that fails silently. With `ip` (iproute2),
    only where no default route exists; elsewhere it changes nothing."""
    for n in nic_intents(desired, node_key):
        if n.gateway is not None and n.address is not None:
            return ["sh", "-c", f"ip -4 route show default | grep -q . || "
                                f"ip -4 route add default via {n.gateway} dev {n.name}"]
    return None


# -- cloud-config -----------------------------------------------------------------------------
def meta_data(desired: DesiredLab, node_key: str) -> dict:
    domain = _domain(desired, node_key)
    return {"instance-id": f"iid-{domain.uuid}", "local-hostname": domain.key}


def cloud_config(desired: DesiredLab, node_key: str, ssh_keys: tuple[str, ...] = (),
                 password_hash: str | None = None, user: str = "root",
                 host_key: tuple[str, str] | None = None) -> dict:
    """The user-data as a dict. The root password only ever appears as a crypt hash. `host_key`:
    (private, public) ed25519 host key the guest's sshd presents (labvirt's known_hosts has it)."""
    if password_hash is not None and not password_hash.startswith("$"):
        raise ValueError("password_hash must be a crypt hash ($6$...), never the password itself")
    domain = _domain(desired, node_key)
    cfg: dict = {"hostname": domain.key}
    fqdn = _fqdn(desired, domain)
    if fqdn:
        cfg["fqdn"] = fqdn
    cfg |= {"preserve_hostname": False, "manage_etc_hosts": False,
            "disable_root": False}        # else CentOS's cloud.cfg turns root's keys into "log in as centos"
    users = []
    root: dict = {"name": "root"}
    if password_hash is not None:
        root |= {"lock_passwd": False, "hashed_passwd": password_hash}
    if user == "root" and ssh_keys:
        root["ssh_authorized_keys"] = list(ssh_keys)
    if len(root) > 1:
        users.append(root)
    if user != "root":
        other: dict = {"name": user, "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL", "lock_passwd": True}
        if ssh_keys:
            other["ssh_authorized_keys"] = list(ssh_keys)
        users.append(other)
    if users:
        cfg["users"] = users
    if password_hash is not None:
        cfg |= {"ssh_pwauth": True, "chpasswd": {"expire": False}}
    if host_key is not None:
        private, public = host_key
        cfg["ssh_keys"] = {"ed25519_private": private, "ed25519_public": public}
    fallbacks = [c for c in (route_fallback(desired, node_key), resolver_fallback(desired, node_key)) if c]
    if fallbacks:
        cfg["bootcmd"] = fallbacks
    cfg["write_files"] = [{"path": "/etc/hosts", "owner": "root:root", "permissions": "0644",
                           "content": hosts_file(desired)}]
    return cfg


def seed_documents(desired: DesiredLab, node_key: str, ssh_keys: tuple[str, ...] = (),
                   password_hash: str | None = None, user: str = "root",
                   network_version: int = 1, host_key: tuple[str, str] | None = None) -> dict[str, str]:
    """The three NoCloud files: meta-data, user-data (#cloud-config) and network-config."""
    return {
        "meta-data": to_yaml(meta_data(desired, node_key)),
        "user-data": "#cloud-config\n" + to_yaml(cloud_config(desired, node_key, ssh_keys, password_hash, user,
                                                              host_key)),
        "network-config": to_yaml(network_config(desired, node_key, network_version)),
    }


# -- YAML --------------------------------------------------------------------------------------
# libyaml's emitter where PyYAML was built with it (Debian's and the wheels are): 7x faster than the
# pure-Python one, which a class rebuild felt (every seed's documents are rendered to size the seeds).
# Both emit the same text for what labvirt writes (tests/test_cloudinit.py compares them).
_SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_SafeDumper):
    """PyYAML's safe dumper, with multi-line text as `|` blocks (files stay readable in the seed)."""


def _str(dumper, text: str):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(value: dict) -> str:
    """YAML that cloud-init (PyYAML's safe loader) reads back as exactly `value`."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
