"""The event stream's schema (contract §5): every event type, every field with its type, seq 1, 2, 3..."""

import json
import math

import numpy as np
import pytest

from worker.nn.datasets import Dataset, DatasetInfo, make_dataset
from worker.nn.spec import RunSpec
from worker.nn.training import Training, stamp

NUM = (int, float)


def spec(**overrides) -> RunSpec:
    base = {
        "dataset": {"name": "xor", "samples": 60},
        "layers": [
            {"units": 5, "activation": "tanh"},
            {"units": 4, "activation": "relu"},
            {"units": 1, "activation": "sigmoid"},
        ],
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "epochs": 3,
        "batch_size": 8,
        "telemetry": {"every_steps": 2, "histogram_bins": 6},
    }
    return RunSpec.model_validate({**base, **overrides})


def run(s: RunSpec, data: Dataset | None = None, before_step=None) -> list[dict]:
    training = Training(s, data or make_dataset(s.dataset))
    return list(stamp(training.events(before_step), "run-1"))


# -- the schema checker ------------------------------------------------------------------------


def is_num(x, nullable: bool = False) -> bool:
    if x is None:
        return nullable
    return isinstance(x, NUM) and not isinstance(x, bool) and math.isfinite(x)


def keys(obj: dict, required: set[str], optional: set[str] = frozenset()) -> None:
    assert isinstance(obj, dict)
    assert required <= set(obj) <= required | optional, (sorted(obj), sorted(required))


def check_layer_stats(s: dict, k: int, L: int, units: int, activation: str, bins: int, null: bool) -> None:
    """`null`: numbers may be None (non-finite), as on the steps before a divergence."""
    keys(
        s,
        {
            "layer",
            "units",
            "activation",
            "delta",
            "grad_W_norm",
            "grad_b_norm",
            "W_norm",
            "update_ratio",
            "backprop_norm",
            "fprime",
        },
    )
    assert s["layer"] == k and s["units"] == units and s["activation"] == activation
    d = s["delta"]
    keys(d, {"rms", "mean_abs", "max_abs", "unit_mean_abs", "hist"})
    assert all(is_num(d[f], null) and (d[f] or 0) >= 0 for f in ("rms", "mean_abs", "max_abs"))
    assert isinstance(d["unit_mean_abs"], list) and len(d["unit_mean_abs"]) == units
    assert all(is_num(v, null) for v in d["unit_mean_abs"])
    keys(d["hist"], {"edges", "counts"})
    edges, counts = d["hist"]["edges"], d["hist"]["counts"]
    assert len(edges) == bins + 1 and all(is_num(e) for e in edges) and edges == sorted(edges)
    assert edges[0] == -edges[-1]  # signed values, symmetric range
    assert len(counts) == bins and all(type(c) is int and c >= 0 for c in counts)
    for f in ("grad_W_norm", "grad_b_norm", "W_norm", "update_ratio"):
        assert is_num(s[f], null) and (s[f] or 0) >= 0, f
    if k == L:
        assert s["backprop_norm"] is None
    else:
        assert is_num(s["backprop_norm"], null) and (s["backprop_norm"] or 0) >= 0
    keys(s["fprime"], {"mean", "zero_fraction", "saturated_fraction"})
    assert is_num(s["fprime"]["mean"], null)
    for f in ("zero_fraction", "saturated_fraction"):
        assert is_num(s["fprime"][f]) and 0 <= s["fprime"][f] <= 1


def check_events(events: list[dict], s: RunSpec, null: bool = False) -> dict[str, list[dict]]:
    """Check every event against contract §5; return them grouped by type. `null`: see check_layer_stats."""
    json.dumps(events, allow_nan=False)  # plain JSON, no NaN/inf
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    by_type: dict[str, list[dict]] = {}
    sizes = [layer.units for layer in s.layers]
    activations = [layer.activation for layer in s.layers]
    bins = s.telemetry.histogram_bins
    for e in events:
        assert list(e)[:4] == ["seq", "type", "run_id", "time"]
        assert e["run_id"] == "run-1" and is_num(e["time"]) and type(e["seq"]) is int
        by_type.setdefault(e["type"], []).append(e)
        if e["type"] == "status":
            keys(e, {"seq", "type", "run_id", "time", "status"}, {"error"})
            assert e["status"] in ("running", "finished", "failed")
            if e["status"] == "failed":
                keys(e["error"], {"type", "message", "step", "layer"})
                assert e["error"]["type"] == "diverged" and isinstance(e["error"]["message"], str)
                assert type(e["error"]["step"]) is int and type(e["error"]["layer"]) is int
        elif e["type"] == "step":
            keys(e, {"seq", "type", "run_id", "time", "epoch", "step", "loss", "learning_rate", "layers"})
            assert type(e["epoch"]) is int and type(e["step"]) is int and e["step"] >= 1
            assert is_num(e["loss"]) and e["learning_rate"] == s.optimizer.learning_rate
            assert len(e["layers"]) == len(sizes)
            for k, stats in enumerate(e["layers"], start=1):
                check_layer_stats(stats, k, len(sizes), sizes[k - 1], activations[k - 1], bins, null)
        elif e["type"] == "epoch":
            keys(
                e,
                {
                    "seq",
                    "type",
                    "run_id",
                    "time",
                    "epoch",
                    "train_loss",
                    "test_loss",
                    "train_accuracy",
                    "test_accuracy",
                },
                {"boundary"},
            )
            assert type(e["epoch"]) is int
            assert is_num(e["train_loss"], null) and is_num(e["test_loss"], nullable=True)
            for f in ("train_accuracy", "test_accuracy"):
                assert is_num(e[f], nullable=True) and (e[f] is None or 0 <= e[f] <= 1)
            if "boundary" in e:
                b = e["boundary"]
                keys(b, {"x", "y", "size", "values"})
                assert len(b["x"]) == len(b["y"]) == 2 and b["x"][0] < b["x"][1] and b["y"][0] < b["y"][1]
                assert type(b["size"]) is int and len(b["values"]) == b["size"] ** 2
                assert all(is_num(v, null) for v in b["values"])
        elif e["type"] == "gradcheck":
            keys(e, {"seq", "type", "run_id", "time", "layers"})
            assert [r["layer"] for r in e["layers"]] == list(range(1, len(sizes) + 1))
            for r in e["layers"]:
                keys(r, {"layer", "rel_error_W", "rel_error_b"})
                assert is_num(r["rel_error_W"]) and is_num(r["rel_error_b"])
        else:
            pytest.fail(f"unknown event type {e['type']!r}")
    statuses = by_type["status"]
    assert events[0]["type"] == "status" and events[0]["status"] == "running"
    assert events[-1]["type"] == "status" and events[-1]["status"] in ("finished", "failed")
    assert len(statuses) == 2
    return by_type


# -- the event types ----------------------------------------------------------------------------


def test_classification_run_events_follow_the_schema():
    s = spec()
    events = run(s)
    by_type = check_events(events, s)
    assert events[-1]["status"] == "finished" and "error" not in events[-1]
    assert [e["epoch"] for e in by_type["epoch"]] == [1, 2, 3]
    assert all("boundary" in e for e in by_type["epoch"])
    assert by_type["epoch"][0]["boundary"]["size"] == 40
    assert all(e["train_accuracy"] is not None for e in by_type["epoch"])
    steps_per_epoch = 6  # 48 training rows in batches of 8
    assert [e["step"] for e in by_type["step"]] == list(range(1, 3 * steps_per_epoch + 1, 2))
    assert [e["epoch"] for e in by_type["step"]] == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_regression_epochs_have_no_accuracy():
    s = spec(
        dataset={"name": "plane", "samples": 50},
        layers=[{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "linear"}],
        loss="mse",
    )
    by_type = check_events(run(s), s)
    assert all(e["train_accuracy"] is None and e["test_accuracy"] is None for e in by_type["epoch"])
    assert all("boundary" in e for e in by_type["epoch"])


def test_inputs_not_2d_have_no_boundary_and_an_empty_test_set_no_test_metrics():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    info = DatasetInfo("upload:x", "classification", 3, 3)
    s = spec(
        dataset={"name": "upload:x", "test_fraction": 0.0},
        layers=[{"units": 4, "activation": "leaky_relu"}, {"units": 3, "activation": "softmax"}],
    )
    by_type = check_events(run(s, make_dataset(s.dataset, (X, y, info))), s)
    assert all("boundary" not in e for e in by_type["epoch"])
    assert all(e["test_loss"] is None and e["test_accuracy"] is None for e in by_type["epoch"])


def test_failed_run_ends_with_the_diverged_error():
    s = spec(
        dataset={"name": "plane", "samples": 50},
        layers=[{"units": 4, "activation": "linear"}, {"units": 1, "activation": "linear"}],
        optimizer={"name": "sgd", "learning_rate": 100},
        telemetry={"every_steps": 1, "histogram_bins": 6},
    )
    events = run(s)
    by_type = check_events(events, s, null=True)
    assert events[-1]["status"] == "failed"
    assert by_type["step"][-1]["step"] == events[-1]["error"]["step"] - 1


def test_gradcheck_event_comes_second():
    s = spec(gradcheck=True)
    events = run(s)
    by_type = check_events(events, s)
    assert events[1]["type"] == "gradcheck" and len(by_type["gradcheck"]) == 1
    assert all(r["rel_error_W"] < 1e-5 and r["rel_error_b"] < 1e-5 for r in events[1]["layers"])


def test_float32_run_events_are_plain_json():
    s = spec(dtype="float32")
    by_type = check_events(run(s), s)
    assert all(type(v) is float for v in by_type["step"][0]["layers"][0]["delta"]["unit_mean_abs"])


def test_forced_step_events_follow_the_schema_too():
    s = spec(telemetry={"every_steps": 1000, "histogram_bins": 3})
    events = run(s, before_step=lambda: True)
    by_type = check_events(events, s)
    assert len(by_type["step"]) == 18


def test_stamp_numbers_from_first_seq_and_orders_keys():
    events = [{"type": "status", "status": "running"}, {"type": "epoch", "epoch": 1, "train_loss": 0.5}]
    clock = iter([10.0, 11.5]).__next__
    out = list(stamp(events, "abc", first_seq=7, clock=clock))
    assert out == [
        {"seq": 7, "type": "status", "run_id": "abc", "time": 10.0, "status": "running"},
        {"seq": 8, "type": "epoch", "run_id": "abc", "time": 11.5, "epoch": 1, "train_loss": 0.5},
    ]
    assert list(out[1]) == ["seq", "type", "run_id", "time", "epoch", "train_loss"]
    assert events[0] == {"type": "status", "status": "running"}  # inputs untouched
