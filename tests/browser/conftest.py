"""Browser-test fixtures: one real `deltaboard up` per session and Debian's Chromium through Playwright.

`server` starts `.venv/bin/deltaboard up --port <free> --workers 1 --data-dir <tmp>` (its own Redis) and
stops it with SIGINT at the end; `page` is a 1280×800 page that records console errors and page errors
and fails the test if any appear that the test did not expect (`page.expect_console_errors(pattern)`).
Nothing here skips: a missing Chromium or a server that does not come up is an error.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS

from app.launcher import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"


class Server:
    """The running service: its base URL and a tiny JSON client for test set-up and checks."""

    def __init__(self, base: str, proc: subprocess.Popen, log: Path, token: str | None = None):
        self.base, self.proc, self.log, self.token = base, proc, log, token

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as res:
            text = res.read()
            return json.loads(text) if text else None

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, body=None):
        return self.request("POST", path, {} if body is None else body)

    def create_run(self, spec: dict) -> dict:
        return self.post("/api/runs", spec)

    def wait_status(self, run_id: str, statuses: set[str], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/api/runs/{run_id}")
            if run["status"] in statuses:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {run['status']}, wanted {statuses}")
            time.sleep(0.2)

    def cancel_active(self) -> list[str]:
        """Cancel every queued, running or paused run (so a failed test cannot leave the one worker
        blocked on a paused run and starve the next tests). Returns the ids it canceled."""
        ids = []
        for status in ("paused", "running", "queued"):
            for run in self.get(f"/api/runs?status={status}&limit=100")["runs"]:
                with contextlib.suppress(urllib.error.HTTPError):  # it may have ended meanwhile
                    self.post(f"/api/runs/{run['id']}/cancel")
                    ids.append(run["id"])
        return ids

    def events(self, run_id: str) -> list[dict]:
        out, after = [], 0
        while True:
            page = self.get(f"/api/runs/{run_id}/events?after={after}&limit=1000")
            out += page
            if len(page) < 1000:
                return out
            after = page[-1]["seq"]


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path, workers: int, token: str | None) -> None:
    deadline = time.monotonic() + 90
    last = None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"deltaboard up exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            req = urllib.request.Request(base + "/api/health", headers=headers)
            with urllib.request.urlopen(req, timeout=2) as res:
                health = json.loads(res.read())
                if health.get("workers", 0) >= workers:
                    return
                last = health
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
        time.sleep(0.3)
    raise RuntimeError(f"deltaboard up did not become healthy ({last}):\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def deltaboard(command: list[str], workers: int, token: str | None = None):
    """`deltaboard <command>` on a free port, yielded as a Server once healthy; stopped with SIGINT."""
    exe = ROOT / ".venv" / "bin" / "deltaboard"
    if not exe.exists():
        exe = Path(sys.executable).parent / "deltaboard"
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="deltaboard-browser-")
    log = Path(data_dir) / "server.log"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("DELTABOARD_REDIS_URL", None)
    env.pop("DELTABOARD_API_TOKEN", None)
    if token:
        env["DELTABOARD_API_TOKEN"] = token
    args = [*command, "--host", "127.0.0.1", "--port", str(port)]
    if command[0] == "up":
        args += ["--workers", str(workers), "--data-dir", data_dir]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log, workers, token)
        yield Server(base, proc, log, token)
    finally:
        if proc.poll() is None:
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            if time.monotonic() - started > 10:  # say so: a slow stop is a bug worth seeing
                print(
                    f"deltaboard took {time.monotonic() - started:.0f} s to stop:\n{log.read_text()[-2000:]}"
                )
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    """A real `deltaboard up --workers 1` for the whole session."""
    with deltaboard(["up"], workers=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def token_server(redis_url):
    """`deltaboard serve` with an API token on the session's private Redis, no worker (runs stay queued).
    (`serve`, not `up`: `up` probes its API's /api/health without the token.)"""
    with deltaboard(["serve", "--redis-url", redis_url], workers=0, token="s3cret-token") as srv:
        yield srv


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (make chromium), never `playwright install`"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


PAGE_STATE_JS = """() => {
  const d = window.__deltaboard;
  if (!d) return null;
  const text = (id) => document.querySelector(`[data-testid="${id}"]`)?.textContent ?? null;
  return {
    hash: location.hash, status: text("run-status"), runMsg: text("run-msg"), model: d.model(),
    lastStep: d.lastStep()?.step ?? null, stream: d.streamStats(), boundaryLabel: d.boundaryLabel(),
    boundaryPoints: d.boundaryPoints(), points: text("boundary-points"), caption: text("boundary-caption"),
  };
}"""


def _page(browser, base: str, request):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    expected: list[re.Pattern] = []
    log: list[str] = []  # every console message, printed when the test fails
    pg.on("console", lambda m: log.append(f"{time.strftime('%X')} {m.type}: {m.text}"))
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.on("dialog", lambda d: d.accept())  # confirm() on delete
    pg.expect_console_errors = lambda pattern: expected.append(re.compile(pattern))
    pg.console_errors = errors
    pg.base = base
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        with contextlib.suppress(Exception):
            print("page state at failure:", json.dumps(pg.evaluate(PAGE_STATE_JS), default=str))
        print("console:", *log[-60:], sep="\n  ")
    context.close()
    unexpected = [e for e in errors if not any(p.search(e) for p in expected)]
    assert unexpected == [], f"errors in the page: {unexpected}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep the call phase's report on the item, so fixtures can tell in teardown whether the test failed."""
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture
def page(browser, server, request):
    """A fresh 1280×800 page; console and page errors fail the test unless expected. Afterwards the
    runs the test left active are canceled, so the session's one worker is free for the next test."""
    try:
        yield from _page(browser, server.base, request)
    finally:  # also when the page's own teardown fails the test
        server.cancel_active()


@pytest.fixture
def token_page(browser, token_server, request):
    """As `page`, on the token-protected server."""
    yield from _page(browser, token_server.base, request)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
