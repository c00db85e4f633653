"""Stage checks: `checks/STAGE.toml` read into check specs, each expanded per node into the shell
command that runs on the guest and the expectation that judges its result. Pure.

A stage file:

    [stage]
    description = "before packstack: ..."
    snapshot = "pre-packstack"        # the snapshot this stage belongs to (`snapshot NAME --verify`)
    timeout = 30                      # seconds per check unless the check says otherwise

    [[check]]
    name = "hostname"
    nodes = ["all"]                   # node names, "role:ROLE" and "image:RECIPE"; default every node
    run = "hostname -s"               # kinds: run | service | file | port | ping | resolves | addresses
    output = "^{node}$"

Kinds (one per check, by the key that names it):
    run = "CMD"         the command's exit code is `exit` (default 0); `output` (a pattern or a list)
                        must match its stdout, `no_output` must not
    service = "NAME"    `state` active (default) | inactive | enabled | disabled
    file = "PATH"       contains the exact `line`, or a line matching `matches` (extended regex)
    port = N            something answers on `host` (default 127.0.0.1) port N, from the node
    ping = "NETWORK"    the node reaches every other node's address on NETWORK
    resolves = true     every node's name resolves to its first static address (/etc/hosts)
    addresses = true    every NIC with a static address has it (eth0, eth1, ...)
`when = "nested"` runs a check only where the host verdict promises nested KVM (L2 kvm).

Placeholders in run, output, no_output, line, matches and host: {node} {role} {lab} {ip} (the node's
first static address) {ip:NETWORK} {ip:NODE:NETWORK} {nodes} {nodes:ROLE} (names, space-separated)
{virt_type} (nova's virt type from the verdict: kvm or qemu) {domain_type}. In patterns the values
are literal (dots escaped).
"""

from __future__ import annotations

import re
import shlex

from labvirt.core.desired import DesiredLab
from labvirt.core.errors import SpecError
from labvirt.core.fields import NAME_RE, NAME_RULE, Table
from labvirt.core.record import Record, compared_without

KINDS = ("run", "service", "file", "port", "ping", "resolves", "addresses")
SERVICE_STATES = ("active", "inactive", "enabled", "disabled")
WHEN = ("nested",)
DEFAULT_TIMEOUT = 30.0


_PLACEHOLDER = re.compile(r"\{([a-z_]+(?::[a-z0-9-]+)*)\}")


class CheckSpec(Record):
    name: str
    kind: str
    nodes: tuple[str, ...] = ("all",)
    timeout: float = DEFAULT_TIMEOUT
    when: str | None = None
    # kind-specific
    run: str = ""
    exit: int = 0
    output: tuple[str, ...] = ()
    no_output: str | None = None
    service: str = ""
    state: str = "active"
    file: str = ""
    line: str | None = None
    matches: str | None = None
    port: int = 0
    host: str = "127.0.0.1"
    network: str = ""


class StageSpec(Record):
    name: str
    file: str
    checks: tuple[CheckSpec, ...]
    description: str = ""
    snapshot: str | None = None
    timeout: float = DEFAULT_TIMEOUT


class CheckRun(Record):
    """One check on one node: the shell command (run by `sh -c` on the node) and how to judge it."""

    check: CheckSpec
    node: str
    script: str
    skip: str | None = None          # why it is not run at all (then nothing is judged)
    expect: dict = {}

    __eq__, __hash__ = compared_without("expect")

    @property
    def timeout(self) -> float:
        return self.check.timeout


# -- reading a stage file -------------------------------------------------------------------------
def parse_stage(data: dict, name: str, file: str) -> StageSpec:
    if not NAME_RE.match(name):
        raise SpecError(file, "", f"stage name {name!r}: {NAME_RULE}")
    top = Table(data, file)
    stage = top.table("stage")
    description, snapshot, timeout = "", None, DEFAULT_TIMEOUT
    if stage is not None:
        description = stage.str("description", default="")
        snapshot = stage.str("snapshot")
        timeout = _seconds(stage, "timeout", DEFAULT_TIMEOUT)
        stage.done()
    checks = []
    seen = set()
    for t in top.tables("check", required=True):
        c = _parse_check(t, timeout)
        if c.name in seen:
            t.fail("name", f"{c.name!r} is used by another check of this stage")
        seen.add(c.name)
        checks.append(c)
    top.done()
    if not checks:
        raise SpecError(file, "check", "a stage needs at least one [[check]]")
    return StageSpec(name=name, file=file, checks=tuple(checks), description=description, snapshot=snapshot,
                     timeout=timeout)


def _seconds(t: Table, key: str, default: float) -> float:
    value = t._get(key, False, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
        t.fail(key, f"must be seconds between 0 and 3600, got {value!r}")
    return float(value)


def _patterns(t: Table, key: str) -> tuple[str, ...]:
    value = t._get(key, False, None)
    if value is None:
        return ()
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        t.fail(key, f"must be a pattern or a list of patterns, got {value!r}")
    for v in values:
        _compile(t, key, v)
    return tuple(values)


def _compile(t: Table, key: str, pattern: str) -> None:
    try:
        re.compile(_PLACEHOLDER.sub("x", pattern))
    except re.error as e:
        t.fail(key, f"{pattern!r} is not a regular expression: {e}")


def _parse_check(t: Table, stage_timeout: float) -> CheckSpec:
    name = t.str("name", required=True)
    if not name.strip():
        t.fail("name", "must not be empty")
    kinds = [k for k in KINDS if k in t.data]
    if len(kinds) != 1:
        t.fail("name" if not kinds else kinds[1],
               f"a check has exactly one of {', '.join(KINDS)}; got {', '.join(kinds) or 'none'}")
    kind = kinds[0]
    nodes = t.str_list("nodes", default=("all",)) or ("all",)
    for sel in nodes:
        if sel != "all" and not (sel.startswith(("role:", "image:")) or NAME_RE.match(sel)):
            t.fail("nodes", f"{sel!r}: a node name, 'role:ROLE', 'image:RECIPE' or 'all'")
    common = dict(name=name, kind=kind, nodes=tuple(nodes), timeout=_seconds(t, "timeout", stage_timeout),
                  when=t.str("when", choices=WHEN))
    if kind == "run":
        c = CheckSpec(**common, run=t.str("run", required=True), exit=t.int("exit", default=0, low=0, high=255),
                      output=_patterns(t, "output"), no_output=t.str("no_output"))
        if c.no_output is not None:
            _compile(t, "no_output", c.no_output)
    elif kind == "service":
        c = CheckSpec(**common, service=t.str("service", required=True,
                                               pattern=re.compile(r"^[A-Za-z0-9@._:-]+$"),
                                               rule="a systemd unit name"),
                      state=t.str("state", default="active", choices=SERVICE_STATES))
    elif kind == "file":
        c = CheckSpec(**common, file=t.str("file", required=True), line=t.str("line"), matches=t.str("matches"))
        if (c.line is None) == (c.matches is None):
            t.fail("line", "a file check has exactly one of line, matches")
        if c.matches is not None:
            _compile(t, "matches", c.matches)
    elif kind == "port":
        c = CheckSpec(**common, port=t.int("port", required=True, low=1, high=65535),
                      host=t.str("host", default="127.0.0.1"))
    elif kind == "ping":
        c = CheckSpec(**common, network=t.str("ping", required=True, pattern=NAME_RE, rule=NAME_RULE))
    else:                                            # resolves, addresses: true
        if t.bool(kind) is not True:
            t.fail(kind, "must be true")
        c = CheckSpec(**common)
    t.done()
    return c


# -- expanding a stage over a lab copy ---------------------------------------------------------------
def select_nodes(check: CheckSpec, desired: DesiredLab, file: str) -> list[str]:
    keys = [d.key for d in desired.domains]
    roles = {d.key: d.role for d in desired.domains}
    recipe_of = {g.path: g.name for g in desired.images}
    images = {v.node: recipe_of.get(v.backing or "") for v in desired.volumes if v.kind == "disk"}
    chosen = []
    for sel in check.nodes:
        if sel == "all":
            chosen += keys
        elif sel.startswith("role:"):
            chosen += [k for k in keys if roles[k] == sel[5:]]
        elif sel.startswith("image:"):       # nodes whose disk comes from that recipe (none: no such node)
            chosen += [k for k in keys if images.get(k) == sel[6:]]
        elif sel in keys:
            chosen.append(sel)
        else:
            raise SpecError(file, f"check {check.name!r}: nodes", f"no node {sel!r} in the lab; nodes: {', '.join(keys)}")
    return list(dict.fromkeys(chosen))


class _Values:
    """What placeholders stand for on one node."""

    def __init__(self, desired: DesiredLab, node: str, verdict: dict):
        self.desired = desired
        self.node = node
        self.verdict = verdict
        self.by_key = {d.key: d for d in desired.domains}
        self.net_key = {n.name: n.key for n in desired.networks}

    def address(self, node: str, network: str | None) -> str | None:
        for nic in self.by_key[node].nics:
            if nic.address is not None and (network is None or self.net_key.get(nic.network) == network):
                return str(nic.address)
        return None

    def get(self, name: str) -> str | None:
        parts = name.split(":")
        head, args = parts[0], parts[1:]
        dom = self.by_key[self.node]
        if head == "node" and not args:
            return self.node
        if head == "role" and not args:
            return dom.role
        if head == "lab" and not args:
            return self.desired.copy.lab
        if head == "ip" and len(args) <= 2:
            node, net = (self.node, args[0] if args else None) if len(args) < 2 else (args[0], args[1])
            if node not in self.by_key:
                return None
            return self.address(node, net)
        if head == "nodes" and len(args) <= 1:
            return " ".join(d.key for d in self.desired.domains if not args or d.role == args[0])
        if head == "virt_type" and not args:
            return self.verdict.get("l2_virt_type") or "qemu"
        if head == "domain_type" and not args:
            return self.verdict.get("domain_type") or "qemu"
        return None


def fill(text: str, values: _Values, pattern: bool, where: str, file: str) -> str:
    """Replace placeholders; in patterns the values are literal (only dots can matter in them)."""
    def one(m):
        v = values.get(m.group(1))
        if v is None:
            raise SpecError(file, where, f"placeholder {m.group(0)} means nothing on node {values.node!r} "
                                         "(see labvirt/core/checks.py for the placeholders)")
        return v.replace(".", r"\.") if pattern else v
    return _PLACEHOLDER.sub(one, text)


def expand(stage: StageSpec, desired: DesiredLab, verdict: dict) -> list[CheckRun]:
    """Every (check, node) of the stage on this lab copy, in file order then node order."""
    runs = []
    for check in stage.checks:
        for node in select_nodes(check, desired, stage.file):
            runs.append(_run_for(stage, check, node, _Values(desired, node, verdict), verdict))
    return runs


def _run_for(stage: StageSpec, c: CheckSpec, node: str, v: _Values, verdict: dict) -> CheckRun:
    where = f"check {c.name!r}"
    f = lambda text, key, pattern=False: fill(text, v, pattern, f"{where}: {key}", stage.file)  # noqa: E731
    q = shlex.quote
    skip = None
    if c.when == "nested" and verdict.get("l2_virt_type") != "kvm":
        skip = (f"the host verdict does not promise nested KVM here (L2 virt type "
                f"{verdict.get('l2_virt_type') or 'unknown'})")
    if c.kind == "run":
        return CheckRun(c, node, f(c.run, "run"), skip, {
            "exit": c.exit, "output": tuple(f(p, "output", True) for p in c.output),
            "no_output": f(c.no_output, "no_output", True) if c.no_output is not None else None})
    if c.kind == "service":
        verb = "is-active" if c.state in ("active", "inactive") else "is-enabled"
        return CheckRun(c, node, f"systemctl {verb} -- {q(c.service)}", skip, {"state": c.state})
    if c.kind == "file":
        if c.line is not None:
            script = f"grep -n -x -F -e {q(f(c.line, 'line'))} -- {q(c.file)}"
        else:
            script = f"grep -n -E -e {q(f(c.matches, 'matches', True))} -- {q(c.file)}"
        return CheckRun(c, node, script, skip, {})
    if c.kind == "port":
        host = f(c.host, "host")
        wait = max(1, int(c.timeout) - 1)
        script = (f"timeout {wait} bash -c 'exec 3<>\"/dev/tcp/$0/$1\"' {q(host)} {c.port} 2>/dev/null "
                  f"|| {{ echo {q(f'nothing answers on {host} port {c.port}')}; exit 1; }}")
        return CheckRun(c, node, script, skip, {})
    if c.kind == "ping":
        peers = [(k, v.address(k, c.network)) for k in v.by_key if k != node]
        if v.address(node, c.network) is None:
            skip = skip or f"{node} has no static address on network {c.network!r}"
        peers = [(k, a) for k, a in peers if a is not None]
        if not peers:
            skip = skip or f"no other node has a static address on network {c.network!r}"
        lines = ["fail=0"] + [f"ping -c 2 -W 2 {a} >/dev/null 2>&1 || {{ echo {q(f'no reply from {k} ({a})')}; fail=1; }}"
                              for k, a in peers] + ["exit $fail"]
        return CheckRun(c, node, "; ".join(lines), skip, {})
    if c.kind == "resolves":
        lines = ["fail=0"]
        for k in v.by_key:
            a = v.address(k, None)
            if a is None:
                continue
            lines.append(f'set -- $(getent hosts {k}); [ "${{1:-}}" = {a} ] || '
                         f'{{ echo "{k} resolves to ${{1:-nothing}}, expected {a}"; fail=1; }}')
        lines.append("exit $fail")
        return CheckRun(c, node, "; ".join(lines), skip, {})
    # addresses
    lines = ["fail=0"]
    for nic in v.by_key[node].nics:
        if nic.address is None:
            continue
        lines.append(f"ip -o -4 addr show dev {nic.name} 2>&1 | grep -qF ' {nic.address}/' || "
                     f"{{ echo {q(f'{nic.name} does not have {nic.address}:')}; ip -o -4 addr show dev {nic.name} 2>&1; fail=1; }}")
    if len(lines) == 1:
        skip = skip or f"{node} has no static address"
    lines.append("exit $fail")
    return CheckRun(c, node, "; ".join(lines), skip, {})
