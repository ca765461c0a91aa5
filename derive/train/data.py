"""The data sets `derive train --data NAME` learns from.

Built in (made here, in code: no downloads, the same arrays for the same seed):

- ``book-0-1``: the running example of 深度学习的数学 (The Mathematics of Deep
  Learning): 3x4 black-and-white images of the digits 0 and 1, 12 pixels of
  value 0 or 1, flattened to 12 inputs. 64 training images (32 per class) and
  16 test images, drawn from the prototypes below with one or two pixels flipped.
- ``book-1-2-3``: the book's CNN example: 6x6 images of 1, 2 and 3, pixels 0 or
  1, shape (1, 6, 6). 96 training images (32 per class) and 24 test images:
  prototypes shifted by at most one pixel, with one or two pixels flipped.
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images),
  pixels scaled to [0, 1], 64 inputs, a fixed stratified split of 1,347 training
  and 450 test images (the same for every seed).
- ``lookup``: which token sits at the queried position? 8 positions of 22
  features each (one-hots of 7 tokens, 8 positions and 7 queries), flattened
  position by position to 176 inputs; image shape (8, 22). Positions 1 … 7 hold
  a random permutation of the 7 tokens (token and own position one-hot, query
  part zero); position 8 holds its position one-hot and the query q in 1 … 7
  (token part zero). The label is the token at position q, 7 classes. 3,000
  training and 1,000 test examples. Mixing positions only by averaging, or
  reading only the query position, cannot bind a token to its position and stays
  near chance (1/7); one attention head can attend from the query to position q.
- a path ending in ``.npz``: your own arrays ``x`` and ``y``, optionally
  ``x_test`` and ``y_test``; ``y`` either targets of shape (n, k) or integer class
  labels of shape (n,), which become one-hot rows. The file is read by
  `read_npz`: a regular file, never pickle, at most 2^28 bytes on disk, 2^28
  bytes and 2^25 numbers in its arrays (checked from the zip directory and the
  .npy headers before anything is inflated); labels are integers 0 … 9,999.

Targets of the classification sets are one-hot rows over `Dataset.classes`.
"""

from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from derive.errors import InputError
from derive.files import path_exists, read_bytes


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    x_train: np.ndarray  # float64, shape (n, *input_shape)
    y_train: np.ndarray  # float64, shape (n, n_outputs): one-hot rows for classification
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: tuple[str, ...] | None  # the class of each target column, for one-hot targets
    image_shape: tuple[int, ...] | None  # how to draw one example, e.g. (3, 4) or (1, 6, 6)


def _sprites(art: str) -> list[np.ndarray]:
    """Images drawn side by side in ASCII art: '#' is a black pixel (1), '.' a white one (0)."""
    rows = [line.split() for line in art.strip().splitlines()]
    return [np.array([[c == "#" for c in row[i]] for row in rows], dtype=float) for i in range(len(rows[0]))]


# book-0-1: 3 rows of 4 pixels. A 0 is a ring (square, rounded, or narrow at
# either side); a 1 is a vertical bar in one of the two middle columns, plain,
# with a flag at the top, or with a foot. Every 0 differs from every 1 in at
# least 6 pixels, so one or two flipped pixels never turn one digit into the other.
BOOK_0_1 = {
    "0": _sprites("""
        ####  .##.  ###.  .###
        #..#  #..#  #.#.  .#.#
        ####  .##.  ###.  .###
    """),
    "1": _sprites("""
        .#..  ..#.  ##..  ..#.
        .#..  ..#.  .#..  ..#.
        .#..  ..#.  .#..  .###
    """),
}

# book-1-2-3: 6x6 handwritten 1, 2 and 3, three hands each. The empty margins
# leave room for the one-pixel shifts.
BOOK_1_2_3 = {
    "1": _sprites("""
        ..#...  ...#..  ..##..
        .##...  ...#..  ...#..
        ..#...  ...#..  ...#..
        ..#...  ...#..  ...#..
        ..#...  ...#..  ...#..
        .###..  ...#..  ...#..
    """),
    "2": _sprites("""
        .###..  ####..  .##...
        #...#.  ....#.  #..#..
        ...#..  ...#..  ...#..
        ..#...  ..#...  ..#...
        .#....  .#....  .#....
        #####.  .####.  .####.
    """),
    "3": _sprites("""
        ####..  .###..  #####.
        ....#.  #...#.  ...#..
        .###..  ..##..  ..##..
        ....#.  ....#.  ....#.
        ....#.  #...#.  ....#.
        ####..  .###..  ####..
    """),
}


DESCRIPTIONS = {
    "book-0-1": "3x4 images of 0 and 1 (the book's 12-3-2 example): 64 train, 16 test",
    "book-1-2-3": "6x6 images of 1, 2 and 3 (the book's CNN example): 96 train, 24 test",
    "digits": "scikit-learn's 8x8 handwritten digits: 1,347 train, 450 test (fixed split)",
    "lookup": "which token sits at the queried position: 8 positions × 22 features "
              "(token, position, query one-hots), 7 classes (3,000 training, 1,000 test)",
    "values": "the spec's [values] point as one example, from the spec's parameters",
    "FILE.npz": "your own arrays x and y (optionally x_test, y_test)",
}


def dataset_names() -> list[str]:
    """The built-in data sets (a path ending in .npz is accepted too)."""
    return ["book-0-1", "book-1-2-3", "digits", "lookup"]


def load_dataset(name: str, *, seed: int = 0) -> Dataset:
    """A built-in data set by name, or the user's own arrays from a path ending in .npz."""
    if name == "book-0-1":
        x, y, xt, yt = _book_images(BOOK_0_1, 32, 8, shift=False, seed=seed)
        return Dataset(name, "the book's 3x4 images of 0 and 1 (64 training, 16 test)",
                       x.reshape(len(x), 12), y, xt.reshape(len(xt), 12), yt, ("0", "1"), (3, 4))
    if name == "book-1-2-3":
        x, y, xt, yt = _book_images(BOOK_1_2_3, 32, 8, shift=True, seed=seed)
        return Dataset(name, "the book's 6x6 images of 1, 2 and 3 (96 training, 24 test)",
                       x[:, None], y, xt[:, None], yt, ("1", "2", "3"), (1, 6, 6))
    if name == "digits":
        return _digits()
    if name == "lookup":
        return _lookup(seed)
    if name.lower().endswith(".npz"):
        return _load_npz(Path(name))
    raise InputError(f"unknown data set {name!r}: use one of {', '.join(dataset_names())} or a path to a .npz file")


def _book_images(prototypes: dict[str, list[np.ndarray]], n_train: int, n_test: int, *, shift: bool, seed: int):
    """Per class: the clean prototypes, then noisy copies up to n_train; n_test noisy copies to test.

    The book draws its data by hand; these copies imitate that: each is a
    prototype (taken in turn), moved by at most one pixel if `shift`, with one or
    two pixels flipped. Both splits are shuffled so the classes interleave.
    """
    rng = np.random.default_rng(seed)
    k = len(prototypes)
    splits = []
    for n, clean in ((n_train, True), (n_test, False)):
        images, labels = [], []
        for label, protos in enumerate(prototypes.values()):
            made = list(protos) if clean else []
            for i in range(n - len(made)):
                made.append(_noisy(protos[i % len(protos)], rng, shift))
            images += made
            labels += [label] * n
        order = rng.permutation(len(images))
        splits += [np.array(images)[order], np.eye(k)[np.array(labels)[order]]]
    return splits


def _noisy(image: np.ndarray, rng: np.random.Generator, shift: bool) -> np.ndarray:
    if shift:
        # Only moves that push empty rows or columns off the edge: the digit stays whole.
        moves = [(0, 0)]
        moves += [(1, 0)] if not image[-1].any() else []
        moves += [(-1, 0)] if not image[0].any() else []
        moves += [(0, 1)] if not image[:, -1].any() else []
        moves += [(0, -1)] if not image[:, 0].any() else []
        image = np.roll(image, moves[rng.integers(len(moves))], axis=(0, 1))
    image = image.copy()
    flips = rng.choice(image.size, size=rng.integers(1, 3), replace=False)
    image.flat[flips] = 1 - image.flat[flips]
    return image


def _digits() -> Dataset:
    try:  # lazily: only this data set needs scikit-learn
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise InputError("the digits data set needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    x = digits.data.astype(float) / 16.0  # the pixels are 0..16
    labels = digits.target
    # A fixed split, independent of --seed, so test accuracies compare across runs.
    x, xt, labels, labels_t = train_test_split(x, labels, test_size=450, stratify=labels, random_state=0)
    one_hot = np.eye(10)
    return Dataset("digits", "scikit-learn's 8x8 handwritten digits (1,347 training, 450 test)",
                   x, one_hot[labels], xt, one_hot[labels_t], tuple(str(d) for d in range(10)), (8, 8))


# lookup: 8 positions of 22 features. Features 0..6 one-hot the token, 7..14 the
# position, 15..21 the query (the queried position 1..7).
LOOKUP_TOKENS = 7
LOOKUP_POSITIONS = LOOKUP_TOKENS + 1  # the tokens' positions, then the query's
LOOKUP_FEATURES = LOOKUP_TOKENS + LOOKUP_POSITIONS + LOOKUP_TOKENS


def _lookup(seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    x, y, xt, yt = (*_lookup_examples(rng, 3000), *_lookup_examples(rng, 1000))
    return Dataset("lookup", "which token sits at the queried position: 8 positions × 22 features "
                   "(3,000 training, 1,000 test)", x, y, xt, yt,
                   tuple(str(t) for t in range(1, LOOKUP_TOKENS + 1)), (LOOKUP_POSITIONS, LOOKUP_FEATURES))


def _lookup_examples(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n examples of lookup, flattened position-major to 8 × 22 = 176 inputs, and their one-hot labels."""
    k, t = LOOKUP_TOKENS, LOOKUP_POSITIONS
    tokens = np.argsort(rng.random((n, k)), axis=1)  # tokens[i, p]: the token (0..6) at position p + 1
    query = rng.integers(k, size=n)  # the queried position minus one (0..6)
    x = np.zeros((n, t, LOOKUP_FEATURES))
    rows = np.arange(n)[:, None]
    x[rows, np.arange(k), tokens] = 1.0  # token one-hots at positions 1..7
    x[:, np.arange(t), k + np.arange(t)] = 1.0  # every position's own one-hot
    x[np.arange(n), t - 1, k + t + query] = 1.0  # the query at position 8
    labels = tokens[np.arange(n), query]
    return x.reshape(n, t * LOOKUP_FEATURES), np.eye(k)[labels]


def _load_npz(path: Path) -> Dataset:
    if not path_exists(path):
        raise InputError(f"{path}: no such data file")
    arrays = read_npz(path)
    present = set(arrays)
    for needed in ("x", "y"):
        if needed not in present:
            have = ", ".join(sorted(present)) or "no arrays"
            raise InputError(f"{path}: no array '{needed}' (the file has {have}); "
                             "need x and y, optionally x_test and y_test")
    if ("x_test" in present) != ("y_test" in present):
        raise InputError(f"{path}: x_test and y_test go together; the file has only one of them")
    arrays = {key: _checked(arrays[key], path, key) for key in ("x", "y", "x_test", "y_test") if key in present}

    x, y = arrays["x"], arrays["y"]
    _check_pair(path, x, y, "x", "y")
    classes = None
    if y.ndim == 1:
        classes, y = _one_hot(path, y, "y")
    x_test = y_test = None
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        _check_pair(path, x_test, y_test, "x_test", "y_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise InputError(f"{path}: x_test has examples of shape {x_test.shape[1:]}, x of shape {x.shape[1:]}")
        if (y_test.ndim == 1) != (classes is not None):
            raise InputError(f"{path}: y and y_test must both be class labels (n,) or both targets (n, k)")
        if classes is not None:
            _, y_test = _one_hot(path, y_test, "y_test", classes)
        if y_test.shape[1] != y.shape[1]:
            raise InputError(f"{path}: y_test has {y_test.shape[1]} target columns, y has {y.shape[1]}")
    image_shape = tuple(x.shape[1:]) if x.ndim >= 3 else None
    return Dataset(str(path), f"your data from {path.name} ({len(x)} examples)",
                   x.astype(float), y.astype(float), x_test if x_test is None else x_test.astype(float),
                   y_test if y_test is None else y_test.astype(float), classes, image_shape)


def _checked(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    if array.size == 0:
        raise InputError(f"{path}: array '{key}' is empty (shape {array.shape})")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise InputError(f"{path}: array '{key}' has NaN or infinite values")
    return array


def _check_pair(path: Path, x: np.ndarray, y: np.ndarray, xname: str, yname: str) -> None:
    if not 2 <= x.ndim <= 4:
        raise InputError(f"{path}: {xname} has shape {x.shape}; need one row per example: "
                         "(n, features), (n, height, width) or (n, channels, height, width)")
    if y.ndim not in (1, 2):
        raise InputError(f"{path}: {yname} has shape {y.shape}; need targets (n, k) or class labels (n,)")
    if len(x) != len(y):
        raise InputError(f"{path}: {xname} has {len(x)} examples but {yname} has {len(y)}")


def _one_hot(path: Path, labels: np.ndarray, name: str, classes: tuple[str, ...] | None = None):
    """Integer class labels as one-hot rows; the classes are the sorted labels of y.

    A label is a class number from 0 to MAX_CLASSES − 1: an integer array's values,
    or a float array's integral values (1e300 is no class, and never becomes one
    by a wrapping conversion to int64).
    """
    if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
        raise InputError(f"{path}: {name} has one dimension, so it must hold integer class labels")
    outside = (labels < 0) | (labels >= MAX_CLASSES)
    if np.any(outside):
        bad = labels[outside][0]
        raise InputError(f"{path}: {name} holds the label {bad:g}; class labels must be integers "
                         f"from 0 to {MAX_CLASSES - 1:,}")
    labels = labels.astype(np.int64)  # exact: every value is an integer below MAX_CLASSES
    present = np.unique(labels)
    if classes is None:
        classes = tuple(str(v) for v in present)
    unknown = sorted(set(str(v) for v in present) - set(classes), key=int)
    if unknown:
        raise InputError(f"{path}: {name} has labels that y lacks: {', '.join(unknown[:5])}")
    if len(labels) * len(classes) > MAX_NPZ_NUMBERS:
        raise InputError(f"{path}: {name} as one-hot rows would hold {len(labels) * len(classes):,} numbers "
                         f"({len(labels):,} labels × {len(classes):,} classes); the limit is {MAX_NPZ_NUMBERS:,}")
    column = np.full(MAX_CLASSES, -1, dtype=np.int64)
    column[[int(c) for c in classes]] = np.arange(len(classes))
    one_hot = np.zeros((len(labels), len(classes)))
    one_hot[np.arange(len(labels)), column[labels]] = 1.0
    return classes, one_hot


def reshape_for(dataset: Dataset, input_shape: tuple[int, ...], n_outputs: int) -> Dataset:
    """The data set with each example reshaped to what the network takes.

    Only the number of values must agree: 3x4 = 12 pixels feed a 12-input
    network or a (1, 3, 4) CNN alike. The targets must have n_outputs columns.
    """
    input_shape = tuple(int(d) for d in input_shape)
    have = dataset.x_train.shape[1:]
    wants, has = int(np.prod(input_shape)), int(np.prod(have))
    if wants != has:
        raise InputError(f"the network takes {_size(input_shape)} inputs per example, "
                         f"but data set {dataset.name} has {_size(have)} values per example")
    columns = dataset.y_train.shape[1]
    if columns != n_outputs:
        what = f" (classes {', '.join(dataset.classes)})" if dataset.classes else ""
        raise InputError(f"the network has {n_outputs} outputs, "
                         f"but data set {dataset.name} has {columns} target columns{what}")

    def as_input(x):
        return None if x is None else np.ascontiguousarray(x, dtype=float).reshape(len(x), *input_shape)

    return replace(dataset, x_train=as_input(dataset.x_train), x_test=as_input(dataset.x_test))


def _size(shape: tuple[int, ...]) -> str:
    """'12' for a flat example, '1x6x6 = 36' for an image."""
    size = str(int(np.prod(shape)))
    return f"{'x'.join(map(str, shape))} = {size}" if len(shape) > 1 else size


# ---------------------------------------------------------------------------
# Reading a stranger's .npz: every size is checked before anything is inflated
# ---------------------------------------------------------------------------

MAX_NPZ_BYTES = 1 << 28  # 256 MiB: the file, all members uncompressed, and all arrays in memory
MAX_NPZ_NUMBERS = 1 << 25  # 33,554,432 numbers in all (each becomes a float64: 256 MiB)
MAX_NPZ_RATIO = 1100  # uncompressed / compressed size of a member; deflate cannot exceed 1032
MAX_NPZ_MEMBERS = 10_000
MAX_NPY_HEADER = 10_000  # bytes; numpy's own default
MAX_CLASSES = 10_000  # class labels are integers 0 … MAX_CLASSES − 1
NPY_MAGIC = b"\x93NUMPY"
# What the zip and npy readers raise on corrupt input: truncated or inconsistent archives,
# bad deflate streams, encrypted members, unsupported zip versions, malformed headers.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError,
               OSError, ValueError, TypeError, SyntaxError, OverflowError, zlib.error, struct.error,
               UnicodeDecodeError, KeyError, IndexError)


def read_npz(path: str | Path, *, where: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz file, read without pickle and within MAX_NPZ_BYTES and MAX_NPZ_NUMBERS.

    The whole zip directory and every member's .npy header are checked (declared
    sizes, compression ratio, shape and dtype) before any array data is inflated,
    and each member is inflated to at most the size its header implies: a header
    claiming a huge array or a zip bomb is refused at once, with the limit named.
    """
    where = where or str(path)
    data = read_bytes(path, limit=MAX_NPZ_BYTES, where=where)
    if data.startswith(NPY_MAGIC):
        raise InputError("holds a single .npy array, not an .npz archive of named arrays (write one with numpy.savez)",
                         where=where)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as exc:
        raise InputError(f"not a valid .npz file (write one with numpy.savez): {_one_line(exc)}", where=where) from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_NPZ_MEMBERS:
            raise InputError(f"holds {len(members):,} members; the limit is {MAX_NPZ_MEMBERS:,}", where=where)
        declared, keys = 0, set()
        for info in members:  # the zip directory's claims, before anything is read
            name = info.filename
            if not name.endswith(".npy") or info.is_dir():
                raise InputError(f"member {name[:60]!r} is not a .npy array (write the file with numpy.savez)",
                                 where=where)
            if name[:-4] in keys:
                raise InputError(f"holds two arrays named '{name[:-4][:60]}'", where=where)
            keys.add(name[:-4])
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise InputError(f"member {name[:60]!r} uses zip compression method {info.compress_type}; "
                                 "only stored and deflate (numpy.savez, savez_compressed) are read", where=where)
            declared += info.file_size
            if declared > MAX_NPZ_BYTES:
                raise InputError(f"its members declare more than {MAX_NPZ_BYTES:,} bytes uncompressed "
                                 f"(the limit per .npz file is 2^28 bytes)", where=where)
            if info.file_size > MAX_NPZ_RATIO * max(info.compress_size, 1):
                raise InputError(f"member {name[:60]!r} would inflate {info.file_size:,} bytes from "
                                 f"{info.compress_size:,}: more than the compression ratio limit "
                                 f"of {MAX_NPZ_RATIO}:1 (a zip bomb?)", where=where)
        arrays, numbers, in_memory = {}, 0, 0
        for info in members:
            key = info.filename[:-4]
            try:
                with archive.open(info) as member:
                    header_size, shape, fortran, dtype = _npy_header(member, key, where)
                    count = math.prod(shape)
                    numbers += count
                    in_memory += count * dtype.itemsize
                    if numbers > MAX_NPZ_NUMBERS or in_memory > MAX_NPZ_BYTES:
                        raise InputError(
                            f"array '{key}' declares shape {shape} of {dtype.name}: {count:,} numbers, "
                            f"{count * dtype.itemsize:,} bytes; the limit per .npz file is {MAX_NPZ_NUMBERS:,} "
                            f"numbers (2^25) and {MAX_NPZ_BYTES:,} bytes (2^28)", where=where)
                    expected = count * dtype.itemsize
                    if header_size + expected != info.file_size:
                        raise InputError(f"array '{key}': its header describes {expected:,} bytes of data, "
                                         f"the zip member holds {info.file_size - header_size:,}", where=where)
                    raw = member.read(expected + 1)  # bounded: never inflate more than the header allows
                    if len(raw) != expected or member.read(1):
                        raise InputError(f"array '{key}' is truncated or longer than its header says", where=where)
            except _ZIP_ERRORS as exc:
                raise InputError(f"array '{key[:60]}' cannot be read (a corrupt .npz): {_one_line(exc)}",
                                 where=where) from None
            array = np.frombuffer(raw, dtype=dtype)
            arrays[key] = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
    return arrays


def _npy_header(member, key: str, where: str):
    """(header size, shape, Fortran order, dtype) of a .npy stream, read with numpy's header parsers (no pickle)."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member, max_header_size=MAX_NPY_HEADER)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member, max_header_size=MAX_NPY_HEADER)
    else:
        raise InputError(f"array '{key[:60]}' is in .npy format version {version[0]}.{version[1]}; "
                         "versions 1.0 and 2.0 are read", where=where)
    if dtype.hasobject:
        raise InputError(f"array '{key[:60]}' holds Python objects (pickled); save plain numbers", where=where)
    if dtype.kind not in "biuf" or dtype.shape:
        raise InputError(f"array '{key[:60]}' is not numeric (dtype {dtype})", where=where)
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InputError(f"array '{key[:60]}' has an invalid shape {shape}", where=where)
    return member.tell(), tuple(shape), bool(fortran), dtype


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]
