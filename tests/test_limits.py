"""Issue 9's bounded-work and no-exit-3 items that are the spec reader's, the file layer's and the CLI's.

Each hostile input is a few hundred bytes; each must end in one line and exit 2
(or, for a deep network's closed forms, an answer) at once, not after minutes.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from derive import limits
from derive.cli import main
from derive.errors import InputError
from derive.files import read_text, refuse_overwriting_inputs, write_atomically

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv) -> str:
    start = time.perf_counter()
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, err)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert time.perf_counter() - start < 30  # minutes before the limits; seconds at most now
    return err


def layered(tmp_path, sizes) -> str:
    path = tmp_path / "net.toml"
    path.write_text(f'[network]\nname = "n"\nlayers = {sizes}\n', encoding="utf-8")
    return str(path)


def cnn(tmp_path, layer: str, input_shape="[28, 28]") -> str:
    path = tmp_path / "cnn.toml"
    path.write_text(
        f'[network]\nname = "c"\ninput = {input_shape}\n[[layer]]\n{layer}\n[[layer]]\ntype = "dense"\nunits = 2\n',
        encoding="utf-8",
    )
    return str(path)


# -- network sizes, checked before building -----------------------------------------


@pytest.mark.parametrize(
    "sizes, limit",
    [
        ([1000, 1000, 1000], f"{limits.MAX_PARAMETERS:,} parameters"),
        ([2] * (limits.MAX_LAYERS + 1), f"{limits.MAX_LAYERS} layers"),
    ],
)
def test_a_layered_network_beyond_the_limits_is_refused_naming_the_limit(tmp_path, capsys, sizes, limit):
    err = one_line_error(capsys, "derive", layered(tmp_path, sizes))
    assert limit in err and "[network] layers" in err


@pytest.mark.parametrize(
    "layer",
    [
        'type = "conv"\nfilters = 64\nkernel = 5\npadding = 1000',
        'type = "conv"\nfilters = 100000\nkernel = 3',
        'type = "conv"\nfilters = 2\nkernel = 3\nstride = 1\nactivation = "relu"\n[[layer]]\ntype = "dense"\nunits = 100000',
    ],
)
def test_a_cnn_beyond_the_limits_is_refused_before_its_layer_is_built(tmp_path, capsys, layer):
    err = one_line_error(capsys, "derive", cnn(tmp_path, layer))
    assert re.search(r"more than [\d,]+ (connections|parameters)", err), err
    assert "[[layer]] #" in err


def test_the_largest_benchmark_network_is_still_accepted():
    from derive.graph.layered import layered as build

    # 784-100-10, the README's largest benchmark: 79,510 parameters, under the limits
    sizes = [784, 100, 10]
    assert sum(a * b + b for a, b in zip(sizes, sizes[1:])) <= limits.MAX_PARAMETERS
    network = build([12, 3, 2])
    assert len(network.parameters) == 47


def test_a_long_free_form_chain_is_refused_naming_the_limit(tmp_path, capsys):
    lines = ['[network]\nname = "chain"\ninputs = ["x"]\ntargets = ["y"]\ncost = "E"\n[equations]', 'h0 = "w0*x"']
    n = limits.MAX_LAYERS + 5
    lines += [f'h{i} = "sigmoid(h{i - 1})*w{i}"' for i in range(1, n)]
    lines.append(f'E = "(h{n - 1} - y)^2/2"')
    path = tmp_path / "chain.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = one_line_error(capsys, "derive", str(path))
    assert f"more than {limits.MAX_LAYERS} equations in a chain" in err


def test_closed_forms_of_a_deep_network_are_omitted_not_unfolded(tmp_path, capsys):
    # 40 layers of width 2: a first-layer weight's closed form unfolds to 2^38 paths (the
    # printing used 23 GB and was killed); the recurrences one step deep still print
    start = time.perf_counter()
    code, out, err = run(capsys, "derive", layered(tmp_path, [2] * 40), "--json")
    assert code == 0 and time.perf_counter() - start < 60
    data = json.loads(out)
    first = data["gradients"]["w2_1_1"]
    assert first["expr"].startswith("(omitted: ") and "symbols long" in first["expr"]
    assert "omitted" in first["latex"]
    assert "omitted" not in first["chain"]  # one step deep: through the δs, always printed
    last = data["gradients"]["b40_1"]
    assert "omitted" not in last["expr"]  # near the cost the closed forms are short and printed


# -- files ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_never_read_as_a_spec(capsys, device):
    err = one_line_error(capsys, "derive", device)
    assert "not a regular file" in err


def test_a_fifo_or_a_directory_is_refused(tmp_path, capsys):
    fifo = tmp_path / "net.toml"
    os.mkfifo(fifo)
    assert "not a regular file" in one_line_error(capsys, "derive", str(fifo))
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    assert "is a directory" in one_line_error(capsys, "derive", str(folder))


def test_a_spec_over_the_size_limit_is_refused_without_reading_it(tmp_path, capsys):
    path = tmp_path / "big.toml"
    with open(path, "wb") as handle:
        handle.truncate(limits.MAX_SPEC_BYTES + 1)  # sparse: no need to write 5 MB
    assert f"larger than {limits.MAX_SPEC_BYTES:,} bytes" in one_line_error(capsys, "derive", str(path))


def test_a_byte_order_mark_is_accepted(tmp_path, capsys):
    text = (ROOT / "examples" / "two-two-two.toml").read_text(encoding="utf-8")
    path = tmp_path / "bom.toml"
    path.write_bytes("\ufeff".encode() + text.encode())
    code, out, err = run(capsys, "derive", str(path))
    assert code == 0 and "D(E, w1)" in out


def test_a_toml_integer_of_5000_digits_is_a_clean_error(tmp_path, capsys):
    path = tmp_path / "huge.toml"
    path.write_text('[network]\nname = "n"\nlayers = [' + "9" * 5000 + ", 2]\n", encoding="utf-8")
    assert "an integer has more than" in one_line_error(capsys, "derive", str(path))


def test_a_path_too_long_for_the_file_system_is_a_clean_error(capsys):
    assert "no spec file" in one_line_error(capsys, "derive", "n" * 300)  # not a path: perhaps a built-in's name
    err = one_line_error(capsys, "derive", "/tmp/" + "n" * 300 + ".toml")
    assert "too long" in err


def test_read_text_stops_at_the_limit_even_when_stat_is_small(tmp_path):
    path = tmp_path / "f.toml"
    path.write_text("x" * 100, encoding="utf-8")
    with pytest.raises(InputError, match="larger than 10 bytes"):
        read_text(path, limit=10)


# -- writing -------------------------------------------------------------------------


def test_write_atomically_follows_the_umask_and_never_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    target = tmp_path / "out.txt"
    for guess in (f".{target.name}.partial", f".{target.name}.tmp"):
        (tmp_path / guess).symlink_to(victim)
    old = os.umask(0o022)
    try:
        write_atomically(target, b"new")
    finally:
        os.umask(old)
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert target.read_bytes() == b"new"
    assert (target.stat().st_mode & 0o777) == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial") and not p.is_symlink()]


def test_an_output_that_is_an_input_is_refused(tmp_path):
    source = tmp_path / "in.tex"
    source.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="is also an input"):
        refuse_overwriting_inputs([tmp_path / "." / "in.tex"], [source])
    refuse_overwriting_inputs([tmp_path / "other.tex"], [source])  # a different file is fine


# -- command-line values ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["prove", "two-two-two", "--seed", "-1"], "--seed must be an integer from 0"),
        (["prove", "two-two-two", "--budget", "nan"], "--budget must be a finite number"),
        (["check", "examples/two-two-two-homework.toml", "--budget", "inf"], "--budget must be a finite number"),
        (["train", "two-two-two", "--data", "values", "--lmbda", "nan"], "--lmbda must be a finite number"),
        (["train", "two-two-two", "--data", "values", "--epochs", "9" * 30], "too long for an integer"),
        (["gradcheck", "two-two-two", "--points", "-3"], "--points must be an integer from 0"),
    ],
)
def test_every_numeric_option_is_validated_on_one_line(capsys, argv, fragment, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert fragment in one_line_error(capsys, *argv)


def test_json_output_writes_non_finite_numbers_as_null(capsys):
    from derive.cli import emit_json

    emit_json({"loss": float("inf"), "history": [{"loss": float("nan")}, 1.5]})
    out = capsys.readouterr().out
    assert json.loads(out) == {"loss": None, "history": [{"loss": None}, 1.5]}
