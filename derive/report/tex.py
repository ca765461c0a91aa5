"""TeX compilation and the template sandbox: every engine run fenced.

What a user's text becomes in TeX (`escape`, `Tex`, `math_or_text`) is in
derive/texsafe.py.

`compile_pdf` runs latexmk in a fresh temporary directory with shell escape
off, `openin_any=p`/`openout_any=p` (so `\\input` cannot read outside it),
no rc files, in a session of its own, and a timeout (`DERIVE_TEX_TIMEOUT`):
on the timeout or a SIGTERM the whole process group is killed and the
directory removed. `TemplateSandbox` is the Jinja sandbox every template
renders in; `template_error` turns what a user's template does wrong into
one InputError with its line.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.sandbox

from derive.errors import InputError
from derive.texsafe import needs_unicode_engine


# ---------------------------------------------------------------------------
# Templates: Jinja's sandbox, and what goes wrong in a user's template as one line
# ---------------------------------------------------------------------------


class TemplateSandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """Jinja's sandbox (no `__globals__`, no private attributes, no mutating the context),
    with `*` and `**` bounded so that `"x" * 10**10` or `9**9**9` cannot exhaust memory."""

    intercepted_binops = frozenset(["*", "**"])
    MAX_SIZE = 1_000_000
    MAX_BITS = 100_000

    def call_binop(self, context, operator, left, right):
        if isinstance(left, int) and isinstance(right, int):
            bits = left.bit_length() * abs(right) if operator == "**" else left.bit_length() + right.bit_length()
            if bits > self.MAX_BITS:
                raise jinja2.exceptions.SecurityError("a number too large for a template")
        elif isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple)):
            seq, times = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
            if isinstance(times, int) and len(seq) * times > self.MAX_SIZE:
                raise jinja2.exceptions.SecurityError("a repeated string or list too long")
        return super().call_binop(context, operator, left, right)


class TimeLimit(Exception):
    """Raised in the main thread when a `time_limit` runs out."""


@contextlib.contextmanager
def time_limit(seconds: float, message: str):
    """Stop Python work in the main thread after `seconds` with InputError(message).

    For pure-Python work such as a template's loops (a signal interrupts
    bytecode, not a long C call); elsewhere than the main thread it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeLimit()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except TimeLimit:
        raise InputError(message.format(seconds=seconds)) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def template_error(exc: Exception, path: Path) -> InputError:
    """An exception from rendering a user's template, as one line naming its file and line."""
    filename = os.path.abspath(path)
    line = None
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename in (filename, None):
        line = exc.lineno
    else:
        tb = exc.__traceback__
        while tb is not None:  # the innermost frame in the user's file: Jinja maps it to the template line
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
    if isinstance(exc, jinja2.TemplateSyntaxError):
        what = f"template syntax error: {exc.message}"
        if exc.filename not in (filename, None):
            what += f" (in {Path(exc.filename).name}, line {exc.lineno})"
    elif isinstance(exc, jinja2.exceptions.SecurityError):
        what = f"not allowed in a template: {exc}"
    elif isinstance(exc, jinja2.UndefinedError):
        what = f"the template uses something the context does not have: {exc.message}"
    elif isinstance(exc, jinja2.TemplateNotFound):
        what = f"a template may include only the shipped templates, not {exc.name!r}"
    elif isinstance(exc, RecursionError):
        what = "the template recurses too deeply"
    else:
        detail = str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)
        what = f"the template failed: {type(exc).__name__}: {detail}"[:300]
    return InputError(what, where=f"{path}, line {line}" if line else str(path))


# ---------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------

DEBIAN_PACKAGES = (
    "latexmk texlive-latex-base texlive-latex-recommended texlive-pictures "
    "texlive-xetex texlive-lang-chinese lmodern fonts-noto-cjk fonts-dejavu-core poppler-utils"
)
COMPILE_SECONDS = 240  # default time limit of one TeX run (latexmk and every engine pass)
TIMEOUT_VARIABLE = "DERIVE_TEX_TIMEOUT"  # seconds, to lower (or raise) that limit


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while TeX ran: TeX's process group was killed and its directory removed."""


@dataclass(frozen=True)
class Compiled:
    pdf: bytes | None  # None when compilation failed or no engine is installed
    engine: str
    log_excerpt: str  # the lines of the TeX log that explain a failure
    missing_tools: tuple[str, ...] = ()
    pages: int = 0

    @property
    def ok(self) -> bool:
        return self.pdf is not None


def engine_for(tex: str, lang: str) -> str:
    """pdfLaTeX for plain English reports; XeLaTeX for Chinese and other Unicode text."""
    return "xelatex" if lang == "zh" or needs_unicode_engine(tex) else "pdflatex"


def missing_tools(engine: str) -> tuple[str, ...]:
    return tuple(tool for tool in ("latexmk", engine) if shutil.which(tool) is None)


def compile_seconds() -> float:
    """The TeX time limit: $DERIVE_TEX_TIMEOUT seconds when set, else COMPILE_SECONDS."""
    given = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not given:
        return COMPILE_SECONDS
    try:
        seconds = float(given)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < 10**6:
        raise InputError(f"must be a positive number of seconds, not {given[:40]!r}", where=TIMEOUT_VARIABLE)
    return seconds


class _SigtermRaises:
    """While armed, SIGTERM raises Terminated (main thread only); disarmed, it is remembered."""

    def __init__(self):
        self.armed = False
        self.pending = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
            self.armed = True
        return self

    def _handle(self, signum, frame):
        if self.armed:
            self.armed = False
            raise Terminated()
        self.pending = True

    def disarm(self) -> None:
        self.armed = False

    def __exit__(self, *exc):
        self.armed = False
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        if self.pending and exc[0] is None:
            raise Terminated()
        return False


def _kill_group(process: subprocess.Popen) -> None:
    """Kill latexmk and every engine it started (its own session), and reap latexmk.

    Only while latexmk is unreaped: its process id, which is the group's, cannot
    have been reused then.
    """
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        process.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        process.kill()
        process.wait()


def compile_pdf(tex: str, engine: str, *, seconds: float | None = None) -> Compiled:
    """The PDF of `tex`: latexmk in a fresh `derive-report-*` directory, in a session of its own.

    On the time limit (`seconds`, default `compile_seconds()`) or a SIGTERM to
    us, the whole process group is killed; the directory is always removed.
    A SIGTERM raises Terminated after that clean-up.
    """
    if seconds is None:
        seconds = compile_seconds()
    missing = missing_tools(engine)
    if missing:
        return Compiled(None, engine, "", missing)
    with _SigtermRaises() as guard:
        work = tempfile.mkdtemp(prefix="derive-report-")
        started: list[subprocess.Popen] = []
        try:
            return _run_latexmk(tex, engine, seconds, work, started.append)
        finally:
            guard.disarm()
            for process in started:
                _kill_group(process)
            shutil.rmtree(work, ignore_errors=True)


def _run_latexmk(tex: str, engine: str, seconds: float, work: str, started) -> Compiled:
    source = Path(work, "report.tex")
    source.write_text(tex, encoding="utf-8")
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("TEXINPUTS", "TEXMF", "BIBINPUTS", "LATEXMK"))
    }
    # Debian's default openin_any=a lets \input read any file; p: only below the work directory.
    env.update(openin_any="p", openout_any="p", shell_escape="f", HOME=work)
    command = [
        "latexmk", "-pdfxe" if engine == "xelatex" else "-pdf", "-norc",
        "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", "-no-shell-escape",
        "report.tex",
    ]
    process = subprocess.Popen(
        command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )
    started(process)
    try:
        process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        return Compiled(None, engine, f"{engine} did not finish within {seconds:g} s (a TeX loop?); it was stopped")
    pdf = Path(work, "report.pdf")
    log = Path(work, "report.log")
    log_text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    if pdf.exists() and pdf.stat().st_size > 0 and not _fatal(log_text):
        pages = re.findall(r"Output written on \S+ \((\d+) pages?", log_text)
        return Compiled(pdf.read_bytes(), engine, "", pages=int(pages[-1]) if pages else 0)
    return Compiled(None, engine, log_excerpt(log_text) or "latexmk produced no PDF and no log")


def _fatal(log_text: str) -> bool:
    return "Fatal error occurred" in log_text or "Emergency stop" in log_text


def log_excerpt(log_text: str, context: int = 3, limit: int = 40) -> str:
    """The error lines of a TeX log (`! …` or `file:line: …`) with a few lines after each."""
    lines = log_text.splitlines()
    keep: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("!") or re.match(r"^[^:\s]+\.tex:\d+: ", line):
            keep.extend(lines[i : i + 1 + context])
            keep.append("")
        if len(keep) >= limit:
            break
    return "\n".join(keep[:limit]).strip()
