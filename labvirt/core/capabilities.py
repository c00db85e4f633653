"""What libvirt's capabilities XML says about a host: architecture, domain types, CPU features. Pure."""

from __future__ import annotations

from lxml import etree

from labvirt.core.record import Record


class Capabilities(Record):
    host_arch: str                                  # "x86_64"
    domain_types: dict[str, tuple[str, ...]]        # guest arch -> ("kvm", "qemu")
    cpu_features: frozenset[str]                    # the host CPU's named features (vmx, svm, ...)

    def types_for_host(self) -> tuple[str, ...]:
        """Domain types for guests of the host's own architecture (else of any architecture)."""
        return self.domain_types.get(self.host_arch) or tuple(sorted({t for ts in self.domain_types.values() for t in ts}))

    @property
    def hardware_virt(self) -> bool:
        return bool(self.cpu_features & {"vmx", "svm"})


def parse_capabilities(xml: str | bytes) -> Capabilities:
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    types: dict[str, list[str]] = {}
    for arch in root.findall("guest/arch"):
        found = types.setdefault(arch.get("name", ""), [])
        for d in arch.findall("domain"):
            if d.get("type") and d.get("type") not in found:
                found.append(d.get("type"))
    features = frozenset(f.get("name") for f in root.findall("host/cpu/feature") if f.get("name"))
    return Capabilities(host_arch=root.findtext("host/cpu/arch") or "",
                        domain_types={a: tuple(sorted(t)) for a, t in types.items()}, cpu_features=features)
