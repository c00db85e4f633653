"""A picture of a lab: a graph model built from the desired lab (and what libvirt reports, when it is
up), written as Graphviz DOT or Mermaid text. Pure.

DOT is written by a small emitter that quotes every identifier (`_id`) and escapes every label as
HTML-like label text (`_text`), so no name, address or description can break the document.

Networks are drawn by mode. A mode that reaches outside the host ("nat", "existing", "host-bridge") is
marked external and drawn above the nodes; host-only networks below. Networks labvirt does not own
("existing" libvirt networks, host bridges: labvirt.core.external) also say "not labvirt's". A new mode
only needs a line in NETWORK_STYLES.
"""

from __future__ import annotations

from labvirt.core.desired import DesiredLab
from labvirt.core.record import Record, field
from labvirt.core.units import format_size


class NetworkStyle(Record):
    caption: str          # what the mode means, in words
    external: bool        # reaches beyond the host (drawn above the nodes, marked "external")
    fill: str
    border: str
    shape: str = "box"
    dashed: bool = False


NETWORK_STYLES: dict[str, NetworkStyle] = {
    "nat": NetworkStyle("NAT through the host", True, "#dbeafe", "#1d4ed8"),
    "isolated": NetworkStyle("host-only", False, "#dcfce7", "#15803d"),
    # networks labvirt does not own (labvirt.core.external): dashed
    "existing": NetworkStyle("existing libvirt network", True, "#fee2e2", "#b91c1c", dashed=True),
    "host-bridge": NetworkStyle("bridged to a host interface", True, "#fef3c7", "#b45309", dashed=True),
}
UNKNOWN_STYLE = NetworkStyle("", False, "#f3f4f6", "#4b5563", dashed=True)

ROLE_FILL = {"controller": "#e0e7ff", "compute": "#fae8ff", "network": "#ccfbf1", "storage": "#ffedd5",
             "generic": "#f3f4f6"}
ROLE_ORDER = {"controller": 0, "network": 1, "storage": 2, "compute": 3, "generic": 4}   # left to right
STATE_COLOUR = {"running": "#15803d", "paused": "#b45309", "shut off": "#4b5563", "missing": "#b91c1c"}


def style_of(mode: str) -> NetworkStyle:
    return NETWORK_STYLES.get(mode, UNKNOWN_STYLE)


class GraphNic(Record):
    name: str                       # eth0, ...
    mac: str
    network: str                    # the network's key in the lab file
    planned: str | None             # static address (DHCP reservation), None: dynamic
    observed: tuple[str, ...] = ()  # addresses libvirt reports (running labs)


class GraphNode(Record):
    key: str
    domain: str
    role: str
    vcpus: int
    memory: str
    nics: tuple[GraphNic, ...]
    state: str | None = None        # None: drawn from the lab files only


class GraphNetwork(Record):
    key: str
    name: str                       # libvirt network name
    mode: str
    subnet: str
    gateway: str
    bridge: str
    active: bool | None = None
    owned: bool = True              # False: the host's network or bridge, which labvirt never changes

    @property
    def marker(self) -> str:
        """What the label says after the name: external, and whose."""
        if not self.owned:
            return " · external, not labvirt's"
        return " · external" if self.style.external else ""

    @property
    def style(self) -> NetworkStyle:
        return style_of(self.mode)


class LabGraph(Record):
    lab: str
    student: str
    prefix: str                     # lab or lab-student: the copy's name
    nodes: tuple[GraphNode, ...]
    networks: tuple[GraphNetwork, ...]
    source: str = "lab files"       # or the libvirt URI the states came from
    simulated: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str:
        where = "from the lab files" if self.source == "lab files" else f"on {self.source}"
        return f"lab {self.prefix} ({where}{', simulated' if self.simulated else ''})"


def lab_graph(desired: DesiredLab, status: dict | None = None, source: str = "lab files") -> LabGraph:
    """The graph of one lab copy. `status`: labvirt.core.status.lab_status output for a lab on a host
    (node states, observed addresses, network activity); None draws the lab files alone."""
    node_status = {n["name"]: n for n in (status or {}).get("nodes", [])}
    net_status = {n["name"]: n for n in (status or {}).get("networks", [])}
    key_of = {n.name: n.key for n in desired.networks}
    nodes = []
    for dom in desired.domains:
        st = node_status.get(dom.key)
        seen = {n["mac"]: tuple(o["ip"] for o in n["observed"]) for n in (st or {}).get("nics", [])}
        nics = tuple(GraphNic(name=n.name, mac=n.mac, network=key_of.get(n.network, n.network),
                              planned=str(n.address) if n.address is not None else None,
                              observed=seen.get(n.mac, ())) for n in dom.nics)
        nodes.append(GraphNode(key=dom.key, domain=dom.name, role=dom.role, vcpus=dom.vcpus,
                               memory=format_size(dom.memory), nics=nics,
                               state=st["state"] if st is not None else None))
    networks = []
    for net in desired.networks:
        st = net_status.get(net.name)
        networks.append(GraphNetwork(key=net.key, name=net.name, mode=net.mode, subnet=str(net.subnet),
                                     gateway=str(net.gateway) if net.gateway else "-",
                                     bridge=(st["bridge"] if st else net.bridge) or "-", owned=not net.external,
                                     active=st["active"] if st is not None else None))
    nodes.sort(key=lambda n: (ROLE_ORDER.get(n.role, len(ROLE_ORDER)), n.key))
    networks.sort(key=lambda n: (not n.style.external, n.key))
    return LabGraph(lab=desired.copy.lab, student=desired.copy.student, prefix=desired.copy.prefix,
                    nodes=tuple(nodes), networks=tuple(networks), source=source,
                    simulated=bool((status or {}).get("simulated")))


# -- DOT ----------------------------------------------------------------------------------------
def _id(text: str) -> str:
    """A DOT identifier: always a quoted string, with the two characters that matter escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _text(text: str) -> str:
    """Text inside an HTML-like label (XML character data and attribute values)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("'", "&#39;").replace("\n", " "))


def _port(nic: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in nic)


def _nic_cell(nic: GraphNic, sides: str) -> str:
    addr = nic.planned or "dhcp"
    seen = [a for a in nic.observed if a != nic.planned]
    if nic.observed and not seen:
        addr += " ✓"                      # the planned address is the one observed
    elif seen:
        addr += " (seen " + ", ".join(seen) + ")"
    return (f'<TD PORT="{_port(nic.name)}" BORDER="1" SIDES="{sides}" BGCOLOR="#ffffff"><B>{_text(nic.name)}</B> {_text(addr)}<BR/>'
            f'<FONT POINT-SIZE="8" COLOR="#4b5563">{_text(nic.mac)}</FONT></TD>')


def _nic_row(nics: list[GraphNic], edge: str) -> str:
    """One row of NIC cells (each a port): edges meet the table's top or bottom edge at their NIC.
    `edge`: the side ("B" or "T") that separates the row from the node's name."""
    cells = "".join(_nic_cell(n, edge + ("L" if i else "")) for i, n in enumerate(nics))
    return (f'<TR><TD CELLPADDING="0" BORDER="0"><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" '
            f'CELLPADDING="3">' f"<TR>{cells}</TR></TABLE></TD></TR>")


def _node_label(node: GraphNode, external: set[str]) -> str:
    """The node as a table: NICs on networks drawn above in the top row, the others in the bottom row."""
    fill = ROLE_FILL.get(node.role, ROLE_FILL["generic"])
    up = [n for n in node.nics if n.network in external]
    down = [n for n in node.nics if n.network not in external]
    rows = [_nic_row(up, "B")] if up else []
    state = ""
    if node.state is not None:
        colour = STATE_COLOUR.get(node.state, "#000000")
        state = f'<BR/><FONT COLOR="{colour}">{_text(node.state)}</FONT>'
    rows.append(f'<TR><TD BGCOLOR="{fill}" BORDER="0"><B>{_text(node.key)}</B><BR/>'
                f'{_text(node.role)} · {node.vcpus} vCPU · {_text(node.memory)}{state}</TD></TR>')
    if down:
        rows.append(_nic_row(down, "T"))
    return ('<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="4" COLOR="#374151">'
            + "".join(rows) + "</TABLE>>")


def _network_label(net: GraphNetwork) -> str:
    s = net.style
    mode = s.caption or net.mode
    head = f"<B>{_text(net.key)}</B>" + _text(net.marker)
    lines = [head, f"{_text(mode)} · {_text(net.subnet)}",
             f'<FONT POINT-SIZE="9">gateway {_text(net.gateway)} · bridge {_text(net.bridge)}</FONT>']
    if net.active is not None:
        lines.append(f'<FONT POINT-SIZE="9">{"active" if net.active else "not active"}</FONT>')
    return "<" + "<BR/>".join(lines) + ">"


def _network_attrs(net: GraphNetwork) -> str:
    s = net.style
    style = "filled,rounded,dashed" if s.dashed else "filled,rounded"
    return (f'shape={s.shape} style="{style}" fillcolor="{s.fill}" color="{s.border}" penwidth=1.5 '
            f'margin="0.2,0.08"')


def _lab_body(g: LabGraph, prefix: str, indent: str) -> list[str]:
    """Statements for one lab copy; `prefix` keeps identifiers apart when several copies share a graph."""
    nid = lambda kind, key: _id(f"{prefix}{kind}:{key}")     # noqa: E731 (a local naming rule)
    above = [n for n in g.networks if n.style.external]
    below = [n for n in g.networks if not n.style.external]
    out = []
    for net in g.networks:
        out.append(f"{indent}{nid('net', net.key)} [label={_network_label(net)} {_network_attrs(net)}];")
    external = {n.key for n in above}
    for node in g.nodes:
        out.append(f"{indent}{nid('node', node.key)} [label={_node_label(node, external)} shape=plain];")
    # networks that reach outside above the nodes, host-only ones below
    for group in (above, [n for n in g.nodes], below):
        if not group:
            continue
        kind = "node" if group and isinstance(group[0], GraphNode) else "net"
        out.append(f"{indent}{{ rank=same; " + " ".join(nid(kind, x.key) for x in group) + " }")
    # a network no NIC is on still keeps its place (above or below the nodes)
    used = {nic.network for node in g.nodes for nic in node.nics}
    middle = g.nodes[len(g.nodes) // 2] if g.nodes else None
    for net in g.networks:
        if net.key in used or middle is None:
            continue
        pair = (nid("net", net.key), nid("node", middle.key))
        out.append(f"{indent}{pair[0]} -> {pair[1]} [style=invis];" if net.style.external
                   else f"{indent}{pair[1]} -> {pair[0]} [style=invis];")
    styles = {n.key: n.style for n in g.networks}
    for node in g.nodes:
        for nic in node.nics:
            s = styles.get(nic.network, UNKNOWN_STYLE)
            port = f"{nid('node', node.key)}:{_port(nic.name)}"
            if s.external:
                out.append(f"{indent}{nid('net', nic.network)} -> {port}:n "
                           f'[dir=none color="{s.border}" penwidth=1.5];')
            else:
                out.append(f"{indent}{port}:s -> {nid('net', nic.network)} "
                           f'[dir=none color="{s.border}" penwidth=1.5];')
    return out


_GRAPH_HEAD = ['  graph [fontname="Helvetica" fontsize=11 nodesep=0.5 ranksep=0.9 newrank=true '
               'labelloc=t labeljust=l pad=0.3];',
               '  node [fontname="Helvetica" fontsize=10];',
               '  edge [fontname="Helvetica" fontsize=9];']


def to_dot(g: LabGraph) -> str:
    lines = [f"digraph {_id(g.prefix)} {{", *_GRAPH_HEAD, f"  label={_id(g.title)};"]
    lines += _lab_body(g, "", "  ")
    lines.append("}")
    return "\n".join(lines) + "\n"


def class_to_dot(lab: str, copies: list[tuple[str, LabGraph]]) -> str:
    """Every student's copy, one cluster per copy inside one cluster per host. `copies`: (host, graph)."""
    lines = [f"digraph {_id(lab + '-class')} {{", *_GRAPH_HEAD,
             f"  label={_id(f'class of lab {lab}: {len(copies)} copies')};"]
    hosts: dict[str, list[LabGraph]] = {}
    for host, g in copies:
        hosts.setdefault(host, []).append(g)
    # dot places a host's student clusters right to left of the order they are written in (graphviz
    # 2.43; pinned by tests/golden/graph): written in reverse, students read left to right in roster order
    for h, (host, graphs) in enumerate(hosts.items()):
        lines += [f"  subgraph {_id(f'cluster_host{h}')} {{",
                  f"    label={_id(f'host {host}')}; style=\"rounded\"; color=\"#6b7280\";"]
        for g in reversed(graphs):
            who = g.student or g.lab
            lines += [f"    subgraph {_id(f'cluster_{g.prefix}')} {{",
                      f"      label={_id(f'student {who}')}; style=\"rounded,dashed\"; color=\"#9ca3af\";"]
            lines += _lab_body(g, f"{g.prefix}/", "      ")
            lines.append("    }")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- Mermaid ------------------------------------------------------------------------------------
def _mid(kind: str, key: str) -> str:
    """A Mermaid node id: letters, digits and '_' only (lab names allow '-')."""
    return kind + "_" + "".join(c if c.isalnum() else "_" for c in key)


def _mtext(text: str) -> str:
    """Text inside a quoted Mermaid label: entity codes for what would end or confuse it."""
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("\n", " "))


def to_mermaid(g: LabGraph) -> str:
    lines = ["---", f"title: {_mtext(g.title)}", "---", "flowchart TB"]
    modes = []
    for net in g.networks:
        s = net.style
        label = (f"<b>{_mtext(net.key)}</b>{_mtext(net.marker)}<br/>"
                 f"{_mtext(s.caption or net.mode)} · {_mtext(net.subnet)}<br/>"
                 f"gateway {_mtext(net.gateway)} · bridge {_mtext(net.bridge)}")
        if net.active is not None:
            label += "<br/>" + ("active" if net.active else "not active")
        lines.append(f'  {_mid("net", net.key)}["{label}"]')
        lines.append(f"  class {_mid('net', net.key)} {_mid('mode', net.mode)}")
        if net.mode not in modes:
            modes.append(net.mode)
    for node in g.nodes:
        parts = [f"<b>{_mtext(node.key)}</b>", f"{_mtext(node.role)} · {node.vcpus} vCPU · {_mtext(node.memory)}"]
        if node.state is not None:
            parts.append(_mtext(node.state))
        lines.append(f'  {_mid("node", node.key)}["{"<br/>".join(parts)}"]')
        lines.append(f"  class {_mid('node', node.key)} {_mid('role', node.role)}")
    for node in g.nodes:
        for nic in node.nics:
            addr = nic.planned or "dhcp"
            seen = [a for a in nic.observed if a != nic.planned]
            if seen:
                addr += " (seen " + ", ".join(seen) + ")"
            label = f"{_mtext(nic.name)} {_mtext(addr)}<br/>{_mtext(nic.mac)}"
            net = next((n for n in g.networks if n.key == nic.network), None)
            if net is not None and net.style.external:
                lines.append(f'  {_mid("net", nic.network)} ---|"{label}"| {_mid("node", node.key)}')
            else:
                lines.append(f'  {_mid("node", node.key)} ---|"{label}"| {_mid("net", nic.network)}')
    for mode in modes:
        s = style_of(mode)
        dash = ",stroke-dasharray: 5 3" if s.dashed else ""
        lines.append(f"  classDef {_mid('mode', mode)} fill:{s.fill},stroke:{s.border}{dash}")
    for role in dict.fromkeys(n.role for n in g.nodes):
        lines.append(f"  classDef {_mid('role', role)} fill:{ROLE_FILL.get(role, ROLE_FILL['generic'])},stroke:#374151")
    return "\n".join(lines) + "\n"
