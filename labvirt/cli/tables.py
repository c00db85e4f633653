"""Rich tables for humans (stdout). Each function takes the plain data the --json form prints."""

from __future__ import annotations

from labvirt.cli.output import out


def _table(title: str, *columns: str):
    from rich.table import Table

    t = Table(title=title, title_justify="left", title_style="bold", show_edge=False, pad_edge=False)
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def _mode(network: dict) -> str:
    return f"{network['mode']} (external)" if network.get("external") else network["mode"]


def print_plan(data: dict) -> None:
    host = data.get("host", {})
    out().print(f"lab [bold]{data['lab']}[/]" + (f" student [bold]{data['student']}[/]" if data["student"] else "")
                + f" on {host.get('uri', '?')} (domain type {host.get('domain_type', '?')})")
    t = _table("Networks", "name", "mode", "bridge", "subnet", "gateway", "DHCP range", "reservations")
    for n in data["networks"]:
        res = "\n".join(f"{r['host']} {r['ip']} {r['mac']}" for r in n["reservations"])
        if n.get("external"):
            res = "none: external (the host's; labvirt never changes it)"
        t.add_row(n["name"], _mode(n), n["bridge"] or "-", n["subnet"], n["gateway"] or "-",
                  "-".join(n["dhcp_range"] or ["-"]), res)
    out().print(t)
    t = _table("Nodes", "name", "role", "vCPU", "memory", "CPU", "disks", "NICs")
    for n in data["nodes"]:
        nics = "\n".join(f"{i['name']} {i['network']} {i['mac']} {i['address'] or 'dhcp'}" for i in n["nics"])
        t.add_row(n["name"], n["role"], str(n["vcpus"]), n["memory"], n["cpu_mode"], "\n".join(n["disks"]), nics)
    out().print(t)
    t = _table("Volumes", "pool", "name", "size", "backing")
    for v in data["volumes"]:
        t.add_row(v["pool"], v["name"], v["capacity"],
                  v["backing"] or ("cloud-init seed ISO" if v.get("kind") == "seed" else "(empty disk)"))
    out().print(t)
    if "actions" in data:
        if data["actions"]:
            out().print(f"[bold]Actions[/] ({len(data['actions'])}):")
            for a in data["actions"]:
                out().print(f"  {a['describe']}", markup=False)
        else:
            out().print("[bold]Actions[/]: none, the lab is up to date")
        for b in data.get("blockers", []):
            out().print(f"[red]blocked:[/] {b}", highlight=False)
        for n in data.get("notes", []):
            out().print(f"note: {n}", markup=False)


def print_status(data: dict) -> None:
    sim = " [dim](simulated host: addresses are the planned ones)[/]" if data.get("simulated") else ""
    out().print(f"lab [bold]{data['lab']}[/]" + (f" student [bold]{data['student']}[/]" if data["student"] else "") + sim)
    t = _table("Nodes", "name", "state", "vCPU", "memory", "addresses", "snapshot")
    for n in data["nodes"]:
        addrs = []
        for nic in n["nics"]:
            seen = ", ".join(f"{o['ip']} ({o['source']})" for o in nic["observed"])
            addrs.append(f"{nic['name']} {nic['planned'] or 'dhcp'}" + (f" [{seen}]" if seen else ""))
        t.add_row(n["name"], n["state"], str(n["vcpus"]), n["memory"], "\n".join(addrs), n["current_snapshot"] or "-")
    out().print(t)
    t = _table("Networks", "name", "mode", "bridge", "subnet", "active")
    for n in data["networks"]:
        active = "yes" if n["active"] else ("no" if n["exists"] else "missing")
        t.add_row(n["name"], _mode(n), n["bridge"] or "-", n["subnet"], "?" if n["exists"] is None else active)
    out().print(t)
    if data["drift"]:
        out().print("[bold yellow]Drift[/] between the lab file and libvirt:")
        for d in data["drift"]:
            out().print(f"  {d}", markup=False)
    else:
        out().print("No drift: libvirt matches the lab file.")
