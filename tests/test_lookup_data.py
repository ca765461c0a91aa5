"""The lookup data set: which token sits at the queried position (for a one-head attention model)."""

import numpy as np
import pytest

from derive.train.data import DESCRIPTIONS, Dataset, dataset_names, load_dataset

T, F, K = 8, 22, 7  # positions, features per position, tokens (= classes = queryable positions)


@pytest.fixture(scope="module")
def data():
    return load_dataset("lookup", seed=0)


def _splits(d):
    return ((d.x_train, d.y_train, 3000), (d.x_test, d.y_test, 1000))


def test_listed_and_described():
    assert "lookup" in dataset_names()
    assert "lookup" in DESCRIPTIONS and "7 classes" in DESCRIPTIONS["lookup"]


def test_shapes_dtypes_and_classes(data):
    assert isinstance(data, Dataset) and data.name == "lookup" and data.description
    assert data.image_shape == (T, F)
    assert data.classes is not None and len(data.classes) == K
    assert all(isinstance(c, str) for c in data.classes) and len(set(data.classes)) == K
    for x, y, n in _splits(data):
        assert x.dtype == np.float64 and y.dtype == np.float64
        assert x.shape == (n, T * F) and y.shape == (n, K)
        assert set(np.unique(x)) == {0.0, 1.0}
        assert np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)


def test_one_hot_rows(data):
    for x, _, n in _splits(data):
        e = x.reshape(n, T, F)
        token, position, query = e[:, :, :K], e[:, :, K:K + T], e[:, :, K + T:]
        # Every position one-hots its own index.
        assert np.array_equal(position, np.broadcast_to(np.eye(T), (n, T, T)))
        # Positions 1..7: exactly one token, no query. Position 8: no token, exactly one query.
        assert np.all(token[:, :K].sum(axis=2) == 1) and np.all(query[:, :K] == 0)
        assert np.all(token[:, K] == 0) and np.all(query[:, K].sum(axis=1) == 1)


def test_positions_hold_a_permutation_of_the_tokens(data):
    for x, _, n in _splits(data):
        tokens = x.reshape(n, T, F)[:, :K, :K].argmax(axis=2)
        assert np.array_equal(np.sort(tokens, axis=1), np.broadcast_to(np.arange(K), (n, K)))


def test_label_is_the_token_at_the_queried_position(data):
    for x, y, n in _splits(data):
        e = x.reshape(n, T, F)
        for i in range(n):  # decoded by hand, row by row
            q = int(np.flatnonzero(e[i, T - 1, K + T:])[0])  # queried position minus one
            row = e[i, q]
            assert row[K + q] == 1  # that row is position q + 1
            token = int(np.flatnonzero(row[:K])[0])
            assert int(np.flatnonzero(y[i])[0]) == token


def test_reproducible_per_seed_and_different_across_seeds(data):
    again, other = load_dataset("lookup", seed=0), load_dataset("lookup", seed=1)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(data, field), getattr(again, field))
    assert not np.array_equal(data.x_train, other.x_train)
    assert not np.array_equal(data.x_test, other.x_test)


def test_train_and_test_differ(data):
    assert not np.array_equal(data.x_train[:1000], data.x_test)
    # Mostly different examples: 7! permutations × 7 queries = 35,280 possible.
    train = {r.tobytes() for r in data.x_train}
    shared = sum(r.tobytes() in train for r in data.x_test)
    assert shared < 200


def test_labels_roughly_balanced(data):
    for _, y, n in _splits(data):
        share = y.sum(axis=0) / n
        assert np.all(share >= 0.10) and np.all(share <= 0.20), share
    queries = data.x_train.reshape(-1, T, F)[:, T - 1, K + T:].sum(axis=0) / 3000
    assert np.all(queries >= 0.10) and np.all(queries <= 0.20), queries
