"""labvirt's own exceptions. The CLI turns each into one line on stderr and an exit code."""

from __future__ import annotations


class LabvirtError(Exception):
    """Base class: a problem labvirt can explain in one line."""

    exit_code = 1


class SpecError(LabvirtError):
    """The lab description is wrong: names the file, the field and what is allowed."""

    exit_code = 2

    def __init__(self, file: str, field: str, problem: str):
        self.file = file
        self.field = field
        self.problem = problem
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {problem}")


class ConflictError(LabvirtError):
    """A libvirt object has a name labvirt wants but does not carry this lab's metadata."""


class NotFoundError(LabvirtError):
    """A libvirt object labvirt looked for does not exist."""


class UnsupportedError(LabvirtError):
    """The connected host (often the simulator) cannot do this."""


class ConnectionFailed(LabvirtError):
    """libvirt at the chosen URI cannot be reached."""


class LockedError(LabvirtError):
    """Another labvirt process is working on the same lab or simulator."""


class StateError(LabvirtError):
    """A file of labvirt's own state (a simulated host, a class record) is damaged: names the file,
    what is wrong and what to do. Nothing was changed."""


class DriverError(LabvirtError):
    """libvirt (or a tool such as qemu-img) refused an operation; keeps its message."""


class Reported(LabvirtError):
    """The command has already reported what failed (a table, a line per student): exit 1, say no more."""

    def __init__(self, message: str = ""):
        super().__init__(message)
