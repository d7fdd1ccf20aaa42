"""Built-in 2-D datasets, seeded and deterministic, split into train and test sets.

Shapes: X (n, input_dim) float64; classification targets are integer labels (n,) in 0..n_classes-1,
regression targets are (n, target_dim) floats. `encode_targets` turns them into Y (n, units_L) for a loss.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # spec.py imports this module
    from .spec import DatasetSpec

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a spec's layers must match: input size, task and target size."""

    name: str
    task: Task
    input_dim: int
    n_classes: int | None = None  # classification only
    target_dim: int = 1  # regression only

    def output_units(self, loss: str) -> int:
        """Output units a network needs for this dataset under `loss`."""
        if self.task == "classification" and loss == "cross_entropy":
            return int(self.n_classes)
        if self.task == "classification":
            return 1
        return self.target_dim


@dataclass
class Dataset:
    info: DatasetInfo
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


Generator = Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray]]


def circle(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 inside radius 2, class 0 on a ring from 3 to 5 (TF Playground's layout)."""
    inner = n // 2
    r = np.concatenate([rng.uniform(0, 2, inner), rng.uniform(3, 5, n - inner)])
    angle = rng.uniform(0, 2 * np.pi, n)
    X = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1) / 5
    y = np.concatenate([np.ones(inner, int), np.zeros(n - inner, int)])
    return X + noise * rng.normal(size=X.shape) / 5, y


def xor(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Points in the four quadrants, kept a margin away from the axes; label = sign(x)·sign(y) > 0."""
    X = rng.uniform(0.1, 1, (n, 2)) * rng.choice([-1.0, 1.0], (n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    return X + noise * rng.normal(size=X.shape), y


def gaussian(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs centred at (±0.5, ±0.5), spread 0.15 + noise."""
    y = np.arange(n) % 2
    centres = np.where(y[:, None] == 1, 0.5, -0.5)
    return centres + (0.15 + noise) * rng.normal(size=(n, 2)), y


def spiral(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals of 1.75 turns."""
    y = np.arange(n) % 2
    t = rng.uniform(0, 1, n)
    r = 0.1 + 0.9 * t
    angle = 1.75 * 2 * np.pi * t + np.pi * y
    X = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
    return X + noise * rng.normal(size=X.shape) / 5, y


def moons(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, centred near the origin."""
    y = np.arange(n) % 2
    angle = rng.uniform(0, np.pi, n)
    X = np.where(
        y[:, None] == 0,
        np.stack([np.cos(angle), np.sin(angle)], axis=1),
        np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], axis=1),
    )
    X = (X - [0.5, 0.25]) / 1.5
    return X + noise * rng.normal(size=X.shape), y


def plane(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Regression target y = (x1 + x2)/2 on the square [-1, 1]²."""
    X = rng.uniform(-1, 1, (n, 2))
    t = (X[:, 0] + X[:, 1]) / 2
    return X, (t + noise * rng.normal(size=n))[:, None]


def gaussian_mix(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Regression target: a signed sum of four Gaussian bumps on [-1, 1]²."""
    X = rng.uniform(-1, 1, (n, 2))
    centres = np.array([[-0.5, -0.5], [0.5, 0.5], [-0.5, 0.5], [0.5, -0.5]])
    signs = np.array([1.0, 1.0, -1.0, -1.0])
    d2 = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2)
    t = (signs * np.exp(-d2 / (2 * 0.2**2))).sum(axis=1)
    return X, (t + noise * rng.normal(size=n))[:, None]


BUILTIN: dict[str, tuple[DatasetInfo, Generator]] = {
    name: (DatasetInfo(name, task, 2, 2 if task == "classification" else None), gen)
    for name, task, gen in [
        ("circle", "classification", circle),
        ("xor", "classification", xor),
        ("gaussian", "classification", gaussian),
        ("spiral", "classification", spiral),
        ("moons", "classification", moons),
        ("plane", "regression", plane),
        ("gaussian_mix", "regression", gaussian_mix),
    ]
}


def split(X: np.ndarray, y: np.ndarray, test_fraction: float, rng: np.random.Generator):
    """Shuffle rows and cut off the last `test_fraction` of them as the test set."""
    order = rng.permutation(len(X))
    n_test = round(test_fraction * len(X))
    train, test = order[: len(X) - n_test], order[len(X) - n_test :]
    return X[train], y[train], X[test], y[test]


def make_builtin(name: str, samples: int, noise: float, test_fraction: float, seed: int) -> Dataset:
    """Generate built-in dataset `name`; the same arguments give the same arrays."""
    if name not in BUILTIN:
        raise ValueError(f"unknown dataset {name!r}; built-in datasets are {sorted(BUILTIN)}")
    info, generate = BUILTIN[name]
    rng = np.random.default_rng(seed)
    X, y = generate(rng, samples, noise)
    return Dataset(info, *split(X, y, test_fraction, rng))


def encode_targets(y: np.ndarray, info: DatasetInfo, loss: str, dtype) -> np.ndarray:
    """Targets as Y (n, units_L): one-hot labels for cross-entropy, a label column otherwise."""
    if info.task == "classification" and loss == "cross_entropy":
        return np.eye(info.n_classes, dtype=dtype)[y]
    if info.task == "classification":
        return y.astype(dtype)[:, None]
    return y.astype(dtype)


def make_dataset(
    spec: "DatasetSpec", uploaded: tuple[np.ndarray, np.ndarray, DatasetInfo] | None = None
) -> Dataset:
    """The Dataset a spec's `dataset` section (a DatasetSpec) names.

    Built-in names are generated from (samples, noise, seed). An `upload:<id>` dataset needs its parsed
    arrays `uploaded = (X, y, info)` (from csvdata.parse_csv); `samples` and `noise` do not apply to it,
    it is only split by `test_fraction` with rows shuffled by `seed`.
    """
    if spec.name in BUILTIN:
        return make_builtin(spec.name, spec.samples, spec.noise, spec.test_fraction, spec.seed)
    if uploaded is None:
        raise ValueError(
            f"dataset {spec.name!r} is not built in: an uploaded dataset needs its data "
            f"(built-in datasets are {', '.join(BUILTIN)})"
        )
    X, y, info = uploaded
    if len(X) != len(y):
        raise ValueError(f"uploaded X has {len(X)} rows but y has {len(y)}")
    rng = np.random.default_rng(spec.seed)
    return Dataset(info, *split(np.asarray(X, np.float64), np.asarray(y), spec.test_fraction, rng))
