"""Per-node identity documents: addresses from the plan, hosts, users, YAML, SHA-512 crypt."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from ipaddress import ip_interface

import pytest
import yaml

from labvirt.core.cloudinit import (cloud_config, hostname, hosts_block, meta_data, network_config,
                                    seed_documents, to_yaml)
from labvirt.core.crypt import sha512_crypt
from labvirt.core.desired import HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab

from .conftest import EXAMPLES as LABS


def desired_lab(which: str, student: str = ""):
    spec = load_lab(LABS[which])
    return desire(spec, LabCopy(spec.name, student), HostParams(domain_type="qemu"))


def system_yaml(text: str):
    """Read a document the way cloud-init does (PyYAML's safe loader)."""
    return yaml.safe_load(text)


@pytest.mark.parametrize("which", sorted(LABS))
def test_network_config_matches_dhcp_reservations(which):
    desired = desired_lab(which)
    reserved = {(h.mac, h.ip) for net in desired.networks for h in net.hosts}
    nets = {n.name: n for n in desired.networks}
    for domain in desired.domains:
        cfg = network_config(desired, domain.key)
        assert cfg["version"] == 1
        physical = [c for c in cfg["config"] if c["type"] == "physical"]
        assert [c["name"] for c in physical] == [f"eth{i}" for i in range(len(domain.nics))]
        gateways = []
        for entry, nic in zip(physical, domain.nics):
            assert entry["mac_address"] == nic.mac
            (subnet,) = entry["subnets"]
            iface = ip_interface(f"{subnet['address']}/{subnet['netmask']}")
            net = nets[nic.network]
            # a reservation on labvirt's own networks; on external ones the seed alone carries the address
            assert ((nic.mac, iface.ip) in reserved) != net.external and iface.ip == nic.address
            assert iface.network == net.subnet
            assert "gateway" not in subnet          # cloud-init 0.7.9 reads the default route only from routes
            if "routes" in subnet:
                assert net.routed
                assert subnet["routes"] == [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": str(net.gateway)}]
                gateways.append(str(net.gateway))
            else:
                assert net.mode == "isolated"
        assert len(gateways) == 1
        (ns,) = [c for c in cfg["config"] if c["type"] == "nameserver"]   # where 0.7.9 reads name servers
        assert ns["address"] == gateways


@pytest.mark.parametrize("which, node, route_nic", [("standard", "controller", "eth0"),
                                                     ("three-node", "controller", "eth1"),
                                                     ("three-node", "compute2", "eth1")])
def test_default_route_only_on_the_nat_nic(which, node, route_nic):
    desired = desired_lab(which)
    v1 = {c["name"]: c["subnets"][0] for c in network_config(desired, node)["config"] if c["type"] == "physical"}
    assert [name for name, s in v1.items() if "routes" in s] == [route_nic]
    v2 = network_config(desired, node, version=2)["ethernets"]
    assert [name for name, e in v2.items() if "routes" in e] == [route_nic]
    assert all(e["set-name"] == name and e["match"]["macaddress"] for name, e in v2.items())


def test_student_copy_moves_addresses_into_its_subnets():
    from ipaddress import IPv4Network
    spec = load_lab(LABS["three-node-nat"])
    copy = LabCopy(spec.name, "alice", subnets=(("provider", IPv4Network("10.1.0.0/24")),))
    desired = desire(spec, copy, HostParams(domain_type="qemu"))
    eth1 = network_config(desired, "controller")["config"][1]["subnets"][0]
    assert eth1 == {"type": "static", "address": "10.1.0.100", "netmask": "255.255.255.0",
                    "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.1.0.1"}]}
    assert "10.1.0.101      compute1-provider\n" in hosts_block(desired)


def test_dns_domain_and_dhcp_nics():
    from labvirt.core.record import replace
    desired = desired_lab("standard")
    nets = tuple(replace(n, domain="lab.example") if n.key == "public" else n for n in desired.networks)
    doms = tuple(replace(d, nics=(d.nics[0], replace(d.nics[1], address=None))) for d in desired.domains)
    desired = replace(desired, networks=nets, domains=doms)
    assert cloud_config(desired, "controller")["fqdn"] == "controller.lab.example"
    assert "192.168.122.100 controller.lab.example controller\n" in hosts_block(desired)
    assert "192.168.90" not in hosts_block(desired)                 # no address: not listed
    eth0, eth1, ns = network_config(desired, "controller")["config"]
    assert ns == {"type": "nameserver", "address": ["192.168.122.1"], "search": ["lab.example"]}
    assert eth1["subnets"] == [{"type": "dhcp"}]
    assert network_config(desired, "controller", 2)["ethernets"]["eth1"]["dhcp4"] is True
    assert hostname(desired, "controller") == "controller.lab.example"
    with pytest.raises(ValueError):
        network_config(desired, "controller", 3)


def test_hosts_block_lists_every_node():
    desired = desired_lab("three-node")
    block = hosts_block(desired)
    assert block.splitlines() == [
        "# BEGIN labvirt openstack3",
        "192.168.1.101   compute1", "10.5.116.101    compute1-provider",
        "192.168.1.102   compute2", "10.5.116.102    compute2-provider",
        "192.168.1.100   controller", "10.5.116.100    controller-provider",
        "# END labvirt openstack3"]


def test_user_data_holds_hash_keys_hostname_and_hosts():
    desired = desired_lab("standard")
    pw_hash = sha512_crypt("not-in-the-seed", "0123456789abcdef")
    docs = seed_documents(desired, "compute", ssh_keys=("ssh-ed25519 AAAAC3Nza test@lab",), password_hash=pw_hash)
    assert set(docs) == {"meta-data", "user-data", "network-config"}
    assert docs["user-data"].startswith("#cloud-config\n")
    assert "not-in-the-seed" not in "".join(docs.values())
    ud = system_yaml(docs["user-data"])
    assert ud == json.loads(json.dumps(cloud_config(desired, "compute", ("ssh-ed25519 AAAAC3Nza test@lab",), pw_hash)))
    assert ud["hostname"] == "compute" and ud["manage_etc_hosts"] is False and ud["disable_root"] is False
    (root,) = ud["users"]
    assert root == {"name": "root", "lock_passwd": False, "hashed_passwd": pw_hash,
                    "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nza test@lab"]}
    (hosts,) = ud["write_files"]
    assert hosts["path"] == "/etc/hosts" and hosts["content"].endswith(hosts_block(desired))
    assert "127.0.0.1" in hosts["content"]
    assert system_yaml(docs["meta-data"]) == meta_data(desired, "compute")
    assert system_yaml(docs["network-config"]) == network_config(desired, "compute")


def test_non_root_user_gets_keys_and_sudo():
    cfg = cloud_config(desired_lab("standard"), "controller", ssh_keys=("ssh-rsa AAAA k",), user="stack")
    assert cfg["users"] == [{"name": "stack", "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL",
                             "lock_passwd": True, "ssh_authorized_keys": ["ssh-rsa AAAA k"]}]
    assert "ssh_pwauth" not in cfg and "chpasswd" not in cfg


def test_plain_password_is_refused():
    with pytest.raises(ValueError, match="hash"):
        cloud_config(desired_lab("standard"), "controller", password_hash="hunter2")


def test_unknown_node():
    with pytest.raises(KeyError, match="known: compute, controller"):
        meta_data(desired_lab("standard"), "nope")


@pytest.mark.parametrize("value", [
    {"mac": "52:54:00:12:34:56", "yes": "yes", "no": "off", "num": "1.10", "date": "2001-12-14", "empty": ""},
    {"nested": [{"a": 1, "b": [True, False, None]}, [1, "x"], []], "map": {}, "key with space": "v"},
    {"text": "line one\n  indented\n\nafter blank\n", "noeol": "a\nb", "crlf": "a\r\nb\n", "lead": " x\n"},
    {"list": [{"content": "x\ny\n", "path": "/p"}], "unicode": "päss – ✓", "quote": 'say "hi"\\'},
])
def test_yaml_round_trip(value):
    assert system_yaml(to_yaml(value)) == value


@pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False), reason="PyYAML built without libyaml")
@pytest.mark.parametrize("value", [
    {"mac": "52:54:00:12:34:56", "yes": "yes", "num": "1.10", "empty": "", "nested": [{"a": 1, "b": [True, None]}]},
    {"text": "line one\n  indented\n\nafter blank\n", "noeol": "a\nb", "crlf": "a\r\nb\n", "lead": " x\n"},
    {"unicode": "päss – ✓", "quote": 'say "hi"\\', "long": "word " * 2000, "map": {}, "list": []},
])
def test_libyaml_and_pure_python_emit_the_same_text(value):
    """Seeds are the same bytes whether PyYAML has libyaml (used when there) or not."""
    from labvirt.core import cloudinit

    class Pure(yaml.SafeDumper):
        pass

    Pure.add_representer(str, cloudinit._str)
    pure = yaml.dump(value, Dumper=Pure, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
    assert cloudinit._Dumper.__mro__[1] is yaml.CSafeDumper
    assert to_yaml(value) == pure


def test_yaml_refuses_unknown_types():
    with pytest.raises(yaml.representer.RepresenterError):
        to_yaml({"x": object()})


# -- SHA-512 crypt ---------------------------------------------------------------------------------
GLIBC_VECTORS = [   # from Ulrich Drepper's SHA-crypt specification (glibc's test vectors)
    ("Hello world!", "saltstring", 5000,
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", "saltstringsaltstring", 10000,
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
    ("a very much longer text to encrypt.  This one even stretches over morethan one line.",
     "anotherlongsaltstring", 1400,
     "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"),
]


def test_sha512_crypt_rounds_out_of_range():
    with pytest.raises(ValueError, match="rounds"):
        sha512_crypt("pw", "salt", 10)


@pytest.mark.parametrize("password, salt, rounds, expected", GLIBC_VECTORS)
def test_sha512_crypt_glibc_vectors(password, salt, rounds, expected):
    assert sha512_crypt(password, salt, rounds) == expected


@pytest.mark.parametrize("password", ["", "x", "päss wörd", "a" * 200, "$6$looks:like:a:hash"])
def test_sha512_crypt_matches_system_crypt(password):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        crypt = pytest.importorskip("crypt", reason="no crypt module (removed in Python 3.13)")
    salt = "Ab3./xyz0123456Z"
    assert sha512_crypt(password, salt) == crypt.crypt(password, f"$6${salt}")


@pytest.mark.parametrize("password", ["s3cret", "x", "päss wörd", "a" * 200, "with space and $ign"])
@pytest.mark.parametrize("salt", ["qwertyuiop", "ab", "Ab3./xyz0123456Z", "0123456789abcdef"])
def test_sha512_crypt_matches_openssl(password, salt):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    out = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password + "\n",
                         capture_output=True, text=True, check=True).stdout.strip()
    assert sha512_crypt(password, salt) == out


def test_random_salts_differ():
    a, b = sha512_crypt("pw"), sha512_crypt("pw")
    assert a != b and a.startswith("$6$") and len(a.split("$")[2]) == 16


def test_core_modules_import_without_libvirt_or_subprocess():
    code = ("import sys; sys.modules['libvirt'] = None; sys.modules['subprocess'] = None; "
            "import labvirt.core.cloudinit, labvirt.core.seed; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_resolver_fallback_only_writes_resolv_conf_when_nothing_did(tmp_path):
    """The boot command runs as the guest's sh would: no nameserver line -> written; one there -> kept."""
    desired = desired_lab("standard")
    route, argv = cloud_config(desired, "controller")["bootcmd"]
    assert route == ["sh", "-c", "ip -4 route show default | grep -q . || "
                                 "ip -4 route add default via 192.168.122.1 dev eth0"]
    assert argv[:2] == ["sh", "-c"] and "nameserver 192.168.122.1" in argv[2]
    script = argv[2].replace("/etc/resolv.conf", str(tmp_path / "resolv.conf"))
    (tmp_path / "resolv.conf").write_text("# empty: ifupdown without resolvconf\n")
    subprocess.run(["sh", "-c", script], check=True)
    assert (tmp_path / "resolv.conf").read_text() == "nameserver 192.168.122.1\n"
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.53\n")        # systemd-resolved's stub
    subprocess.run(["sh", "-c", script], check=True)
    assert (tmp_path / "resolv.conf").read_text() == "nameserver 127.0.0.53\n"
