"""The host verdict is remembered per host and decided again when anything in its key changes.

The key is read from a host tree in a temporary directory (the same layout read_host reads), so every
change is a real file change; `decide` counts its calls.
"""

import json
import os

import pytest

from labvirt.ops.verdict_cache import cached_verdict, verdict_key


def write(root, path, text):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)


@pytest.fixture
def host(tmp_path):
    root = str(tmp_path / "host")
    write(root, "/proc/sys/kernel/random/boot_id", "0b7c1a52-0000-4000-8000-000000000001\n")
    write(root, "/sys/module/kvm/parameters/halt_poll_ns", "200000\n")
    write(root, "/sys/module/kvm_intel/parameters/nested", "N\n")
    write(root, "/proc/cmdline", "ro quiet\n")
    write(root, "/dev/kvm", "")
    return root


class Decide:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {"domain_type": "kvm", "nested_cpu": "host-passthrough", "l2_virt_type": "kvm",
                "source": f"decision {self.calls}"}


CHANGES = [
    ("reboot", lambda root: write(root, "/proc/sys/kernel/random/boot_id", "0b7c1a52-0000-4000-8000-000000000002\n")),
    ("nested turned on", lambda root: write(root, "/sys/module/kvm_intel/parameters/nested", "Y\n")),
    ("module loaded", lambda root: write(root, "/sys/module/kvm_amd/parameters/nested", "1\n")),
    ("module unloaded", lambda root: os.rename(os.path.join(root, "sys/module/kvm_intel"),
                                               os.path.join(root, "sys/kvm_intel.gone"))),
    ("/dev/kvm removed", lambda root: os.remove(os.path.join(root, "dev/kvm"))),
    ("/dev/kvm mode", lambda root: os.chmod(os.path.join(root, "dev/kvm"), 0o600)),
    ("modprobe.d file", lambda root: write(root, "/etc/modprobe.d/kvm.conf", "options kvm_intel nested=1\n")),
]


def test_same_key_decides_once(host, tmp_path):
    decide, path = Decide(), str(tmp_path / "state" / "host-verdict.json")
    first = cached_verdict(decide, verdict_key(host, 9000000), path)
    again = cached_verdict(decide, verdict_key(host, 9000000), path)
    assert decide.calls == 1
    assert first == again == {"domain_type": "kvm", "nested_cpu": "host-passthrough", "l2_virt_type": "kvm",
                              "source": "decision 1"}


@pytest.mark.parametrize("what,change", CHANGES, ids=[c[0] for c in CHANGES])
def test_a_changed_key_decides_again(host, tmp_path, what, change):
    decide, path = Decide(), str(tmp_path / "state" / "host-verdict.json")
    before = verdict_key(host, 9000000)
    cached_verdict(decide, before, path)
    change(host)
    after = verdict_key(host, 9000000)
    assert after != before, what
    assert cached_verdict(decide, after, path)["source"] == "decision 2"
    assert decide.calls == 2
    assert json.load(open(path))["key"] == after          # the new answer is what the next command reads


def test_another_libvirt_version_decides_again(host, tmp_path):
    decide, path = Decide(), str(tmp_path / "v.json")
    cached_verdict(decide, verdict_key(host, 9000000), path)
    cached_verdict(decide, verdict_key(host, 9005000), path)
    assert decide.calls == 2


def test_no_boot_id_means_no_cache(host, tmp_path):
    os.remove(os.path.join(host, "proc/sys/kernel/random/boot_id"))
    decide, path = Decide(), str(tmp_path / "v.json")
    assert verdict_key(host, 1) is None
    cached_verdict(decide, None, path)
    cached_verdict(decide, None, path)
    assert decide.calls == 2 and not os.path.exists(path)


def test_a_damaged_record_is_decided_again_and_rewritten(host, tmp_path):
    decide, path = Decide(), str(tmp_path / "v.json")
    with open(path, "w") as f:
        f.write("{not json")
    key = verdict_key(host, 1)
    assert cached_verdict(decide, key, path)["source"] == "decision 1"
    record = json.load(open(path))
    assert record["key"] == key and record["verdict"]["source"] == "decision 1"


def test_a_session_on_this_machine_reads_the_recorded_verdict(tmp_path, monkeypatch):
    """The local host's verdict comes from the record while its key holds (offline: no daemon needed)."""
    from labvirt.ops.session import host_verdict

    if verdict_key("/", "offline") is None:
        pytest.skip("this machine has no boot id")
    monkeypatch.setenv("LABVIRT_STATE_DIR", str(tmp_path))
    first = host_verdict(None)
    record = tmp_path / "host-verdict.json"
    data = json.loads(record.read_text())
    assert data["verdict"] == first
    data["verdict"] = dict(first, source="from the record")
    record.write_text(json.dumps(data))
    assert host_verdict(None)["source"] == "from the record"
