"""A dense network and backpropagation, exactly as in the derivation (contract §1).

Notation (one row per example; a batch X has shape (n, units_0)):
    W[k]  (units_k, units_{k-1})   b[k]  (units_k,)
    z[k] = a[k-1] W[k]^T + b[k]    a[k] = f_k(z[k])          shapes (n, units_k)
    delta[L] = dloss/da[L] ⊙ f_L'(z[L])
    delta[k] = (delta[k+1] W[k+1]) ⊙ f_k'(z[k])             i.e. (W^T delta) ⊙ f'(z), row-wise
    dJ/dW[k] = mean_i delta_i[k] a_i[k-1]^T + l2 W[k] + l1 sign(W[k])     dJ/db[k] = mean_i delta_i[k]
Code lists are 0-based: weights[k] is the math's W[k+1]; a[0] is the input X, so weights[k] maps a[k]
to z of layer k+1, and delta[k], fprime[k], backprop[k] belong to the same layer as weights[k].
"""

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .activations import ACTIVATIONS
from .init import INITIALIZERS
from .losses import LOSSES
from .spec import NetworkSpec, network_spec


@dataclass
class Gradients:
    """One batch's backward pass. Lists run over layers, output last; arrays have the network's dtype."""

    loss: float  # J: mean per-example loss + regularization
    dW: list[np.ndarray]  # (units_k, units_{k-1})
    db: list[np.ndarray]  # (units_k,)
    delta: list[np.ndarray]  # (n, units_k) per-example error signals
    fprime: list[np.ndarray]  # (n, units_k) f_k'(z[k])
    backprop: list[
        np.ndarray | None
    ]  # (n, units_k) delta[k+1] W[k+1], the part of delta from above; None at the output
    a: list[np.ndarray]  # activations, a[0] = X, a[k+1] (n, units_k)
    data_loss: float  # mean per-example loss alone


class Network:
    def __init__(
        self,
        weights: list[np.ndarray],
        biases: list[np.ndarray],
        activations: list[str],
        loss: str,
        l1: float = 0.0,
        l2: float = 0.0,
    ):
        if not (len(weights) == len(biases) == len(activations)):
            raise ValueError(
                f"got {len(weights)} weights, {len(biases)} biases and {len(activations)} activations"
            )
        for k, (W, b) in enumerate(zip(weights, biases, strict=True)):
            if W.ndim != 2 or b.shape != (W.shape[0],):
                raise ValueError(f"layer {k}: W shape {W.shape} and b shape {b.shape} do not fit")
            if k and W.shape[1] != weights[k - 1].shape[0]:
                raise ValueError(
                    f"layer {k}: W shape {W.shape} does not take {weights[k - 1].shape[0]} inputs"
                )
        self.weights = weights
        self.biases = biases
        self.activation_names = list(activations)
        self.activations = [ACTIVATIONS[name] for name in activations]
        self.loss_name = loss
        self.loss = LOSSES[loss]
        self.l1 = l1
        self.l2 = l2

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | NetworkSpec, input_dim: int, seed: int = 0) -> "Network":
        """Build a freshly initialised network from a contract §3 spec (only the network part is used)."""
        net = network_spec(spec)
        rng = np.random.default_rng(seed)
        dtype = np.dtype(net.dtype)
        init = INITIALIZERS[net.init]
        sizes = [input_dim] + [layer.units for layer in net.layers]
        weights = [init(rng, n_out, n_in).astype(dtype) for n_in, n_out in itertools.pairwise(sizes)]
        biases = [np.zeros(n_out, dtype) for n_out in sizes[1:]]
        activations = [layer.activation for layer in net.layers]
        return cls(weights, biases, activations, net.loss, net.regularization.l1, net.regularization.l2)

    @property
    def dtype(self) -> np.dtype:
        return self.weights[0].dtype

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [W.shape[0] for W in self.weights]

    def _input(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.weights[0].shape[1]:
            raise ValueError(f"X has shape {X.shape}, expected (n, {self.weights[0].shape[1]})")
        return X

    def forward(self, X) -> np.ndarray:
        """Output activations a[L], shape (n, units_L)."""
        a = self._input(X)
        for W, b, act in zip(self.weights, self.biases, self.activations, strict=True):
            z = a @ W.T
            z += b
            a = act.f(z)
        return a

    def regularization(self) -> float:
        l2 = sum(float(np.vdot(W, W)) for W in self.weights) * self.l2 / 2 if self.l2 else 0.0
        l1 = sum(float(np.abs(W).sum()) for W in self.weights) * self.l1 if self.l1 else 0.0
        return l2 + l1

    def gradients(self, X, Y, out: tuple[list[np.ndarray], list[np.ndarray]] | None = None) -> Gradients:
        """Forward pass caching z and a, then the three backprop equations walked from the output down.
        `out` = (dW arrays, db arrays) of the right shapes and dtype: the gradients are written there
        (and returned as those arrays) instead of into new ones."""
        a = [self._input(X)]
        n = a[0].shape[0]
        Y = np.asarray(Y, dtype=self.dtype)
        if Y.shape != (n, self.weights[-1].shape[0]):
            raise ValueError(f"Y has shape {Y.shape}, expected ({n}, {self.weights[-1].shape[0]})")
        if n == 0:
            raise ValueError(f"X has shape {a[0].shape}: the batch needs at least one example")
        fprime = []
        for W, b, act in zip(self.weights, self.biases, self.activations, strict=True):
            z = a[-1] @ W.T
            z += b
            a.append(act.f(z))
            fprime.append(act.fprime(z, a[-1]))
        data_loss = float(self.loss.value(a[-1], Y).sum()) / n
        L = len(self.weights)
        delta: list[np.ndarray] = [None] * L  # type: ignore[list-item]
        backprop: list[np.ndarray | None] = [None] * L
        dW: list[np.ndarray] = [None] * L  # type: ignore[list-item]
        db: list[np.ndarray] = [None] * L  # type: ignore[list-item]
        delta[-1] = self.loss.delta_L(a[-1], Y, self.activation_names[-1], fprime[-1])
        t = self.dtype.type
        inv_n = t(1.0 / n)
        for k in range(L - 1, -1, -1):
            d = delta[k] * inv_n  # the mean's 1/n, applied once for both dW and db
            if out is None:
                dW[k], db[k] = d.T @ a[k], d.sum(axis=0)
            else:
                dW[k] = np.matmul(d.T, a[k], out=out[0][k])
                db[k] = np.sum(d, axis=0, out=out[1][k])
            if self.l2:
                dW[k] += t(self.l2) * self.weights[k]
            if self.l1:
                dW[k] += t(self.l1) * np.sign(self.weights[k])
            if k:
                backprop[k - 1] = delta[k] @ self.weights[k]
                delta[k - 1] = backprop[k - 1] * fprime[k - 1]
        return Gradients(data_loss + self.regularization(), dW, db, delta, fprime, backprop, a, data_loss)
