"""packstack answer overrides: from the example labs, applied to answer files packstack generated, passwords.

The answer files in tests/data/packstack/ were written by packstack's own `--gen-answer-file`, one per
release labvirt targets (scripts/packstack-data says how); known_keys.txt is derived from the same run.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from labvirt.core.desired import HostParams, desire
from labvirt.core.record import replace
from labvirt.core.errors import LabvirtError, SpecError
from labvirt.core.identity import LabCopy
from labvirt.core.loader import load_lab
from labvirt.packstack import (apply_overrides, known_keys, known_services, mask, overrides, password_keys,
                               service_switches)
from labvirt.packstack.answers import ADDED_COMMENT, CORE_PASSWORDS, MASK, SERVICE_PASSWORDS, _KEY_RE, _lines
from labvirt.packstack.secrets import lab_passwords, passwords_path

REPO = Path(__file__).resolve().parent.parent
GENERATED = {p.stem: p.read_bytes().decode() for p in sorted((Path(__file__).parent / "data" / "packstack").glob("*.txt"))}
RELEASES = {stem.split("-")[0]: stem for stem in GENERATED}      # "train" -> "train-15.1.0"
TRAIN = GENERATED[RELEASES["train"]]
UNKNOWN = "CONFIG_SITE_MIRROR=http://mirror.classroom.lan/centos"   # a key of no packstack release
PASSWORDS = {"CONFIG_KEYSTONE_ADMIN_PW": "adminpass-1234567", "CONFIG_MARIADB_PW": "dbpass-7654321xyz"}


def lab(directory: str, student: str = "", subnets=()):
    spec = load_lab(str(REPO / directory))
    return spec, desire(spec, LabCopy(spec.name, student, subnets), HostParams())


@pytest.fixture(scope="module")
def standard():
    return lab(".")


@pytest.fixture(scope="module")
def three():
    return lab("examples/three-node")


# -- overrides from the labs ------------------------------------------------------------------
def test_standard_lab_uses_isolated_internal_as_management_and_nat_eth0_as_provider(standard):
    ov = overrides(*standard, "kvm", PASSWORDS)
    for key in ("CONFIG_CONTROLLER_HOST", "CONFIG_NETWORK_HOSTS", "CONFIG_STORAGE_HOST", "CONFIG_AMQP_HOST",
                "CONFIG_MARIADB_HOST", "CONFIG_REDIS_HOST"):
        assert ov[key] == "192.168.90.100", key
    assert ov["CONFIG_COMPUTE_HOSTS"] == "192.168.90.110"
    assert ov["CONFIG_NEUTRON_OVS_BRIDGE_MAPPINGS"] == "extnet:br-ex"
    assert ov["CONFIG_NEUTRON_OVS_BRIDGE_IFACES"] == "br-ex:eth0"
    assert ov["CONFIG_NEUTRON_OVN_BRIDGE_IFACES"] == "br-ex:eth0"
    assert ov["CONFIG_HEAT_INSTALL"] == "y"
    assert ov["CONFIG_KEYSTONE_ADMIN_PW"] == "adminpass-1234567"


def test_three_node_lab_uses_mgmt_eth0_and_provider_eth1(three):
    ov = overrides(*three, "qemu", PASSWORDS)
    assert ov["CONFIG_CONTROLLER_HOST"] == "192.168.1.100"
    assert ov["CONFIG_COMPUTE_HOSTS"] == "192.168.1.101,192.168.1.102"
    assert ov["CONFIG_NETWORK_HOSTS"] == ov["CONFIG_AMQP_HOST"] == ov["CONFIG_MARIADB_HOST"] == "192.168.1.100"
    assert ov["CONFIG_NEUTRON_OVS_BRIDGE_IFACES"] == "br-ex:eth1"
    assert ov["CONFIG_HEAT_INSTALL"] == "y"


@pytest.mark.parametrize("verdict", ["kvm", "qemu"])
def test_virt_type_follows_the_nested_verdict(three, verdict):
    assert overrides(*three, verdict, {})["CONFIG_NOVA_LIBVIRT_VIRT_TYPE"] == verdict


def test_virt_type_other_than_kvm_or_qemu_is_refused(three):
    with pytest.raises(LabvirtError, match="kvm, qemu"):
        overrides(*three, "xen", {})


def test_every_override_key_is_known_and_order_is_stable(standard, three):
    for spec, desired in (standard, three):
        ov = overrides(spec, desired, "kvm", dict.fromkeys(password_keys(spec), "pw"))
        assert set(ov) <= known_keys()
        assert list(ov)[:2] == ["CONFIG_CONTROLLER_HOST", "CONFIG_COMPUTE_HOSTS"]
        assert ov == overrides(spec, desired, "kvm", dict.fromkeys(password_keys(spec), "pw"))


def test_student_copy_gets_its_own_subnet_addresses():
    spec, desired = lab("examples/three-node", "alice", (("mgmt", IPv4Network("192.168.51.0/24")),))
    ov = overrides(spec, desired, "kvm", {})
    assert ov["CONFIG_CONTROLLER_HOST"] == "192.168.51.100"
    assert ov["CONFIG_COMPUTE_HOSTS"] == "192.168.51.101,192.168.51.102"


def test_lab_file_can_name_management_and_provider(standard, three):
    ov = overrides(*standard, "kvm", {}, management_network="public")
    assert ov["CONFIG_CONTROLLER_HOST"] == "192.168.122.100"
    assert ov["CONFIG_NEUTRON_OVS_BRIDGE_IFACES"] == "br-ex:eth0"   # no other NAT network: same NIC
    ov = overrides(*three, "kvm", {}, provider_network="mgmt")
    assert ov["CONFIG_NEUTRON_OVS_BRIDGE_IFACES"] == "br-ex:eth0"


def test_unknown_management_network_names_the_close_ones(three):
    with pytest.raises(SpecError, match=r"packstack.management_network.*\(did you mean 'mgmt'\?\)"):
        overrides(*three, "kvm", {}, management_network="mgmnt")


def test_network_role_nodes_become_network_hosts_and_carry_br_ex(three):
    spec, desired = three
    domains = tuple(replace(d, role="network") if d.key == "compute2" else d for d in desired.domains)
    ov = overrides(spec, replace(desired, domains=domains), "kvm", {})
    assert ov["CONFIG_NETWORK_HOSTS"] == "192.168.1.102"
    assert ov["CONFIG_COMPUTE_HOSTS"] == "192.168.1.101"
    assert ov["CONFIG_NEUTRON_OVS_BRIDGE_IFACES"] == "br-ex:eth1"


def test_node_without_fixed_management_address_is_refused(three):
    spec, desired = three
    domains = tuple(replace(d, nics=tuple(replace(n, address=None) for n in d.nics))
                    if d.key == "compute1" else d for d in desired.domains)
    with pytest.raises(LabvirtError, match="'compute1' has no fixed address on the management network 'mgmt'"):
        overrides(spec, replace(desired, domains=domains), "kvm", {})


def test_lab_without_exactly_one_controller_is_refused(three):
    spec, desired = three
    domains = tuple(replace(d, role="compute") for d in desired.domains)
    with pytest.raises(LabvirtError, match="exactly one node with role 'controller'"):
        overrides(spec, replace(desired, domains=domains), "kvm", {})


@pytest.mark.parametrize("services, expected", [
    ({"heat": True}, {"CONFIG_HEAT_INSTALL": "y"}),
    ({"heat": False, "swift": "n", "Magnum": "yes"},
     {"CONFIG_HEAT_INSTALL": "n", "CONFIG_SWIFT_INSTALL": "n", "CONFIG_MAGNUM_INSTALL": "y"}),
    ({"neutron-metering-agent": True}, {"CONFIG_NEUTRON_METERING_AGENT_INSTALL": "y"}),
    ({}, {}),
])
def test_service_switches(three, services, expected):
    assert service_switches(replace(three[0], services=services)) == expected


def test_unknown_service_is_refused_with_the_closest_known_ones(three):
    with pytest.raises(SpecError, match=r"services.haet: packstack has no service 'haet' \(did you mean 'heat'\?\)"):
        service_switches(replace(three[0], services={"haet": True}))
    with pytest.raises(SpecError, match="allowed: true, false"):
        service_switches(replace(three[0], services={"heat": "maybe"}))
    assert {"heat", "swift", "ceilometer", "neutron"} <= known_services()


def test_password_keys_follow_the_services(three):
    spec = three[0]
    assert "CONFIG_KEYSTONE_ADMIN_PW" in password_keys(spec)
    assert "CONFIG_HEAT_DB_PW" in password_keys(spec)
    assert "CONFIG_HEAT_DB_PW" not in password_keys(replace(spec, services={"heat": False}))
    assert set(password_keys(replace(spec, services={"ceilometer": True}))) <= known_keys()


# -- applying to an answer file ---------------------------------------------------------------
def keys_in(text: str) -> list[str]:
    return [m["key"] for line in _lines(text) if (m := _KEY_RE.match(line.rstrip("\r\n")))]


def with_unknown_key(text: str) -> str:
    """The generated file with a key packstack never wrote, right under [general] (as a hand edit would be)."""
    head, rest = text.split("\n", 1)
    return f"{head}\n# Local addition, not packstack's\n{UNKNOWN}\n{rest}"


def split_added(text: str) -> tuple[list[str], list[str]]:
    """(lines labvirt added, the other lines) of an applied file; no added lines when labvirt added none."""
    lines = _lines(text)
    at = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == ADDED_COMMENT]
    if not at:
        return [], lines
    start = at[0] - 1
    end = start + 2
    while end < len(lines) and _KEY_RE.match(lines[end].rstrip("\r\n")):
        end += 1
    return lines[start:end], lines[:start] + lines[end:]


def check_kept(original: str, applied: str, ov: dict[str, str]) -> list[str]:
    """Every original line is kept byte for byte, or is a key line whose value is now ov's; returns the added lines."""
    added, rest = split_added(applied)
    before = _lines(original)
    assert len(rest) == len(before)
    replaced = 0
    for old, new in zip(before, rest):
        m = _KEY_RE.match(old.rstrip("\r\n"))
        if m and not old.startswith("#") and m["key"] in ov:
            end = old[len(old.rstrip("\r\n")):]
            assert new == f"{m['key']}={ov[m['key']]}{end}"
            replaced += 1
        else:
            assert new == old
    assert replaced == len([k for k in ov if k in keys_in(original)])
    return added


def lacking(text: str) -> list[str]:
    """Known keys this release's packstack does not write, in a stable order."""
    return sorted(known_keys() - set(keys_in(text)))


@pytest.mark.parametrize("release", GENERATED)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_apply_to_a_generated_file_keeps_every_other_line_byte_for_byte(three, release, newline):
    text = with_unknown_key(GENERATED[release]).replace("\n", newline)
    ov = overrides(*three, "kvm", PASSWORDS)
    applied = apply_overrides(text, ov, known_keys())
    assert check_kept(text, applied, ov) == []       # every key labvirt sets is one packstack generated
    assert all(line.endswith(newline) for line in _lines(applied))
    assert f"CONFIG_NEUTRON_OVS_BRIDGE_IFACES=br-ex:eth1{newline}" in applied
    assert f"CONFIG_NEUTRON_OVN_BRIDGE_IFACES=br-ex:eth1{newline}" in applied
    assert f"CONFIG_CONTROLLER_HOST=192.168.1.100{newline}" in applied
    # packstack put the generating host's address (192.0.2.10) wherever a host goes; labvirt replaces it in
    # all host keys but two it leaves at packstack's default (the controller): LDAP (unused) and sahara's host
    still = {m["key"] for line in _lines(applied) if (m := _KEY_RE.match(line.rstrip("\r\n"))) and "192.0.2.10" in line}
    assert still == {"CONFIG_KEYSTONE_LDAP_URL"} | ({"CONFIG_SAHARA_HOST"} if release != RELEASES["epoxy"] else set())
    assert f"{UNKNOWN}{newline}" in applied           # a key labvirt does not know is left alone


@pytest.mark.parametrize("release", GENERATED)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_keys_the_release_lacks_go_under_labvirts_comment_at_the_end(three, release, newline):
    text = GENERATED[release].replace("\n", newline)
    missing = lacking(GENERATED[release])
    ov = {**overrides(*three, "qemu", PASSWORDS), **dict.fromkeys(missing, "n")}
    applied = apply_overrides(text, ov, known_keys())
    added = check_kept(text, applied, ov)
    assert added[:2] == [newline, ADDED_COMMENT + newline]
    assert added[2:] == [f"{k}=n{newline}" for k in missing]
    assert applied.endswith(f"{missing[-1]}=n{newline}")     # [general] is the file's only section


def test_a_service_the_release_dropped_is_added_not_found(three):
    """Epoxy's packstack has no sahara: its generated file says so, and the switch lands among the added keys."""
    spec, desired = three
    spec = replace(spec, services={**spec.services, "sahara": True})
    applied = apply_overrides(GENERATED[RELEASES["epoxy"]], overrides(spec, desired, "kvm", {}), known_keys())
    added, _ = split_added(applied)
    assert [line.split("=")[0] for line in added[2:]] == ["CONFIG_SAHARA_INSTALL"]
    train = apply_overrides(TRAIN, overrides(spec, desired, "kvm", {}), known_keys())
    assert ADDED_COMMENT not in train and "\nCONFIG_SAHARA_INSTALL=y\n" in train


@pytest.mark.parametrize("release", GENERATED)
def test_apply_crlf_is_the_lf_result_with_crlf(three, release):
    text = GENERATED[release]
    ov = {**overrides(*three, "qemu", PASSWORDS), **dict.fromkeys(lacking(text), "y")}
    lf = apply_overrides(text, ov, known_keys())
    assert apply_overrides(text.replace("\n", "\r\n"), ov, known_keys()) == lf.replace("\n", "\r\n")


@pytest.mark.parametrize("release", GENERATED)
def test_apply_is_idempotent(three, release):
    text = GENERATED[release]
    ov = {**overrides(*three, "kvm", PASSWORDS), **dict.fromkeys(lacking(text), "y")}
    once = apply_overrides(text, ov, known_keys())
    assert once != text
    assert apply_overrides(once, ov, known_keys()) == once


@pytest.mark.parametrize("release", GENERATED)
def test_apply_without_overrides_changes_nothing(release):
    assert apply_overrides(GENERATED[release], {}, known_keys()) == GENERATED[release]


def test_unknown_override_key_is_refused_with_close_known_keys():
    with pytest.raises(LabvirtError, match=r"packstack does not know CONFIG_HEAT_INSTAL \(did you mean 'CONFIG_HEAT_INSTALL'"):
        apply_overrides(TRAIN, {"CONFIG_HEAT_INSTAL": "y"}, known_keys())


def test_missing_keys_go_at_the_end_of_general_before_the_next_section():
    text = "[general]\r\n# a comment\r\nCONFIG_DEBUG_MODE = n\r\n\r\n[other]\r\nCONFIG_HEAT_INSTALL=n\r\n"
    applied = apply_overrides(text, {"CONFIG_DEBUG_MODE": "y", "CONFIG_HEAT_INSTALL": "y"}, known_keys())
    assert applied == ("[general]\r\n# a comment\r\nCONFIG_DEBUG_MODE = y\r\n"
                       f"\r\n{ADDED_COMMENT}\r\nCONFIG_HEAT_INSTALL=y\r\n"
                       "\r\n[other]\r\nCONFIG_HEAT_INSTALL=n\r\n")


def test_file_without_final_newline():
    applied = apply_overrides("[general]\nCONFIG_DEBUG_MODE=n", {"CONFIG_HEAT_INSTALL": "y"}, known_keys())
    assert applied == f"[general]\nCONFIG_DEBUG_MODE=n\n\n{ADDED_COMMENT}\nCONFIG_HEAT_INSTALL=y\n"
    assert apply_overrides("[general]\nCONFIG_DEBUG_MODE=n", {"CONFIG_DEBUG_MODE": "y"}, known_keys()) \
        == "[general]\nCONFIG_DEBUG_MODE=y"


def test_not_an_answer_file_and_multiline_values_are_refused():
    with pytest.raises(LabvirtError, match=r"no \[general\] section"):
        apply_overrides("CONFIG_DEBUG_MODE=n\n", {"CONFIG_DEBUG_MODE": "y"}, known_keys())
    with pytest.raises(LabvirtError, match="one line"):
        apply_overrides(TRAIN, {"CONFIG_DEBUG_MODE": "y\nCONFIG_X=1"}, known_keys())


# -- the generated files and known_keys.txt ----------------------------------------------------
def release_groups() -> dict[str, set[str]]:
    """known_keys.txt's '# in: RELEASE ...' headings: key -> the releases named above it."""
    text = (REPO / "labvirt" / "packstack" / "known_keys.txt").read_text(encoding="utf-8")
    groups, current = {}, None
    for line in text.splitlines():
        if line.startswith("# in:"):
            current = set(line[len("# in:"):].split())
        elif line.strip() and not line.startswith("#"):
            groups[line.strip()] = current
    return groups


def test_generated_files_cover_the_course_era_and_the_current_default():
    assert list(RELEASES) == ["epoxy", "queens", "rocky", "stein", "train"]
    for release, text in GENERATED.items():
        keys = keys_in(text)
        assert _lines(text)[0] == "[general]\n", release
        assert len(keys) == len(set(keys)) >= 290, release
        assert {"CONFIG_CONTROLLER_HOST", "CONFIG_NEUTRON_OVS_BRIDGE_IFACES", "CONFIG_NEUTRON_OVN_BRIDGE_IFACES",
                "CONFIG_NOVA_LIBVIRT_VIRT_TYPE"} <= set(keys), release
    # what changed between the course's releases and today's, as packstack itself wrote it
    agent = {r: re.search(r"^CONFIG_NEUTRON_L2_AGENT=(.*)$", GENERATED[s], re.M).group(1) for r, s in RELEASES.items()}
    assert agent == {"queens": "openvswitch", "rocky": "openvswitch", "stein": "ovn", "train": "ovn", "epoxy": "ovn"}


def test_known_keys_are_exactly_the_keys_packstack_generated():
    groups = release_groups()
    assert set(groups) == known_keys()
    assert set(groups) == set().union(*(keys_in(t) for t in GENERATED.values()))
    for key, releases in groups.items():
        assert releases == {r for r, s in RELEASES.items() if key in keys_in(GENERATED[s])}, key
    # the findings: keys no plugin defines (Newton to master) are gone
    assert not {"CONFIG_HORIZON_SSL_CACHAIN", "CONFIG_KEYSTONE_SERVICE_NAME"} & known_keys()
    assert {"sahara", "panko", "lbaas"} <= known_services()            # accepted: a covered release has them
    assert groups["CONFIG_SAHARA_INSTALL"] == {"queens", "rocky", "stein", "train"}


def test_every_password_labvirt_keeps_is_one_packstack_generates():
    for release, text in GENERATED.items():
        keys = set(keys_in(text))
        assert set(CORE_PASSWORDS) <= keys, release
        for service, secrets in SERVICE_PASSWORDS.items():
            if f"CONFIG_{service.upper()}_INSTALL" in keys:
                assert set(secrets) <= keys, (release, service)


# -- passwords --------------------------------------------------------------------------------
@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("LABVIRT_STATE_DIR", str(tmp_path))
    return tmp_path


def test_passwords_are_private_and_stable(state, three):
    keys = password_keys(three[0])
    first = lab_passwords("openstack3", "", keys)
    path = passwords_path("openstack3", "")
    assert path.startswith(str(state))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert list(first) == list(keys) and len(set(first.values())) == len(keys)
    assert all(len(v) == 16 and not v.startswith("-") for v in first.values())   # heat's key needs 16/24/32
    assert lab_passwords("openstack3", "", keys) == first
    more = lab_passwords("openstack3", "", ("CONFIG_SWIFT_KS_PW", *keys))
    assert {k: more[k] for k in keys} == first
    assert lab_passwords("openstack3", "bob", keys) != first


def test_loose_permissions_are_tightened(state):
    lab_passwords("openstack", "", ["CONFIG_KEYSTONE_ADMIN_PW"])
    path = passwords_path("openstack", "")
    os.chmod(path, 0o644)
    lab_passwords("openstack", "", ["CONFIG_KEYSTONE_ADMIN_PW"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_damaged_password_file_is_not_replaced(state):
    path = passwords_path("openstack", "")
    Path(path).write_text("not json")
    with pytest.raises(LabvirtError, match="cannot read the lab's packstack passwords"):
        lab_passwords("openstack", "", ["CONFIG_KEYSTONE_ADMIN_PW"])
    assert Path(path).read_text() == "not json"


def test_passwords_are_masked_for_display(state, three):
    spec, desired = three
    passwords = lab_passwords(spec.name, "", password_keys(spec))
    ov = overrides(spec, desired, "kvm", passwords)
    shown = json.dumps(mask(ov))
    assert not any(p in shown for p in passwords.values())
    assert mask(ov)["CONFIG_HEAT_AUTH_ENC_KEY"] == mask(ov)["CONFIG_KEYSTONE_ADMIN_PW"] == MASK
    assert mask(ov)["CONFIG_CONTROLLER_HOST"] == "192.168.1.100"
    assert mask({"CONFIG_SSH_KEY": "/root/.ssh/id_rsa.pub", "CONFIG_DEFAULT_PASSWORD": ""}) == \
        {"CONFIG_SSH_KEY": "/root/.ssh/id_rsa.pub", "CONFIG_DEFAULT_PASSWORD": ""}


def test_answers_core_is_pure():
    code = ("import sys\n"
            "for m in ('libvirt', 'typer', 'rich', 'subprocess'): sys.modules[m] = None\n"
            "import labvirt.packstack.answers\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
