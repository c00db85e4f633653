"""`labvirt graph`: the graph model, DOT pinned by golden files, the SVG Graphviz draws from it (every
node, NIC and network with its label), Mermaid, escaping, and the CLI offline, on the simulator and for
a class.

Set LABVIRT_UPDATE_GOLDEN=1 to rewrite tests/golden/graph after an intended change (then look at the
pictures: `labvirt graph --offline -o /tmp/x.png`).
"""

import json
import os
import shutil
import subprocess

import pytest
from lxml import etree

from labvirt.core.desired import HostParams, desire
from labvirt.core.graph import (GraphNetwork, GraphNic, GraphNode, LabGraph, _id, _text, class_to_dot, lab_graph,
                                to_dot, to_mermaid)
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab

from .conftest import EXAMPLES, ROOT, run_cli

GOLDEN = os.path.join(ROOT, "tests", "golden", "graph")
SVG = "{http://www.w3.org/2000/svg}"


def graph_of(example: str, student: str = "") -> LabGraph:
    spec = load_lab(EXAMPLES[example])
    return lab_graph(desire(spec, LabCopy(spec.name, student), HostParams()))


def needs_dot():
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Graphviz (apt-get install graphviz)")
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")


def check_golden(name: str, text: str) -> None:
    path = os.path.join(GOLDEN, name)
    if os.environ.get("LABVIRT_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(path) as f:
        assert text == f.read(), f"{name} differs from its golden file (LABVIRT_UPDATE_GOLDEN=1 to accept)"


def class_copies() -> list:
    spec = load_lab(EXAMPLES["standard"])
    return [("qemu:///system" if s != "s03" else "qemu+ssh://kvm2/system",
             lab_graph(desire(spec, LabCopy(spec.name, s), HostParams()), source="class"))
            for s in ("s01", "s02", "s03")]


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_dot_and_mermaid_are_pinned_by_golden_files(example):
    g = graph_of(example)
    check_golden(f"{example}.dot", to_dot(g))
    check_golden(f"{example}.mmd", to_mermaid(g))


def test_class_dot_is_pinned_by_a_golden_file():
    check_golden("class-standard.dot", class_to_dot("openstack", class_copies()))


def svg_texts(svg: bytes) -> list[str]:
    root = etree.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_the_svg_parses_and_holds_every_node_nic_and_network_with_its_label(example):
    needs_dot()
    from labvirt.ops.graph import draw

    spec = load_lab(EXAMPLES[example])
    desired = desire(spec, LabCopy(spec.name), HostParams())
    texts = svg_texts(draw(to_dot(lab_graph(desired)), "svg"))
    joined = "\n".join(texts)
    for dom in desired.domains:
        assert dom.key in texts
        assert f"{dom.role} · {dom.vcpus} vCPU" in joined
        for nic in dom.nics:
            assert nic.name in texts and str(nic.address) in joined and nic.mac in texts
    for net in desired.networks:
        assert net.key in texts
        assert str(net.subnet) in joined and net.bridge in joined
    from labvirt.core.graph import style_of

    assert all(style_of(n.mode).caption in joined for n in desired.networks) and ("host-only" in joined)
    assert joined.count("external") == sum(1 for n in desired.networks if style_of(n.mode).external)
    assert joined.count("not labvirt's") == sum(1 for n in desired.networks if n.external)


def test_the_png_of_both_examples_is_drawn():
    needs_dot()
    from labvirt.ops.graph import draw

    for example in EXAMPLES:
        png = draw(to_dot(graph_of(example)), "png")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# -- the emitter quotes what it must -------------------------------------------------------------------
@pytest.mark.parametrize("raw, quoted", [
    ("plain", '"plain"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("two\nlines", '"two lines"'),
    ("a -> b; }", '"a -> b; }"'),
])
def test_identifiers_are_quoted_and_escaped(raw, quoted):
    assert _id(raw) == quoted


@pytest.mark.parametrize("raw, escaped", [
    ("a<b>&c", "a&lt;b&gt;&amp;c"),
    ('"quoted"', "&quot;quoted&quot;"),
    ("it's", "it&#39;s"),
    ("</TD></TR>", "&lt;/TD&gt;&lt;/TR&gt;"),
])
def test_label_text_is_escaped(raw, escaped):
    assert _text(raw) == escaped


HOSTILE = 'x"<b>&amp;</b>\\'


def hostile_graph(mode="isolated") -> LabGraph:
    nic = GraphNic(name="eth0", mac="52:54:00:00:00:01", network="n", planned="10.0.0.5",
                   observed=("10.0.0.5", HOSTILE))
    node = GraphNode(key="node" + HOSTILE, domain="d", role="generic", vcpus=1, memory="1GiB", nics=(nic,),
                     state="running")
    net = GraphNetwork(key="n", name="lab-n", mode=mode, subnet="10.0.0.0/24", gateway="10.0.0.1",
                       bridge="br" + HOSTILE)
    return LabGraph(lab="lab", student="", prefix="lab" + HOSTILE, nodes=(node,), networks=(net,))


def test_text_that_looks_like_markup_reaches_the_picture_unchanged():
    needs_dot()
    from labvirt.ops.graph import draw

    texts = "\n".join(svg_texts(draw(to_dot(hostile_graph()), "svg")))
    assert "node" + HOSTILE in texts and "br" + HOSTILE in texts and HOSTILE in texts


def test_mermaid_labels_carry_no_raw_quotes_or_angle_brackets():
    text = to_mermaid(hostile_graph())
    for line in text.splitlines():
        if '["' in line:
            label = line.split('["', 1)[1].rsplit('"]', 1)[0]
            assert '"' not in label
    assert "#quot;" in text and "#lt;b#gt;" in text


# -- networks by mode: the hook for external networks ----------------------------------------------------
@pytest.mark.parametrize("mode, external, dashed", [
    ("nat", True, False), ("isolated", False, False),
    ("existing", True, True), ("host-bridge", True, True), ("something-new", False, True),
])
def test_networks_are_styled_and_placed_by_mode(mode, external, dashed):
    dot = to_dot(hostile_graph(mode))
    net_line = next(line for line in dot.splitlines() if line.strip().startswith('"net:n" [label='))
    assert ("dashed" in net_line) == dashed
    assert ("· external" in net_line) == external
    edge = next(line for line in dot.splitlines() if "dir=none" in line)
    if external:                       # drawn above: from the network down to the NIC's top edge
        assert edge.strip().startswith('"net:n" -> ') and ":eth0:n " in edge
    else:                              # drawn below: from the NIC's bottom edge
        assert ":eth0:s -> " in edge
    assert f"class net_n mode_{mode.replace('-', '_')}" in to_mermaid(hostile_graph(mode))


def test_a_running_lab_shows_states_and_what_libvirt_observes():
    spec = load_lab(EXAMPLES["standard"])
    desired = desire(spec, LabCopy(spec.name), HostParams())
    ctl = next(d for d in desired.domains if d.key == "controller")
    status = {"simulated": False, "nodes": [
        {"name": "controller", "state": "running", "nics": [
            {"mac": ctl.nics[0].mac, "observed": [{"ip": str(ctl.nics[0].address), "source": "lease"}]},
            {"mac": ctl.nics[1].mac, "observed": [{"ip": "192.168.200.7", "source": "arp"}]}]},
        {"name": "compute", "state": "shut off", "nics": []}],
        "networks": [{"name": n.name, "bridge": n.bridge, "active": n.key == "public"} for n in desired.networks]}
    g = lab_graph(desired, status, source="qemu:///system")
    dot = to_dot(g)
    assert "on qemu:///system" in dot
    assert ">running<" in dot and ">shut off<" in dot
    assert f"{ctl.nics[0].address} ✓" in dot                  # planned and observed agree
    assert f"{ctl.nics[1].address} (seen 192.168.200.7)" in dot
    assert ">active<" in dot and ">not active<" in dot
    assert [n.key for n in g.nodes] == ["controller", "compute"]   # controller first, then by role


def test_class_graph_groups_copies_by_host_in_roster_order():
    dot = class_to_dot("openstack", class_copies())
    assert dot.count('subgraph "cluster_host') == 2
    assert 'label="host qemu+ssh://kvm2/system"' in dot
    for s in ("s01", "s02", "s03"):
        assert f'label="student {s}"' in dot and f'"openstack-{s}/node:controller"' in dot


def test_class_graph_places_students_left_to_right():
    needs_dot()
    r = subprocess.run(["dot", "-Tplain"], input=class_to_dot("openstack", class_copies()), capture_output=True,
                       text=True, check=True)
    x = {line.split()[1].strip('"').split("/")[0]: float(line.split()[2])
         for line in r.stdout.splitlines() if line.startswith("node ") and "node:controller" in line}
    assert x["openstack-s01"] < x["openstack-s02"] < x["openstack-s03"]


# -- the command ---------------------------------------------------------------------------------------------
def test_cli_offline_dot_is_the_golden_file_and_mermaid_goes_to_stdout():
    r = run_cli("graph", "--offline", "-C", EXAMPLES["three-node"])
    assert r.returncode == 0, r.stderr
    with open(os.path.join(GOLDEN, "three-node.dot")) as f:
        assert r.stdout == f.read()
    r = run_cli("graph", "--offline", "-C", EXAMPLES["three-node"], "--format", "mermaid")
    assert r.returncode == 0 and r.stdout.startswith("---\ntitle: lab openstack3")


def test_cli_writes_svg_and_png_by_extension_and_png_to_a_pipe(tmp_path):
    needs_dot()
    svg = tmp_path / "lab.svg"
    r = run_cli("graph", "--offline", "-C", EXAMPLES["standard"], "-o", str(svg))
    assert r.returncode == 0, r.stderr
    assert "controller" in svg_texts(svg.read_bytes())
    r = subprocess.run([__import__("sys").executable, "-m", "labvirt", "graph", "--offline", "-C",
                        EXAMPLES["standard"], "--format", "png"], capture_output=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout[:4] == b"\x89PNG"


def test_cli_refuses_an_unknown_format():
    r = run_cli("graph", "--offline", "-C", EXAMPLES["standard"], "--format", "gif")
    assert r.returncode == 1 and "allowed: dot, mermaid, svg, png" in r.stderr


def test_cli_on_the_simulator_shows_states_and_one_student(tmp_path):
    lab = EXAMPLES["standard"]
    assert run_cli("sim", "create", "g").returncode == 0
    assert run_cli("up", "-C", lab, "-c", "sim:///g").returncode == 0
    r = run_cli("graph", "-C", lab, "-c", "sim:///g")
    assert r.returncode == 0, r.stderr
    assert "on sim:///g, simulated" in r.stdout and r.stdout.count(">running<") == 2
    assert run_cli("destroy", "-C", lab, "-c", "sim:///g").returncode == 0
    r = run_cli("graph", "-C", lab, "-c", "sim:///g")
    assert r.stdout.count(">missing<") == 2


def test_cli_class_graph_on_the_simulator(tmp_path):
    lab = EXAMPLES["standard"]
    assert run_cli("class", "up", "-C", lab, "-c", "sim", "--students", "2").returncode == 0
    r = run_cli("class", "graph", "-C", lab, "-c", "sim")
    assert r.returncode == 0, r.stderr
    assert 'label="student s01"' in r.stdout and 'label="student s02"' in r.stdout
    assert "10.100." in r.stdout                      # each student's own addresses
    r = run_cli("class", "graph", "-C", lab, "-c", "sim", "--student", "s02")
    assert 'label="student s01"' not in r.stdout and 'label="student s02"' in r.stdout
    r = run_cli("class", "graph", "-C", lab, "-c", "sim", "--format", "mermaid")
    assert r.returncode == 1 and "mermaid draws one lab copy" in r.stderr
    r = run_cli("graph", "-C", lab, "-c", "sim", "--student", "s01", "--format", "mermaid")
    assert r.returncode == 0 and "openstack-s01" in r.stdout
    assert json.loads(run_cli("class", "status", "-C", lab, "-c", "sim", "--json").stdout)["students"]
