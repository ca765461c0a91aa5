"""Issue 9: data, parameter files, [values] and gradcheck points that come from a stranger.

Every hostile input must end in one line on stderr with exit 2 (bad input) or
1 (a failed check, diverged training), never exit 3 (our bug), and never by
reading or inflating more than the stated limits.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from derive.cli import main
from derive.train.data import MAX_NPZ_BYTES, load_dataset, read_npz
from derive.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def run(argv, capsys):
    """(exit code, stdout, stderr) of the CLI run in-process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own validation
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# --- hand-built zips ----------------------------------------------------------


def npy_header(shape, descr="<f8", fortran=False, version=1) -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    prefix = 10 if version == 1 else 12
    text += " " * ((-(len(text) + 1 + prefix)) % 64) + "\n"
    length = struct.pack("<H" if version == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + length + text.encode("latin1")


def zip_bytes(members, *, version_needed=20, flags=0) -> bytes:
    """A zip built by hand: members are (name, stored bytes, method, crc, compressed size, declared size)."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, crc, csize, usize in members:
        offset = out.tell()
        raw = name.encode()
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", version_needed, flags, method, 0, 0,
                              crc, csize, usize, len(raw), 0) + raw + data)
        central.write(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, version_needed, flags, method, 0, 0,
                                  crc, csize, usize, len(raw), 0, 0, 0, 0, 0, offset) + raw)
    directory = central.getvalue()
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), out.tell(), 0)
    return out.getvalue() + directory + end


def stored(name, data: bytes):
    return (name, data, zipfile.ZIP_STORED, zlib.crc32(data), len(data), len(data))


def deflated(name, data: bytes, declared: int | None = None):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = c.compress(data) + c.flush()
    return (name, packed, zipfile.ZIP_DEFLATED, zlib.crc32(data), len(packed),
            len(data) if declared is None else declared)


def good_xy() -> dict[str, bytes]:
    buffers = {}
    for key, array in {"x": np.zeros((4, 3)), "y": np.array([0, 1, 0, 1])}.items():
        b = io.BytesIO()
        np.save(b, array)
        buffers[key] = b.getvalue()
    return buffers


def bomb_member(name: str, header: bytes, zeros: int, declared: int | None = None):
    """A deflated member of `header` then `zeros` zero bytes, built without holding them in memory."""
    chunk = 1 << 24
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)  # after a full flush, the same each time
    repeats, rest = divmod(zeros, chunk)
    packed = head + block * repeats + c.compress(bytes(rest)) + c.flush()
    total = len(header) + zeros
    return (name, packed, zipfile.ZIP_DEFLATED, 0, len(packed), total if declared is None else declared)


# --- 1. .npz files: sizes, bombs, corruption -----------------------------------


def test_header_claiming_terabytes_is_refused_at_once(tmp_path, capsys):
    path = tmp_path / "huge.npz"
    xy = good_xy()
    path.write_bytes(zip_bytes([stored("x.npy", npy_header((200_000, 1_000_000))), stored("y.npy", xy["y"])]))
    assert path.stat().st_size < 600  # a 580-byte file claiming 1.46 TiB
    start = time.perf_counter()
    with pytest.raises(InputError, match="limit per .npz file"):
        read_npz(path)
    assert time.perf_counter() - start < 3  # at once (a few ms), with room for a loaded machine
    code, out, err = run(["train", "book-12-3-2", "--data", path], capsys)
    assert code == 2 and out == ""
    line = one_line(err)
    assert "1,600,000,000,000 bytes" in line and f"{MAX_NPZ_BYTES:,}" in line and str(path) in line


def test_zip_bomb_is_refused_before_inflating(tmp_path, capsys):
    path = tmp_path / "bomb.npz"
    zeros = 1_200_000_000
    member = bomb_member("x.npy", npy_header((zeros // 8,)), zeros)
    path.write_bytes(zip_bytes([member, stored("y.npy", good_xy()["y"])]))
    assert 1_000_000 < path.stat().st_size < 1_400_000
    start = time.perf_counter()
    with pytest.raises(InputError, match="uncompressed"):
        read_npz(path)
    assert time.perf_counter() - start < 3  # at once (a few ms), with room for a loaded machine
    code, out, err = run(["train", "book-12-3-2", "--data", path], capsys)
    assert code == 2 and "uncompressed" in one_line(err) and f"{MAX_NPZ_BYTES:,}" in err


def test_bomb_that_understates_its_size_inflates_no_more_than_declared(tmp_path, capsys):
    """The directory says 928 bytes; the stream holds 200 MB. At most 929 bytes are inflated."""
    path = tmp_path / "liar.npz"
    header = npy_header((100,))
    member = bomb_member("x.npy", header, 200_000_000, declared=len(header) + 800)
    path.write_bytes(zip_bytes([member, stored("y.npy", good_xy()["y"])]))
    start = time.perf_counter()
    with pytest.raises(InputError, match="cannot be read"):
        read_npz(path)
    assert time.perf_counter() - start < 3  # at once (a few ms), with room for a loaded machine
    code, _, err = run(["train", "book-12-3-2", "--data", path], capsys)
    assert code == 2 and "cannot be read" in one_line(err)


def test_compression_ratio_limit(tmp_path):
    path = tmp_path / "ratio.npz"
    header = npy_header((1000,))
    # declared 8,000 bytes out of 1 compressed byte: no deflate stream does that
    path.write_bytes(zip_bytes([("x.npy", b"\x03", zipfile.ZIP_DEFLATED, 0, 1, len(header) + 8000)]))
    with pytest.raises(InputError, match="compression ratio limit of 1100:1"):
        read_npz(path)


def test_array_count_limit_in_numbers(tmp_path):
    """int8 elements are cheap on disk but each becomes a float64: the count is limited too."""
    path = tmp_path / "many.npz"
    path.write_bytes(zip_bytes([stored("x.npy", npy_header((1 << 26,), descr="|i1"))]))
    with pytest.raises(InputError, match=r"33,554,432 numbers \(2\^25\)"):
        read_npz(path)


def corrupt_variants(tmp_path) -> dict[str, bytes]:
    b = io.BytesIO()
    np.savez_compressed(b, x=np.random.default_rng(0).random((50, 3)), y=np.arange(50) % 2)
    good = b.getvalue()
    flipped = bytearray(good)
    for i in range(60, 400, 7):
        flipped[i] ^= 0x5A
    xy = good_xy()
    normal = zip_bytes([stored("x.npy", xy["x"]), stored("y.npy", xy["y"])])
    return {
        "corrupt deflate": bytes(flipped),
        "truncated zip": good[: len(good) // 2],
        "truncated at the directory": good[:-10],
        "unsupported zip version": zip_bytes([stored("x.npy", xy["x"]), stored("y.npy", xy["y"])],
                                             version_needed=99),
        "encrypted": zip_bytes([stored("x.npy", xy["x"]), stored("y.npy", xy["y"])], flags=1),
        "bzip2 member": zip_bytes([(*stored("x.npy", xy["x"])[:2], zipfile.ZIP_BZIP2, *stored("x.npy", xy["x"])[3:])]),
        "EOF in the npy header": zip_bytes([stored("x.npy", b"\x93NUMPY\x01\x00\x76"), stored("y.npy", xy["y"])]),
        "garbage header": zip_bytes([stored("x.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': <f8}   \n")]),
        "npy version 9": zip_bytes([stored("x.npy", b"\x93NUMPY\x09\x00" + xy["x"][8:])]),
        "negative shape": zip_bytes([stored("x.npy", npy_header((-4, 3)))]),
        "object dtype": zip_bytes([stored("x.npy", npy_header((4,), descr="|O"))]),
        "data shorter than the header says": zip_bytes([stored("x.npy", npy_header((4, 3)) + bytes(40))]),
        "bad crc": normal.replace(struct.pack("<I", zlib.crc32(xy["x"])), b"\0\0\0\0"),
        "not a zip": b"PK\x03\x04" + os.urandom(200),
        "empty": b"",
        "a directory member": zip_bytes([stored("x.npy/", b"")]),
        "not an npy member": zip_bytes([stored("x.txt", b"hello")]),
        "two members of one name": zip_bytes([stored("x.npy", xy["x"]), stored("x.npy", xy["x"])]),
    }


def test_corrupt_npz_files_are_one_line_exit_2(tmp_path, capsys):
    for what, content in corrupt_variants(tmp_path).items():
        path = tmp_path / "bad.npz"
        path.write_bytes(content)
        for argv in (["train", "book-12-3-2", "--data", path, "--epochs", "1"],
                     ["train", "book-12-3-2", "--data", "book-0-1", "--epochs", "1", "--load", path]):
            code, out, err = run(argv, capsys)
            assert code == 2, (what, argv, err)
            assert str(path) in one_line(err) and "internal error" not in err, what


def test_random_corruptions_never_exit_3(tmp_path, capsys):
    b = io.BytesIO()
    np.savez_compressed(b, x=np.random.default_rng(1).random((20, 12)), y=np.arange(20) % 2)
    good = b.getvalue()
    rng = np.random.default_rng(9)
    path = tmp_path / "fuzz.npz"
    for _ in range(80):
        data = bytearray(good)
        for i in rng.integers(0, len(data), rng.integers(1, 6)):
            data[i] = rng.integers(256)
        path.write_bytes(bytes(data[: rng.integers(len(data) // 2, len(data) + 1)]))
        code, _, err = run(["train", "book-12-3-2", "--data", path, "--epochs", "0"], capsys)
        assert code in (0, 1, 2), err
        assert "internal error" not in err


def test_only_regular_files_are_read(tmp_path, capsys):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    code, _, err = run(["train", "book-12-3-2", "--data", fifo], capsys)
    assert code == 2 and "not a regular file" in one_line(err)
    code, _, err = run(["train", "book-12-3-2", "--data", "book-0-1", "--load", "/dev/zero"], capsys)
    assert code == 2 and "not a regular file" in one_line(err)
    code, _, err = run(["train", "book-12-3-2", "--data", tmp_path], capsys)  # a directory, not .npz
    assert code == 2


def test_fortran_order_and_big_endian_arrays_load(tmp_path):
    path = tmp_path / "ok.npz"
    x = np.asfortranarray(np.arange(12.0).reshape(4, 3)).astype(">f8")
    np.savez(path, x=x, y=np.array([0, 1, 1, 0], dtype=np.uint8))
    d = load_dataset(str(path))
    assert np.array_equal(d.x_train, np.arange(12.0).reshape(4, 3))
    assert d.classes == ("0", "1")


# --- 2. labels ------------------------------------------------------------------


@pytest.mark.parametrize("labels, shown", [
    (np.array([0.0, 1.0, 1e300, 0.0]), "1e+300"),
    (np.array([0, 1, -1, 0]), "-1"),
    (np.array([0, 1, 10_000, 0]), "10000"),
    (np.array([0, 1, 2**62, 0], dtype=np.int64), "4.61169e+18"),
    (np.array([0, 1, 2**64 - 1, 0], dtype=np.uint64), "1.84467e+19"),
])
def test_labels_out_of_range(tmp_path, labels, shown, capsys):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((4, 12)), y=labels)
    code, _, err = run(["train", "book-12-3-2", "--data", path], capsys)
    assert code == 2
    line = one_line(err)
    assert f"label {shown}" in line and "integers from 0 to 9,999" in line


def test_fractional_labels_and_many_classes(tmp_path, capsys):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((4, 12)), y=np.array([0, 0.5, 1, 0]))
    assert run(["train", "book-12-3-2", "--data", path], capsys)[0] == 2
    # 4,000 examples of 4,000 distinct classes: 16 million one-hot numbers, within limits, and a clear mismatch
    np.savez(path, x=np.zeros((4000, 12)), y=np.arange(4000))
    code, _, err = run(["train", "book-12-3-2", "--data", path], capsys)
    assert code == 2 and "4000 target columns" in one_line(err)


def test_float_labels_that_are_integral_still_work(tmp_path, capsys):
    path = tmp_path / "labels.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((8, 12)), y=np.array([0.0, 1.0] * 4))
    code, out, _ = run(["train", "book-12-3-2", "--data", path, "--epochs", "2", "--json"], capsys)
    assert code == 0 and json.loads(out)["train_accuracy"] is not None


# --- 3. --save -----------------------------------------------------------------


def test_save_never_follows_a_planted_symlink(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".p.npz.partial").symlink_to(victim)
    code, _, err = run(["train", "book-12-3-2", "--data", "book-0-1", "--epochs", "1", "--save", "p.npz"], capsys)
    assert code == 0, err
    assert victim.read_text() == "precious"
    assert (tmp_path / ".p.npz.partial").is_symlink()  # untouched: the temporary file had another name
    with np.load(tmp_path / "p.npz") as archive:
        assert set(archive.files) == {"W2", "b2", "W3", "b3"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".p.npz.") and not p.is_symlink()]


def test_save_mode_follows_the_umask(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        assert run(["train", "book-12-3-2", "--data", "book-0-1", "--epochs", "1", "--save", tmp_path / "p.npz"],
                   capsys)[0] == 0
    finally:
        os.umask(old)
    assert (tmp_path / "p.npz").stat().st_mode & 0o777 == 0o640


def test_save_over_data_is_refused_and_over_load_is_an_update(tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.random.default_rng(0).random((6, 12)), y=np.array([0, 1] * 3))
    before = data.read_bytes()
    code, _, err = run(["train", "book-12-3-2", "--data", data, "--epochs", "1", "--save", data], capsys)
    assert code == 2 and "is also an input" in one_line(err)
    assert data.read_bytes() == before
    params = tmp_path / "p.npz"
    assert run(["train", "book-12-3-2", "--data", "book-0-1", "--epochs", "1", "--save", params], capsys)[0] == 0
    first = params.read_bytes()
    code, _, err = run(["train", "book-12-3-2", "--data", "book-0-1", "--epochs", "1", "--load", params,
                        "--save", params], capsys)
    assert code == 0, err
    assert params.read_bytes() != first


# --- 4. train: [values] numbers, infinite test loss, settings --------------------


FREE = """\
[network]
name = "{name}"
inputs = ["x"]
targets = ["y"]
cost = "C"
[equations]
{equations}
"""


def spec(tmp_path, name, equations, values=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(FREE.format(name=name, equations=equations) + (f"[values]\n{values}" if values else ""))
    return path


def test_huge_integer_in_values(tmp_path, capsys):
    path = spec(tmp_path, "huge", 'h = "x*w"\nC = "(h - y)**2/2"', "x = 1\ny = 0.5\nw = 1" + "0" * 400 + "\n")
    code, out, err = run(["train", path, "--data", "values", "--json"], capsys)
    assert code == 2 and out == ""
    line = one_line(err)
    assert "[values] w" in line and "about 1e400" in line and "beyond the range of a double" in line


def test_infinite_test_loss_is_null_in_complete_json(tmp_path, capsys):
    path = spec(tmp_path, "lin", 'h = "x*w"\nC = "(h - y)**2/2"')
    data = tmp_path / "d.npz"
    np.savez(data, x=np.array([[0.1], [0.2], [0.3]]), y=np.array([[0.1], [0.2], [0.3]]),
             x_test=np.array([[1e300]]), y_test=np.array([[0.0]]))
    code, out, err = run(["train", path, "--data", data, "--epochs", "2", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)  # the whole object, valid JSON
    assert result["test_loss"] is None and result["loss"] is not None
    code, out, _ = run(["train", path, "--data", data, "--epochs", "2"], capsys)
    assert code == 0 and "loss" in out


def test_divergence_is_one_line_exit_1_and_with_json_one_complete_object(tmp_path, capsys):
    path = spec(tmp_path, "lin", 'h = "x*w"\nC = "(h - y)**2/2"')
    data = tmp_path / "d.npz"
    np.savez(data, x=np.ones((4, 1)), y=np.zeros((4, 1)))
    code, out, err = run(["train", path, "--data", data, "--epochs", "5", "--lr", "1e300"], capsys)
    assert code == 1 and out == ""
    assert "training diverged" in one_line(err)
    code, out, err = run(["train", path, "--data", data, "--epochs", "5", "--lr", "1e300", "--json"], capsys)
    assert code == 1 and "training diverged" in one_line(err)
    result = json.loads(out)  # --json prints one complete value, the divergence included
    assert result["diverged"] is True and result["epochs"] == 5 and "--lr, now 1e+300" in result["error"]


def test_free_form_kernel_overflow_is_divergence_not_a_crash(tmp_path, capsys):
    path = spec(tmp_path, "sq", 'h = "x*w*w"\nC = "(h - y)**2/2"')
    data = tmp_path / "d.npz"
    np.savez(data, x=np.array([[1e300], [1e300]]), y=np.array([[0.0], [0.0]]))
    code, out, err = run(["train", path, "--data", data, "--epochs", "1", "--batch", "2"], capsys)
    assert code == 1 and "training diverged" in one_line(err)


def test_data_beyond_float32(tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, x=np.full((4, 12), 1e300), y=np.array([0, 1, 0, 1]))
    code, _, err = run(["train", "book-12-3-2", "--data", data, "--dtype", "float32"], capsys)
    assert code == 2 and "beyond the range of float32" in one_line(err)


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "0", "--lr a finite number > 0"),
    ("--lr", "nan", "--lr"),
    ("--lr", "inf", "--lr"),
    ("--lmbda", "-1", "--lmbda a finite number ≥ 0"),
    ("--lmbda", "nan", "--lmbda"),
    ("--momentum", "nan", "--momentum"),
    ("--epochs", "1000000000", "--epochs from 0 to 1,000,000"),
    ("--epochs", "-1", "--epochs"),
    ("--batch", "0", "--batch from 1"),
])
def test_train_settings(option, value, message, capsys):
    code, out, err = run(["train", "book-12-3-2", "--data", "book-0-1", option, value], capsys)
    assert code == 2 and out == "" and message in err and "internal error" not in err


# --- 5. gradcheck outside the domain --------------------------------------------


@pytest.mark.parametrize("name, equation, reason", [
    ("logneg", "log(x*w - 10)", "node h has no finite value: log of a non-positive number"),
    ("fracpow", "(x*w - 10)**0.5", "node h has no finite value: fractional power of a negative number"),
    ("sqrtneg", "sqrt(w - 10)", "fractional power of a negative number"),
    ("exp4", "x*exp(exp(exp(exp(w + 3))))", "exp of a number above"),
])
def test_gradcheck_where_the_network_is_undefined(tmp_path, name, equation, reason, capsys):
    path = spec(tmp_path, name, f'h = "{equation}"\nC = "(h - y)**2/2"')
    code, out, err = run(["gradcheck", path], capsys)
    assert code == 2 and out == ""
    line = one_line(err)
    assert reason in line and "cannot gradcheck" in line


@pytest.mark.parametrize("name, equation", [
    ("exp3", "x*exp(exp(exp(w)))"),
    ("tower", "x*w**w**w"),
    ("logw", "log(w)*x"),
])
def test_gradcheck_draws_again_where_only_some_points_are_undefined(tmp_path, name, equation, capsys):
    path = spec(tmp_path, name, f'h = "{equation}"\nC = "(h - y)**2/2"')
    code, out, err = run(["gradcheck", path, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["passed"] is True


def test_gradcheck_bounds(capsys):
    code, _, err = run(["gradcheck", "two-two-two", "--batch", "100000"], capsys)
    assert code == 2 and "--batch from 1 to 4,096" in one_line(err)


def test_a_nan_gradient_never_passes():
    from derive.train.gradcheck import _relative

    assert _relative(float("nan"), 1.0, 1e-3) == float("inf")
    assert _relative(float("inf"), 1.0, 1e-3) == float("inf")


# --- 6. [values] that make a node undefined ---------------------------------------


def test_values_dividing_by_zero_name_the_node(tmp_path, capsys):
    path = spec(tmp_path, "div", 'h = "x/(a - b)"\nC = "(h*w - y)**2/2"', "x = 1\ny = 0.5\na = 2\nb = 2\nw = 0.3\n")
    code, _, err = run(["train", path, "--data", "values"], capsys)
    assert code == 2
    assert "node h = x/(a - b) has no finite value: division by zero" in one_line(err)
    code, out, _ = run(["derive", path, "--json"], capsys)  # values are optional there: still usable
    assert code == 0 and json.loads(out)["network"] == "div"


def test_values_overflowing_name_the_node(tmp_path, capsys):
    path = spec(tmp_path, "big", 'h = "x*w*w"\nC = "(h - y)**2/2"', "x = 1e308\ny = 0.5\nw = 1e308\n")
    code, _, err = run(["train", path, "--data", "values"], capsys)
    assert code == 2 and "node h = w**2*x has no finite value" in one_line(err)
    assert run(["derive", path], capsys)[0] == 0


def test_good_values_still_train(capsys):
    code, out, _ = run(["train", "two-two-two", "--data", "values"], capsys)
    assert code == 0 and "w1 = 0.149780716" in out


# --- a resource limit that matters: the bomb under a memory cap, in a subprocess ----


def test_bomb_under_a_memory_limit(tmp_path):
    path = tmp_path / "bomb.npz"
    zeros = 1_200_000_000
    path.write_bytes(zip_bytes([bomb_member("x.npy", npy_header((zeros // 8,)), zeros)]))
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))\n"
        "from derive.cli import main\n"
        f"sys.exit(main(['train', 'book-12-3-2', '--data', {str(path)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_gradcheck_json_with_an_infinite_error_is_valid(capsys):
    from derive.cli import emit_json
    from derive.train.gradcheck import GradcheckResult, GroupError

    result = GradcheckResult("n", "float64", 1, 1, [GroupError("w", 1, float("inf"), 0.0, "w")])
    emit_json(result.to_dict())  # what `derive gradcheck --json` prints
    data = json.loads(capsys.readouterr().out)
    assert data["groups"][0]["finite_differences"] is None and data["passed"] is False
