"""Reports: a derivation, its proofs and its numbers as LaTeX from Jinja templates, and PDF.

The report stage takes what the earlier stages produced (a network, its
derivation, a proof report, checked claims, a training run) and turns it into
a *context*: plain dicts and lists whose text is either `Tex` (made here, from
SymPy's printer or our own macros) or a plain string from a user. The
templates in `reports/` render that context; Jinja's `finalize` escapes every
plain string it prints, so a user's text can never become TeX commands, even
in a user's own template. The context is documented in reports/README.md.

The pieces: derive/report/labels.py reads the labels (reports/labels/LANG.toml),
derive/report/format.py prints math and numbers, derive/report/context.py
builds the contexts; this module renders them and writes the PDF.
`network_report_context` proves and evaluates what a network's report shows
and builds its context.

    context = network_report_context(network, lang="zh", explain="w1")
    tex = render("network", context)
    outcome = write_report(tex, Path("report.pdf"), lang="zh")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import jinja2
from markupsafe import Markup

from derive.derivation import Derivations
from derive.errors import InputError
from derive.files import read_text, write_atomically
from derive.limits import MAX_TEMPLATE_BYTES
from derive.report.context import network_context
from derive.report.format import number
from derive.report.labels import LANGS, templates_dir
from derive.report.tex import DEBIAN_PACKAGES, Compiled, TemplateSandbox, compile_pdf, engine_for, template_error, time_limit
from derive.texsafe import Tex, escape, needs_unicode_engine, wrap_fallback

KINDS = ("network", "claims", "class", "training", "grade-feedback", "grade-summary")


def network_report_context(
    network,
    *,
    lang: str = "en",
    explain: str | None = None,
    formulas: Iterable | None = None,
    budget: float = 5.0,
    seed: int = 0,
    progress: Callable | None = None,
    general: bool = False,
) -> dict:
    """A network report's context: the formula sets that apply proven, the [values] point evaluated.

    `formulas`: set ids, FormulaSet objects or .toml paths (default: every built-in set).
    `progress(total)`: a progress bar for the proofs, as `derive prove` draws.
    `general`: also prove each formula of those sets that applies to the network for every
    size, as `derive prove SPEC --general` does (the context's `general` section).
    Bad input (a formula file, an --explain name the cost does not depend on) is refused
    before any proof is run.
    """
    from derive.proof.report import prove
    from derive.proof.sets import applicable_sets
    from derive.proof.values import explain_target, network_values

    if lang not in LANGS:  # before minutes of proofs, not after
        raise InputError(f"--lang must be one of {', '.join(LANGS)}")
    sets = applicable_sets(network, formulas)  # a formula file's mistakes are reported first
    derivations = Derivations(network)
    target = explain_target(network, derivations, explain) if explain else None
    proofs = prove(network, sets, derivations=derivations, budget=budget, seed=seed, progress=progress) if sets else None
    values = network_values(network, derivations, explain=target)
    general_report = prove_every_size(network, sets, budget, progress) if general else None
    return network_context(network, derivations, proofs=proofs, values=values, lang=lang, explain=explain,
                           general=general_report)


def prove_every_size(network, sets: list, budget: float = 5.0, progress: Callable | None = None):
    """The GeneralReport of the formulas of `sets` that apply to `network`, each proven for every size."""
    import dataclasses

    from derive.proof.general.report import prove_general

    applicable = [dataclasses.replace(s, formulas=tuple(s.applicable(network))) for s in sets]
    return prove_general([s for s in applicable if s.formulas], budget=budget, progress=progress)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _finalize(value) -> Markup:
    """Every value a template prints: `Tex` (and macro output) as is, anything else escaped as text.

    Jinja runs `finalize` before its own autoescaping, which then leaves the
    `Markup` alone: the HTML escaping autoescape would do never happens.
    """
    if isinstance(value, Markup):
        return value
    if isinstance(value, Tex):
        return Markup(value)
    if value is None:
        return Markup("")
    return Markup(escape(value))


def _coordinate(value) -> Tex:
    return Tex(f"{float(value):.4f}")


def _plot_number(value) -> Tex:
    return Tex(f"{float(value):.6g}")


USER_TEMPLATE = "<your template>"  # the name the user's template is loaded under: no shipped file has it


def environment(template: Path | None = None) -> jinja2.Environment:
    """Sandboxed Jinja with delimiters that read as LaTeX: \\BLOCK{…}, \\VAR{…}, \\#{…}.

    Templates load from the shipped directory only; a user's `template` file is
    read once (a regular file, at most MAX_TEMPLATE_BYTES) and loaded as
    USER_TEMPLATE, so it may import the shipped macros but no other file.
    """
    loader: jinja2.BaseLoader = jinja2.FileSystemLoader(str(templates_dir()))
    if template is not None:
        source = read_text(template, limit=MAX_TEMPLATE_BYTES)
        filename = os.path.abspath(template)
        user = jinja2.FunctionLoader(lambda name: (source, filename, lambda: True) if name == USER_TEMPLATE else None)
        loader = jinja2.ChoiceLoader([user, loader])
    env = TemplateSandbox(
        loader=loader,
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,
    )
    env.filters["tex"] = escape
    env.filters["num"] = number
    env.filters["cm"] = _coordinate
    env.filters["coord"] = _plot_number
    return env


TEMPLATE_SECONDS = 15  # a user's template renders within this (ours take well under a second)


def render(kind: str, context: Mapping, *, template: str | Path | None = None) -> str:
    """The LaTeX source of a report of `kind` (network, claims, class, training, grade-feedback, grade-summary).

    Rendered for pdfLaTeX first; when the text holds characters only XeLaTeX
    typesets (Chinese labels or names, Cyrillic, …), rendered again for XeLaTeX
    with those characters in fonts that have them. Anything a user's
    `template` does wrong (a syntax error, an undefined name, an unsafe
    attribute, any exception while rendering) is an InputError naming its line.
    """
    if kind not in KINDS:
        raise ValueError(kind)
    if template is None:
        return _render(environment().get_template(f"{kind}.tex"), kind, context)
    path = Path(template)
    try:
        with time_limit(TEMPLATE_SECONDS, "rendering the template took longer than {seconds:g} s"):
            return _render(environment(path).get_template(USER_TEMPLATE), kind, context)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001: whatever a stranger's template makes go wrong is theirs
        raise template_error(exc, path) from None


def _render(compiled: jinja2.Template, kind: str, context: Mapping) -> str:
    tex = compiled.render(kind=kind, engine="pdflatex", **context)
    if context.get("lang", "en") == "zh" or needs_unicode_engine(tex):
        tex = wrap_fallback(compiled.render(kind=kind, engine="xelatex", **context))
    return tex


@dataclass(frozen=True)
class Outcome:
    """What `write_report` made: the .tex always, the PDF when TeX compiled it."""

    tex_path: Path
    pdf_path: Path | None
    engine: str
    pages: int = 0
    message: str = ""
    removed: Path | None = None  # an older PDF at the output path, removed because this one failed

    @property
    def ok(self) -> bool:
        """The file asked for exists: the PDF, or the .tex when only that was asked for."""
        return not self.message

    def to_dict(self) -> dict:
        return {
            "tex": str(self.tex_path),
            "pdf": str(self.pdf_path) if self.pdf_path else None,
            "engine": self.engine,
            "pages": self.pages,
            "compiled": self.pdf_path is not None,
            "message": self.message,
            "removed": str(self.removed) if self.removed else None,
        }


def report_outputs(output: Path) -> list[Path]:
    """Every file `write_report(…, output)` writes: the .tex, and the PDF when asked for."""
    output = Path(output)
    return [output.with_suffix(".tex"), output] if output.suffix == ".pdf" else [output]


def write_report(tex: str, output: Path, *, lang: str = "en") -> Outcome:
    """Write `output` (.tex, or .pdf with its .tex beside it), atomically; compile a PDF.

    When no PDF can be made, an older PDF at `output` (another network's, an
    earlier run's) is removed, so that it never sits beside the new .tex
    looking current; the outcome's message says so.
    """
    output = Path(output)
    if output.suffix not in (".pdf", ".tex"):
        raise InputError("the report must end in .pdf or .tex", where=str(output))
    if not output.parent.is_dir():
        raise InputError("the directory does not exist", where=str(output.parent))
    tex_path = output.with_suffix(".tex")
    engine = engine_for(tex, lang)
    write_atomically(tex_path, tex.encode("utf-8"))
    if output.suffix == ".tex":
        return Outcome(tex_path, None, engine)
    compiled: Compiled = compile_pdf(tex, engine)
    if compiled.ok:
        write_atomically(output, compiled.pdf)
        return Outcome(tex_path, output, engine, pages=compiled.pages)
    removed = remove_stale_pdf(output)
    note = f" The older {output} was removed: it was not made from this .tex." if removed else ""
    if compiled.missing_tools:
        message = (
            f"no TeX engine: {', '.join(compiled.missing_tools)} not found. The LaTeX source is in {tex_path}; "
            f"to compile PDFs, install Debian's packages: apt-get install --no-install-recommends {DEBIAN_PACKAGES}."
            + note
        )
    else:
        message = f"{engine} failed; the LaTeX source is in {tex_path}.{note} From the TeX log:\n{compiled.log_excerpt}"
    return Outcome(tex_path, None, engine, message=message, removed=removed)


def remove_stale_pdf(output: Path) -> Path | None:
    try:
        if output.is_symlink() or output.is_file():
            output.unlink()
            return output
    except OSError as exc:
        raise InputError(f"cannot remove the older PDF: {exc.strerror or exc}", where=str(output)) from None
    return None

