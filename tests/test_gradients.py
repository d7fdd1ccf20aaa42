"""Backprop against central finite differences (float64): dW, db and delta for every activation and loss."""

import itertools

import numpy as np
import pytest

from worker.nn import Network
from worker.nn.activations import ACTIVATIONS
from worker.nn.gradcheck import check_gradients, float64_copy, numerical_delta, rel_error
from worker.nn.losses import LOSSES

TOL = 1e-6
HIDDEN = ["linear", "sigmoid", "tanh", "relu", "leaky_relu"]
# (output activation, loss): softmax only with cross_entropy, bce with sigmoid, mse with every other output
OUTPUTS = [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")] + [
    (act, "mse") for act in HIDDEN
]
REGULARIZATION = {"none": (0.0, 0.0), "l1": (0.03, 0.0), "l2": (0.0, 0.05), "l1+l2": (0.03, 0.05)}


def make_net(hidden: str, output: str, loss: str, l1: float = 0.0, l2: float = 0.0, seed: int = 0):
    """A 3-4-5-3 network with weights of magnitude 0.2..0.9 (away from 0, where l1 has its kink)."""
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 5, 3]
    weights = [
        rng.choice([-1.0, 1.0], (n_out, n_in)) * rng.uniform(0.2, 0.9, (n_out, n_in))
        for n_in, n_out in itertools.pairwise(sizes)
    ]
    biases = [rng.uniform(-0.5, 0.5, n_out) for n_out in sizes[1:]]
    return Network(weights, biases, [hidden, hidden, output], loss, l1=l1, l2=l2)


def make_batch(loss: str, n: int = 6, units: int = 3, seed: int = 1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    if loss == "cross_entropy":
        Y = np.eye(units)[rng.integers(0, units, n)]
    elif loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, (n, units)).astype(float)
    else:
        Y = rng.normal(size=(n, units))
    return X, Y


@pytest.mark.parametrize("reg", list(REGULARIZATION))
@pytest.mark.parametrize(("output", "loss"), OUTPUTS)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_backprop_matches_finite_differences(hidden, output, loss, reg):
    l1, l2 = REGULARIZATION[reg]
    net = make_net(hidden, output, loss, l1, l2)
    X, Y = make_batch(loss)
    report = check_gradients(net, X, Y, max_coords=None)
    assert [r["layer"] for r in report] == [1, 2, 3]
    for r in report:
        assert r["rel_error_W"] <= TOL, r
        assert r["rel_error_b"] <= TOL, r
    g = net.gradients(X, Y)
    for k in range(3):
        fd = numerical_delta(net, X, Y, k)
        assert fd.shape == g.delta[k].shape == (6, net.sizes[k + 1])
        assert rel_error(g.delta[k], fd) <= TOL, (k, g.delta[k], fd)


def test_gradcheck_finite_differences_match_brute_force_perturbation_of_J():
    # The vectorised differences against the definition: nudge one weight of a copy, read g.loss.
    net = make_net("tanh", "sigmoid", "binary_cross_entropy", l1=0.03, l2=0.05)
    X, Y = make_batch("binary_cross_entropy")
    eps = 1e-6
    fd = np.zeros_like(net.weights[1])
    for idx in np.ndindex(*fd.shape):
        J = []
        for sign in (1, -1):
            probe = float64_copy(net)
            probe.weights[1][idx] += sign * eps
            J.append(probe.gradients(X, Y).loss)
        fd[idx] = (J[0] - J[1]) / (2 * eps)
    g = net.gradients(X, Y)
    assert rel_error(g.dW[1], fd) <= TOL
    assert check_gradients(net, X, Y)[1]["rel_error_W"] <= TOL


def test_numerical_delta_is_n_times_dJ_dz():
    # delta[L] for sigmoid + bce is a - y per example; the batch mean J would give (a - y)/n.
    net = make_net("relu", "sigmoid", "binary_cross_entropy")
    X, Y = make_batch("binary_cross_entropy")
    a_L = net.forward(X)
    np.testing.assert_allclose(numerical_delta(net, X, Y, 2), a_L - Y, rtol=1e-7, atol=1e-9)


def test_gradcheck_catches_a_wrong_derivative(monkeypatch):
    wrong = ACTIVATIONS["tanh"].__class__(np.tanh, lambda z, a: 1 - a)  # should be 1 - a²
    monkeypatch.setitem(ACTIVATIONS, "tanh", wrong)
    net = make_net("tanh", "linear", "mse")
    X, Y = make_batch("mse")
    report = check_gradients(net, X, Y)
    assert report[2]["rel_error_W"] <= TOL  # the output layer does not use tanh's derivative
    assert report[0]["rel_error_W"] > 1e-2
    assert report[1]["rel_error_b"] > 1e-2
    g = net.gradients(X, Y)
    assert rel_error(g.delta[1], numerical_delta(net, X, Y, 1)) > 1e-2


def test_gradcheck_leaves_a_float32_net_untouched_and_checks_it_in_float64():
    spec = {"layers": [{"units": 6, "activation": "tanh"}, {"units": 2, "activation": "softmax"}]}
    net = Network.from_spec({**spec, "dtype": "float32"}, input_dim=3, seed=4)
    before = [W.copy() for W in net.weights] + [b.copy() for b in net.biases]
    X, Y = make_batch("cross_entropy", units=2)
    report = check_gradients(net, X, Y)
    assert [r["layer"] for r in report] == [1, 2]
    assert all(r["rel_error_W"] <= TOL and r["rel_error_b"] <= TOL for r in report)
    assert all(isinstance(r["rel_error_W"], float) for r in report)
    after = net.weights + net.biases
    assert all(p.dtype == np.float32 for p in after)
    assert all(np.array_equal(p, q) for p, q in zip(before, after, strict=True))


def test_gradcheck_samples_large_layers_deterministically():
    spec = {"layers": [{"units": 40, "activation": "relu"}, {"units": 30, "activation": "tanh"}]}
    net = Network.from_spec({**spec, "loss": "mse"}, input_dim=3, seed=2)
    X, Y = make_batch("mse", units=30)
    sampled = check_gradients(net, X, Y, max_coords=25)
    assert sampled == check_gradients(net, X, Y, max_coords=25)
    assert all(r["rel_error_W"] <= TOL and r["rel_error_b"] <= TOL for r in sampled)
    full = check_gradients(net, X, Y, max_coords=None)
    assert sampled[1]["rel_error_W"] != full[1]["rel_error_W"]  # 1200 weights, 25 of them compared


def test_gradcheck_rejects_targets_of_the_wrong_shape():
    net = make_net("tanh", "linear", "mse")
    X, _ = make_batch("mse")
    with pytest.raises(ValueError, match=r"Y has shape \(6, 2\), expected \(6, 3\)"):
        check_gradients(net, X, np.zeros((6, 2)))
    with pytest.raises(ValueError, match=r"Y has shape \(6,\)"):
        numerical_delta(net, X, np.zeros(6), 0)


def test_rel_error_edge_cases():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.ones(3), np.zeros(3)) == 1.0
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


# Activations: f' against central differences of f, elementwise.

Z = np.array([[-3.0, -0.7, -0.2, 0.3, 0.9, 2.5], [1.7, -1.1, 0.05, -0.05, 4.0, -4.0]])


@pytest.mark.parametrize("name", HIDDEN)
def test_activation_derivative_matches_finite_differences(name):
    act, eps = ACTIVATIONS[name], 1e-6
    fd = (act.f(Z + eps) - act.f(Z - eps)) / (2 * eps)
    np.testing.assert_allclose(act.fprime(Z, act.f(Z)), fd, rtol=1e-7, atol=1e-9)


def test_softmax_fprime_is_the_jacobian_diagonal():
    act, eps = ACTIVATIONS["softmax"], 1e-6
    a = act.f(Z)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    fd = np.empty_like(Z)
    for j in range(Z.shape[1]):
        e = np.zeros_like(Z)
        e[:, j] = eps
        fd[:, j] = (act.f(Z + e)[:, j] - act.f(Z - e)[:, j]) / (2 * eps)
    np.testing.assert_allclose(act.fprime(Z, a), fd, rtol=1e-7, atol=1e-10)


def test_activation_values_by_hand():
    z = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["relu"].f(z), [[0.0, 0.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["leaky_relu"].f(z), [[-0.02, 0.0, 3.0]])
    np.testing.assert_allclose(ACTIVATIONS["sigmoid"].f(z), [[0.11920292202, 0.5, 0.95257412682]])
    np.testing.assert_allclose(ACTIVATIONS["tanh"].f(z), [[-0.96402758008, 0.0, 0.99505475369]])
    np.testing.assert_allclose(ACTIVATIONS["linear"].f(z), z)
    # softmax([-2, 0, 3]) = e^z / (e^-2 + 1 + e^3)
    np.testing.assert_allclose(ACTIVATIONS["softmax"].f(z), [[0.00637746, 0.04712342, 0.94649912]], rtol=1e-6)
    np.testing.assert_allclose(ACTIVATIONS["leaky_relu"].fprime(z, None), [[0.01, 0.01, 1.0]])


def test_sigmoid_and_softmax_do_not_overflow_on_large_inputs():
    z = np.array([[-1000.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(ACTIVATIONS["sigmoid"].f(z), [[0.0, 1.0]])
        np.testing.assert_allclose(ACTIVATIONS["softmax"].f(z), [[0.0, 1.0]])


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations_keep_float32(name):
    z = Z.astype(np.float32)
    act = ACTIVATIONS[name]
    a = act.f(z)
    assert a.dtype == np.float32
    assert act.fprime(z, a).dtype == np.float32


# Losses: values against hand-computed numbers.


def test_mse_value_by_hand():
    a = np.array([[1.0, 2.0], [0.0, 0.0]])
    y = np.array([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(LOSSES["mse"].value(a, y), [0.5 * (1 + 4), 0.5 * (1 + 1)])


def test_binary_cross_entropy_value_by_hand():
    a = np.array([[0.5, 0.5], [0.8, 0.25]])
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    # row 0: -log 0.5 - log 0.5 = 2 log 2; row 1: -log 0.8 - log 0.75
    np.testing.assert_allclose(LOSSES["binary_cross_entropy"].value(a, y), [1.3862943611, 0.5108256238])


def test_cross_entropy_value_by_hand():
    a = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(LOSSES["cross_entropy"].value(a, y), [0.3566749439, 0.6931471806])


def test_losses_stay_finite_at_saturated_outputs():
    a = np.array([[0.0, 1.0]])
    y = np.array([[1.0, 0.0]])
    for name in ("binary_cross_entropy", "cross_entropy"):
        assert np.isfinite(LOSSES[name].value(a, y)).all()


def test_fused_output_deltas_and_their_guard():
    a = np.array([[0.2, 0.7, 0.1]])
    y = np.array([[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(LOSSES["cross_entropy"].delta_L(a, y, "softmax", None), a - y)
    np.testing.assert_allclose(LOSSES["binary_cross_entropy"].delta_L(a, y, "sigmoid", None), a - y)
    with pytest.raises(ValueError, match="cross_entropy needs a softmax output layer, got 'sigmoid'"):
        LOSSES["cross_entropy"].delta_L(a, y, "sigmoid", a * (1 - a))


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_keep_float32(name):
    a = np.array([[0.2, 0.7, 0.1]], np.float32)
    y = np.array([[0.0, 1.0, 0.0]], np.float32)
    act = "softmax" if name == "cross_entropy" else "sigmoid"
    loss = LOSSES[name]
    assert loss.value(a, y).dtype == np.float32
    assert loss.delta_L(a, y, act, a * (1 - a)).dtype == np.float32
