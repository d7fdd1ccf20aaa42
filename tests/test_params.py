"""FlatParams: one parameter vector behind a network's W and b, gradients written in place, and a
training run that is bit-for-bit the one a per-array optimizer would give."""

import numpy as np
import pytest

from worker.nn.datasets import make_dataset
from worker.nn.network import Network
from worker.nn.optimizers import make_optimizer
from worker.nn.params import FlatParams
from worker.nn.spec import RunSpec
from worker.nn.training import Training

LAYERS = [
    {"units": 5, "activation": "tanh"},
    {"units": 4, "activation": "relu"},
    {"units": 1, "activation": "sigmoid"},
]


def net(dtype: str = "float32", **extra) -> Network:
    spec = {"layers": LAYERS, "loss": "binary_cross_entropy", "dtype": dtype, **extra}
    return Network.from_spec(spec, input_dim=3, seed=4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_network_keeps_its_values_and_now_lives_in_one_vector(dtype):
    n = net(dtype)
    before = [a.copy() for a in n.weights + n.biases]
    flat = FlatParams(n)
    assert flat.vector.dtype == flat.grad_vector.dtype == np.dtype(dtype)
    assert flat.vector.size == sum(a.size for a in before)
    for a, b in zip(n.weights + n.biases, before, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.dtype(dtype) and np.shares_memory(a, flat.vector)
    flat.vector -= 1  # an optimizer's in-place update reaches every W and b
    for a, b in zip(n.weights + n.biases, before, strict=True):
        np.testing.assert_array_equal(a, b - 1)


def test_gradients_written_into_out_equal_the_fresh_ones():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 3)).astype(np.float32)
    Y = rng.integers(0, 2, size=(7, 1)).astype(np.float32)
    n = net(regularization={"l1": 0.01, "l2": 0.1})
    fresh = n.gradients(X, Y)
    flat = FlatParams(n)
    flat.grad_vector[:] = np.nan  # stale contents must not leak into the result
    g = n.gradients(X, Y, out=flat.grads)
    assert g.loss == fresh.loss
    for got, want, buf in zip(g.dW + g.db, fresh.dW + fresh.db, flat.grads[0] + flat.grads[1], strict=True):
        assert got is buf and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    assert np.isfinite(flat.grad_vector).all()


@pytest.mark.parametrize(
    "optimizer",
    [
        {"name": "adam", "learning_rate": 0.01},
        {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
    ],
)
def test_training_on_the_vector_matches_a_per_array_optimizer_bit_for_bit(optimizer):
    spec = RunSpec.model_validate(
        {
            "dataset": {"name": "moons", "samples": 60, "seed": 2},
            "layers": LAYERS,
            "loss": "binary_cross_entropy",
            "optimizer": optimizer,
            "regularization": {"l2": 0.001},
            "epochs": 3,
            "batch_size": 8,
            "seed": 9,
        }
    )
    data = make_dataset(spec.dataset)
    t = Training(spec, data)
    losses = [e["loss"] for e in t.events() if e["type"] == "step"]

    # The same run by hand: fresh arrays, one optimizer call per array list, the same batches.
    ref = Training(spec, data)  # for its data, encoded targets and rng; its net is replaced below
    n = Network.from_spec(spec, data.info.input_dim, seed=spec.seed)
    opt = make_optimizer(spec.optimizer)
    ref_losses, step = [], 0
    for _ in range(spec.epochs):
        order = ref.rng.permutation(len(ref.X_train))
        X, Y = ref.X_train[order], ref.Y_train[order]
        for start in range(0, len(order), spec.batch_size):
            g = n.gradients(X[start : start + spec.batch_size], Y[start : start + spec.batch_size])
            if step % t.every_steps == 0:
                ref_losses.append(g.loss)
            opt.step(n.weights + n.biases, g.dW + g.db)
            step += 1
    assert losses == ref_losses
    for a, b in zip(t.net.weights + t.net.biases, n.weights + n.biases, strict=True):
        np.testing.assert_array_equal(a, b)
