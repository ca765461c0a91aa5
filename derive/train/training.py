"""Training with the generated kernels: mini-batch SGD with optional momentum.

    v ← μ v − η ∇C,   θ ← θ + v          (μ = 0: plain SGD, Nielsen's update)

The gradient is the batch mean (Nielsen's C = (1/n) Σ_x C_x), computed by the
kernel generated from the network's derivation. Runs are reproducible seed for
seed: the seed fixes the initial parameters and every epoch's shuffle.

Saved parameters (`.npz`): one array per layer block for layered and
convolutional networks (`W2`, `b2`, …, `WF`, `bF`, `WO`, `bO`: W^l[j, k] is the
weight to unit j from unit k, Nielsen's order), one scalar per parameter name
for free-form networks (`w1`, `b1`, …).
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from derive.train.data import Dataset, load_dataset, read_npz, reshape_for
from derive.errors import DeriveError, InputError
from derive.limits import MAX_BATCH, MAX_EPOCHS, check_settings  # noqa: F401 (the CLI imports them from here)
from derive.files import path_exists, write_atomically
from derive.kernels import Kernel, compile_kernel
from derive.graph.network import Network, undefined_node


# Settings that train each built-in data set well without tuning flags.
DEFAULTS = {
    "book-0-1": {"epochs": 300, "batch": 8, "lr": 2.0, "momentum": 0.0},
    "book-1-2-3": {"epochs": 300, "batch": 8, "lr": 1.0, "momentum": 0.5},
    "digits": {"epochs": 30, "batch": 16, "lr": 0.5, "momentum": 0.5},
    "lookup": {"epochs": 30, "batch": 32, "lr": 0.2, "momentum": 0.9},
    "values": {"epochs": 1, "batch": 1, "lr": 0.5, "momentum": 0.0},
}
FALLBACK = {"epochs": 30, "batch": 16, "lr": 0.5, "momentum": 0.0}


class TrainingDiverged(DeriveError):
    """The loss or the parameters stopped being finite numbers (exit 1, one line)."""

    def __init__(self, epoch: int, epochs: int, what: str, lr: float, lmbda: float | None = None):
        hint = f"try a smaller learning rate (--lr, now {lr:g})"
        if lmbda is not None:
            hint += f" or L2 strength (--lmbda, now {lmbda:g})"
        super().__init__(f"training diverged in epoch {epoch} of {epochs}: {what}; {hint}")
        self.epoch = epoch
        self.epochs = epochs
        self.what = what


@dataclass
class TrainResult:
    params: np.ndarray
    kernel: Kernel
    dataset: Dataset
    epochs: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    loss: float = float("nan")
    train_accuracy: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None

    def to_dict(self, with_parameters: bool = False) -> dict:
        result = {
            "network": self.kernel.network.name,
            "data": self.dataset.name,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 4),
            "loss": self.loss,
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "test_loss": self.test_loss,
            "history": self.history,
        }
        if with_parameters:
            result["parameters"] = {s.name: v for s, v in self.kernel.to_values(self.params).items()}
        return result  # emit_json writes a non-finite number as null


def settings_for(dataset_name: str, network: Network | None = None) -> dict:
    """The data set's settings, then those the network's spec gives in its [train] table."""
    given = network.facts.get("train", {}) if network is not None else {}
    return {**DEFAULTS.get(dataset_name, FALLBACK), **given}


def values_dataset(network: Network) -> Dataset:
    """The spec's [values] point as a one-example data set (inputs and targets)."""
    if network.values is None:
        raise InputError("--data values needs a [values] table in the spec")
    missing = [s.name for s in (*network.inputs, *network.targets, *network.parameters) if s not in network.values]
    if missing:
        raise InputError(f"--data values: [values] has no number for {', '.join(missing[:8])}")
    for s, value in network.values.items():  # training computes in doubles
        if abs(value) > LARGEST_DOUBLE:
            raise InputError(f"{_number(value)} is beyond the range of a double (±1.8e308), "
                             "which training computes in", where=f"[values] {s.name}")
    problem = undefined_node(network)
    if problem is not None:
        node, reason = problem
        raise InputError(f"--data values: at the [values] point, node {node.name} = "
                         f"{_text(network.definitions[node])} has no finite value: {reason}")
    x = np.array([[float(network.values[s]) for s in network.inputs]])
    y = np.array([[float(network.values[s]) for s in network.targets]])
    return Dataset("values", "the spec's [values] point", x, y, None, None, None, None)


LARGEST_DOUBLE = float(np.finfo(np.float64).max)


def _number(value: Fraction) -> str:
    """A [values] number for a message: 1e+340 as 'about 1e340' (its digits may be too many to print)."""
    if abs(value) <= LARGEST_DOUBLE:
        return f"{float(value):.6g}"
    whole = abs(value.numerator) // value.denominator
    if whole.bit_length() < 13_000:  # printable in decimal (Python's limit is 4,300 digits)
        digits = len(str(whole)) - 1
    else:
        digits = int(whole.bit_length() * math.log10(2))
    return f"{'-' if value < 0 else ''}about 1e{digits}"


def _text(expr, width: int = 60) -> str:
    text = str(expr)
    return text if len(text) <= width else text[: width - 1] + "…"


def load_data(name: str, network: Network, seed: int = 0) -> Dataset:
    dataset = values_dataset(network) if name == "values" else load_dataset(name, seed=seed)
    return reshape_for(dataset, input_shape(network), len(network.targets))


def input_shape(network: Network) -> tuple[int, ...]:
    if network.kind == "cnn":
        return tuple(network.facts["input_shape"])
    return (len(network.inputs),)


def train(
    network: Network,
    dataset: Dataset,
    *,
    epochs: int,
    batch: int,
    lr: float,
    momentum: float = 0.0,
    seed: int = 0,
    dtype: str = "float64",
    initial: np.ndarray | None = None,
    lmbda: float = 1.0,
    kernel: Kernel | None = None,
    progress=None,
) -> TrainResult:
    check_settings(epochs=epochs, batch=batch, lr=lr, momentum=momentum, lmbda=lmbda)
    kernel = kernel or compile_kernel(network, dtype=dtype)
    n = len(dataset.x_train)
    if "n" in kernel.constants:  # L2: C = C0 + λ/(2n) Σ w², n the training set's size
        kernel.constants.update(lmbda=lmbda, n=float(n))
    regularized = lmbda if "n" in kernel.constants else None  # named in a divergence's hint
    rng = np.random.default_rng(seed)
    params = _initial_parameters(network, dataset, kernel, initial, rng)
    x, y, x_test, y_test, params = _finite_arrays(dataset, kernel, params)
    velocity = np.zeros_like(params)
    start = time.perf_counter()
    history = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        total = 0.0
        for first in range(0, n, batch):
            rows = order[first : first + batch]
            loss, grad = kernel.value_and_grad(params, x[rows], y[rows])
            if not math.isfinite(loss):
                raise TrainingDiverged(epoch, epochs, f"the loss became {loss}", lr, regularized)
            total += loss * len(rows)
            if momentum:
                velocity *= momentum
                velocity -= lr * grad
                params += velocity
            else:
                params -= lr * grad
        # a non-finite gradient reaches the parameters by the update, so one check per epoch finds it
        if not np.isfinite(params).all():
            raise TrainingDiverged(epoch, epochs, "the gradient or the parameters overflowed to inf or nan", lr, regularized)
        if not math.isfinite(total):
            raise TrainingDiverged(epoch, epochs, f"the epoch's total loss became {total}", lr, regularized)
        entry = {"epoch": epoch, "loss": total / n}
        accuracy = _accuracy(kernel, params, x, y)
        if accuracy is not None:
            entry["train_accuracy"] = accuracy
            if x_test is not None:  # for the report's curves: how the held-out accuracy went
                entry["test_accuracy"] = _accuracy(kernel, params, x_test, y_test)
        history.append(entry)
        if progress is not None:
            progress(entry)
    seconds = time.perf_counter() - start
    result = TrainResult(params, kernel, dataset, epochs, seconds, history)
    result.loss, _ = kernel.value_and_grad(params, x, y)
    if not math.isfinite(result.loss):
        raise TrainingDiverged(epochs, epochs, f"the loss over the training set became {result.loss}", lr, regularized)
    result.train_accuracy = _accuracy(kernel, params, x, y)
    if x_test is not None:
        # may be inf or nan (a held-out example the model puts at log(0)): reported, not an error;
        # --json shows it as null
        result.test_loss, _ = kernel.value_and_grad(params, x_test, y_test)
        result.test_accuracy = _accuracy(kernel, params, x_test, y_test)
    return result


def _initial_parameters(network: Network, dataset: Dataset, kernel: Kernel, initial, rng) -> np.ndarray:
    """The given start, the spec's [values] (training on them), or the kernel's random initialisation."""
    if initial is not None:
        return np.array(initial, dtype=kernel.dtype)
    if dataset.name == "values":
        return kernel.from_values({s: float(v) for s, v in network.values.items()})
    return kernel.init(int(rng.integers(2**31)))


def _finite_arrays(dataset: Dataset, kernel: Kernel, params: np.ndarray):
    """The data, targets and parameters in the kernel's dtype, refused when a number does not fit it."""
    with np.errstate(over="ignore"):  # a float64 number beyond float32 becomes inf: found below
        x = np.ascontiguousarray(dataset.x_train, dtype=kernel.dtype)
        y = np.ascontiguousarray(dataset.y_train, dtype=kernel.dtype)
        x_test = y_test = None
        if dataset.x_test is not None and len(dataset.x_test):
            x_test = np.ascontiguousarray(dataset.x_test, dtype=kernel.dtype)
            y_test = np.ascontiguousarray(dataset.y_test, dtype=kernel.dtype)
        params = np.asarray(params, dtype=kernel.dtype)
    for what, array in (("the data", x), ("the targets", y), ("the test data", x_test),
                        ("the test targets", y_test), ("the initial parameters", params)):
        if array is not None and not np.isfinite(array).all():
            raise InputError(f"{what} of {dataset.name} hold numbers beyond the range of {kernel.dtype.name} "
                             "(or NaN): nothing finite can be computed from them")
    return x, y, x_test, y_test, params


def _accuracy(kernel: Kernel, params, x, y) -> float | None:
    """The share of examples whose largest output is the target's class (one-hot targets only)."""
    if y.shape[1] < 2 or len(y) < 2 or not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
        return None
    predicted = kernel.predict(params, x)
    return float(np.mean(predicted.argmax(axis=1) == y.argmax(axis=1)))


# ---------------------------------------------------------------------------
# Saving and loading parameters
# ---------------------------------------------------------------------------


def save_parameters(kernel: Kernel, params: np.ndarray, path: str | Path) -> None:
    """One array per block (see the module docstring), written atomically (files.write_atomically:
    an exclusive, unpredictably named temporary file beside `path`, then one rename)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError("the parameter file must end in .npz", where=str(path))
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(view) for name, view in kernel.views(params).items()})
    write_atomically(path, buffer.getvalue())


def load_parameters(kernel: Kernel, path: str | Path) -> np.ndarray:
    """The parameters in an .npz written by save_parameters, read by data.read_npz (sizes checked, no pickle)."""
    path = Path(path)
    where = str(path)
    if not path_exists(path):
        raise InputError("no such file", where=where)
    arrays = read_npz(path, where=where)
    params = np.empty(kernel.size, dtype=kernel.dtype)
    for block in kernel.blocks:
        if block.name not in arrays:
            raise InputError(f"has no array '{block.name}' (expected: {', '.join(b.name for b in kernel.blocks)})", where=where)
        array = arrays[block.name]
        if array.shape != block.shape:
            raise InputError(f"'{block.name}' has shape {array.shape}, the network needs {block.shape}", where=where)
        with np.errstate(over="ignore"):
            value = array.astype(kernel.dtype)
        if not np.all(np.isfinite(value)):
            raise InputError(f"'{block.name}' must hold finite numbers (within {kernel.dtype.name})", where=where)
        block.view(params)[...] = value
    extra = set(arrays) - {b.name for b in kernel.blocks}
    if extra:
        raise InputError(f"has arrays this network does not use: {', '.join(sorted(extra)[:10])}", where=where)
    return params
