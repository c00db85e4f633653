"""labvirt: build and rebuild OpenStack training labs on libvirt."""

__version__ = "0.1.0"
