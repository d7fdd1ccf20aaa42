"""Helpers for the service tests (imported by tests/service/conftest.py and the test modules)."""

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from app.launcher import free_port, redis_argv

__all__ = ["free_port"]  # re-exported for the tests

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # s a helper waits for a state before the test fails (never asserted as a time)


def tiny_spec(**overrides) -> dict:
    """A spec that trains in a fraction of a second."""
    spec = {
        "name": "tiny",
        "dataset": {"name": "xor", "samples": 40, "noise": 0.0, "test_fraction": 0.25, "seed": 1},
        "layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "epochs": 3,
        "batch_size": 10,
        "telemetry": {"every_steps": 1, "histogram_bins": 5},
    }
    spec.update(overrides)
    return spec


def long_spec(**overrides) -> dict:
    """A spec that trains for minutes unless stopped (big epochs of single-example minibatches)."""
    spec = {
        "dataset": {"name": "circle", "samples": 100_000, "test_fraction": 0.0, "seed": 2},
        "epochs": 100,
        "batch_size": 1,
        "telemetry": {"every_steps": 1000, "histogram_bins": 5},
    }
    return tiny_spec(**(spec | overrides))


def wait_for(predicate: Callable[[], object], timeout: float = WAIT, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def create_run(client, spec: dict | None = None) -> dict:
    r = client.post("/api/runs", json=spec or tiny_spec())
    assert r.status_code == 201, r.text
    return r.json()


def wait_status(client, run_id: str, statuses, timeout: float = WAIT) -> dict:
    """The run once its status is one of `statuses` (a string or a collection)."""
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)

    def check():
        run = client.get(f"/api/runs/{run_id}").json()
        return run if run.get("status") in wanted else None

    return wait_for(check, timeout, f"run {run_id} to be {sorted(wanted)}")


def all_events(client, run_id: str) -> list[dict]:
    events: list[dict] = []
    while True:
        page = client.get(f"/api/runs/{run_id}/events", params={"after": len(events), "limit": 1000})
        assert page.status_code == 200, page.text
        if not page.json():
            return events
        events += page.json()


def start_redis_server(port: int, data_dir: Path) -> subprocess.Popen:
    """A private redis-server with AOF on (so its data survives a restart), answering on `port`."""
    proc = subprocess.Popen(
        redis_argv(port, data_dir, persistent=True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return proc.poll() is not None  # gave up: let the caller see the exit

    wait_for(answers, 10, f"redis-server on port {port}")
    assert proc.poll() is None, f"redis-server on port {port} exited with {proc.returncode}"
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM `proc` if it still runs; SIGKILL it if it has not exited after `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
