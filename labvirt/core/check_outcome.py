"""What the checks of a stage found: one check's status from what its command printed, a stage's
outcome, its report and the class matrix. Pure; the stage files and their expansion over a lab copy
are labvirt.core.checks, running them over ssh is labvirt.ops.verify."""

from __future__ import annotations

import re

from labvirt.core.checks import CheckRun, StageSpec
from labvirt.core.record import Record

OUTPUT_LIMIT = 2000          # characters of output kept for a failed check

# statuses of one check on one node
PASSED, FAILED, ERROR, SKIPPED, SIMULATED = "passed", "failed", "error", "skipped", "simulated"
STATUS_WORDS = {PASSED: "passed", FAILED: "FAILED", ERROR: "could not run", SKIPPED: "skipped",
                SIMULATED: "not run (simulator)"}
# a stage as a whole
HOLDS, FAILS, NOT_VERIFIED = "holds", "fails", "not verified"


class CheckResult(Record):
    node: str
    check: str
    status: str                      # passed | failed | error | skipped | simulated
    seconds: float = 0.0
    detail: str = ""                 # why it failed, could not run, or was not run
    output: str = ""                 # on failure: what the command printed (shortened)
    command: str = ""                # what ran (or would have run) on the node

    def to_dict(self) -> dict:
        return {"node": self.node, "check": self.check, "status": self.status, "seconds": round(self.seconds, 3),
                "detail": self.detail, "output": self.output, "command": self.command}


# -- judging what a check printed -------------------------------------------------------------------
SSH_FAILED = 255          # ssh's own exit code: it could not connect or log in


def judge(run: CheckRun, code: int, stdout: str, stderr: str) -> tuple[str, str]:
    """(status, detail) of a check whose command ended with `code`."""
    c = run.check
    if code == SSH_FAILED:
        last = (stderr.strip().splitlines() or ["no message"])[-1]
        return ERROR, f"ssh could not run it: {last}"
    if code == 127:
        return ERROR, "a command the check needs is not installed on the node: " + (stderr.strip() or stdout.strip())[:200]
    if c.kind == "run":
        e = run.expect
        if code != e["exit"]:
            return FAILED, f"exit code {code}, expected {e['exit']}"
        for p in e["output"]:
            if not re.search(p, stdout, re.MULTILINE):
                return FAILED, f"output does not match {p!r}"
        if e["no_output"] is not None and re.search(e["no_output"], stdout, re.MULTILINE):
            return FAILED, f"output matches {e['no_output']!r}"
        return PASSED, ""
    if c.kind == "service":
        said = (stdout.strip().splitlines() or [""])[0].strip()
        want = run.expect["state"]
        on = said in ("active", "activating", "reloading") if want in ("active", "inactive") else \
            said in ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
        good = on if want in ("active", "enabled") else not on
        return (PASSED, "") if good else (FAILED, f"{c.service} is {said or 'unknown'}, expected {want}")
    if c.kind == "file":
        if code == 0:
            return PASSED, ""
        if code == 1:
            what = f"no line {c.line!r}" if c.line is not None else f"no line matches {c.matches!r}"
            return FAILED, f"{what} in {c.file}"
        return FAILED, f"cannot read {c.file}: {stderr.strip()[:200]}"
    if code == 0:
        return PASSED, ""
    first = (stdout.strip().splitlines() or [stderr.strip() or f"exit code {code}"])[0]
    return FAILED, first


def shorten(text: str, limit: int = OUTPUT_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


# -- a stage's outcome -----------------------------------------------------------------------------------
def outcome(results: list[CheckResult]) -> str:
    """holds: every check that ran passed (and one did); fails: one failed or could not run;
    not verified: nothing ran (the simulator, or every check skipped)."""
    statuses = {r.status for r in results}
    if statuses & {FAILED, ERROR}:
        return FAILS
    if PASSED in statuses and SIMULATED not in statuses:
        return HOLDS
    return NOT_VERIFIED


def counts(results: list[CheckResult]) -> dict[str, int]:
    out = {s: 0 for s in (PASSED, FAILED, ERROR, SKIPPED, SIMULATED)}
    for r in results:
        out[r.status] += 1
    return out


def stage_report(stage: StageSpec, results: list[CheckResult], lab: str, student: str, simulated: bool) -> dict:
    o = outcome(results)
    return {"lab": lab, "student": student, "stage": stage.name, "description": stage.description,
            "snapshot": stage.snapshot, "simulated": simulated, "outcome": o, "holds": o == HOLDS,
            "counts": counts(results), "results": [r.to_dict() for r in results]}


def cell(statuses: list[str]) -> str:
    """One check over a copy's nodes, in one word: the worst status wins."""
    for s in (ERROR, FAILED, SIMULATED, PASSED, SKIPPED):
        if s in statuses:
            return s
    return SKIPPED


def _no_runs(report: dict) -> str | None:
    """A check with no results for a copy: none when the copy could not be checked, else skipped (it
    selects no node of this lab, e.g. `nodes = ["image:centos7"]` on a lab of another recipe)."""
    return None if report.get("error") else SKIPPED


def class_matrix(stage: StageSpec, reports: list[dict]) -> dict:
    """Student x check: per cell the worst status over the student's nodes; per student the lines that
    say where the lab is not what the stage expects."""
    names = [c.name for c in stage.checks]
    rows = []
    for r in reports:
        by_check: dict[str, list[str]] = {n: [] for n in names}
        behind = []
        for res in r.get("results", []):
            by_check.setdefault(res["check"], []).append(res["status"])
            if res["status"] in (FAILED, ERROR):
                behind.append(f"{res['node']}: {res['check']}: {res['detail']}")
        rows.append({"student": r["student"], "host": r.get("host", ""), "outcome": r.get("outcome", FAILS),
                     "error": r.get("error"), "cells": {n: cell(by_check[n]) if by_check[n] else _no_runs(r) for n in names},
                     "behind": behind if not r.get("error") else [r["error"]]})
    holding = sum(1 for row in rows if row["outcome"] == HOLDS)
    return {"lab": reports[0]["lab"] if reports else "", "stage": stage.name, "snapshot": stage.snapshot,
            "checks": names, "students": rows, "holding": holding, "total": len(rows)}
