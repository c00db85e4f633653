"""NoCloud seed ISOs: built with pycdlib, read back with pycdlib and, where installed, isoinfo and blkid."""

from __future__ import annotations

import io
import shutil
import subprocess
from ipaddress import ip_interface

import pycdlib
import pytest
import yaml

from labvirt.core.cloudinit import seed_documents
from labvirt.core.crypt import sha512_crypt
from labvirt.core.desired import HostParams, desire
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.seed import SEED_LABEL, build_seed_iso, iso9660_name, read_seed_iso, seed_label

from .conftest import EXAMPLES

LABS = [EXAMPLES["standard"], EXAMPLES["three-node"]]
DOCS = {"meta-data": "instance-id: \"iid-1\"\n", "user-data": "#cloud-config\nhostname: \"x\"\n",
        "network-config": "version: 1\nconfig: []\n"}


def lab_seeds(directory):
    spec = load_lab(directory)
    desired = desire(spec, LabCopy(spec.name), HostParams(domain_type="qemu"))
    pw_hash = sha512_crypt("classroom-secret")
    for domain in desired.domains:
        docs = seed_documents(desired, domain.key, ssh_keys=("ssh-ed25519 AAAAtest k@h",), password_hash=pw_hash)
        yield domain, docs, build_seed_iso(docs)


def test_round_trip_and_label():
    data = build_seed_iso(DOCS)
    assert read_seed_iso(data) == DOCS
    assert seed_label(data) == SEED_LABEL == "cidata"
    assert len(data) % 2048 == 0


def test_long_names_in_rock_ridge_and_joliet_short_names_in_iso9660():
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(build_seed_iso(DOCS)))
    try:
        assert iso.has_rock_ridge() and iso.has_joliet()
        rr = sorted(c.rock_ridge.name().decode() for c in iso.list_children(rr_path="/")
                    if c.is_file())
        joliet = sorted(c.file_identifier().decode("utf-16_be") for c in iso.list_children(joliet_path="/")
                        if c.is_file())
        plain = sorted(c.file_identifier().decode() for c in iso.list_children(iso_path="/") if c.is_file())
        assert rr == joliet == ["meta-data", "network-config", "user-data"]
        assert plain == ["META_DAT.;1", "NETWORK_.;1", "USER_DAT.;1"]
        assert iso.joliet_vd.volume_identifier.decode("utf-16_be").rstrip() == "cidata"
    finally:
        iso.close()


@pytest.mark.parametrize("directory", LABS)
def test_lab_seeds_match_the_plan(directory):
    for domain, docs, data in lab_seeds(directory):
        back = read_seed_iso(data)
        assert back == docs
        assert "classroom-secret" not in data.decode("latin-1")
        assert yaml.safe_load(back["meta-data"])["local-hostname"] == domain.key
        user = yaml.safe_load(back["user-data"])
        net = yaml.safe_load(back["network-config"])
        assert user["hostname"] == domain.key
        assert any(u.get("hashed_passwd", "").startswith("$6$") for u in user["users"] if isinstance(u, dict))
        by_mac = {i.get("mac_address"): i for i in net["config"] if i.get("type") == "physical"}
        for nic in domain.nics:
            subnets = by_mac[nic.mac]["subnets"]
            assert str(nic.address) in [s.get("address") for s in subnets]
            assert f"{nic.address}" in back["user-data"]          # /etc/hosts of every node


def test_missing_required_file():
    with pytest.raises(ValueError, match="missing user-data"):
        build_seed_iso({"meta-data": ""})


@pytest.mark.parametrize("name", ["Meta-Data", "../x", "a b", ""])
def test_bad_names(name):
    with pytest.raises(ValueError, match="allowed"):
        build_seed_iso(DOCS | {name: "x"})


def test_clashing_short_names():
    with pytest.raises(ValueError, match="share the ISO 9660 name"):
        build_seed_iso(DOCS | {"user-data2": "x"})


def test_iso9660_name():
    assert iso9660_name("network-config") == "/NETWORK_.;1"
    assert iso9660_name("vendor-data") == "/VENDOR_D.;1"


@pytest.fixture
def seed_file(tmp_path):
    _, docs, data = next(lab_seeds(LABS[1]))
    path = tmp_path / "seed.iso"
    path.write_bytes(data)
    return path, docs


def test_isoinfo_sees_label_and_long_names(seed_file):
    if shutil.which("isoinfo") is None:
        pytest.skip("isoinfo not installed (apt-get install genisoimage)")
    path, docs = seed_file
    info = subprocess.run(["isoinfo", "-d", "-i", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Volume id: cidata" in info
    for flag in ("-R", "-J"):
        listing = subprocess.run(["isoinfo", "-f", flag, "-i", str(path)], capture_output=True, text=True,
                                 check=True).stdout.split()
        assert sorted(listing) == ["/meta-data", "/network-config", "/user-data"]
    content = subprocess.run(["isoinfo", "-R", "-i", str(path), "-x", "/network-config"], capture_output=True,
                             text=True, check=True).stdout
    assert content == docs["network-config"]


def test_blkid_sees_what_cloud_init_looks_for(seed_file):
    if shutil.which("blkid") is None:
        pytest.skip("blkid not installed")
    path, _ = seed_file
    out = subprocess.run(["blkid", "-p", "-o", "export", str(path)], capture_output=True, text=True).stdout
    tags = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert tags.get("TYPE") == "iso9660" and tags.get("LABEL") == "cidata", out
