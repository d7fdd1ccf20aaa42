"""Optimizers against updates computed by hand for two steps; float32 parameters stay float32."""

import numpy as np
import pytest

from worker.nn import Network
from worker.nn.optimizers import SGD, Adam, make_optimizer
from worker.nn.spec import AdamSpec, SGDSpec

P0 = [1.0, -2.0]
G1 = [0.5, 1.0]
G2 = [0.25, -1.0]


def two_steps(opt, dtype=np.float64):
    p = np.array(P0, dtype)
    steps = []
    for g in (G1, G2):
        before = p.copy()
        (s,) = opt.step([p], [np.array(g, dtype)])
        np.testing.assert_array_equal(before - s, p)  # the returned step is what was subtracted, in place
        steps.append(s)
    return p, steps


def test_sgd_by_hand():
    p, steps = two_steps(SGD(0.1))
    # p1 = p0 - 0.1 g1 = [0.95, -2.1];  p2 = p1 - 0.1 g2 = [0.925, -2.0]
    np.testing.assert_allclose(steps[0], [0.05, 0.1])
    np.testing.assert_allclose(steps[1], [0.025, -0.1])
    np.testing.assert_allclose(p, [0.925, -2.0])


def test_sgd_momentum_by_hand():
    p, steps = two_steps(SGD(0.1, momentum=0.9))
    # v1 = g1 = [0.5, 1];  Δ1 = 0.1 v1 = [0.05, 0.1]
    # v2 = 0.9 v1 + g2 = [0.7, -0.1];  Δ2 = [0.07, -0.01]
    np.testing.assert_allclose(steps[0], [0.05, 0.1])
    np.testing.assert_allclose(steps[1], [0.07, -0.01])
    np.testing.assert_allclose(p, [0.88, -2.09])


def test_sgd_nesterov_by_hand():
    p, steps = two_steps(SGD(0.1, momentum=0.9, nesterov=True))
    # Δ1 = 0.1 (g1 + 0.9 v1) = 0.1 ([0.5, 1] + [0.45, 0.9]) = [0.095, 0.19]
    # Δ2 = 0.1 (g2 + 0.9 v2) = 0.1 ([0.25, -1] + [0.63, -0.09]) = [0.088, -0.109]
    np.testing.assert_allclose(steps[0], [0.095, 0.19])
    np.testing.assert_allclose(steps[1], [0.088, -0.109])
    np.testing.assert_allclose(p, [0.817, -2.081])


def test_adam_by_hand():
    p, steps = two_steps(Adam(0.1, beta1=0.9, beta2=0.999, eps=1e-8))
    # t=1: m̂ = g1, v̂ = g1², Δ1 = 0.1 g1 / (|g1| + 1e-8) = [0.1 - 2e-9, 0.1 - 1e-9]
    np.testing.assert_allclose(steps[0], [0.099999998, 0.099999999], rtol=1e-9)
    # t=2: m = 0.9·[0.05, 0.1] + 0.1·g2 = [0.07, -0.01];  m̂ = m / 0.19 = [0.36842105, -0.05263158]
    #      v = 0.999·[0.00025, 0.001] + 0.001·g2² = [0.00031225, 0.001999]
    #      v̂ = v / 0.001999 = [0.15620310, 1]
    #      Δ2 = 0.1 m̂ / (√v̂ + 1e-8) = [0.036842105 / 0.39522538, -0.0052631579]
    np.testing.assert_allclose(steps[1], [0.0932179615, -0.0052631578], rtol=1e-8)
    np.testing.assert_allclose(p, [0.8067820405, -2.0947368412], rtol=1e-9)


def test_optimizers_update_every_parameter_array():
    params = [np.ones((2, 2)), np.zeros(2)]
    grads = [np.full((2, 2), 2.0), np.array([1.0, -1.0])]
    steps = SGD(0.5).step(params, grads)
    np.testing.assert_allclose(params[0], np.zeros((2, 2)))
    np.testing.assert_allclose(params[1], [-0.5, 0.5])
    assert [s.shape for s in steps] == [(2, 2), (2,)]


OPTIMIZERS = {
    "sgd": lambda: SGD(0.1),
    "momentum": lambda: SGD(0.1, momentum=0.9),
    "nesterov": lambda: SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(0.01),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_float32_parameters_stay_float32(name):
    opt = OPTIMIZERS[name]()
    p, steps = two_steps(opt, np.float32)
    assert p.dtype == np.float32
    assert all(s.dtype == np.float32 for s in steps)
    state = (getattr(opt, "velocity", None) or []) + (getattr(opt, "m", None) or [])
    state += getattr(opt, "v", None) or []
    assert all(arr.dtype == np.float32 for arr in state)
    expected, _ = two_steps(OPTIMIZERS[name](), np.float64)
    np.testing.assert_allclose(p, expected, rtol=1e-6)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_float32_network_trains_in_float32(name):
    spec = {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}
    net = Network.from_spec({**spec, "dtype": "float32", "regularization": {"l2": 0.01}}, input_dim=2)
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], np.float32)
    Y = np.array([[1.0], [1.0], [0.0], [0.0]], np.float32)
    opt = OPTIMIZERS[name]()
    params = net.weights + net.biases
    first = net.gradients(X, Y).loss
    for _ in range(3):
        g = net.gradients(X, Y)
        steps = opt.step(params, g.dW + g.db)
        assert all(s.dtype == np.float32 for s in steps)
    assert all(p.dtype == np.float32 for p in net.weights + net.biases)
    assert net.weights[0] is params[0]  # updated in place: the network sees the new weights
    assert net.gradients(X, Y).loss < first


def test_make_optimizer_from_spec():
    sgd = make_optimizer(SGDSpec(learning_rate=0.5, momentum=0.8, nesterov=True))
    assert isinstance(sgd, SGD) and (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.5, 0.8, True)
    adam = make_optimizer(AdamSpec(name="adam", learning_rate=0.02, beta1=0.8, beta2=0.99, eps=1e-7))
    assert isinstance(adam, Adam)
    assert (adam.learning_rate, adam.beta1, adam.beta2, adam.eps) == (0.02, 0.8, 0.99, 1e-7)
