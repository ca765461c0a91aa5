"""`derive prove --general`: every formula of the chosen sets proven for every size, with its argument."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import sympy as sp

from derive.proof.formulas import Formula, FormulaSet
from derive.proof.general import show
from derive.proof.general.models import L
from derive.proof.general.prove import DEFAULT_BUDGET, GeneralResult, Step, prove_identity


@dataclass
class GeneralEntry:
    set_id: str
    formula: Formula
    result: GeneralResult

    def to_dict(self) -> dict:
        result = self.result
        return {
            "set": self.set_id,
            "formula": self.formula.id,
            "family": self.formula.family,
            "title": self.formula.title,
            "latex": self.formula.latex,
            "status": result.status,
            "reason": result.reason,
            "assumptions": list(result.assumptions),
            "steps": {"lhs": [_step(s) for s in result.lhs_steps], "rhs": [_step(s) for s in result.rhs_steps]},
            "difference": None if result.difference is None else show.text(result.difference),
            "seconds": round(result.seconds, 4),
        }


@dataclass
class Induction:
    """δ^l at every layer: the base formula (l = L) and the step formula (l from l + 1), both proven."""

    set_id: str
    base: str
    step: str

    @property
    def text(self) -> str:
        return (f"by induction on L − l: {self.base} gives δ[L, ·] (the base, l = L) and {self.step} gives "
                f"δ[l, ·] from δ[l+1, ·] (the step, 2 ≤ l ≤ L − 1); both are proven above for every width, so "
                f"the backward recurrence computes ∂C/∂z[l, ·] at every layer of every depth L ≥ 2")

    def to_dict(self) -> dict:
        return {"set": self.set_id, "base": self.base, "step": self.step, "text": self.text}


@dataclass
class GeneralReport:
    entries: list[GeneralEntry]
    inductions: list[Induction] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for e in self.entries if e.result.status == status)

    @property
    def all_proven(self) -> bool:
        """Every formula the general models cover is proven, and at least one is covered."""
        return self.count("unproven") == 0 and self.count("proven") > 0

    def to_dict(self) -> dict:
        return {
            "general": True,
            "formulas": [e.to_dict() for e in self.entries],
            "inductions": [i.to_dict() for i in self.inductions],
            "summary": {s: self.count(s) for s in ("proven", "unproven", "not-covered")},
            "all_proven": self.all_proven,
            "seconds": round(self.seconds, 3),
        }


def prove_general(sets: list[FormulaSet], budget: float = DEFAULT_BUDGET, progress=None) -> GeneralReport:
    """Each formula of each set, proven for every size where a general model covers it."""
    start = time.perf_counter()
    entries = []
    bar = progress(sum(len(s.formulas) for s in sets)) if progress else None
    for formula_set in sets:
        for formula in formula_set.formulas:
            result = prove_identity(formula.lhs, formula.rhs, formula.ranges, formula.when, formula.assume,
                                    budget=budget)
            entries.append(GeneralEntry(formula_set.id, formula, result))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    inductions = [i for s in sets if (i := _induction(s.id, [e for e in entries if e.set_id == s.id]))]
    return GeneralReport(entries, inductions, time.perf_counter() - start)


def _induction(set_id: str, entries: list[GeneralEntry]) -> Induction | None:
    proven = [e for e in entries if e.result.proven]
    bases = [e for e in proven if _is_delta_at(e.formula.lhs, lambda m: sp.expand(m - L) == 0)]
    steps = [e for e in proven if _is_delta_at(e.formula.lhs, lambda m: m.is_Symbol and m != L)
             and _mentions_next(e.formula.rhs, e.formula.lhs.indices[0])]
    if not bases or not steps:
        return None
    base = min(bases, key=lambda e: len(e.formula.when))  # the most general base: fewest conditions
    return Induction(set_id, base.formula.id, steps[0].formula.id)


def _is_delta_at(expr, layer_test) -> bool:
    return isinstance(expr, sp.Indexed) and expr.base.label.name == "delta" and layer_test(expr.indices[0])


def _mentions_next(expr, layer) -> bool:
    return any(isinstance(n, sp.Indexed) and n.base.label.name == "delta" and sp.expand(n.indices[0] - layer) == 1
               for n in sp.preorder_traversal(expr))


def _step(step: Step) -> dict:
    return {"reason": step.text, "expr": show.text(step.expr), "latex": show.tex(step.expr)}

