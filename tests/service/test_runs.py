"""The run lifecycle of contract §4 through the API, against a real Redis and an in-process RQ worker:
create -> queued (with queue positions) -> running -> finished, its events, model (and the guard on
writing it) and predictions;
every validation error path; 404s; delete; listing with cursor and status filter; the per-client limit."""

import io
import json
import zlib

import numpy as np
import pytest
from service_support import all_events, create_run, tiny_spec

from worker import store
from worker.nn.datasets import make_dataset
from worker.nn.limits import LIMITS
from worker.nn.spec import RunSpec
from worker.nn.training import Training


def queue_length(redis_conn, settings) -> int:
    return redis_conn.llen(f"rq:queue:{settings.queue_name}")


def test_run_goes_from_queued_to_finished_with_its_events(client, work, redis_conn, settings):
    first = create_run(client, tiny_spec())
    second = create_run(client, tiny_spec(seed=1))
    assert (first["status"], first["queue_position"]) == ("queued", 1)
    assert (second["status"], second["queue_position"]) == ("queued", 2)
    assert first["spec"]["loss"] == "binary_cross_entropy"  # defaults filled in
    assert first["spec"]["optimizer"] == {
        "name": "sgd",
        "learning_rate": 0.1,
        "momentum": 0.0,
        "nesterov": False,
    }
    assert first["progress"] == {"epoch": 0, "epochs": 3, "step": 0, "steps": 9}
    assert first["started_at"] is None and first["error"] is None and first["model"] is None
    assert queue_length(redis_conn, settings) == 2

    assert work() is True

    run = client.get(f"/api/runs/{first['id']}").json()
    assert run["status"] == "finished"
    assert run["queue_position"] is None
    assert run["progress"] == {"epoch": 3, "epochs": 3, "step": 9, "steps": 9}
    assert 0 < run["metrics"]["train_loss"] < 5 and 0 <= run["metrics"]["test_accuracy"] <= 1
    assert run["created_at"] <= run["started_at"] <= run["finished_at"]
    events = all_events(client, run["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert run["last_seq"] == len(events)
    assert {e["run_id"] for e in events} == {run["id"]}
    statuses = [e["status"] for e in events if e["type"] == "status"]
    assert statuses == ["queued", "running", "finished"]
    assert events[0]["status"] == "queued" and events[-1]["status"] == "finished"
    assert sum(e["type"] == "step" for e in events) == 9  # every_steps = 1
    epochs = [e for e in events if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert epochs[-1]["train_loss"] == run["metrics"]["train_loss"]
    step = next(e for e in events if e["type"] == "step")
    assert [layer["layer"] for layer in step["layers"]] == [1, 2]
    assert len(step["layers"][0]["delta"]["unit_mean_abs"]) == 4
    assert client.get(f"/api/runs/{second['id']}").json()["status"] == "finished"


def test_events_page_with_after_and_limit(client, work):
    run = create_run(client)
    work()
    page = client.get(f"/api/runs/{run['id']}/events", params={"after": 3, "limit": 2}).json()
    assert [e["seq"] for e in page] == [4, 5]
    everything = client.get(f"/api/runs/{run['id']}/events").json()
    last = everything[-1]["seq"]
    assert client.get(f"/api/runs/{run['id']}/events", params={"after": last}).json() == []
    assert client.get(f"/api/runs/{run['id']}/events", params={"after": -1}).status_code == 422


def test_model_npz_loads_and_matches_predict(client, work):
    run = create_run(
        client, tiny_spec(layers=[{"units": 5, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}])
    )
    work()
    ref = client.get(f"/api/runs/{run['id']}").json()["model"]
    assert ref["step"] == 9 and ref["epoch"] == 3 and ref["version"] >= 2  # initial, then final weights
    r = client.get(f"/api/runs/{run['id']}/model")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["X-Deltaboard-Step"] == str(ref["step"])
    with np.load(io.BytesIO(r.content), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert sorted(arrays) == ["W1", "W2", "b1", "b2"]
    assert arrays["W1"].shape == (5, 2) and arrays["b1"].shape == (5,)
    assert arrays["W2"].shape == (1, 5) and arrays["b2"].shape == (1,)
    X = np.array([[0.5, -0.5], [-0.3, -0.8], [0.9, 0.1]])
    a1 = np.maximum(X @ arrays["W1"].T + arrays["b1"], 0)
    expected = 1 / (1 + np.exp(-(a1 @ arrays["W2"].T + arrays["b2"])))
    r = client.post(f"/api/runs/{run['id']}/predict", json={"inputs": X.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"], expected, rtol=1e-12)


def test_predict_rejects_rows_of_the_wrong_size(client, work):
    run = create_run(client)
    work()
    r = client.post(f"/api/runs/{run['id']}/predict", json={"inputs": [[1.0, 2.0], [1.0, 2.0, 3.0]]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "inputs", 1]


def test_model_of_a_queued_run_is_a_404_until_weights_are_stored(client):
    run = create_run(client)
    r = client.get(f"/api/runs/{run['id']}/model")
    assert r.status_code == 404
    assert "queued" in r.json()["detail"] and "no weights stored yet" in r.json()["detail"]
    r = client.post(f"/api/runs/{run['id']}/predict", json={"inputs": [[0.0, 0.0]]})
    assert r.status_code == 404


def test_final_model_of_a_finished_run_is_its_last_weights_with_their_step(client, work):
    run = create_run(client, tiny_spec(epochs=4))
    work()
    run = client.get(f"/api/runs/{run['id']}").json()
    assert run["status"] == "finished"
    r = client.get(f"/api/runs/{run['id']}/model")
    assert r.status_code == 200
    assert r.headers["x-deltaboard-step"] == str(run["progress"]["steps"]) == "12"
    assert r.headers["x-deltaboard-epoch"] == "4"
    assert (r.headers["x-deltaboard-final"], r.headers["x-deltaboard-status"]) == ("true", "finished")
    with np.load(io.BytesIO(r.content), allow_pickle=False) as npz:
        stored = {name: npz[name] for name in npz.files}
    # The same seeded training replayed here ends with exactly these weights.
    spec = RunSpec.model_validate(run["spec"])
    training = Training(spec, make_dataset(spec.dataset))
    assert list(training.events())[-1]["status"] == "finished"
    for k, (W, b) in enumerate(zip(training.net.weights, training.net.biases, strict=True), start=1):
        np.testing.assert_array_equal(stored[f"W{k}"], W)
        np.testing.assert_array_equal(stored[f"b{k}"], b)
    p = client.post(f"/api/runs/{run['id']}/predict", json={"inputs": [[0.3, -0.2]]})
    assert p.headers["x-deltaboard-step"] == "12" and p.headers["x-deltaboard-final"] == "true"
    # The same version again: 304 without a body; the headers still say which weights.
    etag = r.headers["etag"]
    again = client.get(f"/api/runs/{run['id']}/model", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["x-deltaboard-step"]) == (304, b"", "12")
    other = client.get(f"/api/runs/{run['id']}/model", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.content == r.content


def test_snapshots_are_not_taken_per_minibatch(client, work, redis_conn, monkeypatch):
    from worker import jobs

    monkeypatch.setattr(jobs, "SNAPSHOT_INTERVAL", 1e9)  # no periodic snapshot during this run
    run = create_run(client, tiny_spec(epochs=20, telemetry={"every_steps": None}))
    work()
    assert client.get(f"/api/runs/{run['id']}").json()["progress"]["step"] == 60
    # The initial weights and the final ones: two writes for 60 minibatches.
    assert redis_conn.hget(store.run_key(run["id"]), "model_version") == b"2"


def test_save_model_script_never_writes_after_the_run_ended(client, work, redis_conn):
    run = create_run(client)
    work()
    save = redis_conn.register_script(store.SAVE_MODEL_LUA)
    key = store.run_key(run["id"])
    before = redis_conn.get(store.model_key(run["id"])), redis_conn.hgetall(key)
    assert before[0] is not None and redis_conn.hget(key, "status") == b"finished"
    keys, argv = store.save_model_args(run["id"], [np.zeros((4, 2))], [np.zeros(4)], 999, 99)
    assert save(keys=keys, args=argv) == 0
    assert (redis_conn.get(store.model_key(run["id"])), redis_conn.hgetall(key)) == before
    for status in ("failed", "canceled"):
        redis_conn.hset(key, "status", status)
        assert save(keys=keys, args=argv) == 0
    assert redis_conn.get(store.model_key(run["id"])) == before[0]
    # A deleted run is not brought back either.
    assert client.delete(f"/api/runs/{run['id']}").status_code == 204
    assert save(keys=keys, args=argv) == 0
    assert redis_conn.exists(store.model_key(run["id"]), key) == 0


def test_diverging_run_fails_with_diverged_and_has_no_model(client, work, redis_conn):
    spec = tiny_spec(
        dataset={"name": "plane", "samples": 100, "noise": 0.0},
        layers=[{"units": 1, "activation": "linear"}],
        loss="mse",
        optimizer={"name": "sgd", "learning_rate": 90},
        epochs=200,
    )
    run = create_run(client, spec)
    work()
    run = client.get(f"/api/runs/{run['id']}").json()
    assert run["status"] == "failed"
    assert run["error"]["type"] == "diverged"
    assert run["model"] is None  # the run record says there is nothing to fetch
    events = all_events(client, run["id"])
    assert events[-1]["status"] == "failed" and events[-1]["error"]["type"] == "diverged"
    r = client.get(f"/api/runs/{run['id']}/model")
    assert r.status_code == 404 and "failed" in r.json()["detail"]
    assert redis_conn.exists(store.model_key(run["id"])) == 0  # its snapshot was dropped


BAD_SPECS = [
    (
        {"layers": [{"units": 4}, {"units": 4}, {"units": 1, "activation": "swish"}]},
        ["body", "layers", 2, "activation"],
        "Input should be",
    ),
    (
        {"layers": [{"units": 4, "activation": "softmax"}, {"units": 1, "activation": "sigmoid"}]},
        ["body", "layers", 0, "activation"],
        "output layer only",
    ),
    (
        {"layers": [{"units": LIMITS.max_units + 1}, {"units": 1}]},
        ["body", "layers", 0, "units"],
        "less than",
    ),
    ({"layers": [{"units": 2}] * (LIMITS.max_layers + 1)}, ["body", "layers"], "at most"),
    (
        {"layers": [{"units": 4}, {"units": 2, "activation": "sigmoid"}]},
        ["body", "layers", 1, "units"],
        "needs 1 output unit",
    ),
    (
        {"layers": [{"units": 4096}, {"units": 4096}, {"units": 1, "activation": "sigmoid"}]},
        ["body", "layers"],
        "parameters, more than the limit",
    ),
    ({"epochs": LIMITS.max_epochs + 1}, ["body", "epochs"], "less than"),
    ({"epochs": 0}, ["body", "epochs"], "greater than"),
    ({"dataset": {"name": "xor", "samples": LIMITS.max_samples + 1}}, ["body", "dataset", "samples"], "less"),
    ({"dataset": {"name": "mnist"}}, ["body", "dataset", "name"], "unknown dataset"),
    ({"dataset": {"name": "upload:doesnotexist"}}, ["body", "dataset", "name"], "no uploaded dataset"),
    ({"loss": "hinge"}, ["body", "loss"], "Input should be"),
    (
        {"optimizer": {"name": "sgd", "learning_rate": -1}},
        ["body", "optimizer", "sgd", "learning_rate"],
        "greater",
    ),
    ({"batch_size": LIMITS.max_batch_size + 1}, ["body", "batch_size"], "less than"),
    ({"dtype": "float16"}, ["body", "dtype"], "Input should be"),
    ({"surprise": True}, ["body", "surprise"], "Extra inputs"),
]


@pytest.mark.parametrize(("change", "loc", "message"), BAD_SPECS)
def test_bad_spec_is_a_422_naming_the_field_and_nothing_is_queued(
    client, redis_conn, settings, change, loc, message
):
    r = client.post("/api/runs", json=tiny_spec(**change))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list)
    assert loc in [d["loc"] for d in detail]
    assert message in next(d["msg"] for d in detail if d["loc"] == loc)
    assert client.get("/api/runs").json() == {"runs": [], "next_cursor": None}
    assert queue_length(redis_conn, settings) == 0
    assert redis_conn.zcard(store.RUNS) == 0


def test_spec_without_layers_or_dataset_is_a_422(client):
    r = client.post("/api/runs", json={"name": "nothing"})
    assert r.status_code == 422
    locs = [d["loc"] for d in r.json()["detail"]]
    assert ["body", "layers"] in locs and ["body", "dataset"] in locs
    r = client.post("/api/runs", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("delete", ""),
        ("get", "/events"),
        ("get", "/model"),
        ("post", "/cancel"),
        ("post", "/pause"),
        ("post", "/resume"),
        ("post", "/step"),
    ],
)
@pytest.mark.parametrize("run_id", ["0123456789abcdef", "not:a-key", "x" * 200])
def test_unknown_run_is_a_404(client, method, path, run_id):
    r = client.request(method, f"/api/runs/{run_id}{path}")
    assert r.status_code == 404
    assert r.json() == {"detail": "Run not found"}


def test_predict_on_unknown_run_is_a_404(client):
    r = client.post("/api/runs/0123456789abcdef/predict", json={"inputs": [[1, 2]]})
    assert (r.status_code, r.json()) == (404, {"detail": "Run not found"})


def test_delete_removes_the_run_its_events_and_model(client, work, redis_conn):
    run = create_run(client)
    work()
    assert redis_conn.exists(store.model_key(run["id"])) == 1
    r = client.delete(f"/api/runs/{run['id']}")
    assert r.status_code == 204
    assert client.get(f"/api/runs/{run['id']}").status_code == 404
    assert client.get(f"/api/runs/{run['id']}/events").status_code == 404
    assert redis_conn.exists(*store.run_keys(run["id"])) == 0
    assert client.get("/api/runs").json()["runs"] == []
    assert client.delete(f"/api/runs/{run['id']}").status_code == 404


def test_delete_of_a_queued_run_takes_it_off_the_queue(client, work, redis_conn, settings):
    run = create_run(client)
    assert queue_length(redis_conn, settings) == 1
    assert client.delete(f"/api/runs/{run['id']}").status_code == 204
    assert queue_length(redis_conn, settings) == 0
    assert work() is False  # nothing left to run
    assert redis_conn.exists(*store.run_keys(run["id"])) == 0


def test_list_is_newest_first_and_pages_with_a_cursor(client):
    ids = [create_run(client)["id"] for _ in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/runs", params=params).json()
        seen += [run["id"] for run in page["runs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 3
    first = client.get("/api/runs", params={"limit": 5}).json()
    assert [run["queue_position"] for run in first["runs"]] == [5, 4, 3, 2, 1]
    assert first["next_cursor"] is None


def test_list_cursor_survives_deleting_the_run_it_points_at(client):
    ids = [create_run(client)["id"] for _ in range(4)]
    page = client.get("/api/runs", params={"limit": 2}).json()
    assert [r["id"] for r in page["runs"]] == [ids[3], ids[2]]
    client.delete(f"/api/runs/{ids[2]}")
    rest = client.get("/api/runs", params={"limit": 10, "cursor": page["next_cursor"]}).json()
    assert [r["id"] for r in rest["runs"]] == [ids[1], ids[0]]
    assert client.get("/api/runs", params={"cursor": "garbage"}).status_code == 422


def test_list_filters_by_status(client, work):
    done = [create_run(client)["id"] for _ in range(2)]
    work()
    queued = [create_run(client)["id"] for _ in range(3)]
    client.post(f"/api/runs/{queued[0]}/cancel")
    by_status = {
        status: [r["id"] for r in client.get("/api/runs", params={"status": status}).json()["runs"]]
        for status in ("finished", "queued", "canceled", "running")
    }
    assert by_status == {
        "finished": done[::-1],
        "queued": queued[:0:-1],
        "canceled": [queued[0]],
        "running": [],
    }
    page = client.get("/api/runs", params={"status": "queued", "limit": 1}).json()
    assert [r["id"] for r in page["runs"]] == [queued[2]]
    page = client.get(
        "/api/runs", params={"status": "queued", "limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [r["id"] for r in page["runs"]] == [queued[1]]
    assert client.get("/api/runs", params={"status": "sleeping"}).status_code == 422
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422


def test_too_many_unfinished_runs_per_client_is_a_429(client):
    limit = LIMITS.max_queued_runs_per_client
    ids = [create_run(client)["id"] for _ in range(limit)]
    r = client.post("/api/runs", json=tiny_spec())
    assert r.status_code == 429
    assert f"limit {limit}" in r.json()["detail"]
    assert len(client.get("/api/runs", params={"limit": 100}).json()["runs"]) == limit
    other = client.post("/api/runs", json=tiny_spec(), headers={"Authorization": "Bearer someone-else"})
    assert other.status_code == 201  # another client has its own allowance
    client.post(f"/api/runs/{ids[0]}/cancel")
    assert client.post("/api/runs", json=tiny_spec()).status_code == 201


def test_health_limits_and_openapi(client):
    assert client.get("/api/health").json() == {"status": "ok", "redis": "ok", "workers": 0}
    assert client.get("/api/limits").json() == LIMITS.model_dump()
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/health",
        "/api/limits",
        "/api/datasets",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/cancel",
        "/api/runs/{run_id}/pause",
        "/api/runs/{run_id}/resume",
        "/api/runs/{run_id}/step",
        "/api/runs/{run_id}/events",
        "/api/runs/{run_id}/model",
        "/api/runs/{run_id}/predict",
    ):
        assert path in paths
    model = paths["/api/runs/{run_id}/model"]["get"]["responses"]
    for header in ("X-Deltaboard-Step", "X-Deltaboard-Epoch", "X-Deltaboard-Final", "ETag"):
        assert header in model["200"]["headers"], header
    assert "409" not in model and "404" in model and "304" in model
    assert client.get("/docs").status_code == 200


def test_job_is_json_by_name_with_a_sized_timeout_and_nothing_expires(client, work, redis_conn, settings):
    small = create_run(client, tiny_spec())
    job = redis_conn.hgetall(f"rq:job:{small['id']}")
    func, _instance, args, kwargs = json.loads(zlib.decompress(job[b"data"]))  # JSON, not pickle
    assert (func, args, kwargs) == ("worker.jobs.train_run", [small["id"]], {})
    assert int(job[b"timeout"]) == settings.job_timeout_min
    assert int(job[b"result_ttl"]) == -1
    layers = [{"units": 100}, {"units": 1, "activation": "sigmoid"}]
    big = create_run(
        client, tiny_spec(dataset={"name": "xor", "samples": 100_000}, epochs=10_000, layers=layers)
    )
    assert int(redis_conn.hget(f"rq:job:{big['id']}", "timeout")) > 100 * settings.job_timeout_min
    client.post(f"/api/runs/{big['id']}/cancel")
    work()
    assert client.get(f"/api/runs/{small['id']}").json()["status"] == "finished"
    for key in [*store.run_keys(small["id"])[:2], store.model_key(small["id"]), f"rq:results:{small['id']}"]:
        assert redis_conn.ttl(key) == -1, key  # exists, and never expires


def test_data_returns_the_points_the_run_trains_on(client):
    from worker.nn.datasets import make_builtin

    spec = tiny_spec()
    run = create_run(client, spec)
    r = client.get(f"/api/runs/{run['id']}/data", params={"max_points": 30})
    assert r.status_code == 200, r.text
    data = r.json()
    d = spec["dataset"]
    expected = make_builtin(
        d["name"], d.get("samples", 400), d.get("noise", 0.0), d.get("test_fraction", 0.2), d.get("seed", 0)
    )
    assert data["task"] == "classification" and data["input_dim"] == 2
    assert len(data["train"]["X"]) + len(data["test"]["X"]) == 30
    n = len(data["train"]["X"])
    np.testing.assert_array_equal(data["train"]["X"], expected.X_train[:n])
    np.testing.assert_array_equal(data["train"]["y"], expected.y_train[:n])
    np.testing.assert_array_equal(data["test"]["X"], expected.X_test[: 30 - n])
    assert client.get("/api/runs/0123456789abcdef/data").status_code == 404
