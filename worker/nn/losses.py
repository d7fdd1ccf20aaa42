"""Per-example losses, each beside the output error signal delta[L] it induces.

Shapes: a = output activations (n, units_L), z = output pre-activations, y = targets, same shape.
`value(a, y)` gives the per-example loss, shape (n,). `delta_L(a, y, activation, fprime)` gives
delta[L] = dloss/da ⊙ f'(z), shape (n, units_L), where fprime = f_L'(z) of the output activation.
Cross-entropy pairs with softmax and binary cross-entropy usually with sigmoid; for those pairs the
product simplifies to a - y, which is also the numerically stable form.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Loss:
    value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    delta_L: Callable[[np.ndarray, np.ndarray, str, np.ndarray], np.ndarray]


def _clip(a: np.ndarray) -> np.ndarray:
    eps = np.finfo(a.dtype).eps
    return np.minimum(np.maximum(a, eps), 1 - eps)  # as np.clip, without its Python-level overhead


def _mse_value(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = a - y
    return a.dtype.type(0.5) * np.einsum("ij,ij->i", d, d)


def _mse_delta(a, y, activation, fprime):
    return (a - y) * fprime


def _bce_value(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = _clip(a)
    log_p = np.log(p)
    log_p *= y
    np.negative(p, out=p)
    np.log1p(p, out=p)  # log(1 - a)
    p *= 1 - y
    p += log_p
    return -p.sum(axis=1)


def _bce_delta(a, y, activation, fprime):
    if activation == "sigmoid":  # (a - y)/(a(1-a)) · a(1-a)
        return a - y
    p = _clip(a)
    return (p - y) / (p * (1 - p)) * fprime


def _ce_value(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -(y * np.log(_clip(a))).sum(axis=1)


def _ce_delta(a, y, activation, fprime):
    if activation != "softmax":
        raise ValueError(f"cross_entropy needs a softmax output layer, got {activation!r}")
    return a - y


LOSSES: dict[str, Loss] = {
    "mse": Loss(_mse_value, _mse_delta),
    "binary_cross_entropy": Loss(_bce_value, _bce_delta),
    "cross_entropy": Loss(_ce_value, _ce_delta),
}
