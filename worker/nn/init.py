"""Weight initialisers: W[k] of shape (units_k, units_{k-1}) drawn from a seeded Generator.

xavier (Glorot uniform): U(-r, r), r = sqrt(6 / (fan_in + fan_out)); he: N(0, 2 / fan_in);
normal: N(0, 0.1²). Biases start at zero.
"""

from collections.abc import Callable

import numpy as np

Init = Callable[[np.random.Generator, int, int], np.ndarray]


def xavier(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    r = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=(fan_out, fan_in))


def he(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))


def normal(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    return rng.normal(0.0, 0.1, size=(fan_out, fan_in))


INITIALIZERS: dict[str, Init] = {"xavier": xavier, "he": he, "normal": normal}
