"""`labvirt class serve` in a real browser: headless Chromium (Debian's package) driven by Playwright,
against a real server process, on the simulator with 30 students.

Each test starts its own server (127.0.0.1, a free port chosen by the kernel) and its own browser, and
stops both. Playwright's own browser downloads are not used: the system chromium is launched by path.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

from labvirt.driver import simulator as sim

from .conftest import EXAMPLES, run_cli

LAB = EXAMPLES["three-node"]
STUDENTS = [f"s{i:02d}" for i in range(1, 31)]
NODES = ["compute1", "compute2", "controller"]


def _need(what: str, why: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium")
    if path is None:
        _need("chromium", "no chromium installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright", "no playwright installed (pip install playwright)")
    return path, sync_playwright


@pytest.fixture(scope="module")
def class_of_30(tmp_path_factory):
    """Made once: 30 students of the three-node example on simulated host 'big', all running, snapshot
    'pre-packstack' taken. Each test copies this state into its own."""
    state = str(tmp_path_factory.mktemp("browser") / "state")
    env = {"LABVIRT_STATE_DIR": state}
    r = run_cli("sim", "create", "big", "--cpus", "512", "--memory", "1024GiB", "--disk", "20TiB", env=env)
    assert r.returncode == 0, r.stderr
    for args in (("class", "up", "-n", "30"), ("class", "snapshot", "pre-packstack")):
        r = run_cli(*args, "-C", LAB, "-c", "sim:///big", env=env)
        assert r.returncode == 0, r.stderr
    return state


class Server:
    """`labvirt class serve` in its own process; stop() ends it (by its PID) and waits."""

    def __init__(self, *extra: str):
        env = dict(os.environ, LABVIRT_LOCK_WAIT="60")
        self.proc = subprocess.Popen([sys.executable, "-m", "labvirt", "class", "serve", "--listen", "127.0.0.1:0",
                                      "-C", LAB, "-c", "sim:///big", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     stdin=subprocess.DEVNULL)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True).start()
        self.url = self.token = None
        deadline = time.monotonic() + 60
        while self.token is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            m = re.search(r"(http://127\.0\.0\.1:\d+/)#token=([\w-]+)", line)
            if m:
                self.url, self.token = m.groups()
        if self.token is None:
            self.stop()
            raise AssertionError(f"the server did not start: {self.proc.stderr.read()[-2000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def served(class_of_30, state_dir, chromium):
    """This test's copy of the class, its server, and a browser: (server, browser). Both stopped after."""
    shutil.copytree(class_of_30, state_dir, dirs_exist_ok=True)
    path, sync_playwright = chromium
    server = Server()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=path, headless=True)
            try:
                yield server, browser
            finally:
                browser.close()
    finally:
        server.stop()


def open_page(browser, url, width=1400):
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(url)
    return page


def expect(locator):
    from playwright.sync_api import expect as pw_expect     # waits without eval (the page's CSP forbids it)

    return pw_expect(locator)


def node_states(page, student):
    return page.locator(f"#row-{student} td.node .state").all_inner_texts()


def sim_domains():
    """Domain name -> (state, inactive XML), read from the simulated host's node file."""
    import libvirt

    conn = libvirt.open(f"test://{os.path.join(sim.sim_dir('big'), 'node.xml')}")
    try:
        return {d.name(): (d.state()[0], d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) for d in conn.listAllDomains()}
    finally:
        conn.close()


def wait_until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_page_shows_every_student_and_node(served):
    server, browser = served
    page = open_page(browser, server.url)
    assert page.locator("#rows tr").count() == 30
    assert page.locator("#rows tr th").all_inner_texts() == STUDENTS
    assert page.locator("thead th.node-col").all_inner_texts() == NODES
    for s in STUDENTS:
        cells = page.locator(f"#row-{s} td.node")
        assert cells.count() == 3
        assert node_states(page, s) == ["running"] * 3
        assert cells.nth(2).get_attribute("title").startswith(f"openstack3-{s}-controller")
    assert "30 students · 90 nodes" in page.inner_text("#summary")
    assert "sim:///big" in page.inner_text("#hosts") and "30 students" in page.inner_text("#hosts")
    assert page.locator("#rows button").count() == 0 or not page.locator("#rows button").first.is_visible()


def test_a_change_from_another_process_appears_without_reload(served):
    server, browser = served
    page = open_page(browser, server.url)
    page.wait_for_selector("#live:not(.off)")
    page.evaluate("window.__notReloaded = true")
    r = run_cli("down", "--student", "s05", "-C", LAB, "-c", "sim:///big")
    assert r.returncode == 0, r.stderr
    expect(page.locator("#row-s05 td.node.st-shutoff")).to_have_count(3, timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    assert node_states(page, "s04") == ["running"] * 3 and node_states(page, "s06") == ["running"] * 3
    assert "3 shutoff" in page.inner_text("#summary")


def test_a_revert_from_the_page_reverts_that_student_only(served):
    server, browser = served
    for s in ("s07", "s08"):                 # after the snapshot: both students' labs shut down
        assert run_cli("down", "--student", s, "-C", LAB, "-c", "sim:///big").returncode == 0
    page = open_page(browser, server.url + "#token=" + server.token)
    page.wait_for_selector("body.can-act")
    assert page.url == server.url            # the token left the address bar
    expect(page.locator("#row-s08 td.node.st-shutoff")).to_have_count(3, timeout=30_000)
    before = sim_domains()
    row = page.locator("#row-s07")
    assert row.locator("select.snapshot").input_value() == "pre-packstack"
    row.locator("button[data-action=revert]").click()
    expect(page.locator("#row-s07 td.node.st-running")).to_have_count(3, timeout=30_000)
    page.wait_for_selector("#row-s07 .job-done")
    assert "reverted to pre-packstack" in page.inner_text("#row-s07 td.job")
    wait_until(lambda: {sim_domains()[f"openstack3-s07-{n}"][0] for n in NODES} == {1}, what="saved revert")
    after = sim_domains()
    assert {after[f"openstack3-s08-{n}"][0] for n in NODES} == {5}                 # still shut off
    others = [d for d in before if "-s07-" not in d]
    assert len(others) == 87 and {d: before[d] for d in others} == {d: after[d] for d in others}
    assert node_states(page, "s08") == ["shutoff"] * 3


def test_an_action_without_the_token_is_refused(served):
    server, browser = served
    page = open_page(browser, server.url)
    page.wait_for_selector("#live:not(.off)")
    assert page.evaluate("document.body.classList.contains('read-only')")
    assert not page.locator("#row-s01 button[data-action=stop]").is_visible()
    assert not page.locator("#class-actions").is_visible()
    js = """async ([token]) => {
        const r = await fetch('/api/action', {method: 'POST', headers: {'Content-Type': 'application/json',
              'X-Labvirt-Token': token}, body: JSON.stringify({action: 'stop', students: ['s01']})});
        return [r.status, (await r.json()).error];
    }"""
    status, error = page.evaluate(js, [""])
    assert status == 403 and "actions need the token" in error
    status, error = page.evaluate(js, ["not-the-token"])
    assert status == 403 and "actions need the token" in error
    # a page of another origin that knows the token: the browser's CORS check stops it before it is sent
    other = open_page(browser, server.url.replace("127.0.0.1", "localhost"))
    outcome = other.evaluate("""async ([url, token]) => {
        try {
            const r = await fetch(url + 'api/action', {method: 'POST', headers: {'Content-Type': 'application/json',
                  'X-Labvirt-Token': token}, body: JSON.stringify({action: 'stop', students: ['s01']})});
            return 'sent: ' + r.status;
        } catch (e) { return 'blocked'; }
    }""", [server.url, server.token])
    assert outcome == "blocked"
    # the token form refuses a wrong token and stays read-only
    page.fill("#token", "not-the-token")
    page.click("#token-form button")
    page.wait_for_selector("#messages p.bad")
    assert "actions need the token" in page.inner_text("#messages")
    assert page.evaluate("document.body.classList.contains('read-only')")
    time.sleep(1)
    assert node_states(page, "s01") == ["running"] * 3
    assert {s[0] for d, s in sim_domains().items() if "-s01-" in d} == {1}
    assert page.inner_text("#row-s01 td.job") == ""


def test_a_second_action_on_a_busy_student_is_refused(served):
    server, browser = served
    page = open_page(browser, server.url + "#token=" + server.token)
    page.wait_for_selector("body.can-act")
    page.on("dialog", lambda d: d.accept())          # "Rebuild throws the disks ... away?"
    with sim.locked(sim.sim_dir("big")):              # another process holds the host: the rebuild waits
        page.locator("#row-s10 button[data-action=rebuild]").click()
        page.wait_for_selector("#row-s10 .job-running")
        assert "rebuild" in page.inner_text("#row-s10 td.job")
        page.locator("#row-s10 button[data-action=revert]").click()
        page.wait_for_selector("#messages p.bad")
        assert "refused for s10: s10 is busy: rebuild is running" in page.inner_text("#messages")
        page.locator("#row-s11 button[data-action=stop]").click()    # another student: not refused
        page.wait_for_selector("#row-s11 .job-queued, #row-s11 .job-running")
    page.wait_for_selector("#row-s10 .job-done")
    assert "rebuilt" in page.inner_text("#row-s10 td.job")
    expect(page.locator("#row-s11 td.node.st-shutoff")).to_have_count(3, timeout=30_000)
