"""A base_image's format comes from its header, never from its name (Ubuntu's qcow2 `*.img`)."""

import subprocess

import pytest

from labvirt.core.disk_format import format_from_header
from labvirt.core.errors import SpecError
from labvirt.core.loader import load_lab
from labvirt.ops.session import base_image_formats

from .conftest import write_lab


@pytest.mark.parametrize("header, fmt", [(b"QFI\xfb\x00\x00\x00\x03", "qcow2"), (b"KDMV", "vmdk"),
                                         (b"conectix", "vpc"), (b"\x00" * 512, "raw"), (b"", "raw"),
                                         (b"\x00" * 0x40 + b"\x7f\x10\xda\xbe", "vdi")])
def test_format_from_header(header, fmt):
    assert format_from_header(header) == fmt


def _lab(tmp_path, image):
    node = (f'role = "generic"\nvcpus = 1\nmemory = "128MiB"\ndisk = "1GiB"\nbase_image = "{image}"\nseed = false\n'
            '[[nic]]\nnetwork = "n"\naddress = "10.9.9.10"\n')
    return load_lab(write_lab(tmp_path / "lab", "fmt", nodes={"a": node},
                              networks={"n": 'mode = "isolated"\nsubnet = "10.9.9.0/24"\n'}))


def test_a_qcow2_named_img_is_qcow2_and_a_raw_file_raw(tmp_path):
    qcow = tmp_path / "jammy-server-cloudimg-amd64.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "16M"], check=True)
    raw = tmp_path / "disk.qcow2"                  # a misleading name the other way round
    raw.write_bytes(b"\x00" * 4096)
    assert base_image_formats(_lab(tmp_path / "1", qcow)) == ((str(qcow), "qcow2"),)
    assert base_image_formats(_lab(tmp_path / "2", raw)) == ((str(raw), "raw"),)


def test_the_overlay_records_the_format_read(tmp_path):
    from labvirt.core.desired import HostParams, desire
    from labvirt.core.identity import LabCopy

    qcow = tmp_path / "cloud.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "16M"], check=True)
    spec = _lab(tmp_path, qcow)
    desired = desire(spec, LabCopy(spec.name), HostParams(base_image_formats=base_image_formats(spec)))
    (disk,) = [v for v in desired.volumes if v.kind == "disk"]
    assert (disk.backing, disk.backing_format) == (str(qcow), "qcow2")


def test_a_format_libvirt_cannot_back_an_overlay_with_is_refused(tmp_path):
    vmdk = tmp_path / "old.vmdk"
    vmdk.write_bytes(b"KDMV" + b"\x00" * 508)
    with pytest.raises(SpecError, match=r"base_image: .*old.vmdk is a vmdk image; allowed: qcow2 or raw"):
        base_image_formats(_lab(tmp_path, vmdk))


def test_class_mode_reads_the_formats_too(tmp_path):
    """Each student's overlay is backed as the header says, as in a single lab (a raw file stays raw)."""
    from labvirt.driver import simulator as sim
    from labvirt.ops.class_commands import Classroom

    raw = tmp_path / "disk.qcow2"
    raw.write_bytes(b"\x00" * 4096)
    spec = _lab(tmp_path, raw)
    sim.create_host("fmt", cpus=8, memory=16 * 2**30, disk=100 * 2**30)
    with Classroom(spec, "sim:///fmt") as c:
        assert c.params("sim:///fmt").base_image_formats == ((str(raw), "raw"),)
