"""`labvirt check` as one call: read the host, ask libvirt, probe the tools, weigh the lab. Thin I/O
around the pure parts (verdict, findings, capacity); the CLI only formats the Report.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from labvirt.core.capacity import Capacity, Needs, Overcommit, host_capacity, needs_of
from labvirt.core.errors import ConnectionFailed, DriverError
from labvirt.core.record import Record
from labvirt.host.facts import HostFacts, read_host
from labvirt.host.findings import Finding, blocked, findings
from labvirt.host.networks import lab_networks
from labvirt.host.verdict import Verdict, verdict


class Report(Record):
    root: str
    uri: str
    facts: HostFacts
    verdict: Verdict
    libvirt: object | None          # LibvirtInfo
    findings: tuple[Finding, ...]
    lab: str = ""
    students: int = 1
    needs: Needs | None = None
    capacity: Capacity | None = None
    overcommit: Overcommit = Overcommit()

    @property
    def ok(self) -> bool:
        return not blocked(self.findings)

    def as_dict(self) -> dict:
        data = {"host_root": self.root, "uri": self.uri, "lab": self.lab or None, "students": self.students,
                "ok": self.ok}
        data.update(self.verdict.as_dict())
        data["kvm_modules"] = list(self.facts.modules)
        data["libvirt"] = self.libvirt.as_dict() if self.libvirt is not None else None
        if self.needs is not None:
            data["needs"] = {"vcpus": self.needs.vcpus, "memory": self.needs.memory, "disk": self.needs.disk,
                             "disk_estimate": self.needs.disk_estimate, "nodes": self.needs.nodes}
        if self.capacity is not None:
            data["capacity"] = {"cpus": self.capacity.cpus, "memory": self.capacity.memory, "disk": self.capacity.disk}
            data["overcommit"] = {"cpu": self.overcommit.cpu, "memory": self.overcommit.memory,
                                  "disk": self.overcommit.disk}
        data["findings"] = [f.as_dict() for f in self.findings]
        return data


def remote_host(uri: str) -> str:
    """The libvirt host's name when `uri` points at another machine ("" for local URIs)."""
    try:
        return urlsplit(uri).hostname or ""
    except ValueError:
        return ""


def run_check(root: str = "/", uri: str = "qemu:///system", spec=None, students: int = 1, conn=None,
              tools: bool = True, env=None, overcommit: Overcommit = Overcommit(),
              capacity_override: Capacity | None = None, probe: str = "auto", on_probe=None, driver=None) -> Report:
    """`conn`: an open libvirt connection to use instead of opening `uri` (read-only).
    `capacity_override`: what the host has, when neither the kernel nor libvirt can say (simulated hosts).
    `probe`: launch libguestfs' appliance (labvirt.host.appliance) "auto" (when the lab's nodes use image
    recipes and no earlier pass is cached), "always" (ignore the cache) or "never" (a cached pass only);
    `on_probe`: called with a message just before that ~25 s launch; `driver`: the HostDriver of `conn`
    (the simulator's), for the lab's external networks (made from `conn` when not given)."""
    from labvirt.host.libvirt_info import libvirt_info, open_connection

    env = os.environ if env is None else env
    facts = read_host(root, disk_path=spec.pool_dir if spec is not None else None)
    v = verdict(facts)
    info, error = None, ""
    opened = None
    external = []
    try:
        if conn is None:
            conn = opened = open_connection(uri)
        info = libvirt_info(conn)
        if spec is not None and any(n.external for n in spec.networks):
            external = _external_rows(spec, driver, conn, uri)
    except (ConnectionFailed, DriverError) as e:
        error = str(e)
    finally:
        if opened is not None:
            opened.close()
    remote = remote_host(uri) if facts.real else ""
    needs = capacity = None
    if spec is not None:
        domain_type = spec.domain_type if spec.domain_type != "auto" else v.guest_domain_type
        needs = needs_of(spec, students, domain_type)
        capacity = capacity_override or _capacity(facts, info, remote)
    probed = None
    if tools:
        from labvirt.host.tools import probe_tools

        probed = probe_tools()
    found = findings(facts, v, info, needs, capacity, lab_networks(spec) if spec is not None else (),
                     lab=spec.name if spec is not None else "",
                     lab_domain_type=spec.domain_type if spec is not None else "auto",
                     libvirt_error=error, remote=remote, overcommit=overcommit, tools=probed, env=env)
    found += external
    if probed is not None:
        found = _with_image_rows(found, _image_rows(spec, probed, env, probe, on_probe))
    return Report(root=root, uri=uri, facts=facts, verdict=v, libvirt=info, findings=tuple(found),
                  lab=spec.name if spec is not None else "", students=students, needs=needs, capacity=capacity,
                  overcommit=overcommit)


def _external_rows(spec, driver, conn, uri: str) -> list[Finding]:
    """One row per network the lab uses but does not own: fail / warn with the reason, else ok."""
    from labvirt.ops.external import external_rows

    if driver is None:
        from labvirt.driver.libvirt_driver import Driver

        driver = Driver(conn, uri)
    return [Finding(f"external-{name}", status, message) for status, name, message in external_rows(spec, driver)]


def _image_rows(spec, tools, env, probe: str, on_probe) -> list[Finding]:
    """Image building happens on this machine (where labvirt runs virt-builder), whatever host root the
    other checks read: its appliance facts come from "/"."""
    from labvirt.host.appliance import cached_probe, probe_appliance, read_appliance
    from labvirt.host.imagebuild import appliance_ready, image_findings, image_needs

    needs = image_needs(spec)
    has_builder = any(t.name == "virt-builder" and t.path and not t.error for t in tools)
    facts = read_appliance("/", env)
    result = None
    if has_builder and appliance_ready(facts):
        if probe == "always" or (probe == "auto" and needs.used):
            if on_probe is not None and (probe == "always" or cached_probe(facts, _guestfs_env(env)) is None):
                on_probe("launching libguestfs' appliance once to see that image building works "
                         "(libguestfs-test-tool, about 25 s; a pass is remembered)")
            result = probe_appliance(facts, env, use_cache=probe != "always")
        else:
            result = cached_probe(facts, _guestfs_env(env))
    return image_findings(facts, needs, has_builder, result)


def _guestfs_env(env) -> dict:
    from labvirt.driver.virt_builder import guestfs_env

    return guestfs_env(dict(env))


def _with_image_rows(found: list[Finding], rows: list[Finding]) -> list[Finding]:
    """The image-building rows go right after the tool rows."""
    at = max((i + 1 for i, f in enumerate(found) if f.id.startswith("tool-") or f.id == "libguestfs-backend"),
             default=len(found))
    return found[:at] + rows + found[at:]


def _capacity(facts: HostFacts, info, remote: str) -> Capacity:
    """A remote libvirt host: what libvirt says. This machine or a host tree: what the kernel says; on the
    real root, the smaller memory figure of the kernel's and libvirt's (a container may see more than
    it may use)."""
    if remote and info is not None:
        return host_capacity(info.cpus, info.memory, None)
    memory = facts.memory
    if facts.real and info is not None and info.hypervisor.upper() != "TEST" and info.memory:
        memory = min(memory, info.memory) if memory else info.memory
    return host_capacity(facts.cpus, memory, facts.disk_free)


def check_uri(root: str, uri: str, spec=None, students: int = 1, root_given: bool = False,
              on_probe=None) -> Report:
    """`labvirt check` against `uri`: a simulated host answers from its profile (the host root unless
    `root_given`) and the capacity it was created with; any other URI from `root` and libvirt."""
    from labvirt.core.uris import parse_sim_uri

    if parse_sim_uri(uri) is not None:
        from labvirt.host.profiles import profile_root
        from labvirt.ops.session import open_driver

        with open_driver(uri) as driver:
            info = driver.host_info()
            if not root_given:
                root = profile_root(driver.host.profile)
            return run_check(root, uri, spec, students, conn=driver.conn, tools=False, driver=driver,
                             capacity_override=host_capacity(info["cpus"], info["memory"], info["disk"], reserve=0))
    return run_check(root, uri, spec, students, on_probe=on_probe)


def class_fit(spec, connect: str | None, students: int) -> dict | None:
    """Would a class of `students` copies fit on the class's hosts (read-only; None for one copy)."""
    if spec is None or students <= 1:
        return None
    from labvirt.ops.class_commands import Classroom

    with Classroom(spec, connect) as c:
        return c.fit(students)
