"""The libvirt driver's snapshot and pause calls (mixed into labvirt.driver.libvirt_driver.Driver)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import libvirt

from labvirt.driver.libvirt_errors import one_line


class Snapshots:
    conn: libvirt.virConnect
    rpc: Callable[[str], AbstractContextManager]      # Driver.rpc: calls on the connection, bounded

    def suspend(self, name: str) -> None:
        with self.rpc(f"pausing {name}"):
            self.conn.lookupByName(name).suspend()

    def resume(self, name: str) -> None:
        with self.rpc(f"resuming {name}"):
            self.conn.lookupByName(name).resume()

    def create_snapshot(self, name: str, xml: str) -> None:
        with self.rpc(f"snapshot of {name}"):
            self.conn.lookupByName(name).snapshotCreateXML(xml, 0)

    def delete_snapshot(self, name: str, snapshot: str) -> None:
        with self.rpc(f"deleting snapshot {snapshot} of {name}"):
            self.conn.lookupByName(name).snapshotLookupByName(snapshot).delete(0)

    def revert_snapshot(self, name: str, snapshot: str, paused: bool = False) -> None:
        """Revert; `paused` leaves a snapshot taken while running paused, for a common resume."""
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED if paused else 0
        with self.rpc(f"reverting {name} to {snapshot}"):
            dom = self.conn.lookupByName(name)
            dom.revertToSnapshot(dom.snapshotLookupByName(snapshot), flags)

    def sync_clock(self, name: str, timeout: float = 5.0) -> str | None:
        """Set a running guest's clock from its RTC (the host's time) through the guest agent, as
        after a revert the guest's clock stands where it stood at the snapshot. None when done; else
        why not (no agent in the guest, agent not answering within `timeout`)."""
        deadline = time.monotonic() + timeout
        with self.rpc(f"domain {name}"):
            dom = self.conn.lookupByName(name)
        while True:
            with self.rpc(f"domain {name}"):
                try:
                    dom.setTime(flags=libvirt.VIR_DOMAIN_TIME_SYNC)
                    return None
                except libvirt.libvirtError as e:
                    code = e.get_error_code()
                    msg = one_line(e.get_error_message() or str(e))
            if code != libvirt.VIR_ERR_AGENT_UNRESPONSIVE or time.monotonic() >= deadline:
                return msg
            time.sleep(0.25)

    def snapshots(self, name: str) -> list[dict]:
        """[{name, description, state, created, current}] of one domain, oldest first (stable sort)."""
        from lxml import etree

        with self.rpc(f"listing snapshots of {name}"):
            dom = self.conn.lookupByName(name)
            current = dom.snapshotCurrent().getName() if dom.hasCurrentSnapshot() else None
            out = []
            # parents before children, so snapshots taken in the same second keep their order
            for snap in dom.listAllSnapshots(libvirt.VIR_DOMAIN_SNAPSHOT_LIST_TOPOLOGICAL):
                root = etree.fromstring(snap.getXMLDesc(0).encode())
                out.append({"name": root.findtext("name"), "description": root.findtext("description") or "",
                            "state": root.findtext("state"), "created": int(root.findtext("creationTime") or 0),
                            "current": root.findtext("name") == current})
            return sorted(out, key=lambda s: s["created"])
