from ipaddress import ip_address, ip_network

from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab

from .conftest import EXAMPLES


def test_identity_is_deterministic_and_distinct_per_copy():
    a, b = LabCopy("openstack"), LabCopy("openstack", "alice")
    assert a.mac("controller", 0) == LabCopy("openstack").mac("controller", 0)
    assert a.mac("controller", 0).startswith("52:54:00:")
    assert a.mac("controller", 0) != b.mac("controller", 0) != a.mac("controller", 1)
    assert a.domain_uuid("controller") != b.domain_uuid("controller")
    assert (a.domain_name("controller"), b.domain_name("controller")) == ("openstack-controller", "openstack-alice-controller")
    assert (a.pool_name, b.pool_name) == ("labvirt-openstack", "labvirt-openstack-alice")


def test_bridge_names_fit_linux_limit_for_long_names():
    spec = load_lab(EXAMPLES["three-node-nat"])
    seen = set()
    for student in ("", "a-very-long-student-name-indeed", *[f"s{i}" for i in range(40)]):
        copy = LabCopy("a-rather-long-lab-name-here", student)
        for net in spec.networks:
            br = copy.bridge_name(net)
            assert len(br) <= 15 and br not in seen
            seen.add(br)


def test_copy_keeps_host_part_of_addresses():
    spec = load_lab(EXAMPLES["three-node"])
    mgmt = spec.network("mgmt")
    copy = LabCopy("openstack3", "bob", subnets=(("mgmt", ip_network("10.200.7.0/24")),))
    assert copy.address(mgmt, ip_address("192.168.1.101")) == ip_address("10.200.7.101")
    assert copy.subnet(spec.network("provider")) == ip_network("10.5.116.0/24")   # not overridden
