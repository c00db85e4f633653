"""libvirt events: a callback when something happens to a lab's domains, instead of polling."""

from __future__ import annotations


def watch_lifecycle(conn, lab: str, on_change) -> None:
    """Call `on_change()` whenever a domain of `lab` (any student) starts, stops, is defined, reverted...

    Needs libvirt's default event loop registered before `conn` was opened (driver.console.prepare)."""
    import libvirt

    prefix = lab + "-"

    def on_event(_conn, dom, _event, _detail, _opaque):
        if dom.name().startswith(prefix):
            on_change()

    conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_event, None)
    conn.setKeepAlive(5, 3)
