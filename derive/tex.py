"""TeX safety and compilation: every user string escaped, every engine run fenced.

A report mixes three kinds of text, and each has one way in:

* `escape(text)`: any string from a user (a name, a title, a claim as typed,
  a file name) becomes TeX that prints it literally. One character at a time,
  so that `\\` → `\\textbackslash{}` is never re-escaped by a later rule.
* `Tex`: a `str` that is already TeX, made only by our code (SymPy's printer
  over validated names, our templates' own macros). Templates print it as is;
  everything else is escaped (see `finalize` in report.py).
* `math_or_text(tex)`: TeX a user wrote for math (a `[latex]` name, a formula
  set's display form): kept when every command in it is on a math whitelist,
  otherwise shown as escaped typewriter text.

`compile_pdf` runs latexmk in a fresh temporary directory with shell escape
off, `openin_any=p`/`openout_any=p` (so `\\input` cannot read outside it),
no rc files and a timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path


class Tex(str):
    """A string that is already TeX, from our own code: printed without escaping."""

    __slots__ = ()


_TEXT_ESCAPES = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    # Characters TeX's fonts turn into other glyphs, alone or as ligatures
    # (`` '' -- --- ,, !` ?`): spelled so that each prints as typed.
    "`": r"\textasciigrave{}",
    "'": r"\textquotesingle{}",
    "-": "-{}",
    ",": ",{}",
    "\n": " ",
    "\t": " ",
    # Symbols users type in names and notes; each becomes TeX any engine reads.
    "−": r"\ensuremath{-}",
    "×": r"\ensuremath{\times}",
    "·": r"\ensuremath{\cdot}",
    "⋅": r"\ensuremath{\cdot}",
    "∂": r"\ensuremath{\partial}",
    "∑": r"\ensuremath{\sum}",
    "Σ": r"\ensuremath{\Sigma}",
    "Δ": r"\ensuremath{\Delta}",
    "∇": r"\ensuremath{\nabla}",
    "⊙": r"\ensuremath{\odot}",
    "→": r"\ensuremath{\to}",
    "←": r"\ensuremath{\leftarrow}",
    "↦": r"\ensuremath{\mapsto}",
    "≤": r"\ensuremath{\le}",
    "≥": r"\ensuremath{\ge}",
    "≠": r"\ensuremath{\ne}",
    "≈": r"\ensuremath{\approx}",
    "±": r"\ensuremath{\pm}",
    "√": r"\ensuremath{\surd}",
    "∞": r"\ensuremath{\infty}",
    "′": r"\ensuremath{'}",
    "ᵀ": r"\ensuremath{^{\mathsf{T}}}",
    "²": r"\ensuremath{^2}",
    "³": r"\ensuremath{^3}",
    "½": r"\ensuremath{\tfrac12}",
    "…": r"\ldots{}",
    "⋮": r"\ensuremath{\vdots}",
    "–": "--",
    "—": "---",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "✓": r"\ensuremath{\checkmark}",
    "✗": r"\ensuremath{\times}",
    "é": r"\'e",
    "è": r"\`e",
    "ü": r"\"u",
    "ö": r"\"o",
    "ä": r"\"a",
}
_GREEK = {
    "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
    "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi", "π": "pi",
    "ρ": "rho", "σ": "sigma", "ς": "varsigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "χ": "chi",
    "ψ": "psi", "ω": "omega", "Γ": "Gamma", "Θ": "Theta", "Λ": "Lambda", "Ξ": "Xi", "Π": "Pi",
    "Φ": "Phi", "Ψ": "Psi", "Ω": "Omega",
}
_TEXT_ESCAPES.update({c: rf"\ensuremath{{\{name}}}" for c, name in _GREEK.items()})

MAX_TEXT = 4000  # characters of one user string shown in a report; the rest is elided


def escape(text: object) -> Tex:
    """`text` as TeX that prints it literally, whatever it holds.

    Characters with no TeX spelling here (Chinese, Cyrillic, emoji, …) are kept:
    they make the document need XeLaTeX (see `needs_unicode_engine`), where
    xeCJK and a fallback font print them. Control characters are dropped.
    """
    text = str(text)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    out = []
    for ch in text:
        mapped = _TEXT_ESCAPES.get(ch)
        if mapped is not None:
            out.append(mapped)
        elif ch < " " or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    return Tex("".join(out))


def needs_unicode_engine(tex: str) -> bool:
    """Whether the document holds characters pdfLaTeX cannot typeset (after escaping)."""
    return any(ord(ch) > 127 for ch in tex)


def is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x2E80 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFE30 <= code <= 0xFE4F
        or 0xFF00 <= code <= 0xFFEF
        or 0x20000 <= code <= 0x2FA1F
    )


def wrap_fallback(tex: str) -> Tex:
    """Non-ASCII, non-CJK characters wrapped in the fallback font (XeLaTeX only)."""
    return Tex(re.sub(r"[^\x00-\x7f]+", lambda m: _fallback_run(m.group(0)), tex))


def _fallback_run(run: str) -> str:
    out, pending = [], []
    for ch in run:
        if is_cjk(ch):
            if pending:
                out.append(r"{\fallbackfont " + "".join(pending) + "}")
                pending = []
            out.append(ch)
        else:
            pending.append(ch)
    if pending:
        out.append(r"{\fallbackfont " + "".join(pending) + "}")
    return "".join(out)


# ---------------------------------------------------------------------------
# Math a user wrote: a whitelist of commands, or literal text
# ---------------------------------------------------------------------------

MATH_COMMANDS = frozenset(
    """
    alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi varpi
    rho varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma
    Upsilon Phi Psi Omega
    hat bar tilde vec dot ddot breve check widehat widetilde overline underline
    mathrm mathbf mathit mathsf mathtt mathcal mathbb boldsymbol operatorname text textrm textit textbf
    frac dfrac tfrac sqrt sum prod int partial nabla prime ell infty cdot cdots ldots dots vdots ddots times
    odot otimes circ pm mp leq geq le ge neq ne approx equiv sim to mapsto in notin subset cup cap
    left right big Big bigg Bigg bigl bigr Bigl Bigr biggl biggr Biggl Biggr middle
    langle rangle lfloor rfloor lceil rceil lvert rvert lVert rVert vert Vert
    quad qquad exp log ln max min tanh sin cos
    top intercal mathsf
    """.split()
)
_SPACING = frozenset(", ; : ! { } _ |".split())
MAX_MATH = 500


def math_or_text(tex: str) -> Tex:
    """User-written math kept as math when it is safe, else shown as literal typewriter text.

    Safe: every `\\command` on MATH_COMMANDS, balanced braces, none of `$ % # &
    ~` or a `\\\\` line break, no `^^` (TeX's hex notation for any character,
    a `\\` among them), and short.
    """
    if is_safe_math(tex):
        return Tex(tex)
    return Tex(r"\text{\ttfamily " + escape(tex) + "}")


def is_safe_math(tex: str) -> bool:
    if not tex.strip() or len(tex) > MAX_MATH or "^^" in tex:
        return False
    if any(ch in "$%#&~\n\r\t" or ord(ch) < 32 or ord(ch) > 126 for ch in tex):
        return False
    depth = 0
    i = 0
    while i < len(tex):
        ch = tex[i]
        if ch == "\\":
            match = re.match(r"\\([A-Za-z]+|.)", tex[i:])
            if match is None:
                return False
            command = match.group(1)
            if command not in MATH_COMMANDS and command not in _SPACING:
                return False
            i += len(match.group(0))
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


# ---------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------

DEBIAN_PACKAGES = (
    "latexmk texlive-latex-base texlive-latex-recommended texlive-pictures "
    "texlive-xetex texlive-lang-chinese lmodern fonts-noto-cjk fonts-dejavu-core poppler-utils"
)
COMPILE_SECONDS = 240


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


def compile_pdf(tex: str, engine: str, *, seconds: float = COMPILE_SECONDS) -> Compiled:
    missing = missing_tools(engine)
    if missing:
        return Compiled(None, engine, "", missing)
    with tempfile.TemporaryDirectory(prefix="derive-report-") as work:
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
        try:
            subprocess.run(
                command, cwd=work, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=seconds, check=False,
            )
        except subprocess.TimeoutExpired:
            return Compiled(None, engine, f"{engine} did not finish within {seconds:.0f} s")
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


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
