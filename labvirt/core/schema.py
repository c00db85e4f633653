"""Validate generated XML against libvirt's own RelaxNG schemas (lxml). Pure apart from reading them."""

from __future__ import annotations

import functools
import os

from lxml import etree

SCHEMA_DIR = os.environ.get("LABVIRT_SCHEMA_DIR", "/usr/share/libvirt/schemas")
SCHEMAS = {"domain": "domain.rng", "network": "network.rng", "pool": "storagepool.rng",
           "volume": "storagevol.rng", "domainsnapshot": "domainsnapshot.rng"}


class SchemaUnavailable(RuntimeError):
    pass


@functools.cache
def _schema(kind: str) -> etree.RelaxNG:
    path = os.path.join(SCHEMA_DIR, SCHEMAS[kind])
    if not os.path.exists(path):
        raise SchemaUnavailable(f"{path} not found (install libvirt-daemon or set LABVIRT_SCHEMA_DIR)")
    return etree.RelaxNG(etree.parse(path))


def errors(tree: etree._Element) -> list[str]:
    """Schema errors of one document (root tag picks the schema); empty when valid."""
    kind = etree.QName(tree).localname
    schema = _schema(kind)
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
