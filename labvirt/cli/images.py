"""`labvirt image build|list|remove` and `labvirt sim create|list|remove`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from labvirt.cli.options import Connect, Json, LabDir, default_dir

image_app = typer.Typer(help="Golden images: build once per recipe, shared by every node and student.",
                        no_args_is_help=True)
sim_app = typer.Typer(help="Simulated libvirt hosts (libvirt's test driver, persisted).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")
    app.add_typer(sim_app, name="sim")
    app.command("password")(password)


@image_app.command("build")
def image_build(
    names: Annotated[Optional[list[str]], typer.Argument(help="Recipes to build (default: all the lab uses).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when the recipe is unchanged.")] = False,
    directory: LabDir = "",
    connect: Connect = None,
) -> None:
    """Build golden images with virt-builder and store them in libvirt's labvirt-images pool."""
    from labvirt.ops.session import Session

    with Session.open(directory or default_dir(), connect) as session:
        spec = session.spec
        wanted = names or sorted({n.image for n in spec.nodes if n.image} or {i.name for i in spec.images})
        build_images(session, wanted, force)


def build_images(session, names: list[str], force: bool) -> None:
    """Build each recipe's golden image on the session's host, showing virt-builder's progress live."""
    from labvirt.ops import images
    from labvirt.cli.output import err, ok

    for name in names:
        with err().status(f"building image {name}") as status:
            def on_line(line: str, status=status) -> None:
                status.update(f"building image {name}: {line[:70]}")
                err().print(f"  {line}", markup=False, highlight=False)

            observed = session.observe()
            golden, what = images.build(session.spec, name, session.driver,
                                        images.images_dir(session.spec, session.host, observed), force, on_line)
        ok(f"image {name}: {what} ({golden.volume})")


@image_app.command("list")
def image_list(directory: LabDir = "", connect: Connect = None, json_out: Json = False) -> None:
    """Golden images: recipe hash, size on disk, virtual size, and which lab disks use them."""
    import os

    from labvirt.ops import images
    from labvirt.ops.session import Session
    from labvirt.core.units import format_size
    from labvirt.cli.output import out, print_json

    lab_here = os.path.exists(os.path.join(directory or default_dir(), "lab.toml"))
    with Session.open(directory or default_dir(), connect, need_lab=lab_here) as session:
        spec = session.spec
        observed = session.observe()
        infos = images.list_images(spec, observed, images.images_dir(spec, session.host, observed))
        stopped = images.stopped_pool(observed)
    if stopped is not None:
        from labvirt.cli.output import warn

        warn(f"storage pool {stopped.name} is defined but stopped (directory {stopped.path}): its images "
             "cannot be listed; `labvirt image build` or `labvirt image remove` starts it again")
    import datetime

    rows = [{"name": i.name, "volume": i.volume, "recipe_hash": i.recipe_hash, "path": i.path,
             "virtual_size": i.capacity, "size_on_disk": i.allocation, "used_by": list(i.used_by),
             "current": i.current,
             "built": datetime.datetime.fromtimestamp(i.built).isoformat(timespec="seconds") if i.built else None}
            for i in infos]
    if json_out:
        print_json(rows)
        return
    from labvirt.cli.tables import _table

    t = _table("Golden images", "name", "hash", "built", "on disk", "virtual", "used by", "current")
    for r in rows:
        t.add_row(r["name"], r["recipe_hash"], r["built"] or "-", format_size(r["size_on_disk"]),
                  format_size(r["virtual_size"]), "\n".join(r["used_by"]) or "-", "yes" if r["current"] else "no")
    out().print(t)


@image_app.command("remove")
def image_remove(name: str, directory: LabDir = "", connect: Connect = None) -> None:
    """Remove a golden image (all its versions); refused while a lab disk is backed by it."""
    from labvirt.ops import images
    from labvirt.ops.session import Session
    from labvirt.cli.output import ok

    with Session.open(directory or default_dir(), connect) as session:
        observed = session.observe()
        where = images.images_dir(session.spec, session.host, observed)
        if images.restart_stopped_pool(session.driver, observed, where):
            observed = session.observe()
        removed = images.remove(session.spec, name, session.driver, observed, where)
    ok(f"removed {', '.join(removed)}")


@sim_app.command("create")
def sim_create(
    name: str,
    cpus: Annotated[int, typer.Option(min=1, max=4096)] = 16,
    memory: Annotated[str, typer.Option(help="e.g. 64GiB")] = "64GiB",
    disk: Annotated[str, typer.Option(help="e.g. 1TiB")] = "1TiB",
    profile: Annotated[str, typer.Option(help="Host profile: intel-nested, intel-no-nested, amd-nested, "
                                              "no-virt, pvm")] = "intel-nested",
    replace: Annotated[bool, typer.Option("--replace", help="Start over if it exists.")] = False,
    bridge: Annotated[Optional[list[str]], typer.Option(
        "--bridge", help="A host bridge the simulated host has (repeat for several; default: br0). "
                         "--bridge '' gives it none.")] = None,
) -> None:
    """Create a simulated libvirt host with a capacity and a host profile (use it as --connect sim:///NAME)."""
    from labvirt.driver import simulator as sim
    from labvirt.core.errors import LabvirtError
    from labvirt.core.units import parse_size
    from labvirt.cli.output import ok

    try:
        mem, dsk = parse_size(memory), parse_size(disk)
    except ValueError as e:
        raise LabvirtError(f"--memory/--disk: {e}") from None
    _check_profile(profile)
    bridges = sim.DEFAULT_BRIDGES if bridge is None else tuple(b for b in bridge if b)
    host = sim.create_host(name, cpus=cpus, memory=mem, disk=dsk, profile=profile, replace=replace, bridges=bridges)
    ok(f"simulated host {name!r} ({cpus} CPUs, {memory}, {disk}, profile {profile}, bridges "
       f"{', '.join(bridges) or 'none'}) in {host.directory}")


def _check_profile(profile: str) -> None:
    from labvirt.host.profiles import PROFILES

    if profile not in PROFILES:
        from labvirt.core.errors import LabvirtError

        raise LabvirtError(f"--profile: got {profile!r}; allowed: {', '.join(PROFILES)}")


@sim_app.command("list")
def sim_list(json_out: Json = False) -> None:
    """Simulated hosts and their capacity."""
    import os

    from labvirt.core.record import as_dict
    from labvirt.driver import simulator as sim
    from labvirt.driver.state_files import state_home
    from labvirt.cli.output import out, print_json

    base = os.path.join(state_home(), "sim")
    names = sorted(os.listdir(base)) if os.path.isdir(base) else []
    hosts = [as_dict(sim.load_host(n)) for n in names if os.path.exists(os.path.join(base, n, "host.json"))]
    if json_out:
        print_json(hosts)
    else:
        for h in hosts:
            out().print(f"sim:///{h['name']}  {h['cpus']} CPUs  {h['memory'] // 2**30} GiB  "
                        f"{h['disk'] // 2**30} GiB disk  profile {h['profile']}", markup=False)


@sim_app.command("remove")
def sim_remove(name: str) -> None:
    """Forget a simulated host and everything on it."""
    from labvirt.driver import simulator as sim
    from labvirt.cli.output import ok

    sim.remove_host(name)
    ok(f"simulated host {name!r} removed")


def password(directory: LabDir = "", student: Annotated[Optional[str], typer.Option(
        "--student", "-s", help="That student's copy of the lab.")] = None) -> None:
    """Print the lab's generated root password (kept 0600 in labvirt's state; shown only here)."""
    import sys

    from labvirt.driver.virt_builder import root_password_file, show_root_password
    from labvirt.core.loader import load_lab

    spec = load_lab(directory or default_dir())
    given = [i for i in spec.images if i.root_password and i.root_password.startswith("file:")]
    if given and len(given) == len(spec.images):
        from labvirt.core.errors import LabvirtError

        raise LabvirtError(f"the lab's recipes take their password from a file: {root_password_file(given[0], spec.name)}")
    sys.stdout.write(show_root_password(spec.name, student or "") + "\n")
