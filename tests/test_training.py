"""The training loop and its telemetry: values against direct NumPy, when step events are emitted,
divergence, cancellation, reproducibility, progress/metrics and the epoch evaluation."""

import json

import numpy as np
import pytest
from pydantic import ValidationError

from worker.nn.datasets import Dataset, DatasetInfo, make_dataset
from worker.nn.network import Network
from worker.nn.optimizers import SGD
from worker.nn.spec import RunSpec
from worker.nn.telemetry import layer_stats
from worker.nn.training import (
    MAX_STEP_EVENTS,
    Training,
    default_every_steps,
    first_nonfinite_layer,
    stamp,
)


def spec(**overrides) -> RunSpec:
    base = {
        "dataset": {"name": "circle", "samples": 100},
        "layers": [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
        "optimizer": {"name": "sgd", "learning_rate": 0.1},
        "epochs": 4,
        "batch_size": 16,
        "telemetry": {"every_steps": 3},
    }
    return RunSpec.model_validate({**base, **overrides})


def training(s: RunSpec) -> Training:
    return Training(s, make_dataset(s.dataset))


# -- telemetry against NumPy -------------------------------------------------------------------


@pytest.fixture
def tiny():
    """A 2-3-2-1 relu/tanh/sigmoid net with fixed weights, one batch, one SGD step, computed by hand."""
    rng = np.random.default_rng(1)
    W = [rng.normal(size=(3, 2)), rng.normal(size=(2, 3)), rng.normal(size=(1, 2))]
    b = [rng.normal(size=3) * 0.5, rng.normal(size=2), rng.normal(size=1)]
    X = rng.normal(size=(7, 2))
    Y = (rng.uniform(size=(7, 1)) > 0.5).astype(float)
    # by hand: forward, then the three backprop equations
    z1 = X @ W[0].T + b[0]
    a1 = np.maximum(z1, 0)
    z2 = a1 @ W[1].T + b[1]
    a2 = np.tanh(z2)
    z3 = a2 @ W[2].T + b[2]
    a3 = 1 / (1 + np.exp(-z3))
    d3 = a3 - Y  # sigmoid + binary cross-entropy
    up2 = d3 @ W[2]
    d2 = up2 * (1 - a2**2)
    up1 = d2 @ W[1]
    d1 = up1 * (z1 > 0)
    hand = {
        "delta": [d1, d2, d3],
        "up": [up1, up2, None],
        "fprime": [(z1 > 0).astype(float), 1 - a2**2, a3 * (1 - a3)],
        "dW": [d1.T @ X / 7, d2.T @ a1 / 7, d3.T @ a2 / 7],
        "db": [d1.mean(0), d2.mean(0), d3.mean(0)],
        "W": [w.copy() for w in W],
    }
    net = Network(
        [w.copy() for w in W], [c.copy() for c in b], ["relu", "tanh", "sigmoid"], "binary_cross_entropy"
    )
    g = net.gradients(X, Y)
    lr = 0.3
    steps = SGD(lr).step(net.weights + net.biases, g.dW + g.db)
    return net, g, steps, lr, hand


def test_layer_stats_match_numpy(tiny):
    net, g, steps, lr, hand = tiny
    stats = layer_stats(net, g, steps, bins=4)
    assert [s["layer"] for s in stats] == [1, 2, 3]
    assert [s["units"] for s in stats] == [3, 2, 1]
    assert [s["activation"] for s in stats] == ["relu", "tanh", "sigmoid"]
    for k, s in enumerate(stats):
        d = hand["delta"][k]
        assert s["delta"]["rms"] == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-12)
        assert s["delta"]["mean_abs"] == pytest.approx(np.abs(d).mean(), rel=1e-12)
        assert s["delta"]["max_abs"] == pytest.approx(np.abs(d).max(), rel=1e-12)
        np.testing.assert_allclose(s["delta"]["unit_mean_abs"], np.abs(d).mean(axis=0), rtol=1e-12)
        m = np.abs(d).max()
        counts, edges = np.histogram(d, bins=4, range=(-m, m))
        assert s["delta"]["hist"]["counts"] == counts.tolist()
        np.testing.assert_allclose(s["delta"]["hist"]["edges"], edges, atol=1e-15)
        assert s["grad_W_norm"] == pytest.approx(np.linalg.norm(hand["dW"][k]), rel=1e-12)
        assert s["grad_b_norm"] == pytest.approx(np.linalg.norm(hand["db"][k]), rel=1e-12)
        # the weights that computed this batch, and this step's SGD update lr * dW
        W_norm = np.linalg.norm(hand["W"][k])
        assert s["W_norm"] == pytest.approx(W_norm, rel=1e-12)
        assert s["update_ratio"] == pytest.approx(lr * np.linalg.norm(hand["dW"][k]) / W_norm, rel=1e-12)
        if hand["up"][k] is None:
            assert s["backprop_norm"] is None
        else:
            assert s["backprop_norm"] == pytest.approx(np.linalg.norm(hand["up"][k]), rel=1e-12)
        fp = hand["fprime"][k]
        assert s["fprime"]["mean"] == pytest.approx(fp.mean(), rel=1e-12)
        assert s["fprime"]["zero_fraction"] == pytest.approx(np.mean(fp == 0))
        assert s["fprime"]["saturated_fraction"] == pytest.approx(np.mean(fp < 1e-2))


def test_relu_zero_fraction_is_the_share_of_non_positive_z(tiny):
    net, g, steps, _, hand = tiny
    relu = layer_stats(net, g, steps, bins=4)[0]["fprime"]
    share = np.mean(hand["fprime"][0] == 0)
    assert 0 < share < 1  # the fixture has both live and dead units
    assert relu["zero_fraction"] == pytest.approx(share) and relu["saturated_fraction"] == pytest.approx(
        share
    )


def test_layer_stats_without_a_step_have_no_update_ratio(tiny):
    net, g, _, _, _ = tiny
    stats = layer_stats(net, g, None, bins=4)
    assert all(s["update_ratio"] is None for s in stats)
    assert stats[0]["W_norm"] == pytest.approx(np.linalg.norm(net.weights[0]))


def test_histogram_of_an_all_zero_delta_uses_unit_range(tiny):
    net, g, steps, _, _ = tiny
    g.delta[0] = np.zeros_like(g.delta[0])
    hist = layer_stats(net, g, steps, bins=4)[0]["delta"]["hist"]
    assert hist["edges"] == [-1.0, -0.5, 0.0, 0.5, 1.0] and sum(hist["counts"]) == g.delta[0].size


def test_non_finite_stats_become_none(tiny):
    net, g, steps, _, _ = tiny
    g.delta[1][0, 0] = np.nan
    g.dW[1][0, 0] = np.inf
    s = layer_stats(net, g, steps, bins=4)[1]
    assert s["delta"]["rms"] is None and s["grad_W_norm"] is None
    assert s["delta"]["unit_mean_abs"][0] is None and s["delta"]["unit_mean_abs"][1] is not None
    assert sum(s["delta"]["hist"]["counts"]) == g.delta[1].size - 1  # the NaN is left out
    json.dumps(s, allow_nan=False)


# -- when step events are emitted --------------------------------------------------------------


def step_numbers(events) -> list[int]:
    return [e["step"] for e in events if e["type"] == "step"]


def test_step_events_every_every_steps():
    t = training(spec())  # 80 training rows in batches of 16: 5 steps per epoch, 20 in all
    assert (t.steps_per_epoch, t.total_steps, t.every_steps) == (5, 20, 3)
    assert step_numbers(t.events()) == [1, 4, 7, 10, 13, 16, 19]


def test_before_step_runs_before_every_minibatch_and_forces_a_step_event():
    t = training(spec(telemetry={"every_steps": 100}))
    calls = []

    def before_step() -> bool:
        calls.append(t.progress["step"])  # steps done so far
        return len(calls) in (5, 6, 17)

    assert step_numbers(t.events(before_step)) == [1, 5, 6, 17]
    assert calls == list(range(20))


def test_layer_stats_are_computed_only_on_emitting_steps(monkeypatch):
    import worker.nn.training as training_module

    calls = []
    real = training_module.layer_stats
    monkeypatch.setattr(training_module, "layer_stats", lambda *a: calls.append(1) or real(*a))
    events = list(training(spec(telemetry={"every_steps": 7})).events())
    assert len(calls) == len(step_numbers(events)) == 3  # steps 1, 8, 15 of 20


def test_default_every_steps_caps_the_number_of_step_events():
    s = spec(dataset={"name": "xor", "samples": 1000}, epochs=300, batch_size=4, telemetry={})
    t = training(s)
    assert t.total_steps == 200 * 300
    assert t.every_steps >= t.total_steps / MAX_STEP_EVENTS
    assert t.total_steps / t.every_steps <= MAX_STEP_EVENTS


def test_default_every_steps_samples_tiny_nets_and_not_big_batches_of_big_nets():
    assert default_every_steps(100, [2, 8, 8, 1], 10) >= 5  # statistics cost more than such a step
    assert default_every_steps(100, [784, 256, 256, 10], 128) <= 3
    assert default_every_steps(10**6, [784, 256, 256, 10], 128) == 500
    assert default_every_steps(1, [2, 1], 1) >= 1


# -- divergence and cancellation ---------------------------------------------------------------


def diverging_spec() -> RunSpec:
    return spec(
        dataset={"name": "plane", "samples": 100},
        layers=[{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "linear"}],
        loss="mse",
        optimizer={"name": "sgd", "learning_rate": 100},
        epochs=50,
        telemetry={"every_steps": 1},
    )


def test_huge_learning_rate_ends_failed_diverged_with_step_and_layer():
    t = training(diverging_spec())
    events = list(t.events())
    last = events[-1]
    assert last["type"] == "status" and last["status"] == "failed"
    error = last["error"]
    assert error["type"] == "diverged"
    steps = step_numbers(events)
    assert error["step"] == steps[-1] + 1  # every step emitted until the one whose loss was not finite
    assert t.progress["step"] == steps[-1]  # the diverging batch made no update
    assert 1 <= error["layer"] <= 2
    epoch = (error["step"] - 1) // t.steps_per_epoch + 1
    assert (
        f"at step {error['step']} (epoch {epoch}), first non-finite in layer {error['layer']}"
        in error["message"]
    )
    assert next(e for e in events if e["type"] == "status")["status"] == "running"


def test_first_nonfinite_layer_looks_forward_first_then_at_delta():
    s = spec(
        layers=[
            {"units": 3, "activation": "tanh"},
            {"units": 3, "activation": "relu"},
            {"units": 1, "activation": "sigmoid"},
        ]
    )
    t = training(s)
    X, Y = t.X_train[:5], t.Y_train[:5]
    t.net.weights[1][0, 0] = np.inf  # layer 2's z is inf (or nan)
    with np.errstate(all="ignore"):
        g = t.net.gradients(X, Y)
    assert first_nonfinite_layer(t.net, g) == (2, "z")
    t.net.weights[1][0, 0] = 0.0
    g = t.net.gradients(X, Y)
    g.delta[0][0, 0] = np.nan  # forward all finite: the first bad delta
    assert first_nonfinite_layer(t.net, g) == (1, "delta")


def test_tanh_saturating_z_is_found_even_when_a_is_finite():
    t = training(spec(layers=[{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]))
    t.net.biases[0][:] = np.inf  # tanh(inf) = 1: a is finite, z is not
    with np.errstate(all="ignore"):
        g = t.net.gradients(t.X_train[:4], t.Y_train[:4])
    assert np.isfinite(g.a[1]).all()
    assert first_nonfinite_layer(t.net, g) == (1, "z")


class Cancel(Exception):
    pass


def test_an_exception_in_before_step_propagates_and_stops_training():
    t = training(spec())
    seen = []

    def before_step() -> bool:
        if t.progress["step"] == 6:
            raise Cancel
        return False

    with pytest.raises(Cancel):
        for event in t.events(before_step):
            seen.append(event["type"])
    assert t.progress["step"] == 6 and seen.count("epoch") == 1 and "status" in seen[:1]
    assert seen.count("status") == 1  # no terminal status: the caller decides (canceled)


# -- reproducibility, progress, metrics --------------------------------------------------------


def events_without_time(s: RunSpec) -> list[dict]:
    return list(stamp(training(s).events(), "r", clock=lambda: 0.0))


def test_seeded_runs_are_reproducible_bit_for_bit():
    s = spec(optimizer={"name": "adam", "learning_rate": 0.01}, dtype="float32")
    a, b = events_without_time(s), events_without_time(s)
    assert json.dumps(a) == json.dumps(b)
    c = events_without_time(s.model_copy(update={"seed": 1}))
    assert json.dumps(a) != json.dumps(c)


def test_each_epoch_reshuffles_the_training_set_with_a_seeded_rng():
    t = training(spec(epochs=2, batch_size=80, seed=5))
    batches = []
    real = t.net.gradients
    t.net.gradients = lambda X, Y, out=None: batches.append(X.copy()) or real(X, Y, out)
    list(t.events())
    rng = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(1,)))
    first, second = rng.permutation(80), rng.permutation(80)
    assert len(batches) == 2 and not np.array_equal(first, second)
    np.testing.assert_array_equal(batches[0], t.X_train[first])
    np.testing.assert_array_equal(batches[1], t.X_train[second])


def test_progress_and_metrics_stay_current():
    t = training(spec())
    assert t.progress == {"epoch": 0, "epochs": 4, "step": 0, "steps": 20}
    assert t.metrics == {"train_loss": None, "test_loss": None, "train_accuracy": None, "test_accuracy": None}
    for e in t.events():
        if e["type"] == "step":
            assert (t.progress["epoch"], t.progress["step"]) == (e["epoch"], e["step"])
        elif e["type"] == "epoch":
            assert t.progress["epoch"] == e["epoch"]
            assert t.metrics == {k: e[k] for k in t.metrics}
    assert t.progress == {"epoch": 4, "epochs": 4, "step": 20, "steps": 20}


def test_epoch_loss_and_accuracy_are_over_the_whole_sets_without_regularization():
    s = spec(regularization={"l2": 0.1}, epochs=2)
    t = training(s)
    last = [e for e in t.events() if e["type"] == "epoch"][-1]
    for X, Y, loss, acc in [
        (t.X_train, t.Y_train, last["train_loss"], last["train_accuracy"]),
        (t.X_test, t.Y_test, last["test_loss"], last["test_accuracy"]),
    ]:
        out = t.net.forward(X)
        p = np.clip(out, 1e-15, 1 - 1e-15)
        bce = -(Y * np.log(p) + (1 - Y) * np.log(1 - p)).sum(axis=1).mean()
        assert loss == pytest.approx(bce, rel=1e-9)
        assert acc == pytest.approx(np.mean((out >= 0.5) == (Y >= 0.5)))


def test_softmax_accuracy_uses_argmax_and_boundary_the_predicted_class():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (90, 2))
    y = np.digitize(X[:, 0], [-1 / 3, 1 / 3])  # three vertical bands
    info = DatasetInfo("upload:bands", "classification", 2, 3)
    s = spec(
        dataset={"name": "upload:bands"},
        layers=[{"units": 8, "activation": "tanh"}, {"units": 3, "activation": "softmax"}],
        optimizer={"name": "adam", "learning_rate": 0.05},
        epochs=30,
        batch_size=8,
    )
    t = Training(s, make_dataset(s.dataset, (X, y, info)))
    last = [e for e in t.events() if e["type"] == "epoch"][-1]
    out = t.net.forward(t.X_test)
    assert last["test_accuracy"] == pytest.approx(np.mean(out.argmax(1) == t.Y_test.argmax(1)))
    assert last["train_accuracy"] > 0.9
    assert set(last["boundary"]["values"]) <= {0.0, 1.0, 2.0}


def test_boundary_values_are_the_network_output_on_a_row_major_grid():
    t = training(spec(epochs=1))
    b = [e for e in t.events() if e["type"] == "epoch"][-1]["boundary"]
    s = b["size"]
    (x0, x1), (y0, y1) = b["x"], b["y"]
    X = np.concatenate([t.X_train, t.X_test])
    assert x0 < X[:, 0].min() and x1 > X[:, 0].max() and y0 < X[:, 1].min() and y1 > X[:, 1].max()
    for i, j in [(0, 0), (0, s - 1), (s - 1, 0), (5, 31)]:
        point = [[x0 + j * (x1 - x0) / (s - 1), y0 + i * (y1 - y0) / (s - 1)]]
        assert b["values"][i * s + j] == pytest.approx(t.net.forward(point)[0, 0], abs=5e-5)  # 4 digits


def test_boundary_is_sampled_on_long_runs():
    t = training(spec(dataset={"name": "gaussian", "samples": 10}, epochs=450, batch_size=8))
    with_boundary = [e["epoch"] for e in t.events() if e["type"] == "epoch" and "boundary" in e]
    assert t.boundary_every == 3
    assert with_boundary == [1, *range(3, 451, 3)]


def test_training_rejects_data_that_does_not_fit_the_spec():
    X, y = np.zeros((20, 2)), np.arange(20) % 3
    s = spec(
        dataset={"name": "upload:three"},
        layers=[{"units": 4}, {"units": 2, "activation": "softmax"}],
    )
    data = make_dataset(s.dataset, (X, y, DatasetInfo("upload:three", "classification", 2, 3)))
    with pytest.raises(ValidationError) as e:
        Training(s, data)
    assert e.value.errors()[0]["loc"] == ("layers", 1, "units")


def test_float32_network_trains_in_float32():
    t = training(spec(dtype="float32"))
    assert t.X_train.dtype == np.float32 and t.Y_train.dtype == np.float32
    events = list(t.events())
    assert events[-1]["status"] == "finished"
    assert all(W.dtype == np.float32 for W in t.net.weights)


def test_training_learns_something_in_process():
    layers = [{"units": 8}, {"units": 1, "activation": "sigmoid"}]
    t = training(
        spec(optimizer={"name": "adam", "learning_rate": 0.05}, epochs=30, batch_size=8, layers=layers)
    )
    epochs = [e for e in t.events() if e["type"] == "epoch"]
    assert epochs[-1]["train_loss"] < 0.2 * epochs[0]["train_loss"]
    assert epochs[-1]["test_accuracy"] >= 0.95


def test_regression_upload_without_test_set_or_2d_inputs():
    data = Dataset(
        DatasetInfo("upload:r", "regression", 3),
        np.ones((12, 3)),
        np.ones((12, 1)),
        np.ones((0, 3)),
        np.ones((0, 1)),
    )
    s = spec(
        dataset={"name": "upload:r"},
        layers=[{"units": 2}, {"units": 1, "activation": "linear"}],
        loss="mse",
        epochs=1,
    )
    t = Training(s, data)
    last = list(t.events())[-2]
    assert last["type"] == "epoch" and last["test_loss"] is None and "boundary" not in last
