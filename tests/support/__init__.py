"""Helpers shared by labvirt's tests (not part of the package)."""
