"""The training data sets: built-in shapes, determinism, reshaping, and the checks on .npz files."""

import numpy as np
import pytest

from derive.train.data import Dataset, dataset_names, load_dataset, reshape_for
from derive.errors import InputError

SIZES = {  # name: (train, test, per-example shape, classes, image_shape)
    "book-0-1": (64, 16, (12,), ("0", "1"), (3, 4)),
    "book-1-2-3": (96, 24, (1, 6, 6), ("1", "2", "3"), (1, 6, 6)),
    "digits": (1347, 450, (64,), tuple("0123456789"), (8, 8)),
    "lookup": (3000, 1000, (176,), tuple("1234567"), (8, 22)),
}


def test_names():
    assert dataset_names() == list(SIZES)


@pytest.mark.parametrize("name", list(SIZES))
def test_builtin_shapes_one_hot_and_balance(name):
    n_train, n_test, shape, classes, image_shape = SIZES[name]
    d = load_dataset(name)
    assert isinstance(d, Dataset) and d.name == name and d.description
    assert d.classes == classes and d.image_shape == image_shape
    k = len(classes)
    for x, y, n in ((d.x_train, d.y_train, n_train), (d.x_test, d.y_test, n_test)):
        assert x.dtype == np.float64 and y.dtype == np.float64
        assert x.shape == (n, *shape) and y.shape == (n, k)
        assert np.all(np.isfinite(x)) and x.min() >= 0 and x.max() <= 1
        assert np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)
        counts = y.sum(axis=0)
        if name == "digits":  # stratified: every class within one of its share
            assert counts.max() - counts.min() <= 0.05 * n
        elif name == "lookup":  # random labels: each class near its share of 1/7
            assert counts.min() >= 0.1 * n and counts.max() <= 0.2 * n
        else:
            assert np.all(counts == n // k)
    if name != "digits":
        assert set(np.unique(d.x_train)) == {0.0, 1.0}


@pytest.mark.parametrize("name", ["book-0-1", "book-1-2-3"])
def test_book_sets_are_deterministic_per_seed(name):
    a, b, c = load_dataset(name, seed=0), load_dataset(name, seed=0), load_dataset(name, seed=1)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_test, c.x_test)


def test_digits_split_ignores_the_seed():
    a, b = load_dataset("digits", seed=0), load_dataset("digits", seed=7)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))


def test_book_0_1_train_holds_the_clean_prototypes_and_noisy_copies():
    from derive.train.data import BOOK_0_1

    d = load_dataset("book-0-1")
    rows = {tuple(r) for r in d.x_train}
    for protos in BOOK_0_1.values():
        for p in protos:
            assert p.shape == (3, 4) and tuple(p.ravel()) in rows
    assert len(rows) > 20  # mostly distinct images, not 64 copies of a few


def _accuracy_of_softmax_regression(x, y, steps=3000, lr=0.5):
    """Plain gradient descent on the cross-entropy of a linear softmax classifier."""
    x = np.hstack([x.reshape(len(x), -1), np.ones((len(x), 1))])
    w = np.zeros((x.shape[1], y.shape[1]))
    for _ in range(steps):
        z = x @ w
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        w -= lr * x.T @ (p - y) / len(x)
    return np.mean((x @ w).argmax(axis=1) == y.argmax(axis=1))


def test_book_0_1_is_learnable():
    d = load_dataset("book-0-1")
    assert _accuracy_of_softmax_regression(d.x_train, d.y_train) == 1.0


def test_book_data_nearest_prototype_classifies_every_training_image():
    from derive.train.data import BOOK_0_1, BOOK_1_2_3

    for name, protos in (("book-0-1", BOOK_0_1), ("book-1-2-3", BOOK_1_2_3)):
        d = load_dataset(name)
        flat = [np.array([p.ravel() for p in ps]) for ps in protos.values()]
        x = d.x_train.reshape(len(d.x_train), -1)
        if name == "book-1-2-3":  # shifted copies: compare with every one-pixel shift of each prototype
            flat = [np.array([np.roll(p, s, axis=(0, 1)).ravel() for p in ps
                              for s in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))]) for ps in protos.values()]
        distance = np.stack([np.abs(x[:, None, :] - f[None]).sum(axis=2).min(axis=1) for f in flat], axis=1)
        assert np.array_equal(distance.argmin(axis=1), d.y_train.argmax(axis=1)), name


@pytest.mark.parametrize("name, shape, n_out", [
    ("book-0-1", (12,), 2),
    ("book-0-1", (1, 3, 4), 2),
    ("book-1-2-3", (36,), 3),
    ("book-1-2-3", (1, 6, 6), 3),
    ("digits", (64,), 10),
    ("digits", (1, 8, 8), 10),
])
def test_reshape_for(name, shape, n_out):
    d = load_dataset(name)
    r = reshape_for(d, shape, n_out)
    assert r.x_train.shape == (len(d.x_train), *shape) and r.x_test.shape == (len(d.x_test), *shape)
    assert np.array_equal(r.x_train.ravel(), d.x_train.ravel())
    assert r.y_train is d.y_train and r.classes == d.classes and r.image_shape == d.image_shape


def test_reshape_for_a_clean_image_keeps_its_pixels_in_place():
    from derive.train.data import BOOK_0_1

    d = reshape_for(load_dataset("book-0-1"), (1, 3, 4), 2)
    ring = BOOK_0_1["0"][0]
    assert any(np.array_equal(img[0], ring) for img in d.x_train)


def test_reshape_for_mismatches():
    with pytest.raises(InputError, match=r"takes 12 inputs per example, but data set book-1-2-3 has 1x6x6 = 36 values"):
        reshape_for(load_dataset("book-1-2-3"), (12,), 3)
    with pytest.raises(InputError, match=r"takes 1x6x6 = 36 inputs.*book-0-1 has 12 values"):
        reshape_for(load_dataset("book-0-1"), (1, 6, 6), 2)
    with pytest.raises(InputError, match=r"3 outputs.*book-0-1 has 2 target columns \(classes 0, 1\)"):
        reshape_for(load_dataset("book-0-1"), (12,), 3)


def test_reshape_for_data_without_a_test_split():
    d = Dataset("mine", "", np.zeros((3, 4)), np.zeros((3, 1)), None, None, None, None)
    r = reshape_for(d, (1, 2, 2), 1)
    assert r.x_train.shape == (3, 1, 2, 2) and r.x_test is None


def test_unknown_name():
    with pytest.raises(InputError, match="unknown data set 'mnist'.*book-0-1, book-1-2-3, digits"):
        load_dataset("mnist")


# --- .npz files -------------------------------------------------------------

def test_npz_with_targets_and_test_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.random((10, 3)), y=rng.random((10, 2)), x_test=rng.random((4, 3)), y_test=rng.random((4, 2)))
    d = load_dataset(str(path))
    assert d.x_train.shape == (10, 3) and d.y_train.shape == (10, 2)
    assert d.x_test.shape == (4, 3) and d.y_test.shape == (4, 2)
    assert d.classes is None and d.image_shape is None and d.x_train.dtype == np.float64
    assert reshape_for(d, (3,), 2).x_train.shape == (10, 3)


def test_npz_class_labels_become_one_hot(tmp_path):
    path = tmp_path / "labels.npz"
    images = np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2)
    np.savez(path, x=images, y=np.array([10, 2, 2, 7, 10]), x_test=images[:2], y_test=np.array([7, 2]))
    d = load_dataset(str(path))
    assert d.classes == ("2", "7", "10")  # sorted as numbers
    assert d.y_train.tolist() == [[0, 0, 1], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert d.y_test.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert d.image_shape == (2, 2) and d.x_train.dtype == np.float64
    assert reshape_for(d, (4,), 3).x_train.shape == (5, 4)


def _bad(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


X, Y = np.zeros((4, 3)), np.zeros((4, 2))


@pytest.mark.parametrize("arrays, message", [
    (dict(y=Y), r"no array 'x' \(the file has y\)"),
    (dict(X=X, Y=Y), r"no array 'x' \(the file has X, Y\)"),
    (dict(x=X), "no array 'y'"),
    (dict(x=X, y=Y, x_test=X), "x_test and y_test go together"),
    (dict(x=np.array([["a", "b"]] * 4), y=Y), "array 'x' is not numeric"),
    (dict(x=X, y=np.zeros((4, 2), dtype=complex)), "array 'y' is not numeric"),
    (dict(x=np.zeros(4), y=Y), r"x has shape \(4,\); need one row per example"),
    (dict(x=np.zeros((4, 1, 1, 1, 1)), y=Y), "x has shape"),
    (dict(x=X, y=np.zeros((4, 2, 1))), r"y has shape \(4, 2, 1\)"),
    (dict(x=X, y=np.zeros((5, 2))), "x has 4 examples but y has 5"),
    (dict(x=np.full((4, 3), np.nan), y=Y), "array 'x' has NaN or infinite values"),
    (dict(x=X, y=np.full((4, 2), np.inf)), "array 'y' has NaN or infinite values"),
    (dict(x=np.zeros((0, 3)), y=np.zeros((0, 2))), "array 'x' is empty"),
    (dict(x=X, y=np.array([0.5, 1, 0, 1])), "y has one dimension, so it must hold integer class labels"),
    (dict(x=X, y=Y, x_test=np.zeros((2, 4)), y_test=np.zeros((2, 2))), "x_test has examples of shape"),
    (dict(x=X, y=Y, x_test=np.zeros((2, 3)), y_test=np.zeros((2, 3))), "y_test has 3 target columns, y has 2"),
    (dict(x=X, y=Y, x_test=np.zeros((2, 3)), y_test=np.zeros(2)), "both be class labels"),
    (dict(x=X, y=np.array([0, 1, 0, 1]), x_test=np.zeros((2, 3)), y_test=np.array([1, 2])),
     "y_test has labels that y lacks: 2"),
    (dict(x=X, y=Y, x_test=np.zeros((3, 3)), y_test=np.zeros((2, 2))), "x_test has 3 examples but y_test has 2"),
])
def test_bad_npz(tmp_path, arrays, message):
    path = _bad(tmp_path, **arrays)
    with pytest.raises(InputError, match=message) as info:
        load_dataset(str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_pickled_object_array_is_refused_without_unpickling(tmp_path):
    path = _bad(tmp_path, x=np.array([{"a": 1}, None] * 2, dtype=object), y=Y)
    with pytest.raises(InputError, match="array 'x' holds Python objects"):
        load_dataset(str(path))


@pytest.mark.parametrize("content", [b"not an npz at all", b"PK\x03\x04 truncated zip", b""])
def test_file_that_is_not_an_npz(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a valid .npz file") as info:
        load_dataset(str(path))
    assert "\n" not in str(info.value)


def test_single_npy_array_named_npz(tmp_path):
    path = tmp_path / "one.npz"
    with open(path, "wb") as f:
        np.save(f, X)
    with pytest.raises(InputError, match="single .npy array"):
        load_dataset(str(path))


def test_missing_npz_file(tmp_path):
    with pytest.raises(InputError, match="no such data file"):
        load_dataset(str(tmp_path / "absent.npz"))


def test_digits_without_scikit_learn(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` raise ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(InputError, match="pip install scikit-learn"):
        load_dataset("digits")
