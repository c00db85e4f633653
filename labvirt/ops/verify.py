"""`labvirt verify [STAGE]`: run a stage's checks on a lab copy's nodes over ssh, concurrently, each
bounded in time; and `snapshot NAME --verify`, which takes the snapshot only when its stage holds.

On the simulator nothing runs: every check is reported as not run, with the command that would have.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import tomllib
from collections.abc import Callable

from labvirt.core import check_outcome as co
from labvirt.core import checks as ck
from labvirt.core.errors import LabvirtError, NotFoundError, SpecError
from labvirt.core.login import login_address
from labvirt.ops.parallel import each

CHECKS_DIR = "checks"
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]


# -- stages in a lab directory -------------------------------------------------------------------------
def stage_files(lab_dir: str) -> dict[str, str]:
    """Stage name -> file, from `checks/*.toml` in the lab directory."""
    folder = os.path.join(lab_dir, CHECKS_DIR)
    if not os.path.isdir(folder):
        return {}
    return {e[:-5]: os.path.join(folder, e) for e in sorted(os.listdir(folder)) if e.endswith(".toml")}


class StageNames:
    """stage_names(lab_dir), read again only when the stage files change (names, sizes, mtimes): the
    dashboard asks on every view and every push."""

    def __init__(self, lab_dir: str):
        self.lab_dir = lab_dir
        self._cached: tuple[tuple, list[str]] | None = None    # (key, names), replaced as one

    def __call__(self) -> list[str]:
        key = tuple((name, st.st_size, st.st_mtime_ns) for name, st in
                    ((n, _stat(p)) for n, p in stage_files(self.lab_dir).items()) if st is not None)
        cached = self._cached
        if cached is None or cached[0] != key:
            cached = self._cached = (key, stage_names(self.lab_dir))
        return list(cached[1])


def _stat(path: str):
    try:
        return os.stat(path)
    except OSError:         # removed while we look: read as gone
        return None


def load_stage(lab_dir: str, name: str) -> ck.StageSpec:
    files = stage_files(lab_dir)
    if name not in files:
        known = ", ".join(files) or f"none (no {CHECKS_DIR}/*.toml in {lab_dir})"
        raise NotFoundError(f"no stage {name!r}; stages: {known}")
    return _read(name, files[name])


def _read(name: str, path: str) -> ck.StageSpec:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(path, "", f"not valid TOML: {e}") from None
    return ck.parse_stage(data, name, path)


def load_stages(lab_dir: str) -> list[ck.StageSpec]:
    return [_read(n, p) for n, p in stage_files(lab_dir).items()]


def stage_for_snapshot(lab_dir: str, snapshot: str) -> ck.StageSpec:
    """The stage a snapshot belongs to: the one whose `snapshot` names it, else the stage of that name."""
    stages = load_stages(lab_dir)
    for s in stages:
        if s.snapshot == snapshot:
            return s
    for s in stages:
        if s.name == snapshot:
            return s
    known = ", ".join(f"{s.name} (snapshot {s.snapshot or s.name})" for s in stages) or "none"
    raise NotFoundError(f"no stage belongs to snapshot {snapshot!r}; stages: {known}")


# -- running checks ---------------------------------------------------------------------------------------
Runner = Callable[[list[str], float], subprocess.CompletedProcess]


def _capture(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    from labvirt.driver.children import capture

    return capture(argv, timeout=timeout)


def remote_command(run: ck.CheckRun) -> list[str]:
    """What follows the ssh destination: the node's login shell gets one word list `sh -c '...'`."""
    return ["sh", "-c", shlex.quote(run.script)]


def _one(run: ck.CheckRun, argv: list[str] | None, runner: Runner, clock) -> co.CheckResult:
    shown = " ".join(remote_command(run))
    if run.skip is not None:
        return co.CheckResult(run.node, run.check.name, co.SKIPPED, 0.0, run.skip, "", shown)
    start = clock()
    try:
        done = runner(argv, run.timeout)
    except subprocess.TimeoutExpired:
        return co.CheckResult(run.node, run.check.name, co.FAILED, clock() - start,
                              f"did not finish within {run.timeout:g}s", "", shown)
    except FileNotFoundError:
        return co.CheckResult(run.node, run.check.name, co.ERROR, clock() - start,
                              "ssh not found: install openssh-client", "", shown)
    seconds = clock() - start
    status, detail = co.judge(run, done.returncode, done.stdout, done.stderr)
    output = ""
    if status in (co.FAILED, co.ERROR):
        output = co.shorten("\n".join(x for x in (done.stdout.strip(), done.stderr.strip()) if x))
    return co.CheckResult(run.node, run.check.name, status, seconds, detail, output, shown)


def run_stage(session, stage: ck.StageSpec, workers: int = 8, only_nodes: list[str] | None = None,
              on_result: Callable[[co.CheckResult], None] = lambda r: None,
              runner: Runner = _capture, clock=time.monotonic) -> dict:
    """Run every check of `stage` on the session's lab copy; the report (labvirt.core.checks.stage_report).

    Checks run concurrently (`workers` at a time), each bounded by its timeout. On the simulator none
    runs: each is reported as `simulated`, with the command that would have run on which address."""
    desired = session.desired()
    runs = ck.expand(stage, desired, session.verdict)
    if only_nodes:
        from labvirt.ops.nodes import domain_of

        for n in only_nodes:
            domain_of(desired, n)            # a name that is not a node: say so, with the lab's nodes
        runs = [r for r in runs if r.node in only_nodes]
    by_key = {d.key: d for d in desired.domains}
    results: list[co.CheckResult] = []
    if session.simulated:
        user = session.spec.ssh_user
        for r in runs:
            address = login_address(by_key[r.node]) or "(its address)"
            shown = f"ssh {user}@{address} -- " + " ".join(remote_command(r))
            res = (co.CheckResult(r.node, r.check.name, co.SKIPPED, 0.0, r.skip, "", shown) if r.skip else
                   co.CheckResult(r.node, r.check.name, co.SIMULATED, 0.0,
                                  f"not run: {session.uri} is the simulator, where nothing boots", "", shown))
            on_result(res)
            results.append(res)
    else:
        argv_of: dict[str, list[str] | str] = {}
        for node in dict.fromkeys(r.node for r in runs if r.skip is None):
            try:                             # ssh_command asks libvirt: once per node, before the threads
                from labvirt.ops.nodes import ssh_command

                base = ssh_command(session, node, [])
                argv_of[node] = [base[0], *SSH_OPTIONS, *base[1:]]
            except LabvirtError as e:
                argv_of[node] = str(e)

        def one(r: ck.CheckRun) -> co.CheckResult:
            base = argv_of.get(r.node)
            if isinstance(base, str):
                res = co.CheckResult(r.node, r.check.name, co.ERROR, 0.0, base, "", " ".join(remote_command(r)))
            else:
                argv = [*base, "--", *remote_command(r)] if base is not None else None
                res = _one(r, argv, runner, clock)
            on_result(res)
            return res

        for _, res, error in each(runs, one, workers):
            if error is not None:             # a bug, not a check result: let it be seen
                raise error
            results.append(res)
    report = co.stage_report(stage, results, desired.copy.lab, desired.copy.student, session.simulated)
    report["uri"] = session.uri
    return report


def verify_for_snapshot(session, snapshot: str, workers: int = 8,
                        on_result: Callable[[co.CheckResult], None] = lambda r: None) -> dict:
    """`labvirt snapshot NAME --verify`: run the stage that belongs to snapshot NAME; return its report
    when the stage holds, else raise StageDoesNotHold (its report attached, for a table)."""
    stage = stage_for_snapshot(session.spec.directory, snapshot)
    report = run_stage(session, stage, workers=workers, on_result=on_result)
    if not report["holds"]:
        raise StageDoesNotHold(report, snapshot)
    return report


class StageDoesNotHold(LabvirtError):
    def __init__(self, report: dict, snapshot: str | None = None):
        self.report = report
        c = report["counts"]
        if report["outcome"] == co.NOT_VERIFIED:
            why = ("its checks cannot run on the simulator" if report["simulated"]
                   else "no check ran")
        else:
            why = f"{c[co.FAILED]} failed, {c[co.ERROR]} could not run"
        what = f"stage {report['stage']!r} does not hold ({why})"
        super().__init__(f"{what}; snapshot {snapshot!r} not taken" if snapshot else what)


# -- a whole class ------------------------------------------------------------------------------------------
def class_verify(classroom, stage: ck.StageSpec, students: list[str], workers: int | None = None,
                 on_report: Callable[[dict], None] = lambda r: None) -> dict:
    """Run `stage` on every student's copy (students concurrently, each copy's checks concurrently);
    the student x check matrix (labvirt.core.check_outcome.class_matrix) with every report under "reports"."""
    from labvirt.ops.session import Session, host_verdict

    verdicts: dict[str, dict] = {}
    for student in students:                  # open each host's driver and verdict before the threads
        uri = classroom.record.host(student)
        if uri not in verdicts:
            verdicts[uri] = host_verdict(classroom.driver(uri))

    def one(student: str) -> dict:
        uri = classroom.record.host(student)
        session = Session(spec=classroom.spec, copy=classroom.record.copy(student), uri=uri,
                          driver=classroom.driver(uri), verdict=verdicts[uri], host=classroom.params(uri))
        try:
            report = run_stage(session, stage, workers=INNER_WORKERS)
        except LabvirtError as e:            # one student's lab that cannot be checked: a row that says why
            report = {"lab": classroom.spec.name, "student": student, "stage": stage.name,
                      "outcome": co.FAILS, "holds": False, "error": str(e), "results": [],
                      "simulated": session.simulated}
        report["host"] = uri
        on_report(report)
        return report

    reports = []
    for _, report, error in each(students, one, workers or classroom.config.workers):
        if error is not None:
            raise error
        reports.append(report)
    matrix = co.class_matrix(stage, reports)
    matrix["lab"] = classroom.spec.name
    matrix["reports"] = reports
    return matrix


INNER_WORKERS = 4      # checks at once inside one student's copy during `class verify`


def stage_names(lab_dir: str) -> list[str]:
    """The lab's stages (checks/STAGE.toml), by name; none when a stage file cannot be read."""
    try:
        return [stage.name for stage in load_stages(lab_dir)]
    except LabvirtError:
        return []


def student_checks(classroom, student: str, stage: str, results: dict) -> str:
    """Run stage `stage` on one student's copy; record {"ok", "summary"} under the stage's name."""
    matrix = class_verify(classroom, load_stage(classroom.spec.directory, stage), [student])
    report = matrix["reports"][0]
    counts = report.get("counts") or {}
    summary = f"{stage}: {report['outcome']}" + (
        " (" + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + ")" if counts else "")
    if report.get("error"):
        summary += f": {report['error']}"
    results[stage] = {"ok": bool(report["holds"]), "summary": summary}
    return summary
