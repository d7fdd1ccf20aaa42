"""Redis stopped under a running API: every endpoint answers 503 with a JSON detail (no stack trace),
and the API recovers by itself when Redis is back (AOF keeps the runs across the Redis restart)."""

import pytest
from fastapi.testclient import TestClient
from service_support import create_run, free_port, start_redis_server, tiny_spec, wait_for

from app.main import create_app
from app.settings import Settings


@pytest.fixture
def private_redis(tmp_path):
    """(start, stop) of a redis-server of this test's own, same port and data folder each time."""
    port = free_port()
    procs = []

    def start() -> None:
        procs.append(start_redis_server(port, tmp_path))

    def stop() -> None:
        procs[-1].terminate()
        procs[-1].wait(timeout=10)

    start()
    yield f"redis://127.0.0.1:{port}/0", start, stop
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_api_answers_503_while_redis_is_down_and_recovers(private_redis):
    url, start, stop = private_redis
    with TestClient(create_app(Settings(redis_url=url, reaper_interval=0.2))) as client:
        run = create_run(client, tiny_spec())
        stop()

        r = client.get("/api/health")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and "Redis" in r.json()["detail"]
        calls = [
            ("get", "/api/runs", None),
            ("get", f"/api/runs/{run['id']}", None),
            ("get", f"/api/runs/{run['id']}/events", None),
            ("post", f"/api/runs/{run['id']}/pause", None),
            ("post", f"/api/runs/{run['id']}/cancel", None),
            ("delete", f"/api/runs/{run['id']}", None),
            ("post", "/api/runs", tiny_spec()),
            ("get", "/api/datasets", None),
        ]
        for method, path, body in calls:
            r = client.request(method, path, json=body)
            assert r.status_code == 503, (method, path, r.text)
            assert r.headers["content-type"] == "application/json"
            assert "Redis is unavailable" in r.json()["detail"]
        assert client.get("/api/limits").status_code == 200  # needs no Redis

        start()
        health = wait_for(lambda: (r := client.get("/api/health")).status_code == 200 and r.json())
        assert health == {"status": "ok", "redis": "ok", "workers": 0}
        again = client.get(f"/api/runs/{run['id']}").json()
        assert (again["id"], again["status"]) == (run["id"], "queued")
        assert [r["id"] for r in client.get("/api/runs").json()["runs"]] == [run["id"]]
        assert client.post("/api/runs", json=tiny_spec()).status_code == 201
