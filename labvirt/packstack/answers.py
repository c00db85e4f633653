"""packstack answer-file settings that follow from the lab, and applying them to a generated answer file.

Pure: reads nothing but the shipped list of known keys (known_keys.txt).

Which network is which (lab.toml may name them; the loader would pass them in):
- management network, whose addresses go into CONFIG_*_HOST(S):
  `[packstack] management_network = "NAME"`, else the first isolated network the controller has a
  NIC on (NIC order), else the network of the controller's first NIC.
- provider network, whose NIC on the network hosts becomes br-ex's port:
  `[packstack] provider_network = "NAME"`, else the first NAT network of the (first) network host's
  NICs that is not the management network, else the first NAT network even if it is the management one.
Network hosts are the nodes with role "network", else the controller.
"""

from __future__ import annotations

import os
import re
from functools import cache
from importlib import resources

from labvirt.core.desired import DesiredDomain, DesiredLab
from labvirt.core.errors import LabvirtError, SpecError
from labvirt.core.spec import LabSpec
from labvirt.core.suggest import did_you_mean

EXTERNAL_BRIDGE = "br-ex"
PHYSNET = "extnet"
VIRT_TYPES = ("kvm", "qemu")
MASK = "********"
SECRET_RE = re.compile(r"(_PW|_PASSWORD|_SECRET|_SECRET_KEY|_ENC_KEY|_ADMIN_TOKEN)$")
INSTALL_RE = re.compile(r"^CONFIG_([A-Z0-9_]+)_INSTALL$")

# Secrets labvirt sets itself, so a lab rebuilt from a fresh `packstack --gen-answer-file` (which draws
# new random passwords every time) keeps the passwords its students and its databases already know.
CORE_PASSWORDS = (
    "CONFIG_KEYSTONE_ADMIN_PW", "CONFIG_KEYSTONE_DEMO_PW", "CONFIG_MARIADB_PW", "CONFIG_KEYSTONE_DB_PW",
    "CONFIG_GLANCE_DB_PW", "CONFIG_GLANCE_KS_PW", "CONFIG_CINDER_DB_PW", "CONFIG_CINDER_KS_PW",
    "CONFIG_NOVA_DB_PW", "CONFIG_NOVA_KS_PW", "CONFIG_NEUTRON_DB_PW", "CONFIG_NEUTRON_KS_PW",
    "CONFIG_NEUTRON_METADATA_PW",
)
SERVICE_PASSWORDS = {   # [services] name -> the secrets packstack needs when that service is installed
    "heat": ("CONFIG_HEAT_DB_PW", "CONFIG_HEAT_KS_PW", "CONFIG_HEAT_DOMAIN_PASSWORD", "CONFIG_HEAT_AUTH_ENC_KEY"),
    "swift": ("CONFIG_SWIFT_KS_PW",),
    "ceilometer": ("CONFIG_CEILOMETER_KS_PW", "CONFIG_CEILOMETER_SECRET", "CONFIG_GNOCCHI_DB_PW",
                   "CONFIG_GNOCCHI_KS_PW"),
    "aodh": ("CONFIG_AODH_DB_PW", "CONFIG_AODH_KS_PW"),
    "manila": ("CONFIG_MANILA_DB_PW", "CONFIG_MANILA_KS_PW"),
    "magnum": ("CONFIG_MAGNUM_DB_PW", "CONFIG_MAGNUM_KS_PW"),
    "trove": ("CONFIG_TROVE_DB_PW", "CONFIG_TROVE_KS_PW", "CONFIG_TROVE_NOVA_PW"),
    "ironic": ("CONFIG_IRONIC_DB_PW", "CONFIG_IRONIC_KS_PW"),
    "sahara": ("CONFIG_SAHARA_DB_PW", "CONFIG_SAHARA_KS_PW"),
    "panko": ("CONFIG_PANKO_DB_PW", "CONFIG_PANKO_KS_PW"),
}


@cache
def known_keys() -> frozenset[str]:
    """Every answer-file key of the packstack releases named in known_keys.txt (their union)."""
    text = resources.files(__package__).joinpath("known_keys.txt").read_text(encoding="utf-8")
    return frozenset(s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#"))


def known_services() -> frozenset[str]:
    """Names allowed in lab.toml's [services]: each CONFIG_<NAME>_INSTALL switch, lower case."""
    return frozenset(m.group(1).lower() for k in known_keys() if (m := INSTALL_RE.match(k)))


def _lab_file(spec: LabSpec) -> str:
    return os.path.join(spec.directory, "lab.toml")


def service_switches(spec: LabSpec) -> dict[str, str]:
    """lab.toml [services] -> {CONFIG_<NAME>_INSTALL: "y"/"n"}; unknown names refused with the closest ones."""
    known, switches = known_services(), {}
    for name, value in spec.services.items():
        service = name.lower().replace("-", "_")
        if service not in known:
            raise SpecError(_lab_file(spec), f"services.{name}", f"packstack has no service {name!r}{did_you_mean(service, known, n=3)}")
        if isinstance(value, str) and value.lower() in ("y", "yes", "true", "n", "no", "false"):
            value = value.lower() in ("y", "yes", "true")
        if not isinstance(value, bool):
            raise SpecError(_lab_file(spec), f"services.{name}", f"got {value!r}; allowed: true, false, \"y\", \"n\"")
        switches[f"CONFIG_{service.upper()}_INSTALL"] = "y" if value else "n"
    return switches


def password_keys(spec: LabSpec) -> tuple[str, ...]:
    """The secrets labvirt keeps for this lab: the core services' plus those of the services switched on."""
    keys = list(CORE_PASSWORDS)
    for key, value in service_switches(spec).items():
        if value == "y":
            keys += SERVICE_PASSWORDS.get(INSTALL_RE.match(key).group(1).lower(), ())
    return tuple(dict.fromkeys(keys))


def _network_key(desired: DesiredLab, libvirt_name: str) -> str:
    return next(n.key for n in desired.networks if n.name == libvirt_name)


def _nic_on(desired: DesiredLab, dom: DesiredDomain, network: str):
    return next((nic for nic in dom.nics if _network_key(desired, nic.network) == network), None)


def _check_network(spec: LabSpec, desired: DesiredLab, name: str, field: str) -> str:
    names = [n.key for n in desired.networks]
    if name not in names:
        raise SpecError(_lab_file(spec), f"packstack.{field}",
                        f"no network {name!r} in this lab (networks: {', '.join(names)}){did_you_mean(name, names, n=3)}")
    return name


def management_of(desired: DesiredLab, controller: DesiredDomain) -> str:
    """Default management network: the first isolated network on the controller, else its first NIC's."""
    modes = {n.name: n.mode for n in desired.networks}
    for nic in controller.nics:
        if modes[nic.network] == "isolated":
            return _network_key(desired, nic.network)
    if not controller.nics:
        raise LabvirtError(f"node {controller.key!r} has no NIC: packstack needs the controller on a network")
    return _network_key(desired, controller.nics[0].network)


def provider_of(desired: DesiredLab, host: DesiredDomain, management: str) -> str:
    """Default provider network: the first network on the network host that reaches beyond it (NAT, an
    existing libvirt network, a host bridge), preferring one that is not management."""
    nat = [_network_key(desired, nic.network) for nic in host.nics
           if next(n.mode for n in desired.networks if n.name == nic.network) in ("nat", "existing", "host-bridge")]
    others = [n for n in nat if n != management]
    if not (others or nat):
        raise LabvirtError(f"node {host.key!r} has no NIC on a NAT network for {EXTERNAL_BRIDGE}; "
                           "name one with [packstack] provider_network in lab.toml")
    return (others or nat)[0]


def overrides(spec: LabSpec, desired: DesiredLab, l2_virt_type: str, passwords: dict[str, str],
              management_network: str | None = None, provider_network: str | None = None) -> dict[str, str]:
    """The answer-file values that follow from the lab, in a stable order.

    `l2_virt_type` is the nested verdict: "kvm" only when the compute nodes really get hardware
    virtualisation, else "qemu". `passwords` (see `password_keys` and secrets.lab_passwords) go in as given.
    """
    if l2_virt_type not in VIRT_TYPES:
        raise LabvirtError(f"nova virt type must be one of {', '.join(VIRT_TYPES)}, got {l2_virt_type!r}")
    roles: dict[str, list[DesiredDomain]] = {}
    for dom in desired.domains:
        roles.setdefault(dom.role, []).append(dom)
    controllers = roles.get("controller", [])
    if len(controllers) != 1:
        raise LabvirtError(f"packstack needs exactly one node with role 'controller'; this lab has "
                           f"{len(controllers)}{': ' + ', '.join(d.key for d in controllers) if controllers else ''}")
    controller = controllers[0]
    computes = roles.get("compute") or [controller]
    network_hosts = roles.get("network") or [controller]
    storage = roles.get("storage") or [controller]
    if len(storage) > 1:
        raise LabvirtError("packstack installs storage services on one host; this lab has several nodes with "
                           f"role 'storage': {', '.join(d.key for d in storage)}")

    mgmt = (_check_network(spec, desired, management_network, "management_network")
            if management_network else management_of(desired, controller))
    provider = (_check_network(spec, desired, provider_network, "provider_network")
                if provider_network else provider_of(desired, network_hosts[0], mgmt))

    def address(dom: DesiredDomain) -> str:
        nic = _nic_on(desired, dom, mgmt)
        if nic is None or nic.address is None:
            raise LabvirtError(f"node {dom.key!r} has no fixed address on the management network {mgmt!r}; "
                               "packstack needs one for every controller, compute, network and storage node")
        return str(nic.address)

    def hosts(doms: list[DesiredDomain]) -> str:
        return ",".join(dict.fromkeys(address(d) for d in doms))

    ifaces = set()
    for dom in network_hosts:
        nic = _nic_on(desired, dom, provider)
        if nic is None:
            raise LabvirtError(f"network host {dom.key!r} has no NIC on the provider network {provider!r}")
        ifaces.add(nic.name)
    if len(ifaces) > 1:
        raise LabvirtError(f"the network hosts reach the provider network {provider!r} through different NICs "
                           f"({', '.join(sorted(ifaces))}); packstack takes one interface name for all of them")
    iface = ifaces.pop()

    result = {
        "CONFIG_CONTROLLER_HOST": address(controller),
        "CONFIG_COMPUTE_HOSTS": hosts(computes),
        "CONFIG_NETWORK_HOSTS": hosts(network_hosts),
        "CONFIG_STORAGE_HOST": address(storage[0]),
        "CONFIG_AMQP_HOST": address(controller),
        "CONFIG_MARIADB_HOST": address(controller),
        "CONFIG_REDIS_HOST": address(controller),
        "CONFIG_NOVA_LIBVIRT_VIRT_TYPE": l2_virt_type,
    }
    # Open vSwitch agent (packstack's default up to Rocky) and OVN (the default of later releases) alike.
    for agent in ("OVS", "OVN"):
        result[f"CONFIG_NEUTRON_{agent}_BRIDGE_MAPPINGS"] = f"{PHYSNET}:{EXTERNAL_BRIDGE}"
        result[f"CONFIG_NEUTRON_{agent}_BRIDGE_IFACES"] = f"{EXTERNAL_BRIDGE}:{iface}"
        result[f"CONFIG_NEUTRON_{agent}_EXTERNAL_PHYSNET"] = PHYSNET
    result.update(service_switches(spec))
    result.update(passwords)
    return result


def mask(values: dict[str, str]) -> dict[str, str]:
    """The same settings with every secret (passwords, keys, tokens) shown as ********."""
    return {k: (MASK if v and SECRET_RE.search(k) else v) for k, v in values.items()}


# -- applying ---------------------------------------------------------------------------------
_SECTION_RE = re.compile(r"^[ \t]*\[([^\]]*)\][ \t]*$")
_KEY_RE = re.compile(r"^(?P<lead>[ \t]*)(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?P<sep>[ \t]*[=:][ \t]*)(?P<value>.*)$")
ADDED_COMMENT = "# Added by labvirt: not in the answer file packstack generated."


def _lines(text: str) -> list[str]:
    """Lines with their own endings, split on \\n only (str.splitlines also splits on \\f, \\x1c, ...)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _ending(line: str) -> str:
    return "\r\n" if line.endswith("\r\n") else "\n" if line.endswith("\n") else ""


def apply_overrides(text: str, overrides: dict[str, str], known: frozenset[str]) -> str:
    """`text` (a packstack answer file) with the values of `overrides` set; every other byte kept.

    Keys already in [general] get their value replaced in place (spelling, spacing around '=' and
    line ending kept); keys the file lacks are added at the end of [general] under a comment saying
    labvirt added them. Keys in the file that labvirt does not know are left alone. An override key
    packstack does not know is refused, naming the closest known keys.
    """
    unknown = [k for k in overrides if k not in known]
    if unknown:
        raise LabvirtError("packstack does not know " + "; ".join(f"{k}{did_you_mean(k, known, n=3)}" for k in unknown))
    for key, value in overrides.items():
        if "\n" in value or "\r" in value:
            raise LabvirtError(f"{key}: an answer-file value must be one line")
    by_upper = {k.upper(): k for k in overrides}
    lines = _lines(text)
    newline = next((_ending(line) for line in lines if _ending(line)), "\n")
    out: list[str] = []
    section, general_end, seen = None, None, set()
    for line in lines:
        end = _ending(line)
        body = line[:len(line) - len(end)]
        header = _SECTION_RE.match(body)
        if header:
            section = header.group(1).strip()
            out.append(line)
            if section == "general" and general_end is None:
                general_end = len(out)
            continue
        if section == "general":
            m = None if body.lstrip().startswith(("#", ";")) else _KEY_RE.match(body)
            if m and m["key"].upper() in by_upper:
                key = by_upper[m["key"].upper()]
                line = f"{m['lead']}{m['key']}{m['sep']}{overrides[key]}{end}"
                seen.add(key)
            if body.strip():
                general_end = len(out) + 1
        out.append(line)
    if general_end is None:
        raise LabvirtError("not a packstack answer file: no [general] section")
    missing = [k for k in overrides if k not in seen]
    if missing:
        if not _ending(out[general_end - 1]):
            out[general_end - 1] += newline
        block = [newline, ADDED_COMMENT + newline] + [f"{k}={overrides[k]}{newline}" for k in missing]
        out[general_end:general_end] = block
    return "".join(out)
