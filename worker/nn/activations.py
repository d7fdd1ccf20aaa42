"""Activation functions, each beside its derivative.

`f(z)` and `fprime(z, a)` act elementwise on z of shape (n, units); `fprime` also receives a = f(z)
because sigmoid and tanh are cheapest written in terms of their output. Both keep z's dtype.
Softmax couples the units of a row, so its Jacobian is not diagonal; it is only allowed on the output
layer with cross-entropy, where delta[L] = a - y and f' is never used (see losses.py). Its `fprime`
returns the Jacobian's diagonal a(1-a), which is what the f'(z) statistics report.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    f: Callable[[np.ndarray], np.ndarray]
    fprime: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Written via tanh so large |z| neither overflows exp nor loses the dtype; in place on one new array.
    half = z.dtype.type(0.5)
    a = np.multiply(z, half)
    np.tanh(a, out=a)
    a += 1
    a *= half
    return a


def _sigmoid_prime(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    s = 1 - a
    s *= a
    return s


def _tanh_prime(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    s = a * a
    np.subtract(1, s, out=s)
    return s


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _relu_prime(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    return (z > 0).astype(z.dtype)


def _leaky_relu(z: np.ndarray) -> np.ndarray:
    return np.where(z > 0, z, z * z.dtype.type(LEAKY_SLOPE))


def _leaky_relu_prime(z: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where(z > 0, z.dtype.type(1), z.dtype.type(LEAKY_SLOPE))


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda z: z, lambda z, a: np.ones_like(z)),
    "sigmoid": Activation(_sigmoid, _sigmoid_prime),
    "tanh": Activation(np.tanh, _tanh_prime),
    "relu": Activation(lambda z: np.maximum(z, 0), _relu_prime),
    "leaky_relu": Activation(_leaky_relu, _leaky_relu_prime),
    "softmax": Activation(_softmax, _sigmoid_prime),  # the Jacobian's diagonal a(1-a)
}
