"""The lab copy's own known_hosts: every node's SSH host key under each name and address labvirt gives
it. Pure. labvirt generates the host keys (driver/ssh_keys.py) and hands them to the guests (seed or
virt-customize), so ssh verifies strictly from the first login, and a rebuilt node keeps its key."""

from __future__ import annotations

from labvirt.core.desired import DesiredLab


def node_names(desired: DesiredLab, node_key: str) -> list[str]:
    """The names ssh may be given for a node: its static addresses, its name, its FQDNs."""
    dom = next(d for d in desired.domains if d.key == node_key)
    nets = {n.name: n for n in desired.networks}
    names = [str(n.address) for n in dom.nics if n.address is not None]
    names.append(dom.key)
    for nic in dom.nics:
        domain = nets[nic.network].domain if nic.network in nets else None
        if domain and f"{dom.key}.{domain}" not in names:
            names.append(f"{dom.key}.{domain}")
    return names


def known_hosts(desired: DesiredLab, public_keys: dict[str, str]) -> str:
    """known_hosts lines for the nodes whose public host key is known ("ssh-ed25519 AAAA... comment")."""
    lines = [f"# labvirt {desired.copy.prefix}: written by labvirt, replaced on every change"]
    for dom in desired.domains:
        key = public_keys.get(dom.key)
        if key:
            kind, blob = key.split()[:2]
            lines.append(f"{','.join(node_names(desired, dom.key))} {kind} {blob}")
    return "\n".join(lines) + "\n"
