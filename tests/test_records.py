"""labvirt's values are msgspec records (labvirt.core.record), not dataclasses (issue 15: a dataclass's
methods are compiled at every import). What the records must keep doing that the dataclasses did."""

import ast
import importlib
import pkgutil
from ipaddress import IPv4Address
from pathlib import Path

import msgspec
import pytest

import labvirt
from labvirt.core.actions import CreateSeed
from labvirt.core.desired import DesiredNic, DesiredNetwork
from labvirt.core.plan import SeedIdentity
from labvirt.core.record import Record, as_dict, compared_without, field_defaults, field_names, replace, repr_without
from labvirt.core.spec import ImageSpec, LabSpec, _plain, spec_hash

PACKAGE = Path(labvirt.__file__).parent
# Typer's own parameter type is a dataclass; labvirt's subclass of it has to be one too
DATACLASS_ALLOWED = {"cli/plain_params.py"}


def test_no_module_makes_dataclasses():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and rel not in DATACLASS_ALLOWED:
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if "dataclasses" in names:
                    found.append(rel)
    assert found == [], f"use labvirt.core.record instead of dataclasses in {found}"


def record_types():
    for info in pkgutil.walk_packages(labvirt.__path__, "labvirt."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, msgspec.Struct) and value.__module__ == info.name:
                yield value


def test_unhashed_fields_are_left_out_at_their_own_defaults():
    """spec_hash leaves a field named in `unhashed` out while it holds the default field_defaults reads:
    that must be the field's own default (msgspec's public view of it), or a record made with defaults
    would hash differently from before."""
    checked = 0
    for cls in record_types():
        for name in getattr(cls, "unhashed", ()):
            info = {f.name: f for f in msgspec.structs.fields(cls)}[name]
            assert info.default == field_defaults(cls)[name], f"{cls.__name__}.{name}"
            checked += 1
    assert checked >= 5


def test_fields_added_later_leave_hashes_alone():
    nic = DesiredNic("eth0", "net", "52:54:00:00:00:01", IPv4Address("10.0.0.5"))
    assert "bridge" not in _plain(nic)
    assert spec_hash(nic) != spec_hash(replace(nic, bridge=True))
    image = ImageSpec("c7", 20)
    assert spec_hash(image) == spec_hash(replace(image, keep_package_repositories=True))
    assert spec_hash(image) != spec_hash(replace(image, keep_package_repositories=False))


def test_records_are_frozen_values():
    nic = DesiredNic("eth0", "net", "52:54:00:00:00:01", None)
    with pytest.raises(AttributeError):
        nic.name = "eth1"
    assert nic == DesiredNic("eth0", "net", "52:54:00:00:00:01", None)
    assert len({nic, DesiredNic("eth0", "net", "52:54:00:00:00:01", None)}) == 1
    assert repr(nic) == "DesiredNic(name='eth0', network='net', mac='52:54:00:00:00:01', address=None, " \
                        "model='virtio', bridge=False)"
    assert field_names(nic)[:2] == ("name", "network")
    assert as_dict(nic)["mac"] == "52:54:00:00:00:01"
    assert isinstance(nic, Record)


def test_a_subclass_is_not_equal_to_its_base():
    net = DesiredNetwork("n", "lab-n", "u", "isolated", "br", None, None, None, None, (), None, "lab", "")

    class Other(DesiredNetwork):
        pass

    assert net != Other(*(getattr(net, f) for f in field_names(net)))


def test_lab_tables_are_left_out_of_equality_and_hash():
    spec = LabSpec("lab", "/d", (), (), services={"heat": True})
    same = replace(spec, services={"heat": False}, class_table={"students": 3})
    assert spec == same and hash(spec) == hash(same)
    assert spec != replace(spec, name="other")


def test_secrets_stay_out_of_repr():
    seed = CreateSeed(0, "seed", documents=(("user-data", "-----BEGIN OPENSSH PRIVATE KEY-----"),))
    identity = SeedIdentity(host_keys=(("ctl", "-----BEGIN OPENSSH PRIVATE KEY-----", "ssh-ed25519 AAAA"),))
    for value in (seed, identity):
        assert "PRIVATE KEY" not in repr(value)
    assert repr(identity).startswith("SeedIdentity(ssh_keys=(), password_hashes=(), user='root')")


def test_the_helpers_on_a_record_of_their_own():
    class Point(Record):
        x: int
        y: int
        label: str = ""
        __eq__, __hash__ = compared_without("label")
        __repr__ = repr_without("y")

    assert Point(1, 2, "a") == Point(1, 2, "b") and hash(Point(1, 2, "a")) == hash(Point(1, 2, "b"))
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != (1, 2)
    assert repr(Point(1, 2, "a")) == "Point(x=1, label='a')"
