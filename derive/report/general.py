"""The report's "Proofs for every size": `derive prove --general`'s argument as aligned equations.

`general_section(report, t)` turns a GeneralReport (derive/proof/general/report.py)
into plain data for the templates: each covered formula with its assumptions, the
steps of its left side (each with the reason, in words), its right side and the
conclusion; the formulas no general model covers, each with the reason; the
inductions that give δ at every layer. Every string from a formula set (ids,
titles, reasons that name its expressions) stays a plain string, escaped when a
template prints it; the LaTeX of the steps comes from SymPy's printer
(derive/proof/general/show.py), split into lines that fit the page, each line
kept only when texsafe's whitelist accepts it (otherwise the step prints as text).
"""

from __future__ import annotations

import sympy as sp

from derive.proof.general import show
from derive.proof.general.report import GeneralEntry, GeneralReport
from derive.report.format import LINE_WIDTH, MathWriter, breakable, visible_length
from derive.report.labels import Labels
from derive.texsafe import Tex, is_safe_math

FIT_WIDTH = LINE_WIDTH + 12  # a line still wider than this (one long fraction) is scaled to the line width


class ReportTexPrinter(show.TexPrinter):
    """The general proofs' printer, as a page writes it: a double sum as two sums (SymPy's `\\substack`
    is no math a report's whitelist admits), and indices that are expressions separated by commas
    (x_{i + p - 1, j + q - 1}, not x_{i + p - 1 j + q - 1})."""

    def _print_Sum(self, expr):
        if len(expr.limits) == 1:
            return super()._print_Sum(expr)
        sums = " ".join(rf"\sum_{{{self._print(i)}={self._print(lo)}}}^{{{self._print(hi)}}}"
                        for i, lo, hi in reversed(expr.limits))
        body = self._print(expr.function)
        return f"{sums} \\left({body}\\right)" if expr.function.is_Add else f"{sums} {body}"

    def __init__(self, layered: bool = True):
        super().__init__()
        self.layered = layered  # Nielsen's layer superscripts; Zhou's names take subscripts only (w_{hj})

    def _superscripted(self, expr) -> bool:
        return self.layered and isinstance(expr, sp.Indexed) and expr.base.label.name in show.LAYERED

    def _print_Pow(self, expr, *args, **kwargs):
        if self._superscripted(expr.base) and expr.exp.is_Integer and expr.exp > 0:  # (a^L_j)^2, not a^L_j^2
            return rf"\left({self._print(expr.base)}\right)^{{{self._print(expr.exp)}}}"
        return super()._print_Pow(expr, *args, **kwargs)

    def _print_Indexed(self, expr):
        label = expr.base.label.name
        head = show.TEX.get(label, label)
        layer = [self._print(expr.indices[0])] if self._superscripted(expr) else []
        below = expr.indices[len(layer):]
        sep = " " if all(i.is_Symbol or i.is_Integer for i in below) else ", "
        subscript = f"_{{{sep.join(self._print(i) for i in below)}}}"
        return f"{head}^{{{layer[0]}}}{subscript}" if layer else head + subscript


class GeneralMath(MathWriter):
    """MathWriter's line breaking over the general proofs' printer (Nielsen's and Zhou's notation)."""

    def __init__(self, layered: bool = True):  # no derivations: the general models have their own names
        super().__init__(None)
        self.printer = ReportTexPrinter(layered)

    def __call__(self, expr: sp.Expr) -> Tex:
        return Tex(self.printer.doprint(expr))

    def step_lines(self, expr: sp.Expr) -> list[Tex]:
        """The expression as displayed lines; as escaped text when a line is not math the whitelist accepts."""
        lines = self.lines(expr)
        if not all(is_safe_math(line, name=False) for line in lines):
            return [Tex(r"\text{\ttfamily " + breakable(show.text(expr)) + "}")]
        return [Tex(rf"\fitmath{{{line}}}") if visible_length(line) > FIT_WIDTH else line for line in lines]


def general_section(report: GeneralReport, t: Labels) -> dict:
    """What the report shows of the general proofs; see reports/README.md."""
    maths = {layered: GeneralMath(layered) for layered in (True, False)}  # Zhou's threshold network: w_{hj}
    covered = [e for e in report.entries if e.result.status != "not-covered"]
    sets = []
    for set_id in dict.fromkeys(e.set_id for e in covered):
        inductions = [i for i in report.inductions if i.set_id == set_id]
        formulas = [_entry(e, maths[e.formula.when.get("kind") != "threshold"], t)
                    for e in covered if e.set_id == set_id]
        common = [a for a in formulas[0]["assumptions"] if all(a in f["assumptions"] for f in formulas)]
        for f in formulas:
            f["own_assumptions"] = [a for a in f["assumptions"] if a not in common]
        sets.append({
            "id": set_id,
            "assumptions": common,
            "formulas": formulas,
            "inductions": [{"base": i.base, "step": i.step, "text": t("general_induction", base=i.base, step=i.step)}
                           for i in inductions],
        })
    not_covered = [{"set": e.set_id, "formula": e.formula.id, "title": e.formula.title,
                    "reason": t.message(e.result.reason)}
                   for e in report.entries if e.result.status == "not-covered"]
    summary = {s: report.count(s) for s in ("proven", "unproven", "not-covered")}
    return {
        "sets": sets,
        "not_covered": not_covered,
        "summary": summary,
        "summary_text": t("general_summary", proven=summary["proven"], unproven=summary["unproven"],
                          not_covered=summary["not-covered"], seconds=f"{report.seconds:.2f}"),
        "all_proven": report.all_proven,
        "record": report.to_dict(),
    }


def _entry(entry: GeneralEntry, math: GeneralMath, t: Labels) -> dict:
    """One covered formula: its statement, assumptions, both sides step by step and the conclusion."""
    formula, result = entry.formula, entry.result
    return {
        "set": entry.set_id,
        "formula": formula.id,
        "family": formula.family,
        "family_text": t.name("family_name", formula.family),
        "title": formula.title,
        # the set's display form: as math when the whitelist accepts it, else as typed (text that can break)
        "latex": Tex(formula.latex) if formula.latex and is_safe_math(formula.latex, name=False) else "",
        "latex_typed": breakable(formula.latex) if formula.latex and not is_safe_math(formula.latex, name=False) else "",
        "status": result.status,
        "status_text": t("general_" + result.status.replace("-", "_")),
        "assumptions": [t.message(a) for a in result.assumptions],
        "lhs": [_step(s, math, t) for s in result.lhs_steps],
        "rhs": [_step(s, math, t) for s in result.rhs_steps],
        "proven": result.proven,
        "reason": t.message(result.reason),
        "difference": [] if result.difference is None else math.step_lines(result.difference),
        "seconds": f"{result.seconds:.2f}",
    }


def _step(step, math: GeneralMath, t: Labels) -> dict:
    return {"lines": math.step_lines(step.expr), "reason": t.message(step.text)}
