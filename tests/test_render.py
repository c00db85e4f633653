"""Generated XML: valid for libvirt's RelaxNG schemas, accepted by libvirt, pinned by golden files.

Set LABVIRT_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import os

import libvirt
import pytest

from labvirt.core import schema
from labvirt.core.desired import HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.render import render_domain, render_network, render_pool, render_volume, tostring

from .conftest import EXAMPLES, ROOT

GOLDEN = os.path.join(ROOT, "tests", "golden")


def documents(example, domain_type="kvm"):
    spec = load_lab(EXAMPLES[example])
    # a fixed lab directory: the golden files must not depend on where the repository is
    d = desire(spec, LabCopy(spec.name, origin=f"/labs/{example}"), HostParams(domain_type=domain_type))
    # (external networks: attached to, never rendered; their NICs are in the domains)
    docs = [(f"network-{n.name}.xml", render_network(n)) for n in d.networks if not n.external]
    docs.append((f"pool-{d.pool.name}.xml", render_pool(d.pool)))
    docs += [(f"volume-{v.name}.xml", render_volume(v)) for v in d.volumes]
    docs += [(f"domain-{x.name}.xml", render_domain(x)) for x in d.domains]
    return docs


@pytest.mark.parametrize("example", sorted(EXAMPLES))
@pytest.mark.parametrize("domain_type", ["kvm", "qemu"])
def test_every_document_validates_against_libvirt_schemas(example, domain_type):
    if not os.path.isdir(schema.SCHEMA_DIR):
        pytest.skip(f"libvirt's schemas are not installed in {schema.SCHEMA_DIR}")
    for name, tree in documents(example, domain_type):
        assert schema.errors(tree) == [], name


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_golden_files(example):
    folder = os.path.join(GOLDEN, example)
    for name, tree in documents(example):
        path = os.path.join(folder, name)
        text = tostring(tree)
        if os.environ.get("LABVIRT_UPDATE_GOLDEN"):
            os.makedirs(folder, exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        with open(path) as f:
            assert text == f.read(), f"{name} differs from its golden file (LABVIRT_UPDATE_GOLDEN=1 to accept)"


def test_libvirt_test_driver_accepts_the_documents():
    conn = libvirt.open("test:///default")
    try:
        for name, tree in documents("three-node"):
            xml = tostring(tree)
            if name.startswith("network-"):
                conn.networkDefineXMLFlags(xml, libvirt.VIR_NETWORK_DEFINE_VALIDATE)
            elif name.startswith("domain-"):
                dom = conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
                assert 'lab="openstack3"' in dom.XMLDesc(0)
    finally:
        conn.close()


def test_no_secret_or_format_string_in_xml():
    for _, tree in documents("standard"):
        text = tostring(tree)
        assert "{" not in text and "password" not in text.lower()


def test_the_network_names_its_static_nodes_in_dns_with_their_fqdn(tmp_path):
    """Static guests never lease, so dnsmasq learns their names only from <dns><host>: every node
    with a static address on the network, and NODE.DOMAIN where the network has a domain."""
    from lxml import etree

    from .conftest import write_lab

    node = 'role = "generic"\nvcpus = 1\nmemory = "128MiB"\ndisk = "1GiB"\n[[nic]]\nnetwork = "lan"\n'
    spec = load_lab(write_lab(tmp_path / "lab", "dns", networks={
        "lan": 'mode = "nat"\nsubnet = "10.232.9.0/24"\ndomain = "lab.test"\n',
        "other": 'mode = "isolated"\nsubnet = "10.232.10.0/24"\n'},
        nodes={"alpha": node + 'address = "10.232.9.11"\n', "beta": node + 'address = "10.232.9.12"\n',
               "dyn": node + '[[nic]]\nnetwork = "other"\n'}))     # no static address anywhere
    d = desire(spec, LabCopy(spec.name, origin="/labs/dns"), HostParams(domain_type="qemu"))
    trees = {n.key: render_network(n) for n in d.networks}
    hosts = {h.get("ip"): [x.text for x in h.findall("hostname")] for h in trees["lan"].findall("dns/host")}
    assert hosts == {"10.232.9.11": ["alpha", "alpha.lab.test"], "10.232.9.12": ["beta", "beta.lab.test"]}
    assert trees["other"].find("dns") is None          # nobody has a static address there
    if os.path.isdir(schema.SCHEMA_DIR):
        for name, tree in trees.items():
            assert schema.errors(tree) == [], (name, etree.tostring(tree))
