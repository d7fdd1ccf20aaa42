"""A worker SIGKILLed mid-run: its run ends `failed` with error.type "worker_lost" (reaped by the API or
by another worker once the run's lease expires), every event written before the death stays readable,
and RQ does not run the job again. Workers here use a 1 s lease so nothing waits for the real 30 s."""

import signal

import pytest
from fastapi.testclient import TestClient
from service_support import all_events, create_run, long_spec, tiny_spec, wait_for, wait_status

from app.main import create_app
from app.settings import Settings

LEASE = {"lease_seconds": 1}


def kill_mid_run(client, start_worker, **worker_env):
    """Start a worker, let it train a long run for a while, SIGKILL it; (run id, events before)."""
    worker = start_worker(**LEASE, **worker_env)
    run = create_run(client, long_spec(telemetry={"every_steps": 50, "histogram_bins": 5}))
    wait_status(client, run["id"], "running")
    before = wait_for(lambda: (e := all_events(client, run["id"])) and len(e) >= 6 and e, what="some events")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return run["id"], before


def assert_lost(client, run_id: str, before: list[dict]) -> None:
    run = wait_status(client, run_id, ["failed", "finished", "canceled"])
    assert run["status"] == "failed"
    assert run["error"]["type"] == "worker_lost"
    assert run["finished_at"] is not None
    events = all_events(client, run_id)
    assert events[: len(before)] == before  # everything written before the death is still there
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "status" and events[-1]["status"] == "failed"
    assert events[-1]["error"]["type"] == "worker_lost"


def test_sigkilled_worker_run_is_reaped_by_the_api(client, start_worker, work):
    run_id, before = kill_mid_run(client, start_worker)
    assert_lost(client, run_id, before)
    final = all_events(client, run_id)
    # RQ does not hand the job to another worker; a new run still trains normally
    start_worker(**LEASE)
    nxt = create_run(client, tiny_spec())
    wait_status(client, nxt["id"], "finished")
    assert all_events(client, run_id) == final
    assert client.get(f"/api/runs/{run_id}").json()["status"] == "failed"


@pytest.fixture
def client_without_reaper(redis_conn, redis_url):
    with TestClient(create_app(Settings(redis_url=redis_url, reaper_interval=3600))) as c:
        yield c


def test_sigkilled_worker_run_is_reaped_by_another_worker(client_without_reaper, start_worker):
    client = client_without_reaper
    client.get("/api/health")  # the API's reaper ran once at startup, before the run existed
    run_id, before = kill_mid_run(client, start_worker, reaper_interval=3600)
    start_worker(**LEASE, reaper_interval=0.2)
    assert_lost(client, run_id, before)


def test_a_stopped_worker_ends_its_run_and_exits(client, start_worker):
    worker = start_worker(**LEASE)
    run = create_run(client, long_spec())
    wait_status(client, run["id"], "running")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    run = client.get(f"/api/runs/{run['id']}").json()
    assert run["status"] == "failed"
    assert run["error"] == {"type": "worker_lost", "message": "the worker was shut down before the run ended"}
