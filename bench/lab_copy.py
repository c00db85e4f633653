"""The benchmark's own copy of a lab: examples/three-node-nat (only networks labvirt owns) made safe to
create and remove (isolated networks, subnets no one uses, tiny nodes, empty disks, a unique name), checked before anything runs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tomllib
from ipaddress import IPv4Address, IPv4Network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "three-node-nat")
SUBNET_POOL = IPv4Network("10.253.0.0/16")
NODE_MEMORY = "128MiB"



# -- the benchmark's copy of the lab -----------------------------------------------------------------
def taken_subnets(conn) -> list[IPv4Network]:
    """Subnets already used by libvirt networks on `conn` and by the host's own routes."""
    from lxml import etree

    used = []
    if conn is not None:
        import libvirt

        for net in conn.listAllNetworks():
            try:
                xml = net.XMLDesc(0)
            except libvirt.libvirtError:     # removed meanwhile by someone else
                continue
            for ip in etree.fromstring(xml.encode()).findall("ip"):
                if ip.get("address") and (ip.get("netmask") or ip.get("prefix")):
                    mask = ip.get("netmask") or ip.get("prefix")
                    used.append(IPv4Network(f"{ip.get('address')}/{mask}", strict=False))
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["ip", "-4", "-o", "route", "show", "table", "all"], capture_output=True,
                             text=True, timeout=5).stdout
        for word in re.findall(r"^(?:\S+ )?(\d+\.\d+\.\d+\.\d+/\d+)", out, re.M):
            used.append(IPv4Network(word, strict=False))
    return used


def pick_subnets(n: int, conn=None, seed: int | None = None) -> list[IPv4Network]:
    """`n` free /24s in 10.253.0.0/16 (started at a per-run offset so parallel runs do not meet)."""
    used = taken_subnets(conn)
    candidates = list(SUBNET_POOL.subnets(new_prefix=24))[1:-1]
    start = (seed if seed is not None else os.getpid()) % len(candidates)
    picked = []
    for i in range(len(candidates)):
        c = candidates[(start + i) % len(candidates)]
        if not any(c.overlaps(u) for u in used + picked):
            picked.append(c)
            if len(picked) == n:
                return picked
    raise RuntimeError(f"no {n} free /24 subnets left in {SUBNET_POOL}")


def make_lab(dst: str, name: str, pool_dir: str, conn=None, source: str = EXAMPLE) -> str:
    """Copy `source` into `dst/lab` and adapt it for a benchmark; returns the lab directory.

    Networks become isolated with fresh subnets (addresses keep their host part), nodes get 128 MiB
    and no golden image (empty thin disks; sizes stay: qcow2 allocates nothing), domain_type qemu,
    the pool in `pool_dir`, and the lab is renamed `name`.
    """
    lab = os.path.join(dst, "lab")
    shutil.copytree(source, lab)
    shutil.rmtree(os.path.join(lab, "images"), ignore_errors=True)   # no node uses a recipe any more

    net_files = sorted(f for f in os.listdir(os.path.join(lab, "networks")) if f.endswith(".toml"))
    new_subnets = pick_subnets(len(net_files), conn)
    moved: dict[str, tuple[IPv4Network, IPv4Network]] = {}
    for f, new in zip(net_files, new_subnets):
        path = os.path.join(lab, "networks", f)
        data = _toml(path)
        old = IPv4Network(data["subnet"])
        moved[data.get("name", f[:-5])] = (old, new)
        text = _read(path)
        text = _set(text, "mode", '"isolated"')
        text = _set(text, "subnet", f'"{new}"')
        for key in ("gateway", "dhcp_start", "dhcp_end"):
            if key in data:
                text = _set(text, key, f'"{_move(IPv4Address(data[key]), old, new)}"')
        for key in ("bridge", "forward", "domain"):
            text = _drop(text, key)
        _write(path, text)

    for f in sorted(os.listdir(os.path.join(lab, "domains"))):
        path = os.path.join(lab, "domains", f)
        data = _toml(path)
        text = _read(path)
        text = _set(text, "memory", f'"{NODE_MEMORY}"')
        for key in ("image", "base_image", "cpu", "nested"):
            text = _drop(text, key)
        for nic in data.get("nic", []):
            if "address" in nic:
                old, new = moved[nic["network"]]
                text = text.replace(f'"{nic["address"]}"', f'"{_move(IPv4Address(nic["address"]), old, new)}"', 1)
        _write(path, text)

    lab_toml = os.path.join(lab, "lab.toml")
    text = _read(lab_toml)
    text = re.sub(r'(?m)^name\s*=.*$', f'name = "{name}"', text, count=1)
    text = re.sub(r'(?m)^(description|domain_type)\s*=.*\n', "", text)
    text = re.sub(r'(?m)^\[storage\][^\[]*', "", text)
    text = text.replace("[lab]\n", '[lab]\ndomain_type = "qemu"\n', 1)
    text += f'\n[storage]\npool_dir = "{pool_dir}"\n'
    _write(lab_toml, text)
    check_safe(lab)
    return lab


def check_safe(lab: str) -> None:
    """Refuse to benchmark a lab that could reach outside the host or not fit: checked on the loaded spec."""
    from labvirt.core.loader import load_lab

    spec = load_lab(lab)
    problems = [f"network {n.name} is {n.mode}" for n in spec.networks if n.mode != "isolated"]
    problems += [f"network {n.name} subnet {n.subnet} is outside {SUBNET_POOL}"
                 for n in spec.networks if not n.subnet.subnet_of(SUBNET_POOL)]
    problems += [f"node {n.name} has {n.memory >> 20} MiB" for n in spec.nodes if n.memory > 128 * 2**20]
    problems += [f"node {n.name} uses an image" for n in spec.nodes if n.image or n.base_image]
    if spec.domain_type != "qemu":
        problems.append(f"domain_type is {spec.domain_type}")
    if problems:
        raise RuntimeError("benchmark lab is not safe: " + "; ".join(problems))


def _toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def _read(path):
    with open(path) as f:
        return f.read()


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _set(text: str, key: str, value: str) -> str:
    line = re.compile(rf"(?m)^{key}\s*=.*$")
    if line.search(text):
        return line.sub(f"{key} = {value}", text, count=1)
    return f"{key} = {value}\n" + text


def _drop(text: str, key: str) -> str:
    return re.sub(rf"(?m)^{key}\s*=.*\n?", "", text)


def _move(addr: IPv4Address, old: IPv4Network, new: IPv4Network) -> IPv4Address:
    return new.network_address + (int(addr) - int(old.network_address))


