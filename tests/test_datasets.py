"""Built-in datasets: shapes, labels, determinism, splits; make_dataset for built-in and uploaded data."""

import numpy as np
import pytest

from worker.nn.datasets import BUILTIN, DatasetInfo, encode_targets, make_builtin, make_dataset, split
from worker.nn.spec import DatasetSpec

CLASSIFICATION = ["circle", "xor", "gaussian", "spiral", "moons"]
REGRESSION = ["plane", "gaussian_mix"]


def test_builtin_table_lists_every_dataset_with_its_task():
    assert set(BUILTIN) == set(CLASSIFICATION + REGRESSION)
    for name in CLASSIFICATION:
        assert BUILTIN[name][0] == DatasetInfo(name, "classification", 2, 2)
    for name in REGRESSION:
        assert BUILTIN[name][0] == DatasetInfo(name, "regression", 2, None, 1)


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_classification_dataset_shapes_and_labels(name):
    d = make_builtin(name, samples=200, noise=0.1, test_fraction=0.25, seed=3)
    assert d.X_train.shape == (150, 2) and d.X_test.shape == (50, 2)
    assert d.y_train.shape == (150,) and d.y_test.shape == (50,)
    assert d.X_train.dtype == np.float64 and np.issubdtype(d.y_train.dtype, np.integer)
    labels = np.concatenate([d.y_train, d.y_test])
    assert set(np.unique(labels)) == {0, 1}
    assert 80 <= np.count_nonzero(labels) <= 120  # roughly balanced
    X = np.concatenate([d.X_train, d.X_test])
    assert np.isfinite(X).all() and np.abs(X).max() < 3


@pytest.mark.parametrize("name", REGRESSION)
def test_regression_dataset_shapes_and_targets(name):
    d = make_builtin(name, samples=100, noise=0.0, test_fraction=0.2, seed=0)
    assert d.X_train.shape == (80, 2) and d.y_train.shape == (80, 1)
    assert d.X_test.shape == (20, 2) and d.y_test.shape == (20, 1)
    assert d.y_train.dtype == np.float64 and d.y_train.std() > 0.05


def test_plane_target_is_the_mean_of_the_inputs_without_noise():
    d = make_builtin("plane", samples=50, noise=0.0, test_fraction=0.0, seed=0)
    np.testing.assert_allclose(d.y_train[:, 0], d.X_train.mean(axis=1))


def test_xor_labels_follow_the_quadrant_signs_without_noise():
    d = make_builtin("xor", samples=300, noise=0.0, test_fraction=0.0, seed=5)
    np.testing.assert_array_equal(d.y_train, (d.X_train[:, 0] * d.X_train[:, 1] > 0).astype(int))


def test_circle_inner_class_is_inside_radius_and_outer_outside_without_noise():
    d = make_builtin("circle", samples=300, noise=0.0, test_fraction=0.0, seed=5)
    r = np.linalg.norm(d.X_train, axis=1)
    assert r[d.y_train == 1].max() <= 0.4 and r[d.y_train == 0].min() >= 0.6


@pytest.mark.parametrize("name", CLASSIFICATION + REGRESSION)
def test_same_seed_gives_the_same_arrays_and_another_seed_different_ones(name):
    a = make_builtin(name, 120, 0.1, 0.2, seed=7)
    b = make_builtin(name, 120, 0.1, 0.2, seed=7)
    c = make_builtin(name, 120, 0.1, 0.2, seed=8)
    for field in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.X_train, c.X_train)


@pytest.mark.parametrize(
    ("samples", "fraction", "n_test"), [(400, 0.2, 80), (10, 0.0, 0), (101, 0.5, 50), (10, 0.9, 9)]
)
def test_split_sizes_follow_test_fraction(samples, fraction, n_test):
    d = make_builtin("gaussian", samples, 0.0, fraction, seed=0)
    assert len(d.X_test) == len(d.y_test) == n_test
    assert len(d.X_train) == len(d.y_train) == samples - n_test


def test_split_keeps_rows_together_and_loses_none():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10)
    X_tr, y_tr, X_te, y_te = split(X, y, 0.3, np.random.default_rng(0))
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(10))
    np.testing.assert_array_equal(X_tr[:, 0], 2 * y_tr)
    np.testing.assert_array_equal(X_te[:, 0], 2 * y_te)


def test_noise_moves_the_points():
    clean = make_builtin("moons", 100, 0.0, 0.0, seed=1)
    noisy = make_builtin("moons", 100, 0.2, 0.0, seed=1)
    assert not np.allclose(clean.X_train, noisy.X_train)


def test_make_builtin_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        make_builtin("nope", 100, 0.0, 0.2, 0)


def test_make_dataset_generates_a_builtin_from_its_spec():
    spec = DatasetSpec(name="spiral", samples=60, noise=0.1, test_fraction=0.5, seed=4)
    d = make_dataset(spec)
    ref = make_builtin("spiral", 60, 0.1, 0.5, 4)
    np.testing.assert_array_equal(d.X_train, ref.X_train)
    assert d.info.name == "spiral"


def test_make_dataset_splits_uploaded_arrays_by_the_spec_seed():
    X = np.arange(40.0).reshape(20, 2)
    y = np.arange(20) % 3
    info = DatasetInfo("upload:abc", "classification", 2, 3)
    spec = DatasetSpec(name="upload:abc", test_fraction=0.25, seed=2)
    d = make_dataset(spec, (X, y, info))
    assert d.info is info
    assert d.X_train.shape == (15, 2) and d.X_test.shape == (5, 2)
    np.testing.assert_array_equal(make_dataset(spec, (X, y, info)).X_test, d.X_test)
    np.testing.assert_array_equal(np.sort(np.concatenate([d.X_train, d.X_test])[:, 0]), X[:, 0])


def test_make_dataset_without_uploaded_arrays_says_so():
    with pytest.raises(ValueError, match=r"upload:abc.*needs its data"):
        make_dataset(DatasetSpec(name="upload:abc"))


def test_encode_targets_one_hot_for_cross_entropy_and_a_column_otherwise():
    info = DatasetInfo("d", "classification", 2, 3)
    y = np.array([0, 2, 1])
    np.testing.assert_array_equal(encode_targets(y, info, "cross_entropy", np.float32), np.eye(3)[[0, 2, 1]])
    assert encode_targets(y, info, "cross_entropy", np.float32).dtype == np.float32
    np.testing.assert_array_equal(encode_targets(y, info, "mse", np.float64), [[0.0], [2.0], [1.0]])
    reg = DatasetInfo("r", "regression", 2)
    assert encode_targets(np.ones((3, 1)), reg, "mse", np.float64).shape == (3, 1)
