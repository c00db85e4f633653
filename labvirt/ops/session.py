"""One command's view of the world: the lab, which copy of it, the libvirt host, and its verdict.

Resolves `-C DIR`, `--connect URI` (or $LIBVIRT_DEFAULT_URI, else qemu:///system; `sim` selects the
simulator) and `--student S` into a spec, a LabCopy, a driver and HostParams. Commands use it as a
context manager: the simulator saves its state on exit, and the lab copy stays locked meanwhile.
"""

from __future__ import annotations

import contextlib
import os

from labvirt.core.desired import DesiredLab, HostParams, desire
from labvirt.core.errors import LabvirtError
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.core.record import MutableRecord, field
from labvirt.driver.state_files import lab_state_dir, pid_lock
from labvirt.core.spec import LabSpec

DEFAULT_URI = "qemu:///system"


def resolve_uri(connect: str | None) -> str:
    return connect or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI


def open_driver(uri: str):
    """A Driver for `uri`: the simulator for sim URIs, libvirt otherwise."""
    from labvirt.core.uris import parse_sim_uri

    name = parse_sim_uri(uri)
    if name is not None:
        from labvirt.driver import simulator as sim

        return sim.SimDriver(sim.load_host(name))
    from labvirt.driver.libvirt_driver import Driver, open_libvirt

    return Driver(open_libvirt(uri), uri)


def host_verdict(driver) -> dict:
    """The host check's answer for this driver's host: domain type (L0), nested CPU mode, L2.

    Simulated hosts answer from their profile; this machine from /proc, /sys and /dev (also when
    offline); a remote host from libvirt's capabilities (KVM offered and the host CPU shows vmx/svm).
    """
    from labvirt.core.uris import is_local

    simulated = driver is not None and driver.simulated
    if driver is not None and not simulated and not is_local(driver.uri):
        return _remote_verdict(driver)
    if simulated:
        from labvirt.host.profiles import profile_root

        return _decided(profile_root(driver.host.profile), "profile")
    from labvirt.ops.verdict_cache import cached_verdict, verdict_key

    version = _libvirt_version(driver) if driver is not None else "offline"
    return cached_verdict(lambda: _decided("/", "local host"), verdict_key("/", version))


def _decided(root: str, source: str) -> dict:
    from labvirt.host.facts import read_host
    from labvirt.host.verdict import verdict as decide

    v = decide(read_host(root))
    return {"domain_type": v.guest_domain_type, "nested_cpu": v.nested_cpu, "l2_virt_type": v.l2_virt_type,
            "source": source}


def _libvirt_version(driver) -> object:
    conn = getattr(driver, "conn", None)
    try:
        return conn.getLibVersion() if conn is not None else None
    except Exception:   # libvirt.libvirtError: the key says "unknown" and the verdict is decided as before
        return None


def host_params(spec: LabSpec | None, verdict: dict, domain_type: str | None = None) -> HostParams:
    """Domain type: the option, else the lab file's, else the verdict's; nested CPU only on KVM."""
    chosen = domain_type or (spec.domain_type if spec and spec.domain_type != "auto" else verdict["domain_type"])
    if chosen not in ("kvm", "qemu"):
        raise LabvirtError(f"--domain-type: got {chosen!r}; allowed: kvm, qemu")
    return HostParams(domain_type=chosen,
                      nested_cpu=verdict.get("nested_cpu", "host-passthrough") if chosen == "kvm" else "default")


def _remote_verdict(driver) -> dict:
    from labvirt.core.capabilities import parse_capabilities

    caps = parse_capabilities(driver.capabilities())
    dt = "kvm" if "kvm" in caps.types_for_host() and caps.hardware_virt else "qemu"
    return {"domain_type": dt, "nested_cpu": "host-passthrough" if dt == "kvm" else "default",
            "l2_virt_type": "kvm" if dt == "kvm" else "qemu", "source": "remote capabilities"}


def lab_lock(lab: str, student: str, uri: str):
    """Two labvirt processes on one lab copy do not race: the second is told at once."""
    who = f"lab {lab!r}" + (f" student {student!r}" if student else "")
    return pid_lock(os.path.join(lab_state_dir(lab, student), "lock"),
                    busy=lambda pid: f"{who} is busy: another labvirt process (pid {pid}) is working on it")


class Session(MutableRecord):
    spec: LabSpec | None
    copy: LabCopy | None
    uri: str
    driver: object | None                 # None when offline
    verdict: dict = field(default_factory=dict)
    host: HostParams = field(default_factory=HostParams)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    def open(cls, directory: str, connect: str | None = None, student: str | None = None, offline: bool = False,
             domain_type: str | None = None, need_lab: bool = True, lock: bool = False) -> "Session":
        spec = load_lab(directory) if need_lab else None
        copy = None
        placed = None
        if spec is not None:
            copy = LabCopy(spec.name)
            if student:
                from labvirt.ops.class_record import student_copy   # class mode records each student's subnets and host

                copy, placed = student_copy(spec, student)
        uri = connect or placed or resolve_uri(None)
        stack = contextlib.ExitStack()
        try:
            if lock and copy is not None:
                stack.enter_context(lab_lock(copy.lab, copy.student, uri))
            driver = None if offline else open_driver(uri)
            if driver is not None:
                stack.callback(_finish, driver)
            verdict = host_verdict(driver)
        except BaseException:
            stack.close()
            raise
        host = host_params(spec, verdict, domain_type)
        if spec is not None:
            from labvirt.core.record import replace

            from labvirt.ops.external import with_host_networks

            host = replace(host, base_image_formats=base_image_formats(spec))
            try:
                host = with_host_networks(host, spec, driver)    # an existing network's subnet, gateway, DHCP range
            except BaseException:
                stack.close()
                raise
        return cls(spec=spec, copy=copy, uri=uri if not offline else "(offline)", driver=driver,
                   verdict=verdict, host=host, _stack=stack)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def close(self) -> None:
        self._stack.close()

    @property
    def simulated(self) -> bool:
        return self.driver is not None and self.driver.simulated

    def desired(self) -> DesiredLab:
        return desire(self.spec, self.copy, self.host)

    def observe(self):
        from labvirt.core.observed import Observed

        if self.driver is None:
            return Observed()
        return self.driver.observe(self.copy.prefix if self.copy is not None else None)

    def plan_up(self, recreate: bool = False, start: bool = True, for_apply: bool = False, force: bool = False,
                adopt: bool = False):
        """`for_apply`: the plan will be applied (makes the lab's secrets where seeds need them); `force`:
        start nodes even when they do not fit in the host's memory; `adopt`: see core.plan.plan_up."""
        observed = self.observe()
        desired, the_plan = plan_up_for(self.spec, self.copy, self.host, observed, self.driver is not None,
                                        recreate=recreate, start=start, for_apply=for_apply, adopt=adopt)
        if self.driver is not None:
            from labvirt.core.record import replace

            from labvirt.ops.external import check_external

            external = check_external(self.spec, desired, self.driver, self.host)
            refused = list(external.refusals) + self.refusals(desired, the_plan, observed, force)
            if refused:     # first: they are why nothing happens, even when an image is missing too
                the_plan = replace(the_plan, blockers=tuple(refused) + the_plan.blockers)
            if external.warnings:      # what the user should know, not drift: beside the desired lab's own
                desired = replace(desired, warnings=desired.warnings + external.warnings)
        return desired, the_plan

    def refusals(self, desired, the_plan, observed, force: bool = False) -> list[str]:
        """What this host refuses (labvirt.host.refusals): collisions with its networks (and, on this
        machine, its routes and interfaces), and nodes that do not fit in its memory."""
        from labvirt.core.capacity import HOST_RESERVE, host_capacity
        from labvirt.core.uris import is_local
        from labvirt.host.refusals import refusals

        info = self.driver.host_info()
        memory, interfaces, routes = info["memory"], (), ()
        if not self.simulated and is_local(self.uri):
            from labvirt.host.facts import read_host

            facts = read_host("/")
            interfaces, routes = facts.interfaces, facts.routes
            memory = min(memory, facts.memory) if facts.memory else memory
        capacity = host_capacity(info["cpus"], memory, info.get("disk"), reserve=0 if self.simulated else HOST_RESERVE)
        return refusals(self.spec, desired, the_plan, observed.host_networks, interfaces, routes, capacity, force)

    def host_summary(self) -> dict:
        return {"uri": self.uri, "simulated": self.simulated, "domain_type": self.host.domain_type,
                "nested_cpu": self.host.nested_cpu, "verdict_source": self.verdict.get("source")}


def seed_identity(spec: LabSpec, copy: LabCopy, seeded: list[str] = ()):
    """The copy's SSH public key, per image recipe the root password hash (and under "" the copy's
    generated one, for base_image nodes), and the host keys of the `seeded` nodes (0600 secrets,
    made on first use)."""
    from labvirt.core.plan import SeedIdentity
    from labvirt.driver.ssh_keys import host_key, lab_key
    from labvirt.driver.virt_builder import generated_password_file, root_password_file, root_password_hash

    _, pub = lab_key(copy.lab, copy.student)
    keys = (pub,)
    hashes = [("", root_password_hash(generated_password_file(copy.lab, copy.student)))]
    for image in spec.images:
        keys += tuple(image.ssh_keys)
        hashes.append((image.name, root_password_hash(root_password_file(image, copy.lab, copy.student))))
    host_keys = []
    for node in seeded:
        path, public = host_key(copy.lab, copy.student, node)
        with open(path) as f:
            host_keys.append((node, f.read(), public))
    return SeedIdentity(ssh_keys=tuple(dict.fromkeys(keys)), password_hashes=tuple(hashes), user=spec.ssh_user,
                        host_keys=tuple(host_keys))


def base_image_formats(spec: LabSpec) -> tuple[tuple[str, str], ...]:
    """Each base_image's format from its header (files this machine can read). A format libvirt
    cannot back a qcow2 overlay with is refused, naming the node file."""
    from labvirt.core.disk_format import HEADER_BYTES, format_from_header
    from labvirt.core.errors import SpecError

    found = {}
    for node in spec.nodes:
        path = node.base_image
        if path is None or path in found:
            continue
        try:
            with open(path, "rb") as f:
                fmt = format_from_header(f.read(HEADER_BYTES))
        except OSError:
            continue
        if fmt not in ("qcow2", "raw"):
            raise SpecError(node.file, "base_image", f"{path} is a {fmt} image; allowed: qcow2 or raw "
                                                    f"(convert it: qemu-img convert -O qcow2 {path} NEW.qcow2)")
        found[path] = fmt
    return tuple(sorted(found.items()))


def refresh_known_hosts(desired: DesiredLab) -> str:
    """Rewrite the lab copy's known_hosts from the host keys labvirt holds; returns its path."""
    from labvirt.core.known_hosts import known_hosts
    from labvirt.driver.ssh_keys import public_host_keys, write_known_hosts

    copy = desired.copy
    keys = public_host_keys(copy.lab, copy.student, [d.key for d in desired.domains])
    return write_known_hosts(copy.lab, copy.student, known_hosts(desired, keys))


def desired_on(spec: LabSpec, copy: LabCopy, host: HostParams, observed):
    """The copy's desired state on one host as observed: golden images in its image pool's directory,
    base images' formats read from their headers."""
    from labvirt.core.record import replace

    from labvirt.core.identity import IMAGE_POOL

    image_pool = observed.pools.get(IMAGE_POOL)
    if image_pool is not None and image_pool.path:
        host = replace(host, image_dir=image_pool.path)
    return desire(spec, copy, replace(host, base_image_formats=base_image_formats(spec)))


def plan_up_for(spec: LabSpec, copy: LabCopy, host: HostParams, observed, has_driver: bool = True,
                recreate: bool = False, start: bool = True, for_apply: bool = True, adopt: bool = False,
                desired=None):
    """desired + plan for one copy against what one host has. The seed identity (SSH key, root
    password: secrets made on first use) only when the plan is to be applied and seeds are missing.
    `desired`: desired_on(spec, copy, host, ...) when the caller already has it (same image pool)."""
    from labvirt.core.plan import plan_up

    if desired is None:
        desired = desired_on(spec, copy, host, observed)
    seeded = [v.node for v in desired.volumes if v.kind == "seed" and not _has_volume(observed, v)]
    applying = has_driver and for_apply
    kwargs = {"identity": seed_identity(spec, copy, seeded)} if seeded and applying else {}
    recipes = {i.name: i for i in spec.images}
    customized = [n for n in spec.nodes if n.image and recipes[n.image].identity == "virt-customize"]
    if customized:
        kwargs["customize"] = customize_argvs(spec, copy, desired, customized, applying)
    if applying:
        refresh_known_hosts(desired)
    return desired, plan_up(desired, observed, recreate=recreate, start=start,
                            images_present=images_present(observed) if has_driver else None,
                            images_of={n.name: n.image for n in spec.nodes if n.image}, adopt=adopt, **kwargs)


def customize_argvs(spec: LabSpec, copy: LabCopy, desired, nodes, applying: bool) -> dict[str, tuple[str, ...]]:
    """node -> virt-customize argv writing its identity into its new overlay (core/customize). The
    secrets (host key, login key, root password file; 0600, made on first use) only when applying."""
    from labvirt.core.customize import identity_argv
    from labvirt.driver.ssh_keys import host_key, lab_key
    from labvirt.driver.virt_builder import root_password_file

    recipes = {i.name: i for i in spec.images}
    disks = {v.node: v.path for v in desired.volumes if v.kind == "disk"}
    argvs = {}
    for n in nodes:
        secrets = {}
        if applying:
            secrets = {"host_key": host_key(copy.lab, copy.student, n.name)[0],
                       "login_keys": (lab_key(copy.lab, copy.student)[1],),
                       "password_file": root_password_file(recipes[n.image], copy.lab, copy.student)}
        argvs[n.name] = tuple(identity_argv(disks[n.name], desired, n.name, user=spec.ssh_user, **secrets))
    return argvs


def _has_volume(observed, vol) -> bool:
    pool = observed.pools.get(vol.pool)
    return pool is not None and pool.volume(vol.name) is not None


def images_present(observed) -> frozenset[str]:
    from labvirt.core.identity import IMAGE_POOL

    pool = observed.pools.get(IMAGE_POOL)
    return frozenset(v.path for v in pool.volumes) if pool else frozenset()


def _finish(driver) -> None:
    if driver.simulated:
        driver.__exit__(None, None, None)
    else:
        driver.close()
