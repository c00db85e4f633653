"""The class record's file: where each student's copy was placed and which subnets it has.

`state_home()/labs/LAB/class.json` holds `{"lab": LAB, "students": {NAME: {"host": URI, "subnets":
{NETWORK: CIDR}, "addresses": {EXTERNAL_NETWORK: {LAB_FILE_ADDRESS: STUDENT_ADDRESS}}}}}` ("addresses" only
where the lab has static NICs on external networks) (`labvirt.core.class_layout.ClassRecord` in memory). It is written atomically by
`labvirt class up` and `class destroy`, and checked whole when read: a damaged record stops the
command with one line naming the file, before anything is changed.
"""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

from labvirt.core.class_layout import ClassRecord
from labvirt.core.errors import LabvirtError, StateError
from labvirt.core.fields import NAME_RE
from labvirt.core.identity import LabCopy
from labvirt.core.spec import LabSpec
from labvirt.driver.state_files import state_home, write_atomic


def record_path(lab: str) -> str:
    return os.path.join(state_home(), "labs", lab, "class.json")


def load_record(lab: str) -> ClassRecord:
    """The lab's class record; an empty one when no class was ever brought up."""
    path = record_path(lab)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return ClassRecord(lab)
    except OSError as e:
        raise _damaged(path, f"cannot read: {e.strerror}") from None
    try:
        data = json.loads(raw)
    except ValueError as e:            # JSONDecodeError, UnicodeDecodeError
        raise _damaged(path, f"not valid JSON: {e}") from None
    problem = _problem(lab, data)
    if problem:
        raise _damaged(path, problem)
    return ClassRecord(lab=lab, students=data.get("students", {}))


def save_record(record: ClassRecord) -> None:
    path = record_path(record.lab)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomic(path, json.dumps({"lab": record.lab, "students": record.students}, indent=2).encode())


def student_copy(spec: LabSpec, student: str) -> tuple[LabCopy, str]:
    """The student's copy and the host it was placed on, as recorded by `labvirt class up`."""
    record = load_record(spec.name)
    if student not in record.students:
        known = ", ".join(sorted(record.students)) or "none yet"
        raise LabvirtError(f"no student {student!r} in the class of lab {spec.name!r} (students: {known}); "
                           "'labvirt class up' creates them")
    return record.copy(student), record.host(student)


def _problem(lab: str, data) -> str | None:
    """What makes the record's content unusable, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, got {type(data).__name__}"
    if data.get("lab", lab) != lab:
        return f"'lab' is {data['lab']!r}, expected {lab!r}"
    students = data.get("students", {})
    if not isinstance(students, dict):
        return f"'students' is {students!r}, expected an object of students"
    for name, rec in students.items():
        where = f"student {name!r}"
        if not NAME_RE.match(name):
            return f"{where}: not a valid student name"
        if not isinstance(rec, dict) or not isinstance(rec.get("host"), str):
            return f"{where}: expected an object with 'host' (a libvirt URI) and 'subnets'"
        subnets = rec.get("subnets")
        if not isinstance(subnets, dict) or not all(isinstance(k, str) and _is_subnet(v) for k, v in subnets.items()):
            return f"{where}: 'subnets' is {subnets!r}, expected network names with IPv4 subnets ('10.100.0.0/24')"
        addresses = rec.get("addresses", {})
        if not isinstance(addresses, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) and all(_is_address(a) and _is_address(b) for a, b in v.items())
                for k, v in addresses.items()):
            return (f"{where}: 'addresses' is {addresses!r}, expected external network names with the lab "
                    "file's address -> the student's ({'public': {'192.168.122.100': '192.168.122.129'}})")
    return None


def _is_address(text) -> bool:
    try:
        return isinstance(text, str) and isinstance(ip_address(text), IPv4Address)
    except ValueError:
        return False


def _is_subnet(text) -> bool:
    try:
        return isinstance(text, str) and isinstance(ip_network(text), IPv4Network)
    except ValueError:
        return False


def _damaged(path: str, problem: str) -> StateError:
    return StateError(f"{path}: damaged class record ({problem}); nothing was changed. Repair it (it records each "
                      "student's host and subnets), or move it away and run 'labvirt class up' for the same "
                      "students to record them again")
