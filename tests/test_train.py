"""Training with generated kernels, parameter files, and gradcheck."""

import json
import warnings

import numpy as np
import pytest

from derive import load
from derive.cli import main
from derive.train.gradcheck import gradcheck
from derive.kernels import compile_kernel
from derive.train.training import TrainingDiverged, load_data, load_parameters, save_parameters, train


def test_digits_reach_95_percent_test_accuracy(capsys):
    assert main(["train", "digits-64-30-10", "--data", "digits", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["test_accuracy"] >= 0.95
    for key in ("loss", "train_accuracy", "test_accuracy", "epochs", "seconds"):
        assert key in data
    assert data["epochs"] == 30 and len(data["history"]) == 30


def test_the_book_cnn_learns_its_images_perfectly():
    network = load("book-cnn")
    result = train(network, load_data("book-1-2-3", network), epochs=300, batch=8, lr=1.0, momentum=0.5)
    assert result.train_accuracy == 1.0


def test_one_step_on_the_worked_example_gives_the_books_numbers(capsys):
    """Mazur's 2-2-2 example after one update with η = 0.5."""
    assert main(["train", "two-two-two", "--data", "values", "--json"]) == 0
    params = json.loads(capsys.readouterr().out)["parameters"]
    published = {"w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
                 "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121}
    for name, value in published.items():
        assert abs(params[name] - value) < 5e-9, name


def test_training_is_reproducible_seed_for_seed():
    network = load("book-12-3-2")
    data = load_data("book-0-1", network)
    a = train(network, data, epochs=5, batch=8, lr=2.0, seed=3)
    b = train(network, data, epochs=5, batch=8, lr=2.0, seed=3)
    c = train(network, data, epochs=5, batch=8, lr=2.0, seed=4)
    assert np.array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_float32_training_works():
    network = load("digits-64-30-10")
    result = train(network, load_data("digits", network), epochs=30, batch=16, lr=0.5, momentum=0.5, dtype="float32")
    assert result.params.dtype == np.float32 and result.test_accuracy >= 0.95


def test_parameters_round_trip_through_npz(tmp_path):
    network = load("book-12-3-2")
    kernel = compile_kernel(network)
    params = kernel.init(1)
    path = tmp_path / "p.npz"
    save_parameters(kernel, params, path)
    with np.load(path) as archive:
        assert sorted(archive.files) == ["W2", "W3", "b2", "b3"] and archive["W2"].shape == (3, 12)
    assert np.array_equal(load_parameters(kernel, path), params)
    assert main(["train", "book-12-3-2", "--data", "book-0-1", "--epochs", "1", "--load", str(path), "--save", str(tmp_path / "q.npz")]) == 0
    assert (tmp_path / "q.npz").exists() and not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"W2": np.zeros((3, 12)), "b2": np.zeros(3), "W3": np.zeros((2, 3))}, "has no array 'b3'"),
        ({"W2": np.zeros((12, 3)), "b2": np.zeros(3), "W3": np.zeros((2, 3)), "b3": np.zeros(2)}, "'W2' has shape (12, 3)"),
        ({"W2": np.full((3, 12), np.nan), "b2": np.zeros(3), "W3": np.zeros((2, 3)), "b3": np.zeros(2)}, "finite"),
    ],
)
def test_bad_parameter_files_are_clear_errors(arrays, fragment, tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert main(["train", "book-12-3-2", "--data", "book-0-1", "--epochs", "1", "--load", str(path)]) == 2
    assert fragment in capsys.readouterr().err


def test_data_that_does_not_fit_the_network_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "mine.npz"
    np.savez(path, x=np.zeros((5, 7)), y=np.eye(2)[[0, 1, 0, 1, 0]])
    assert main(["train", "book-12-3-2", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("derive: error:") and err.count("\n") == 1


LOG_COST = """\
[network]
name = "log-cost"
inputs = ["x1", "x2"]
targets = ["y1", "y2"]
cost = "C"
[equations]
h = "sigmoid(w1*x1 + w2*x2 + b1)"
o1 = "sigmoid(w3*h + b2)"
o2 = "sigmoid(w4*h + b3)"
C = "-y1*log(o1) - (1 - y1)*log(1 - o1) - y2*log(o2) - (1 - y2)*log(1 - o2)"
"""


@pytest.mark.parametrize("batch", ["1", "8"])  # the math-module kernel and the numpy one
def test_a_diverging_run_stops_with_one_clear_line(batch, tmp_path, capsys):
    """log(1 − σ) of a saturated unit is log 0: the loss becomes inf or nan within the first epoch."""
    spec, data = tmp_path / "log.toml", tmp_path / "d.npz"
    spec.write_text(LOG_COST)
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.standard_normal((40, 2)), y=np.eye(2)[rng.integers(0, 2, 40)])
    argv = ["train", str(spec), "--data", str(data), "--batch", batch, "--epochs", "5"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main([*argv, "--lr", "1000"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("derive: error: training diverged in epoch 1 of 5: the loss became ")
    assert "smaller learning rate (--lr, now 1000)" in err
    assert main([*argv, "--lr", "0.5"]) == 0  # the same network trains at a sane rate


def test_divergence_is_found_in_the_epoch_it_happens():
    network = load("digits-64-30-10")
    with pytest.raises(TrainingDiverged) as caught:
        train(network, load_data("digits", network), epochs=3, batch=16, lr=1e305, momentum=0.5)
    assert caught.value.epoch == 1


def test_generic_networks_cannot_be_trained(capsys):
    assert main(["train", "generic-2-3-2", "--data", "book-0-1"]) == 2
    assert "generic" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["book-12-3-2", "softmax-4-5-3", "cross-entropy-l2-4-5-3", "two-two-two", "book-cnn"])
def test_gradcheck_passes_on_builtin_networks(name):
    result = gradcheck(load(name), points=1, batch=3)
    assert result.passed, result.to_dict()
    assert all(g.symbolic < 1e-10 for g in result.groups)


@pytest.mark.parametrize("name", ["digits-64-30-10", "book-12-3-2", "two-two-two", "book-cnn"])
def test_float32_gradcheck_passes_within_float32_rounding(name):
    result = gradcheck(load(name), points=1, batch=4, dtype="float32")
    assert result.passed, result.to_dict()
    tolerance = result.to_dict()["tolerance"]
    eps = float(np.finfo(np.float32).eps)
    assert tolerance == {"finite_differences": 2**13 * eps, "symbolic": 2**13 * eps}
    assert "finite differences 0.00098, symbolic 0.00098" in result.header()


def test_float64_gradcheck_keeps_its_strict_tolerances():
    result = gradcheck(load("book-12-3-2"), points=1)
    assert result.to_dict()["tolerance"] == {"finite_differences": 1e-6, "symbolic": 1e-10}
    assert "finite differences 1e-06, symbolic 1e-10" in result.header()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradcheck_catches_a_wrong_kernel(monkeypatch, dtype):
    from derive.kernels import LayeredKernel

    original = LayeredKernel.value_and_grad

    def broken(self, params, x, y):
        loss, grad = original(self, params, x, y)
        if self.dtype == dtype:  # the kernel under test, not gradcheck's float64 reference
            grad[np.argmax(np.abs(grad))] *= 1.01
        return loss, grad

    monkeypatch.setattr(LayeredKernel, "value_and_grad", broken)
    result = gradcheck(load("book-12-3-2"), points=1, dtype=dtype)
    assert not result.passed and result.text().endswith("FAILED: above tolerance")


def test_gradcheck_cli(capsys):
    assert main(["gradcheck", "book-cnn", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passed"] and {g["group"] for g in data["groups"]} == {"WF", "bF", "WO", "bO"}
