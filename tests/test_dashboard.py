"""`labvirt class serve` without a browser: the model, the busy lock, the security checks (simulator).

The web app is driven in-process through Starlette's TestClient (httpx); nothing listens on a port.
The browser tests are in test_dashboard_browser.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

import pytest

from labvirt.driver import simulator as sim
from labvirt.ops import dashboard as dash

from .conftest import run_cli, small_lab

GiB = 2**30


@pytest.fixture(scope="module")
def class_template(tmp_path_factory):
    """Made once: two students of the three-node example (with images: seeds, so root passwords and SSH
    keys exist) on simulated host 'h', snapshot 'base' taken. Each test gets a copy of this state."""
    from .conftest import EXAMPLES

    state = str(tmp_path_factory.mktemp("dashboard") / "state")
    env = {"LABVIRT_STATE_DIR": state}
    r = run_cli("sim", "create", "h", "--cpus", "64", "--memory", "64GiB", "--disk", "1TiB", env=env)
    assert r.returncode == 0, r.stderr
    for args in (("class", "up", "-n", "2"), ("class", "snapshot", "base")):
        r = run_cli(*args, "-C", EXAMPLES["three-node"], "-c", "sim:///h", env=env)
        assert r.returncode == 0, r.stderr
    return state


@pytest.fixture
def classroom(class_template, state_dir):
    """The lab directory; labvirt's state (this test's own) holds the class made by class_template."""
    import shutil

    from .conftest import EXAMPLES

    shutil.copytree(class_template, state_dir, dirs_exist_ok=True)
    return EXAMPLES["three-node"]


@pytest.fixture
def board(classroom):
    d = dash.Dashboard(classroom, "sim:///h", poll=0.1)
    d.start()
    yield d
    d.close()


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def row(board, student):
    return next(s for s in board.view()["students"] if s["student"] == student)


def test_model_has_every_student_node_and_host(board):
    v = board.view()
    assert [s["student"] for s in v["students"]] == ["s01", "s02"]
    assert v["nodes"] == ["compute1", "compute2", "controller"]
    s01 = v["students"][0]
    assert [(n["name"], n["state"], n["current_snapshot"]) for n in s01["nodes"]] == [
        ("compute1", "running", "base"), ("compute2", "running", "base"), ("controller", "running", "base")]
    ctl = s01["nodes"][2]
    assert s01["snapshots"] == ["base"] and ctl["domain"] == "openstack3-s01-controller"
    assert ctl["nics"][0]["planned"].endswith(".100") and ctl["nics"][0]["observed"] == []   # nothing runs: nothing observed
    host = v["hosts"][0]
    assert host["uri"] == "sim:///h" and host["students"] == 2 and host["cpus"] == 64
    assert host["running"]["domains"] == 6 and host["running"]["vcpus"] > 0 and host["domains"] == 6
    assert "polling" in host["updates"]
    assert v["verify"] == {"available": True, "stages": ["post-packstack", "pre-packstack"], "reason": None}


def test_change_by_another_process_is_seen_by_polling(board, classroom):
    before = board.version
    r = run_cli("down", "--student", "s02", "-C", classroom, "-c", "sim:///h")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: {n["state"] for n in row(board, "s02")["nodes"]} == {"shutoff"}, what="s02 shut off")
    assert board.version > before
    assert {n["state"] for n in row(board, "s01")["nodes"]} == {"running"}


def test_reading_never_rewrites_the_simulators_node_file(board):
    node = os.path.join(sim.sim_dir("h"), "node.xml")
    before = os.stat(node).st_mtime_ns
    board.refresh()
    board.refresh()
    assert os.stat(node).st_mtime_ns == before


def test_revert_reverts_that_student_only(board, classroom):
    for s in ("s01", "s02"):
        assert run_cli("down", "--student", s, "-C", classroom, "-c", "sim:///h").returncode == 0
    wait_for(lambda: {n["state"] for n in row(board, "s01")["nodes"]} == {"shutoff"}, what="both down")
    result = board.act("revert", ["s01"], "base")
    assert result == {"accepted": ["s01"], "refused": {}}
    wait_for(lambda: (row(board, "s01")["job"] or {}).get("state") == "done", what="revert done")
    assert row(board, "s01")["job"]["message"] == "reverted to base"
    wait_for(lambda: {n["state"] for n in row(board, "s01")["nodes"]} == {"running"}, what="s01 running again")
    assert {n["state"] for n in row(board, "s02")["nodes"]} == {"shutoff"}


@contextlib.contextmanager
def simulated_host_held(name):
    """Hold the simulated host's lock, as another labvirt process working on it would."""
    with sim.locked(sim.sim_dir(name)):
        yield


def test_a_second_action_on_a_busy_student_is_refused_with_the_reason(board):
    with simulated_host_held("h"):             # the first action waits for the host: its student stays busy
        assert board.act("rebuild", ["s01"])["accepted"] == ["s01"]
        wait_for(lambda: row(board, "s01")["job"]["state"] == "running", what="rebuild running")
        second = board.act("revert", ["s01", "s02"], "base")
        assert second["accepted"] == ["s02"]             # another student is not refused
        assert second["refused"]["s01"].startswith("s01 is busy: rebuild is running")
        assert board.act("stop", None)["refused"].keys() == {"s01", "s02"}     # both busy now
    wait_for(lambda: row(board, "s01")["job"]["state"] == "done" and row(board, "s02")["job"]["state"] == "done",
             what="both actions done")
    assert row(board, "s01")["job"]["message"].startswith("rebuilt")
    assert board.act("start", ["s01"])["accepted"] == ["s01"]            # free again


def test_a_student_another_process_works_on_is_refused(board):
    from labvirt.ops.session import lab_lock

    with lab_lock("openstack3", "s02", "sim:///h"):    # what `labvirt up --student s02` holds while it works
        result = board.act("stop", ["s02"])
    assert result["accepted"] == [] and "another labvirt process" in result["refused"]["s02"]
    assert row(board, "s02")["job"] is None


def test_actions_that_cannot_start_say_why(board):
    with pytest.raises(dash.Refused, match="no stage 'nope'.*stages: post-packstack, pre-packstack"):
        board.act("checks", ["s01"], "nope")
    with pytest.raises(dash.Refused, match="unknown action 'destroy'"):
        board.act("destroy", ["s01"])
    with pytest.raises(dash.Refused, match="revert needs a snapshot name"):
        board.act("revert", ["s01"], "../x")
    assert board.act("stop", ["zed"]) == {"accepted": [], "refused": {"zed": "no student 'zed' in the class"}}
    with pytest.raises(Exception, match="the simulator has no console"):
        board.console("s01", "controller")


def test_console_lines_that_may_show_a_secret_are_hidden():
    lines = ["Booting", "ci-info: root password: Xy7!", "chpasswd: changed", "-----BEGIN OPENSSH PRIVATE KEY-----",
             "login:"]
    assert dash.redact(lines) == ["Booting"] + ["[line hidden: it may show a secret]"] * 3 + ["login:"]


# -- the web app in-process --------------------------------------------------------------------
TOKEN = "t0ken-for-tests"


@pytest.fixture
def client(board):
    from starlette.testclient import TestClient

    from labvirt.web.app import create_app

    with TestClient(create_app(board, TOKEN, ["127.0.0.1", "localhost"]), base_url="http://127.0.0.1:8765") as c:
        yield c


def post(client, path, body, **headers):
    h = {"Content-Type": "application/json", "X-Labvirt-Token": TOKEN, "Origin": "http://127.0.0.1:8765"}
    h.update(headers)
    return client.post(path, content=json.dumps(body), headers={k: v for k, v in h.items() if v is not None})


STOP = {"action": "stop", "students": ["s01"]}


@pytest.mark.parametrize("headers, status, says", [
    ({"X-Labvirt-Token": None}, 403, "actions need the token"),
    ({"X-Labvirt-Token": "wrong"}, 403, "actions need the token"),
    ({"Origin": "http://evil.example"}, 403, "cross-site request refused"),
    ({"Origin": "http://127.0.0.1:9999"}, 403, "cross-site request refused"),
    ({"Sec-Fetch-Site": "cross-site"}, 403, "cross-site request refused"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "must be JSON"),
    ({"Content-Type": "text/plain"}, 415, "must be JSON"),
])
def test_changing_requests_without_token_or_from_elsewhere_are_refused(client, board, headers, status, says):
    r = post(client, "/api/action", STOP, **headers)
    assert r.status_code == status and says in r.json()["error"]
    assert row(board, "s01")["job"] is None


def test_a_request_for_another_host_name_is_refused(client):
    r = client.get("/", headers={"Host": "rebound.example:8765"})        # DNS rebinding
    assert r.status_code == 400


def test_with_the_token_the_action_starts(client, board):
    assert post(client, "/api/token", {}).status_code == 204
    r = post(client, "/api/action", STOP)
    assert r.status_code == 202 and r.json() == {"accepted": ["s01"], "refused": {}}
    wait_for(lambda: row(board, "s01")["job"]["state"] == "done", what="stop done")
    r = post(client, "/api/action", {"action": "checks", "students": None, "stage": "x"})
    assert r.status_code == 400 and r.json()["error"].startswith("no stage 'x'")
    r = post(client, "/api/console", {"student": "s01", "node": "controller"})
    assert r.json()["unsupported"] and "no console" in r.json()["error"]


def test_read_only_server_refuses_every_change(board):
    from starlette.testclient import TestClient

    from labvirt.web.app import create_app

    with TestClient(create_app(board, None, ["127.0.0.1"]), base_url="http://127.0.0.1:8765") as c:
        r = post(c, "/api/action", STOP)
        assert r.status_code == 403 and "read-only" in r.json()["error"]
        assert 'id="token-form"' not in c.get("/").text


def test_page_has_a_strict_content_security_policy_and_sets_no_cookie(client):
    r = client.get("/")
    assert r.status_code == 200 and 'id="row-s02"' in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff" and "set-cookie" not in r.headers
    assert "<script>" not in r.text and " style=" not in r.text         # nothing inline for the CSP to allow


def test_nothing_served_reveals_a_password_or_key(client, state_dir):
    """Every 0600 file in labvirt's state (root passwords, SSH private keys) and the public keys: none of
    their lines appears in the page, the JSON state or a console answer."""
    secrets = []
    for root, _, files in os.walk(state_dir):
        for f in files:
            path = os.path.join(root, f)
            if os.stat(path).st_mode & 0o077 == 0 or f.endswith(".pub"):
                for line in open(path, errors="replace").read().splitlines():
                    line = line.strip()
                    if len(line) >= 8 and not line.startswith("-----"):
                        secrets.append(line)
    assert len(secrets) >= 4          # both students' root passwords and keys were made by `class up`
    served = client.get("/").text + client.get("/state").text + client.get("/static/app.js").text
    served += post(client, "/api/console", {"student": "s01", "node": "controller"}).text
    for secret in secrets:
        assert secret not in served
        for piece in secret.split():
            assert len(piece) < 16 or piece not in served


@pytest.mark.parametrize("text, host, port", [
    ("127.0.0.1:8765", "127.0.0.1", 8765), ("localhost:0", "127.0.0.1", 0), ("[::1]:9000", "::1", 9000),
    ("10.0.0.5:80", "10.0.0.5", 80),
])
def test_listen_addresses(text, host, port):
    from labvirt.cli.serve import parse_listen

    assert parse_listen(text) == (host, port)


@pytest.mark.parametrize("text", ["8765", "host.example:80", "127.0.0.1:99999", "127.0.0.1:"])
def test_bad_listen_addresses(text):
    from labvirt.cli.serve import parse_listen
    from labvirt.core.errors import LabvirtError

    with pytest.raises(LabvirtError, match="--listen"):
        parse_listen(text)


def test_allowed_host_names():
    from labvirt.cli.serve import allowed_hosts

    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost"]
    assert allowed_hosts("::1") == ["[::1]", "localhost"]
    assert allowed_hosts("192.0.2.7") == ["192.0.2.7"] and allowed_hosts("0.0.0.0") == ["*"]


def test_non_loopback_listen_needs_the_flag_and_warns(tmp_path):
    lab = small_lab(tmp_path, name="nl")
    r = run_cli("class", "serve", "--listen", "192.0.2.1:0", "-C", lab, "-c", "sim")
    assert r.returncode == 1 and "not a loopback address" in r.stderr and "--allow-remote" in r.stderr
    # with the flag: the warning, then binding fails (192.0.2.1 is a documentation address, not this machine's)
    r = run_cli("class", "serve", "--listen", "192.0.2.1:0", "--allow-remote", "-C", lab, "-c", "sim")
    assert "warning: serving on 192.0.2.1, reachable from other machines" in r.stderr
    assert r.returncode == 1 and "--listen 192.0.2.1:0" in r.stderr


@pytest.mark.daemon
def test_on_a_real_daemon_lifecycle_events_update_the_model(tmp_path, daemon):
    """One student of a tiny lab on qemu:///system: a change by another process arrives as a libvirt event
    (the bounded re-read is pushed far out, so only the event can explain the update); console lines."""
    lab = small_lab(tmp_path, memory="64MiB", subnet_a="10.251.221.0/24", subnet_b="10.252.221.0/24")
    name = open(os.path.join(lab, "lab.toml")).read().split('"')[1]
    with open(os.path.join(lab, "lab.toml"), "a") as f:
        f.write('[class]\nsubnet_pool = "10.253.16.0/20"\n')
    board = None
    try:
        r = run_cli("class", "up", "-n", "1", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        board = dash.Dashboard(lab, daemon, poll=0.2, reread=3600)
        board.start()
        assert {n["state"] for n in row(board, "s01")["nodes"]} == {"running"}
        assert board.view()["hosts"][0]["updates"] == "libvirt lifecycle events"
        assert board.view()["hosts"][0]["load"] is not None
        r = run_cli("down", "--student", "s01", "--timeout", "1", "-C", lab, "-c", daemon)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: {n["state"] for n in row(board, "s01")["nodes"]} == {"shutoff"}, what="event")
        assert board.act("start", ["s01"])["accepted"] == ["s01"]
        wait_for(lambda: row(board, "s01")["job"]["state"] in ("done", "failed"), what="start done")
        assert row(board, "s01")["job"]["state"] == "done", row(board, "s01")["job"]
        wait_for(lambda: {n["state"] for n in row(board, "s01")["nodes"]} == {"running"}, what="running again")
        assert isinstance(board.console("s01", "alpha"), str)
    finally:
        if board is not None:
            board.close()
        run_cli("class", "destroy", "-C", lab, "-c", daemon)
    import libvirt

    conn = libvirt.open(daemon)
    try:
        assert not [d for d in conn.listAllDomains() if d.name().startswith(name)]
    finally:
        conn.close()


def test_checks_from_the_page_run_the_stage_and_record_it(board):
    """On the simulator verify runs nothing, so the stage is recorded as not holding, with why."""
    assert board.act("checks", ["s01"], "pre-packstack")["accepted"] == ["s01"]
    wait_for(lambda: row(board, "s01")["job"]["state"] in ("done", "failed"), what="checks done")
    result = row(board, "s01")["verify"]["pre-packstack"]
    assert result["ok"] is False and "not verified" in result["summary"]
