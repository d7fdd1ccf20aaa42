"""Network: building from a spec, the forward pass and J by hand, shapes, errors and dtypes."""

import numpy as np
import pytest

from worker.nn import Gradients, Network
from worker.nn.activations import ACTIVATIONS

XOR_SPEC = {
    "name": "xor, two tanh layers",
    "dataset": {"name": "xor", "samples": 400, "noise": 0.1, "test_fraction": 0.2, "seed": 1},
    "layers": [
        {"units": 8, "activation": "tanh"},
        {"units": 8, "activation": "tanh"},
        {"units": 1, "activation": "sigmoid"},
    ],
    "loss": "binary_cross_entropy",
    "init": "xavier",
    "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.0},
    "regularization": {"l1": 0.0, "l2": 0.0},
    "epochs": 200,
    "batch_size": 10,
    "seed": 0,
    "dtype": "float64",
    "telemetry": {"every_steps": None, "histogram_bins": 20},
    "gradcheck": False,
}


def layers(*pairs):
    return [{"units": units, "activation": act} for units, act in pairs]


def small_net(l1=0.0, l2=0.0, dtype=np.float64):
    """2 -> 2 (relu) -> 1 (linear), mse, with weights chosen to make the arithmetic easy."""
    W1 = np.array([[1.0, -1.0], [0.5, 2.0]], dtype)
    b1 = np.array([0.0, -1.0], dtype)
    W2 = np.array([[2.0, -3.0]], dtype)
    b2 = np.array([0.5], dtype)
    return Network([W1, W2], [b1, b2], ["relu", "linear"], "mse", l1=l1, l2=l2)


# from_spec


def test_from_spec_builds_the_contract_example():
    net = Network.from_spec(XOR_SPEC, input_dim=2, seed=0)
    assert [W.shape for W in net.weights] == [(8, 2), (8, 8), (1, 8)]
    assert [b.shape for b in net.biases] == [(8,), (8,), (1,)]
    assert all((b == 0).all() for b in net.biases)
    assert net.activation_names == ["tanh", "tanh", "sigmoid"]
    assert net.loss_name == "binary_cross_entropy"
    assert net.sizes == [2, 8, 8, 1]
    assert net.dtype == np.float64


@pytest.mark.parametrize(
    ("output", "loss"),
    [("sigmoid", "binary_cross_entropy"), ("softmax", "cross_entropy"), ("linear", "mse"), ("tanh", "mse")],
)
def test_from_spec_with_only_layers_infers_the_loss(output, loss):
    net = Network.from_spec({"layers": layers((4, "relu"), (2, output))}, input_dim=3)
    assert net.loss_name == loss
    assert (net.l1, net.l2) == (0.0, 0.0)
    assert net.dtype == np.float64
    assert net.forward(np.zeros((5, 3))).shape == (5, 2)


def test_from_spec_same_seed_same_weights_other_seed_other_weights():
    a = Network.from_spec(XOR_SPEC, input_dim=2, seed=7)
    b = Network.from_spec(XOR_SPEC, input_dim=2, seed=7)
    c = Network.from_spec(XOR_SPEC, input_dim=2, seed=8)
    assert all(np.array_equal(p, q) for p, q in zip(a.weights, b.weights, strict=True))
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_from_spec_uses_regularization_dtype_and_init():
    spec = {
        "layers": layers((300, "relu"), (1, "linear")),
        "regularization": {"l1": 0.01, "l2": 0.02},
        "dtype": "float32",
        "init": "he",
    }
    net = Network.from_spec(spec, input_dim=200, seed=0)
    assert (net.l1, net.l2) == (0.01, 0.02)
    assert all(p.dtype == np.float32 for p in net.weights + net.biases)
    assert net.weights[0].std() == pytest.approx(np.sqrt(2 / 200), rel=0.05)  # he: N(0, 2/fan_in)


def test_from_spec_xavier_stays_within_its_bound():
    net = Network.from_spec({"layers": layers((50, "tanh"), (30, "tanh"))}, input_dim=20, seed=0)
    assert np.abs(net.weights[0]).max() <= np.sqrt(6 / (20 + 50))
    assert np.abs(net.weights[0]).max() > 0.9 * np.sqrt(6 / (20 + 50))


def test_from_spec_rejects_an_invalid_network_part():
    with pytest.raises(ValueError, match="softmax is allowed on the output layer only"):
        Network.from_spec({"layers": layers((4, "softmax"), (2, "softmax"))}, input_dim=2)


# forward, J and the Gradients record, by hand


def test_forward_by_hand():
    net = small_net()
    X = np.array([[1.0, 2.0], [3.0, 0.0]])
    # example 0: z1 = [1-2, 0.5+4-1] = [-1, 3.5] -> a1 = [0, 3.5] -> z2 = -10.5 + 0.5 = -10
    # example 1: z1 = [3, 1.5-1] = [3, 0.5] -> a1 = [3, 0.5] -> z2 = 6 - 1.5 + 0.5 = 5
    np.testing.assert_allclose(net.forward(X), [[-10.0], [5.0]])


def test_gradients_by_hand():
    net = small_net(l1=0.1, l2=0.2)
    X = np.array([[1.0, 2.0], [3.0, 0.0]])
    Y = np.array([[-9.0], [3.0]])
    g = net.gradients(X, Y)
    # delta2 = a2 - y = [-1, 2]; losses ½·1, ½·4 -> data loss 1.25
    assert g.data_loss == pytest.approx(1.25)
    sum_sq = 1 + 1 + 0.25 + 4 + 4 + 9
    sum_abs = 1 + 1 + 0.5 + 2 + 2 + 3
    assert g.loss == pytest.approx(1.25 + 0.2 / 2 * sum_sq + 0.1 * sum_abs)
    np.testing.assert_allclose(g.delta[1], [[-1.0], [2.0]])
    # backprop1 = delta2 W2 = [[-2, 3], [4, -6]]; f1' = [[0, 1], [1, 1]]
    np.testing.assert_allclose(g.backprop[0], [[-2.0, 3.0], [4.0, -6.0]])
    np.testing.assert_allclose(g.fprime[0], [[0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(g.delta[0], [[0.0, 3.0], [4.0, -6.0]])
    # dW2 = mean(delta2 a1) + l2 W2 + l1 sign W2 = ([-1]·[0, 3.5] + [2]·[3, 0.5]) / 2 + ...
    np.testing.assert_allclose(g.dW[1], [[3.0 + 0.4 + 0.1, (-3.5 + 1.0) / 2 - 0.6 - 0.1]])
    np.testing.assert_allclose(g.db[1], [0.5])
    # dW1 = mean(delta1^T x): rows [0·x0 + 4·x1, 3·x0 - 6·x1] / 2
    dW1 = np.array([[12.0, 0.0], [3.0 - 18.0, 6.0]]) / 2
    dW1 += 0.2 * net.weights[0] + 0.1 * np.sign(net.weights[0])
    np.testing.assert_allclose(g.dW[0], dW1)
    np.testing.assert_allclose(g.db[0], [2.0, -1.5])


def test_gradients_record_has_contract_shapes():
    net = Network.from_spec({"layers": layers((5, "tanh"), (4, "relu"), (3, "softmax"))}, input_dim=2)
    X = np.random.default_rng(0).normal(size=(7, 2))
    Y = np.eye(3)[[0, 1, 2, 0, 1, 2, 0]]
    g = net.gradients(X, Y)
    assert isinstance(g, Gradients)
    assert isinstance(g.loss, float) and isinstance(g.data_loss, float)
    assert g.loss == g.data_loss  # no regularization
    assert [d.shape for d in g.delta] == [(7, 5), (7, 4), (7, 3)]
    assert [f.shape for f in g.fprime] == [(7, 5), (7, 4), (7, 3)]
    assert [None if b is None else b.shape for b in g.backprop] == [(7, 5), (7, 4), None]
    assert [a.shape for a in g.a] == [(7, 2), (7, 5), (7, 4), (7, 3)]
    assert [dW.shape for dW in g.dW] == [W.shape for W in net.weights]
    assert [db.shape for db in g.db] == [b.shape for b in net.biases]
    assert all(dW.flags.c_contiguous for dW in g.dW)  # laid out like W, for the optimizers' in-place updates
    np.testing.assert_array_equal(g.a[0], X)
    np.testing.assert_array_equal(g.a[-1], net.forward(X))
    for k in range(2):
        np.testing.assert_allclose(g.delta[k], g.backprop[k] * g.fprime[k])
    np.testing.assert_allclose(g.delta[-1], g.a[-1] - Y)
    np.testing.assert_allclose(g.db[0], g.delta[0].mean(axis=0))


def test_weights_are_live_arrays():
    net = small_net()
    X = np.array([[1.0, 2.0]])
    net.weights[1][...] = [[0.0, 0.0]]
    net.biases[1][...] = [4.0]
    np.testing.assert_allclose(net.forward(X), [[4.0]])


def test_forward_accepts_lists_and_keeps_the_network_dtype():
    net = small_net(dtype=np.float32)
    out = net.forward([[1, 2], [3, 0]])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[-10.0], [5.0]])


# float32 end to end

FLOAT32_CASES = [
    (("tanh", "sigmoid"), "binary_cross_entropy"),
    (("relu", "softmax"), "cross_entropy"),
    (("leaky_relu", "linear"), "mse"),
    (("sigmoid", "tanh"), "mse"),
    (("linear", "relu"), "mse"),
]


@pytest.mark.parametrize(("acts", "loss"), FLOAT32_CASES)
@pytest.mark.parametrize("reg", [{"l1": 0.0, "l2": 0.0}, {"l1": 0.01, "l2": 0.02}])
def test_float32_network_keeps_float32_everywhere(acts, loss, reg):
    hidden, output = acts
    spec = {"layers": layers((6, hidden), (5, hidden), (3, output)), "loss": loss}
    net = Network.from_spec({**spec, "dtype": "float32", "regularization": reg}, input_dim=4, seed=1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 4))  # float64 input is cast to the network's dtype
    Y = np.eye(3)[rng.integers(0, 3, 8)] if loss == "cross_entropy" else rng.uniform(0, 1, (8, 3))
    assert net.forward(X).dtype == np.float32
    g = net.gradients(X, Y)
    arrays = g.dW + g.db + g.delta + g.fprime + g.a + [b for b in g.backprop if b is not None]
    assert all(arr.dtype == np.float32 for arr in arrays), [arr.dtype for arr in arrays]
    assert isinstance(g.loss, float) and np.isfinite(g.loss)
    # and it agrees with the same network in float64
    net64 = Network.from_spec({**spec, "dtype": "float64", "regularization": reg}, input_dim=4, seed=1)
    g64 = net64.gradients(X, Y)
    assert g.loss == pytest.approx(g64.loss, rel=1e-5)
    for dW, dW64 in zip(g.dW, g64.dW, strict=True):
        np.testing.assert_allclose(dW, dW64, rtol=1e-4, atol=1e-6)


# shape errors


def test_forward_rejects_inputs_of_the_wrong_width():
    net = small_net()
    with pytest.raises(ValueError, match=r"X has shape \(4, 3\), expected \(n, 2\)"):
        net.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"X has shape \(2,\), expected \(n, 2\)"):
        net.forward(np.zeros(2))


def test_gradients_rejects_inputs_and_targets_of_the_wrong_shape():
    net = small_net()
    with pytest.raises(ValueError, match=r"X has shape \(4, 5\)"):
        net.gradients(np.zeros((4, 5)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"Y has shape \(4,\), expected \(4, 1\)"):
        net.gradients(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"Y has shape \(3, 1\), expected \(4, 1\)"):
        net.gradients(np.zeros((4, 2)), np.zeros((3, 1)))


def test_gradients_rejects_an_empty_batch():
    with pytest.raises(ValueError, match=r"X has shape \(0, 2\): the batch needs at least one example"):
        small_net().gradients(np.zeros((0, 2)), np.zeros((0, 1)))
    assert small_net().forward(np.zeros((0, 2))).shape == (0, 1)


def test_constructor_rejects_layers_that_do_not_fit():
    W1, W2 = np.zeros((3, 2)), np.zeros((1, 4))
    with pytest.raises(ValueError, match=r"layer 1: W shape \(1, 4\) does not take 3 inputs"):
        Network([W1, W2], [np.zeros(3), np.zeros(1)], ["tanh", "linear"], "mse")
    with pytest.raises(ValueError, match=r"layer 0: W shape \(3, 2\) and b shape \(2,\) do not fit"):
        Network([W1], [np.zeros(2)], ["linear"], "mse")
    with pytest.raises(ValueError, match="got 1 weights, 1 biases and 2 activations"):
        Network([W1], [np.zeros(3)], ["tanh", "linear"], "mse")


def test_every_activation_is_known_to_the_network():
    # The network looks activations up in the same table the spec validates against.
    for name in ACTIVATIONS:
        loss = "cross_entropy" if name == "softmax" else "mse"
        net = Network([np.ones((2, 2))], [np.zeros(2)], [name], loss)
        assert net.forward(np.ones((1, 2))).shape == (1, 2)
