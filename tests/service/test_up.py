"""`deltaboard up`: its own Redis (AOF in --data-dir), the API and N workers; runs survive a restart;
Ctrl-C (SIGINT) or SIGTERM stops everything it started, leaving no process behind."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from service_support import ROOT, free_port, stop_process, tiny_spec, wait_for

BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def children(pid: int) -> dict[int, str]:
    """The live child processes of `pid`: {pid: command line}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found[int(entry.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Up:
    def __init__(self, data_dir: Path, log: Path, workers: int = 1):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS and not k.startswith("DELTABOARD_")}
        argv = [sys.executable, "-m", "app.cli", "up", "--port", str(self.port), "--data-dir", str(data_dir)]
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "--workers", str(workers)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for(self.healthy, what="deltaboard up")
        wait_for(lambda: "deltaboard is up" in log.read_text(), what="the URL line")
        self.started = children(self.proc.pid)

    def healthy(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.base}/api/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int) -> str:
        self.proc.send_signal(sig)
        assert self.proc.wait(timeout=60) == 0, self.log.read_text()
        return self.log.read_text()


def wait_finished(base: str, run_id: str) -> dict:
    def done():
        run = httpx.get(f"{base}/api/runs/{run_id}").json()
        return run if run["status"] in ("finished", "failed", "canceled") else None

    return wait_for(done, what=f"run {run_id} to end")


@pytest.fixture
def start_up(tmp_path):
    """start_up(workers) -> Up on tmp_path/data; whatever is still running at teardown is stopped."""
    ups: list[Up] = []

    def start(workers: int) -> Up:
        ups.append(Up(tmp_path / "data", tmp_path / f"up{len(ups)}.log", workers))
        return ups[-1]

    yield start
    for up in ups:
        stop_process(up.proc, timeout=60)  # if killed, its children get SIGTERM (PR_SET_PDEATHSIG)


def test_up_runs_everything_keeps_runs_across_a_restart_and_leaves_nothing_behind(start_up, tmp_path):
    data_dir = tmp_path / "data"
    up = start_up(workers=1)
    kinds = sorted(
        "redis" if "redis-server" in cmd else "api" if " serve " in cmd else "worker"
        for cmd in up.started.values()
    )
    assert kinds == ["api", "redis", "worker"]
    assert wait_for(lambda: httpx.get(f"{up.base}/api/health").json()["workers"] == 1, what="one worker")
    assert "<title>deltaboard" in httpx.get(f"{up.base}/").text  # the dashboard is served

    created = httpx.post(f"{up.base}/api/runs", json=tiny_spec())
    assert created.status_code == 201, created.text
    run = wait_finished(up.base, created.json()["id"])
    assert run["status"] == "finished"
    events = httpx.get(f"{up.base}/api/runs/{run['id']}/events").json()

    output = up.stop(signal.SIGINT)
    assert f"deltaboard is up: http://127.0.0.1:{up.port}/" in output
    assert [pid for pid in up.started if alive(pid)] == []
    assert (data_dir / "appendonlydir").is_dir()

    again = start_up(workers=2)
    assert httpx.get(f"{again.base}/api/runs/{run['id']}").json() == run
    assert httpx.get(f"{again.base}/api/runs/{run['id']}/events").json() == events
    assert wait_for(lambda: httpx.get(f"{again.base}/api/health").json()["workers"] == 2, what="two workers")
    workers = [pid for pid, cmd in again.started.items() if " worker " in cmd + " "]
    assert len(workers) == 2
    for pid in workers:  # several workers on one machine: one BLAS thread each
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"OPENBLAS_NUM_THREADS=1" in environ and b"OMP_NUM_THREADS=1" in environ
    second = httpx.post(f"{again.base}/api/runs", json=tiny_spec(seed=3)).json()
    assert wait_finished(again.base, second["id"])["status"] == "finished"

    again.stop(signal.SIGTERM)
    assert [pid for pid in again.started if alive(pid)] == []
    assert children(again.proc.pid) == {}
