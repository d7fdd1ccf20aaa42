"""`/api/datasets`: built-ins with their parameters; CSV uploads (good ones train, bad ones are 422s naming
the line, too large ones 413); specs referencing `upload:<id>` are checked against the upload's sizes."""

import io
import re

import numpy as np
import pytest
from service_support import all_events, create_run, tiny_spec

from worker.nn.datasets import BUILTIN
from worker.nn.limits import LIMITS


def csv_bytes(rows: int = 40, features: int = 3, header: bool = True, labels=(0, 1), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    lines = [",".join([f"x{j}" for j in range(features)] + ["label"])] if header else []
    for i in range(rows):
        x = rng.normal(size=features)
        lines.append(",".join([f"{v:.4f}" for v in x] + [str(labels[i % len(labels)])]))
    return ("\n".join(lines) + "\n").encode()


def upload(client, data: bytes, filename: str = "data.csv", **form):
    return client.post("/api/datasets", files={"file": (filename, data, "text/csv")}, data=form)


def test_builtin_datasets_are_listed_with_their_parameters(client):
    body = client.get("/api/datasets").json()
    assert [d["name"] for d in body["builtin"]] == list(BUILTIN)
    assert body["uploaded"] == []
    xor = next(d for d in body["builtin"] if d["name"] == "xor")
    assert (xor["task"], xor["input_dim"], xor["n_classes"]) == ("classification", 2, 2)
    assert xor["parameters"]["samples"] == {"default": 400, "minimum": 10, "maximum": LIMITS.max_samples}
    assert xor["parameters"]["test_fraction"] == {"default": 0.2, "minimum": 0, "maximum": 0.9}
    assert set(xor["parameters"]) == {"samples", "noise", "test_fraction", "seed"}
    plane = next(d for d in body["builtin"] if d["name"] == "plane")
    assert plane["task"] == "regression"


def test_upload_a_csv_and_train_on_it(client, work):
    r = upload(client, csv_bytes(), name="three features")
    assert r.status_code == 201, r.text
    ds = r.json()
    assert re.fullmatch(r"[0-9a-f]{16}", ds["id"])
    assert ds["spec_name"] == f"upload:{ds['id']}"
    assert (ds["name"], ds["task"], ds["input_dim"], ds["n_classes"], ds["rows"]) == (
        "three features",
        "classification",
        3,
        2,
        40,
    )
    assert client.get("/api/datasets").json()["uploaded"] == [ds]

    run = create_run(client, tiny_spec(dataset={"name": ds["spec_name"], "test_fraction": 0.25}))
    work()
    run = client.get(f"/api/runs/{run['id']}").json()
    assert run["status"] == "finished", run["error"]
    assert run["progress"]["steps"] == 3 * 3  # 30 training rows in batches of 10, 3 epochs
    events = all_events(client, run["id"])
    epochs = [e for e in events if e["type"] == "epoch"]
    assert len(epochs) == 3 and not any("boundary" in e for e in epochs)  # 3-D input: no boundary
    with np.load(io.BytesIO(client.get(f"/api/runs/{run['id']}/model").content)) as npz:
        assert npz["W1"].shape == (4, 3)


def test_upload_name_defaults_to_the_file_name_and_never_becomes_a_path(client):
    r = upload(client, csv_bytes(), filename="../../etc/passwd")
    assert r.status_code == 201
    assert re.fullmatch(r"[0-9a-f]{16}", r.json()["id"])
    assert r.json()["name"] == "../../etc/passwd"  # a label only


def test_regression_upload_and_task_override(client):
    r = upload(client, csv_bytes(labels=(0, 1, 2)), task="regression")
    assert r.status_code == 201
    assert (r.json()["task"], r.json()["target_dim"]) == ("regression", 1)
    spec = tiny_spec(dataset={"name": r.json()["spec_name"]})  # sigmoid + binary cross-entropy
    bad = client.post("/api/runs", json=spec)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "loss"]
    spec["layers"][-1]["activation"] = "linear"
    assert client.post("/api/runs", json=spec).status_code == 201


def test_spec_must_fit_the_uploaded_sizes(client, redis_conn, settings):
    three = upload(client, csv_bytes(labels=(0, 1, 2))).json()
    assert three["n_classes"] == 3
    spec = tiny_spec(
        dataset={"name": three["spec_name"]},
        layers=[{"units": 4, "activation": "tanh"}, {"units": 2, "activation": "softmax"}],
    )
    r = client.post("/api/runs", json=spec)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "layers", 1, "units"]
    assert "needs 3 output unit" in r.json()["detail"][0]["msg"]
    assert redis_conn.llen(f"rq:queue:{settings.queue_name}") == 0
    spec["layers"][1]["units"] = 3
    assert client.post("/api/runs", json=spec).status_code == 201


def test_parameter_limit_counts_the_real_input_size(client):
    layers = [{"units": 3000, "activation": "relu"}, {"units": 3000}, {"units": 1, "activation": "sigmoid"}]
    assert client.post("/api/runs", json=tiny_spec(layers=layers)).status_code == 201  # 2 inputs: 9.0 M
    wide = upload(client, csv_bytes(rows=10, features=500, header=False)).json()
    assert wide["input_dim"] == 500
    r = client.post("/api/runs", json=tiny_spec(dataset={"name": wide["spec_name"]}, layers=layers))
    assert r.status_code == 422  # 500 inputs: 10.5 M parameters
    assert r.json()["detail"][0]["loc"] == ["body", "layers"]
    assert "more than the limit" in r.json()["detail"][0]["msg"]


def test_unknown_upload_is_a_422_on_the_dataset_name(client):
    r = client.post("/api/runs", json=tiny_spec(dataset={"name": "upload:0123456789abcdef"}))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "dataset", "name"]


GOOD = csv_bytes(rows=12).decode().splitlines()  # header on line 1, data on lines 2..13

BAD_CSVS = [
    ("\n".join([*GOOD[:4], "0.1,abc,0.3,1", *GOOD[5:]]), 5, "not a number"),
    ("\n".join([*GOOD[:6], "0.1,0.2,1", *GOOD[7:]]), 7, "3 columns"),
    ("\n".join([*GOOD[:3], "0.1,,0.3,1", *GOOD[4:]]), 4, "empty cell"),
    ("\n".join([*GOOD[:2], "0.1,nan,0.3,1", *GOOD[3:]]), 3, "finite"),
    ("\n".join(GOOD[:4]), 4, "need at least 10"),
    ("", 1, "empty"),
    ("a,b\n" + "1,0\n" * 12, 2, "one class only"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_CSVS)
def test_bad_csv_is_a_422_naming_the_line(client, text, line, message):
    r = upload(client, text.encode())
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "file"]
    assert error["msg"].startswith(f"line {line}")
    assert message in error["msg"]
    assert error["ctx"]["line"] == line
    assert client.get("/api/datasets").json()["uploaded"] == []


def test_non_utf8_csv_is_a_422(client):
    r = upload(client, b"a,b\n1,\xff\n")
    assert r.status_code == 422
    assert "UTF-8" in r.json()["detail"][0]["msg"]


def test_upload_over_the_limit_is_a_413(client):
    r = upload(client, b"1,0\n" * (LIMITS.max_upload_bytes // 4 + 1))
    assert r.status_code == 413
    assert str(LIMITS.max_upload_bytes) in r.json()["detail"]
    assert client.get("/api/datasets").json()["uploaded"] == []


def test_upload_form_errors_are_422s(client):
    r = upload(client, csv_bytes(), task="clustering")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "task"]
    r = client.post("/api/datasets", data={"name": "no file"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]


def test_deleted_upload_fails_a_queued_run_with_a_dataset_error(client, work):
    ds = upload(client, csv_bytes()).json()
    run = create_run(client, tiny_spec(dataset={"name": ds["spec_name"]}))
    assert client.delete(f"/api/datasets/{ds['id']}").status_code == 204
    assert client.delete(f"/api/datasets/{ds['id']}").status_code == 404
    assert client.get("/api/datasets").json()["uploaded"] == []
    work()
    run = client.get(f"/api/runs/{run['id']}").json()
    assert run["status"] == "failed"
    assert run["error"]["type"] == "dataset" and ds["spec_name"] in run["error"]["message"]
    r = client.post("/api/runs", json=tiny_spec(dataset={"name": ds["spec_name"]}))
    assert r.status_code == 422
