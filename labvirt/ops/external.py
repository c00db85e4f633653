"""What the host has of the networks a lab uses but does not own (labvirt.core.external): asked of the
driver, judged by the core. Read-only: nothing here changes the host."""

from __future__ import annotations

from labvirt.core.desired import DesiredLab, HostParams
from labvirt.core.external import ExternalVerdict, HostNetworkFacts, external_check, facts_of
from labvirt.core.record import replace
from labvirt.core.spec import LabSpec


def host_network_facts(spec: LabSpec, driver) -> tuple[HostNetworkFacts, ...]:
    """The host's view of every existing libvirt network the lab names (missing ones included)."""
    names = [n.existing for n in spec.networks if n.mode == "existing"]
    if not names or driver is None:
        return ()
    found = driver.networks_named(names)
    return tuple(facts_of(name, found.get(name)) for name in names)


def with_host_networks(host: HostParams, spec: LabSpec, driver) -> HostParams:
    """`host` with the facts `desire` fills an existing network's subnet, gateway and DHCP range from."""
    facts = host_network_facts(spec, driver)
    return replace(host, networks=facts) if facts else host


def check_external(spec: LabSpec, desired: DesiredLab, driver, host: HostParams) -> ExternalVerdict:
    """Refusals and warnings for the lab's external networks on this driver's host."""
    if driver is None or not any(n.external for n in spec.networks):
        return ExternalVerdict()
    facts = host.networks or host_network_facts(spec, driver)
    bridges = driver.host_bridges() if any(n.mode == "host-bridge" for n in spec.networks) else {}
    leases = {f.name: driver.leases(f.name) for f in facts if f.exists and f.active}
    return external_check(spec, desired, facts, bridges, leases)


def external_rows(spec: LabSpec, driver) -> list[tuple[str, str, str]]:
    """`labvirt check`'s rows for the lab's external networks: (status, network, message); status is
    "fail" (up refuses), "warn" or "ok"."""
    from labvirt.core.desired import desire
    from labvirt.core.errors import SpecError
    from labvirt.core.identity import LabCopy

    host = with_host_networks(HostParams(), spec, driver)
    try:
        desired = desire(spec, LabCopy(spec.name), host)
    except SpecError as e:
        return [("fail", "networks", str(e))]
    verdict = check_external(spec, desired, driver, host)
    rows = []
    for net in spec.networks:
        if not net.external:
            continue
        file = net.file or f"networks/{net.name}.toml"
        mine = [m for m in verdict.refusals if m.startswith(file)]
        warned = [m for m in verdict.warnings if m.startswith(file)]
        d = next(n for n in desired.networks if n.key == net.name)
        what = (f"libvirt network {net.existing!r}" if net.mode == "existing" else f"host bridge {net.bridge!r}")
        rows += [("fail", net.name, m) for m in mine] + [("warn", net.name, m) for m in warned]
        if not mine:
            rows.append(("ok", net.name, f"network {net.name}: {what} ({d.subnet}) is there; labvirt attaches to it "
                                         "and never changes it"))
    nodes = [m for m in verdict.refusals + verdict.warnings if not any(m.startswith(n.file) for n in spec.networks)]
    rows += [("fail" if m in verdict.refusals else "warn", "address", m) for m in nodes]
    return rows
