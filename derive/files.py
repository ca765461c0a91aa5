"""Reading strangers' files and writing outputs, safely, in one place.

Every file `derive` reads (specs, claims, formula sets, templates, data) goes
through `read_text`/`read_toml`: only regular files (a path to `/dev/zero` or a
FIFO would never end), at most a stated number of bytes (the limit is checked
on the bytes read, not only on `stat`, which a growing file can outrun), a
UTF-8 byte-order mark accepted (Windows editors write it), and every OS error
one line. Every file it writes goes through `write_atomically`: an exclusive
temporary file with an unpredictable name beside the target (so a planted
symlink at a guessable name is never followed), the process umask for its
mode, then one `os.replace`, so a reader sees the old file or the new one,
never half of either. `refuse_overwriting_inputs` stops an output path that
names one of the command's inputs.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Iterable

from derive.errors import InputError

BOM = "\ufeff"
# Python refuses to turn decimal strings of more than 4,300 digits into int (a
# guard against quadratic conversion). tomllib raises that ValueError untyped.
TOML_INTEGER_MESSAGE = "Exceeds the limit"


def _check_regular(path: Path, where: str, limit: int) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError("no such file", where=where) from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {_reason(exc)}", where=where) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError("is a directory, not a file", where=where)
    if not stat.S_ISREG(info.st_mode):
        raise InputError("is not a regular file (a device, pipe or socket is never read)", where=where)
    if info.st_size > limit:
        raise InputError(f"the file is larger than {limit:,} bytes", where=where)


def read_bytes(path: str | Path, *, limit: int, where: str | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or an InputError."""
    path = Path(path)
    where = where or str(path)
    _check_regular(path, where, limit)
    try:
        # O_NONBLOCK: a file swapped for a FIFO between stat and open does not block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InputError(f"cannot read the file: {_reason(exc)}", where=where) from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise InputError("is not a regular file (a device, pipe or socket is never read)", where=where)
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read the file: {_reason(exc)}", where=where) from None
    if len(data) > limit:
        raise InputError(f"the file is larger than {limit:,} bytes", where=where)
    return data


def read_text(path: str | Path, *, limit: int, where: str | None = None) -> str:
    """A regular UTF-8 text file of at most `limit` bytes; a leading byte-order mark is dropped."""
    where = where or str(path)
    data = read_bytes(path, limit=limit, where=where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text (byte {exc.start + 1} cannot be decoded)", where=where) from None
    return text[1:] if text.startswith(BOM) else text


def parse_toml(text: str, *, where: str) -> dict:
    """TOML text to a dict; every syntax error, a key given twice, or an over-long integer one InputError."""
    if text.startswith(BOM):
        text = text[1:]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(exc, text, where) from None
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's int conversion limit)
        if TOML_INTEGER_MESSAGE in str(exc):
            raise InputError(
                f"TOML: an integer has more than {sys.get_int_max_str_digits():,} digits", where=where
            ) from None
        raise InputError(f"TOML syntax error: {exc}", where=where) from None
    except RecursionError:
        raise InputError("TOML: nested too deeply", where=where) from None


_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def toml_error(exc: tomllib.TOMLDecodeError, text: str, where: str) -> InputError:
    """A TOML syntax error as one line; a key given twice is named, with its table and both lines.

    tomllib says only "Cannot overwrite a value (at line 9, column 16)"; the
    key, its table and where it was first given are read off the text.
    """
    message = str(exc)
    if not message.startswith("Cannot overwrite a value"):
        return InputError(f"TOML syntax error: {message}", where=where)
    lines = text.splitlines()
    match = _AT_LINE.search(message)
    if match:
        number = int(match.group(1))
    else:  # "at end of document": the last line that holds something
        number = max((i for i, line in enumerate(lines, start=1) if line.strip()), default=0)
    key_match = _KEY.match(lines[number - 1]) if 0 < number <= len(lines) else None
    if key_match is None:
        return InputError(f"TOML syntax error: {message}", where=where)
    key = _normal_key(key_match.group(1))
    table, start = None, 0
    for i in range(number - 1, 0, -1):
        header = _HEADER.match(lines[i - 1])
        if header:
            table = f"{header.group(1)}{header.group(2)}{']' * len(header.group(1))}"
            start = i
            break
    first = next(
        (i for i in range(start + 1, number) if (m := _KEY.match(lines[i - 1])) and _normal_key(m.group(1)) == key),
        None,
    )
    place = f"{table} {key}" if table else key
    if first:
        text = f"given twice (lines {first} and {number}); a key may appear only once in a table"
    else:
        text = f"line {number} overwrites a value given before; a key may appear only once in a table"
    return InputError(text, where=f"{where}: {place}")


def _normal_key(text: str) -> str:
    parts = [p.strip().strip("\"'") for p in re.split(r"\.(?=(?:[^\"']|\"[^\"]*\"|'[^']*')*$)", text)]
    return ".".join(parts)


def read_toml(path: str | Path, *, limit: int, where: str | None = None) -> dict:
    where = where or str(path)
    return parse_toml(read_text(path, limit=limit, where=where), where=where)


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through an exclusive, unpredictably named temporary file beside it.

    `mkstemp` opens with O_CREAT|O_EXCL and a random name, so a symlink planted
    in the directory is never followed; the file gets the mode a plain `open`
    would (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write: {_reason(exc)}", where=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise InputError(f"cannot write: {_reason(exc)}", where=str(path)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (reading it means setting it; set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def path_exists(path: str | Path) -> bool:
    """`Path.exists`, with a name too long for the file system answered "no" instead of raised."""
    try:
        return Path(path).exists()
    except OSError:
        return False


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (through links and `..`), for paths that may not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


def refuse_overwriting_inputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path]) -> None:
    """An InputError when an output path is one of the command's input files."""
    inputs = [Path(i) for i in inputs if i is not None]
    for output in outputs:
        for source in inputs:
            if source.exists() and same_file(output, source):
                raise InputError(f"is also an input ({source}); refusing to write over it", where=str(output))


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long"
    return exc.strerror or str(exc)
