"""labvirt.ops.nodes: the bounded address wait, node lookup, and login argv decisions."""

import pytest

from labvirt.core.desired import HostParams, desire
from labvirt.core.errors import LabvirtError, NotFoundError
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.ops import nodes

from .conftest import EXAMPLES


class SilentHost:
    """Stands in for a real host whose guests never get a lease: the libvirt test driver cannot serve
    (its interfaceAddresses answers a fake address), and a real guest would make the test slow."""

    simulated = False
    uri = "qemu:///system"

    def __init__(self):
        self.calls = 0

    def addresses(self, name):
        self.calls += 1
        return {}, {"lease": "0 address(es)", "agent": "guest agent is not connected"}


class Session:
    def __init__(self, driver):
        self.driver = driver
        self.simulated = driver.simulated


def _desired():
    spec = load_lab(EXAMPLES["three-node"])
    return desire(spec, LabCopy(spec.name), HostParams())


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_is_bounded_backs_off_and_names_every_source():
    host, clock = SilentHost(), FakeClock()
    with pytest.raises(LabvirtError) as e:
        nodes.addresses(Session(host), _desired(), "controller", wait=True, timeout=10, clock=clock, sleep=clock.sleep)
    assert "within 10s" in str(e.value) and "lease: 0 address(es)" in str(e.value) and "agent:" in str(e.value)
    assert clock.now == pytest.approx(10)
    assert clock.sleeps[:4] == [0.25, 0.5, 1.0, 2.0] and max(clock.sleeps) == 2.0


def test_without_wait_one_look_and_no_error():
    host = SilentHost()
    data = nodes.addresses(Session(host), _desired())
    assert host.calls == 3
    assert sorted(e["node"] for e in data) == ["compute1", "compute2", "controller"]


def test_unknown_node_lists_the_lab_nodes():
    with pytest.raises(NotFoundError) as e:
        nodes.domain_of(_desired(), "controler")
    assert "compute1" in str(e.value) and "controller" in str(e.value)
