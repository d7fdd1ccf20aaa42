"""Controls (pause, step n, resume, cancel) on runs trained by a real `deltaboard worker` process,
the 409s for controls in the wrong state, deleting a run while a worker trains it, and the live
weights (GET /model of a running or paused run, the snapshot after each `/step`)."""

import io

import httpx
import numpy as np
from service_support import all_events, create_run, long_spec, tiny_spec, wait_for, wait_status

from worker import store


def status_events(events: list[dict]) -> list[str]:
    return [e["status"] for e in events if e["type"] == "status"]


def wait_paused_again(client, run_id: str, statuses: int) -> list[dict]:
    """The run's events once it has had `statuses` status events, the last one `paused`."""

    def check():
        events = all_events(client, run_id)
        seen = status_events(events)
        return events if len(seen) == statuses and seen[-1] == "paused" else None

    return wait_for(check, what=f"run {run_id} paused after {statuses} status events")


def test_pause_step_resume_cancel(client, start_worker):
    start_worker()
    run = create_run(client, long_spec())
    wait_status(client, run["id"], "running")

    assert client.post(f"/api/runs/{run['id']}/pause").status_code == 200
    paused = wait_status(client, run["id"], "paused")
    before = all_events(client, run["id"])
    assert status_events(before) == ["queued", "running", "paused"]
    assert all_events(client, run["id"]) == before  # nothing happens while paused

    r = client.post(f"/api/runs/{run['id']}/step", json={"steps": 3})
    assert r.status_code == 200, r.text
    events = wait_paused_again(client, run["id"], 5)
    stepped = events[len(before) :]
    assert [e["type"] for e in stepped] == ["status", "step", "step", "step", "status"]
    done_steps = paused["progress"]["step"]
    assert [e["step"] for e in stepped[1:4]] == [done_steps + 1, done_steps + 2, done_steps + 3]
    assert client.get(f"/api/runs/{run['id']}").json()["progress"]["step"] == done_steps + 3

    assert client.post(f"/api/runs/{run['id']}/step").status_code == 200  # default: one step
    events = wait_paused_again(client, run["id"], 7)
    assert [e["type"] for e in events[-3:]] == ["status", "step", "status"]
    assert events[-2]["step"] == done_steps + 4

    assert client.post(f"/api/runs/{run['id']}/resume").status_code == 200
    wait_status(client, run["id"], "running")
    r = client.post(f"/api/runs/{run['id']}/cancel")
    assert r.status_code == 200
    done = wait_status(client, run["id"], "canceled")
    events = all_events(client, run["id"])
    assert status_events(events) == [
        "queued",
        "running",
        "paused",
        "running",
        "paused",
        "running",
        "paused",
        "running",
        "canceled",
    ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # canceled in the middle of the first epoch (100 000 one-example minibatches)
    assert done["progress"]["epoch"] == 1 and done["progress"]["step"] < 100_000
    assert not any(e["type"] == "epoch" for e in events)
    model = client.get(f"/api/runs/{run['id']}/model")
    assert model.status_code == 200  # the weights as they were when canceled
    with np.load(io.BytesIO(model.content)) as npz:
        assert npz["W1"].shape == (4, 2)
    r = client.post(f"/api/runs/{run['id']}/cancel")
    assert r.status_code == 409 and "already ended" in r.json()["detail"]


def test_controls_in_the_wrong_state_are_409(client):
    run = create_run(client)  # no worker: it stays queued
    for op, body in (("pause", None), ("resume", None), ("step", {"steps": 2})):
        r = client.post(f"/api/runs/{run['id']}/{op}", json=body)
        assert r.status_code == 409, op
        assert "queued" in r.json()["detail"]
    assert client.post(f"/api/runs/{run['id']}/step", json={"steps": 0}).status_code == 422
    assert client.get(f"/api/runs/{run['id']}").json()["status"] == "queued"


def test_cancel_of_a_queued_run_ends_it_at_once_and_takes_it_off_the_queue(
    client, work, redis_conn, settings
):
    run = create_run(client)
    r = client.post(f"/api/runs/{run['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "canceled" and r.json()["finished_at"] is not None
    assert redis_conn.llen(f"rq:queue:{settings.queue_name}") == 0
    assert work() is False
    assert status_events(all_events(client, run["id"])) == ["queued", "canceled"]
    for op in ("pause", "resume", "step", "cancel"):
        assert client.post(f"/api/runs/{run['id']}/{op}").status_code == 409


def test_a_run_canceled_after_a_worker_took_its_job_never_starts(client, work, redis_conn):
    run = create_run(client)
    # as if the API canceled it between the worker's dequeue and its start
    keys, argv = store.transition_args(run["id"], "canceled", ("queued",))
    redis_conn.register_script(store.TRANSITION_LUA)(keys=keys, args=argv)
    redis_conn.rpush(f"rq:queue:{client.app.state.settings.queue_name}", run["id"])
    work()
    run = client.get(f"/api/runs/{run['id']}").json()
    assert run["status"] == "canceled" and run["started_at"] is None


def test_health_counts_live_workers(client, start_worker):
    assert client.get("/api/health").json()["workers"] == 0
    start_worker()
    start_worker()
    wait_for(lambda: client.get("/api/health").json()["workers"] == 2, what="two workers")


def test_delete_of_a_running_run_stops_its_worker(client, start_worker, redis_conn):
    start_worker()
    run = create_run(client, long_spec())
    wait_status(client, run["id"], "running")
    assert client.delete(f"/api/runs/{run['id']}").status_code == 204
    assert client.get(f"/api/runs/{run['id']}").status_code == 404
    # the same worker is free again at once, and wrote nothing more for the deleted run
    nxt = create_run(client, tiny_spec())
    wait_status(client, nxt["id"], "finished")
    assert (
        redis_conn.exists(store.run_key(run["id"]), store.events_key(run["id"]), store.model_key(run["id"]))
        == 0
    )


def test_a_real_server_and_worker_process_train_a_run(serve, start_worker):
    base = serve()
    start_worker()
    with httpx.Client(base_url=base) as http:
        run = create_run(http, tiny_spec())
        run = wait_status(http, run["id"], ["finished", "failed", "canceled"])
        assert run["status"] == "finished"
        events = all_events(http, run["id"])
        assert [e["seq"] for e in events] == list(range(1, run["last_seq"] + 1))
        with np.load(io.BytesIO(http.get(f"/api/runs/{run['id']}/model").content)) as npz:
            assert sorted(npz.files) == ["W1", "W2", "b1", "b2"]
        assert http.get("/api/health").json() == {"status": "ok", "redis": "ok", "workers": 1}


def model_of(client, run_id: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    r = client.get(f"/api/runs/{run_id}/model")
    assert r.status_code == 200, r.text
    with np.load(io.BytesIO(r.content), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}, r.headers


def forward(arrays: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """long_spec's net (tanh, then sigmoid) on the stored weights."""
    a1 = np.tanh(X @ arrays["W1"].T + arrays["b1"])
    return 1 / (1 + np.exp(-(a1 @ arrays["W2"].T + arrays["b2"])))


def test_paused_run_serves_the_weights_of_its_step_and_predict_uses_them(client, start_worker, redis_conn):
    start_worker()
    run = create_run(client, long_spec())
    wait_status(client, run["id"], "running")
    _, headers = model_of(client, run["id"])  # a running run has weights to show from its start
    assert headers["x-deltaboard-final"] == "false" and int(headers["x-deltaboard-step"]) >= 0

    assert client.post(f"/api/runs/{run['id']}/pause").status_code == 200
    paused = wait_status(client, run["id"], "paused")
    n = paused["progress"]["step"]
    arrays, headers = model_of(client, run["id"])
    assert (headers["x-deltaboard-step"], headers["x-deltaboard-epoch"]) == (str(n), "1")
    assert (headers["x-deltaboard-status"], headers["x-deltaboard-final"]) == ("paused", "false")
    X = np.array([[0.5, -0.5], [-0.3, -0.8], [0.9, 0.1]])
    r = client.post(f"/api/runs/{run['id']}/predict", json={"inputs": X.tolist()})
    assert r.status_code == 200 and r.headers["x-deltaboard-step"] == str(n)
    np.testing.assert_allclose(r.json()["outputs"], forward(arrays, X), rtol=1e-12)

    for k in (3, 1):
        assert client.post(f"/api/runs/{run['id']}/step", json={"steps": k}).status_code == 200
        n += k
        wait_for(
            lambda want=n: (
                (p := client.get(f"/api/runs/{run['id']}").json())["status"] == "paused"
                and p["progress"]["step"] == want
            ),
            what=f"run paused again at step {n}",
        )
        stepped, headers = model_of(client, run["id"])
        assert headers["x-deltaboard-step"] == str(n)  # exactly the paused step's weights
        assert not np.array_equal(stepped["W1"], arrays["W1"])  # ... which the steps changed
        r = client.post(f"/api/runs/{run['id']}/predict", json={"inputs": X.tolist()})
        np.testing.assert_allclose(r.json()["outputs"], forward(stepped, X), rtol=1e-12)
        arrays = stepped

    assert client.delete(f"/api/runs/{run['id']}").status_code == 204
    assert client.get(f"/api/runs/{run['id']}/model").status_code == 404
    assert redis_conn.exists(store.model_key(run["id"]), store.run_key(run["id"])) == 0
    nxt = create_run(client, tiny_spec())  # the worker moved on and wrote nothing for the deleted run
    wait_status(client, nxt["id"], "finished")
    assert redis_conn.exists(store.model_key(run["id"]), store.run_key(run["id"])) == 0


def test_snapshot_of_a_running_run_advances(client, start_worker):
    start_worker()
    run = create_run(client, long_spec())
    wait_status(client, run["id"], "running")
    _, first = model_of(client, run["id"])
    # A new snapshot every couple of seconds while it runs.
    later = wait_for(
        lambda: (
            (h := model_of(client, run["id"])[1])["x-deltaboard-step"] != first["x-deltaboard-step"] and h
        ),
        what="a newer snapshot",
    )
    assert int(later["x-deltaboard-step"]) > int(first["x-deltaboard-step"])
    assert later["x-deltaboard-status"] == "running" and later["etag"] != first["etag"]
    client.post(f"/api/runs/{run['id']}/cancel")
    done = wait_status(client, run["id"], "canceled")
    _, final = model_of(client, run["id"])
    assert final["x-deltaboard-final"] == "true"
    assert final["x-deltaboard-step"] == str(done["progress"]["step"])
    assert int(later["x-deltaboard-step"]) <= done["progress"]["step"]
