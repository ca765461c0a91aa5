"""Checking claims: a verdict for each, the correct formula, and the name of the mistake.

A diagnosis is a proof about a corrected claim: candidate corrections are
built for each mistake class of the reference sheet (negate; scale by the
constant ratio; multiply by the missing σ'; put back the weight that connects
those units; add the missing path's term; …), screened at a few exact points,
and the first one the prover *proves* names the mistake. A claim that is
refuted and matches none of them gets no diagnosis rather than a guess.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import sympy as sp

from . import functions as fn
from .claims import Claim, ClaimsFile, ismax, max_pools
from .network import NO_TIE
from .numeric import ExactArithmetic, Evaluator, Indeterminate, IntervalArithmetic, NotExact
from .proof import DEFAULT_BUDGET, SUBSTITUTES, Prover, Verdict

# The documented diagnosis ids, in the order they are tried.
DIAGNOSES = {
    "sign": "sign flipped",
    "constant-factor": "off by a constant factor",
    "wrong-quantity": "∂C/∂a where ∂C/∂z belongs, or the reverse",
    "missing-sigma-prime": "the σ' factor is missing",
    "sigma-for-sigma-prime": "σ written where σ' belongs",
    "transposed-index": "a transposed index: w_jk where w_kj belongs",
    "wrong-weight": "a weight that does not connect those units",
    "wrong-unit": "a unit's quantity where another unit's belongs",
    "shared-parameter": "a shared parameter counted once",
    "missing-path": "a missing path: a term of the sum over the units fed is missing",
    "one-hot": "holds only for one-hot targets (entries summing to 1), which the file does not assume",
}

# A diagnosis proves corrected claims one after another; all of them together get at
# most DIAGNOSIS_BUDGETS times the prover's per-identity budget (--budget), so the
# budget bounds a refuted claim's whole time: 30 s at the default budget of 5 s.
DIAGNOSIS_BUDGETS = 6
MAX_CANDIDATES = 400
MAX_PATHS = 64
SCREEN_POINTS = 2


@dataclass(frozen=True)
class Diagnosis:
    id: str
    message: str
    corrected: sp.Expr

    def to_dict(self) -> dict:
        return {"id": self.id, "title": DIAGNOSES[self.id], "message": self.message, "corrected": str(self.corrected)}


@dataclass
class ClaimResult:
    claim: Claim
    verdict: Verdict
    expected: sp.Expr
    expected_text: str
    expected_latex: str
    diagnosis: Diagnosis | None = None

    @property
    def expect_matched(self) -> bool | None:
        """Whether the verdict (and diagnosis, when recorded) is what the file expects."""
        claim = self.claim
        if claim.expect is None:
            return None
        if claim.expect != self.verdict.status:
            return False
        if claim.expect_diagnosis is not None:
            found = self.diagnosis.id if self.diagnosis else "none"
            return found == claim.expect_diagnosis
        return True

    @property
    def passed(self) -> bool:
        """Proven, or (with `expect`) the verdict the answer key expects."""
        if self.claim.expect is not None:
            return bool(self.expect_matched)
        return self.verdict.status == "proven"

    def to_dict(self) -> dict:
        claim = self.claim
        entry = {
            "name": claim.name,
            "kind": claim.kind,
            "wrt": claim.wrt.name if claim.wrt is not None else None,
            "of": claim.of.name if claim.of is not None else None,
            "syntax": claim.syntax,
            "formula": claim.text,
            "lhs": str(claim.lhs),
            "rhs": str(claim.rhs),
            "verdict": self.verdict.status,
            "method": self.verdict.method,
            "diagnosis": self.diagnosis.id if self.diagnosis else None,
            "diagnosis_detail": self.diagnosis.to_dict() if self.diagnosis else None,
            "counterexample": self.verdict.counterexample.to_dict() if self.verdict.counterexample else None,
            "expected": self.expected_text,
            "expected_latex": self.expected_latex,
            "assumptions": list(claim.assumptions),
            "seconds": round(self.verdict.seconds, 4),
        }
        if claim.expect is not None:
            entry["expect"] = claim.expect
            if claim.expect_diagnosis is not None:
                entry["expect_diagnosis"] = claim.expect_diagnosis
            entry["expect_matched"] = self.expect_matched
        return entry


@dataclass
class FileResult:
    claims_file: ClaimsFile
    results: list[ClaimResult]
    seconds: float

    def summary(self) -> dict:
        counts = {"proven": 0, "refuted": 0, "undecided": 0}
        for r in self.results:
            counts[r.verdict.status] += 1
        counts["total"] = len(self.results)
        counts["passed"] = sum(r.passed for r in self.results)
        with_expect = [r for r in self.results if r.claim.expect is not None]
        counts["expect_mismatches"] = sum(1 for r in with_expect if not r.expect_matched)
        return counts

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def assumptions(self) -> list[str]:
        """What the verdicts assume: the stated assumptions (with the claims they are for), and max pooling's."""
        by_text: dict[str, list[str]] = {}
        for r in self.results:
            for text in r.claim.assumptions:
                by_text.setdefault(text, []).append(r.claim.name)
        found = [
            text if len(names) == len(self.results) else f"{text} (for {', '.join(names)})"
            for text, names in by_text.items()
        ]
        if any(isinstance(d, fn.maxpool) for d in self.claims_file.network.definitions.values()):
            found.append(NO_TIE)
        return found

    @property
    def grade(self) -> str:
        s = self.summary()
        return f"{s['proven']}/{s['total']} claims proven"

    def to_dict(self) -> dict:
        cf = self.claims_file
        return {
            "file": cf.path,
            "network": cf.network.name,
            "title": cf.title,
            "student": cf.student,
            "claims": [r.to_dict() for r in self.results],
            "summary": self.summary(),
            "assumptions": self.assumptions,
            "grade": self.grade,
            "seconds": round(self.seconds, 3),
        }


def check(claims_file: ClaimsFile, *, budget: float = DEFAULT_BUDGET, seed: int = 0, progress=None) -> FileResult:
    start = time.perf_counter()
    prover = Prover(claims_file.derivations, budget=budget, seed=seed)
    results = []
    for claim in progress(claims_file.claims) if progress else claims_file.claims:
        verdict = prover.decide(claim.lhs, claim.rhs, claim.assume, claim.assumptions)
        # naming the correct formula's parts by the file's definitions is bounded like a diagnosis
        expected = expected_formula(claims_file, claim, prover,
                                    deadline=time.perf_counter() + DIAGNOSIS_BUDGETS * budget)
        diagnosis = None
        if verdict.status == "refuted":
            diagnosis = diagnose(claims_file, claim, prover)
        text, latex = render(claims_file, claim, expected)
        results.append(ClaimResult(claim, verdict, expected, text, latex, diagnosis))
    return FileResult(claims_file, results, time.perf_counter() - start)


# ---------------------------------------------------------------------------
# The correct formula, in the claim's own names
# ---------------------------------------------------------------------------


def expected_formula(cf: ClaimsFile, claim: Claim, prover: Prover, deadline: float | None = None) -> sp.Expr:
    """What the claim's right side should be, through the δs and definitions the claim uses.

    The target's chain rule is expanded one level at a time, stopping at the
    derivative symbols the claim itself uses and at those that equal one of the
    file's definitions (which are then written by the definition's name).
    """
    derivations = cf.derivations
    keep = {s for s in claim.rhs.free_symbols if derivations.adjoint_info(s) is not None} | set(claim.mentioned)
    named = _named_adjoints(cf, claim, prover, deadline)
    expr = claim.target
    for _ in range(200):
        expandable = {
            s: derivations.definition(s)
            for s in expr.free_symbols
            if derivations.adjoint_info(s) is not None and s not in keep and s not in named
        }
        if not expandable:
            break
        expr = expr.xreplace(expandable)
    return _under_assumption(expr.xreplace(named), claim.assume).xreplace(_named_nodes(cf, claim))


def _named_nodes(cf: ClaimsFile, claim: Claim) -> dict[sp.Symbol, sp.Symbol]:
    """Nodes that a definition of the file names (h1 = "sigmoid(w1*x1 + w2*x2 + b1)" is outh1) ↦ that name."""
    named: dict[sp.Symbol, sp.Symbol] = {}
    for name in [*claim.definitions_used, *(n for n in cf.definitions if n not in claim.definitions_used)]:
        value = cf.definitions[name]
        if isinstance(value, sp.Symbol) and value in cf.network.definitions:
            named.setdefault(value, sp.Symbol(name, real=True))
    return named


def _under_assumption(expr: sp.Expr, assume) -> sp.Expr:
    """Under one linear assumption (y1 + y2 + y3 = 1), its shortest form eliminating one of its leaves, if shorter.

    a3_1*y2 + a3_1*y3 - y1*(1 - a3_1) is a3_1 - y1 where the targets sum to 1.
    """
    if len(assume) != 1 or sp.count_ops(expr) > 400:
        return expr
    ((unknown, solution),) = assume.items()
    equation = unknown - solution
    best, best_ops = expr, sp.count_ops(expr)
    for leaf in sorted(equation.free_symbols, key=lambda s: s.name):
        coefficient = equation.coeff(leaf)
        if coefficient == 0 or coefficient.free_symbols:
            continue
        form = sp.factor_terms(sp.expand(expr.xreplace({leaf: sp.expand(leaf - equation / coefficient)})))
        ops = sp.count_ops(form)
        if ops < best_ops:
            best, best_ops = form, ops
    return best


def _named_adjoints(
    cf: ClaimsFile, claim: Claim, prover: Prover, deadline: float | None = None
) -> dict[sp.Symbol, sp.Expr]:
    """Derivative symbols equal to a definition of the file: D(E, neto1) ↦ delta_o1 (as many as time allows)."""
    derivation = cf.derivations.of(claim.of) if claim.of is not None else cf.derivations.cost
    named = {}
    nodes = derivation.nodes()
    if len(nodes) > 200:
        return named
    # the claim's own definitions first, then the file's others
    ordered = [*claim.definitions_used, *(n for n in cf.definitions if n not in claim.definitions_used)]
    for name in ordered:
        value = cf.definitions[name]
        for node in nodes:
            adjoint = derivation.adjoint(node)
            if adjoint in named:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                return named
            for sign in (1, -1):  # Zhou's g_j and e_h are negated δs
                if _quick_equal(prover, adjoint, sign * value, claim.assume, deadline):
                    named[adjoint] = sign * sp.Symbol(name, real=True)
                    break
            if adjoint in named:
                break
    return named


def _quick_equal(prover: Prover, a: sp.Expr, b: sp.Expr, assume=None, deadline: float | None = None) -> bool:
    counterexample, agreed = prover.search(a, b, assume or {}, 1, deadline)
    if counterexample is not None or agreed == 0:
        return False
    return prover.decide(a, b, assume, deadline=deadline).status == "proven"


def render(cf: ClaimsFile, claim: Claim, expr: sp.Expr) -> tuple[str, str]:
    """The formula in the notation a claim may use: SymPy text and LaTeX, each readable back.

    Neuron errors by their claim names (`delta2_1`, `deltaO_1`; LaTeX `\\delta^{O}_{1}`),
    other derivatives as `D(E, v)` (LaTeX `\\frac{\\partial E}{\\partial v}`), the max-pool
    indicator as `ismax(aF_1_1_1)` (LaTeX `\\left[a^{F}_{1,11} = \\max\\right]`).
    """
    network, derivations = cf.network, cf.derivations
    deltas = _delta_names(network)
    text_names: dict[sp.Expr, sp.Expr] = {}
    latex_names = dict(network.latex_names)
    for s in expr.free_symbols:
        info = derivations.adjoint_info(s)
        if info is None:
            continue
        derivation, wrt = info
        if derivation.of == network.cost and wrt in deltas:
            text_names[s] = sp.Symbol(deltas[wrt], real=True)
            base = network.latex_names.get(wrt, "")
            latex_names[s] = "\\delta" + base[1:] if base[:1] in ("z", "a") else sp.latex(text_names[s])
        else:
            top = derivation.of.name if re.fullmatch(r"[A-Za-z]+", derivation.of.name) else network.latex(derivation.of)
            latex_names[s] = rf"\frac{{\partial {top}}}{{\partial {network.latex(wrt)}}}"
    indicators: dict[sp.Expr, sp.Expr] = {}
    atoms = expr.atoms(fn.is_max)
    if atoms:
        pools = max_pools(network)
        for atom in atoms:
            i, *window = atom.args
            element = window[int(i) - 1]
            owners = [p for p in pools.get(element, []) if network.definitions[p].args == tuple(window)]
            if owners:
                indicators[atom] = ismax(element, owners[0]) if len(pools[element]) > 1 else ismax(element)
    readable = expr.xreplace(indicators) if indicators else expr
    latex = sp.latex(readable, symbol_names=latex_names)
    return str(readable.xreplace(text_names) if text_names else readable), latex


def _delta_names(network) -> dict[sp.Symbol, str]:
    """Each net input z ↦ the name a claim gives its neuron error ∂C/∂z: delta2_1, deltaF_1_1_1, deltaO_1."""
    found: dict[sp.Symbol, str] = {}
    for key, family in network.families.items():
        if not key.startswith("z"):
            continue
        for index, z in family.items():
            if z in found or z not in network.definitions:
                continue
            if z.name.startswith("z"):
                found[z] = "delta" + z.name[1:]
            else:  # a pooling unit, whose z is its a: deltaP_1_1_1
                found[z] = "delta" + key[1:] + "_" + "_".join(str(v) for v in index)
    return found


# ---------------------------------------------------------------------------
# Diagnosis
# ---------------------------------------------------------------------------


@dataclass
class _Candidate:
    id: str
    message: str
    corrected: sp.Expr  # the claim's right side, corrected
    lhs: sp.Expr | None = None  # what must be proven equal to `prove_rhs` (default: the claim's lhs)
    prove_rhs: sp.Expr | None = None
    assume: dict | None = None  # the assumptions to prove it under (default: the claim's)


def diagnose(cf: ClaimsFile, claim: Claim, prover: Prover) -> Diagnosis | None:
    deadline = time.perf_counter() + DIAGNOSIS_BUDGETS * prover.budget
    screen = _Screen(cf, prover, claim)
    tried = 0
    for candidate in _candidates(cf, claim, screen):
        if time.perf_counter() > deadline or tried >= MAX_CANDIDATES:
            break
        tried += 1
        lhs = candidate.lhs if candidate.lhs is not None else claim.lhs
        rhs = candidate.prove_rhs if candidate.prove_rhs is not None else candidate.corrected
        assume = candidate.assume if candidate.assume is not None else claim.assume
        if assume is claim.assume and not screen.agrees(lhs, rhs):
            continue
        if prover.decide(lhs, rhs, assume, deadline=deadline).status == "proven":
            return Diagnosis(candidate.id, candidate.message, candidate.corrected)
    return None


class _Screen:
    """A few fixed random points, with the claim's lhs evaluated once: a cheap filter before proofs."""

    def __init__(self, cf: ClaimsFile, prover: Prover, claim: Claim):
        self.prover = prover
        network = cf.network
        leaves = set(network.leaves)
        for side in (claim.lhs, claim.rhs):
            leaves |= {s for s in side.free_symbols if cf.derivations.definition(s) is None}
        self.points = []
        for _ in range(SCREEN_POINTS * 4):
            if len(self.points) == SCREEN_POINTS:
                break
            point = {s: prover._random_value(s) for s in sorted(leaves, key=lambda s: s.name)}
            if claim.assume:
                solve = Evaluator(ExactArithmetic(), point, lambda s: None)
                point.update({s: solve(value) for s, value in claim.assume.items()})
            for arithmetic in (ExactArithmetic(), IntervalArithmetic()):
                evaluator = Evaluator(arithmetic, point, cf.derivations.definition, SUBSTITUTES)
                try:
                    evaluator(claim.lhs)
                    evaluator(claim.rhs)
                except NotExact:
                    continue
                except (Indeterminate, ZeroDivisionError, OverflowError, ValueError, KeyError):
                    break
                self.points.append(evaluator)
                break

    def agrees(self, lhs: sp.Expr, rhs: sp.Expr) -> bool:
        if not self.points:
            return True  # nothing to screen with: leave it to the prover
        for evaluator in self.points:
            try:
                a, b = evaluator(lhs), evaluator(rhs)
            except NotExact:
                return True
            except (Indeterminate, ZeroDivisionError, OverflowError, ValueError, KeyError):
                continue
            if isinstance(a, Fraction) and isinstance(b, Fraction):
                if a != b:
                    return False
            else:
                difference = a - b
                if difference.a > 0 or difference.b < 0:
                    return False
        return True


def _candidates(cf: ClaimsFile, claim: Claim, screen: _Screen) -> Iterator[_Candidate]:
    network, derivations = cf.network, cf.derivations
    R = claim.rhs
    one_hot = _one_hot(network, claim)
    if one_hot is not None:
        yield one_hot
    yield _Candidate("sign", "the sign is flipped: the correct value is −1 × the claim", -R)

    factor = _constant_ratio(screen, claim)
    if factor is not None and factor not in (1, -1, 0):
        shown = _fraction_text(factor)
        yield _Candidate(
            "constant-factor",
            f"off by a constant factor: the correct value is {shown} × the claim",
            sp.Rational(factor.numerator, factor.denominator) * R,
        )

    target_wrt = _target_variable(claim, derivations)
    applied = _activations(network)  # a ↦ (its argument, σ' at that argument)
    activations = {arg: a for a, (arg, _) in applied.items() if isinstance(arg, sp.Symbol)}  # z ↦ a
    inverse = {a: z for z, a in activations.items()}
    # Written through other δs (Σ w δ without σ'), the slip is a missing σ'; in closed
    # form (δ = a − y) it is the derivative of the wrong quantity. Both corrections
    # are proven before either is named; this only decides which name comes first.
    through_deltas = any(derivations.adjoint_info(s) is not None for s in R.free_symbols)
    wrong_quantity = list(_wrong_quantity(network, target_wrt, activations, inverse, R))
    if not through_deltas:
        yield from wrong_quantity

    relevant = _relevant_symbols(claim, derivations)
    ordered = sorted(applied, key=lambda a: (a not in relevant and applied[a][0] not in relevant, network.position[a]))
    for a in ordered[:50]:
        argument, derivative = applied[a]
        yield _Candidate(
            "missing-sigma-prime",
            f"the factor σ'({argument}) = {derivative} is missing",
            R * derivative,
        )

    for a in sorted((s for s in R.free_symbols if s in applied), key=lambda s: s.name):
        argument, derivative = applied[a]
        yield _Candidate(
            "sigma-for-sigma-prime",
            f"{a} = σ({argument}) is written where σ'({argument}) = {derivative} belongs",
            R * derivative / a,
        )

    if through_deltas:
        yield from wrong_quantity

    weights = network.families.get("w", {})
    if weights:
        by_symbol = {s: idx for idx, s in weights.items()}
        used = [s for s in R.free_symbols if s in by_symbol]
        swaps = {}
        for s in used:
            l, j, k = by_symbol[s]
            partner = weights.get((l, k, j))
            if partner is not None and partner != s:
                swaps[s] = partner
        for s, partner in sorted(swaps.items(), key=lambda kv: kv[0].name):
            yield _Candidate(
                "transposed-index",
                f"{s} has its indices transposed: {partner} belongs (Nielsen's w^l_jk runs to j from k)",
                R.xreplace({s: partner}),
            )
        if len(swaps) > 1:
            yield _Candidate("transposed-index", "the weights' indices are transposed throughout", R.xreplace(swaps))
        if target_wrt is not None and target_wrt[1] in by_symbol:
            _, j, k = by_symbol[target_wrt[1]]
            swapped = _swap_unit_indices(network, derivations, R, j, k)
            if swapped is not None:
                yield _Candidate(
                    "transposed-index",
                    f"the unit indices {j} and {k} are swapped: ∂C/∂w^l_jk = a^(l-1)_k δ^l_j",
                    swapped,
                )

    parameters = set(network.parameters)
    for s in sorted(R.free_symbols, key=lambda s: s.name):
        if s in parameters:
            kind, pool = "wrong-weight", [p for p in network.parameters if _family(p) == _family(s)]
        elif s in network.definitions:
            kind, pool = "wrong-unit", [n for n in network.order if _family(n) == _family(s)]
        else:
            continue
        for other in pool:
            if other == s or other in R.free_symbols:
                continue
            if kind == "wrong-weight":
                message = f"{s} does not connect those units; {other} does"
            else:
                message = f"{s} is used where {other} belongs"
            yield _Candidate(kind, message, R.xreplace({s: other}))

    if target_wrt is not None:
        derivation, v, scale = target_wrt
        terms = derivation.terms(v)
        if len(terms) > 1 and v in parameters:
            for t in terms:
                yield _Candidate(
                    "shared-parameter",
                    f"{v} feeds {', '.join(str(u.consumer) for u in terms)}; the claim counts only the term "
                    f"through {t.consumer}",
                    scale * derivation.closed_form(v),
                    lhs=scale * t.adjoint * t.partial,
                    prove_rhs=R,
                )
        for through, term in _path_terms(derivation, v):
            yield _Candidate(
                "missing-path",
                f"the path through {through} is missing: add {scale * term}",
                R + scale * term,
            )


def _one_hot(network, claim: Claim) -> _Candidate | None:
    """With a softmax and the log-likelihood, δ^L = a − y needs one-hot targets: the claim, under that assumption."""
    targets = list(network.targets)
    if network.facts.get("cost") != "log_likelihood" or len(targets) < 2 or claim.assume:
        return None
    total = " + ".join(t.name for t in targets)
    return _Candidate(
        "one-hot",
        f"the claim holds only where the targets sum to 1 (a one-hot target), and the file does not assume it: "
        f'add assume = {{ lhs = "{total}", rhs = "1", text = "the target is one-hot" }}',
        claim.rhs,
        assume={targets[-1]: 1 - sp.Add(*targets[:-1])},
    )


def _swap_unit_indices(network, derivations, expr: sp.Expr, j: int, k: int) -> sp.Expr | None:
    """expr with every unit index j of a layered a, z, b or δ exchanged for k and back."""
    if j == k:
        return None
    where = {}
    for family in ("a", "z", "b"):
        for index, s in network.families.get(family, {}).items():
            where.setdefault(s, (family, index))
    mapping = {}
    for s in expr.free_symbols:
        info = derivations.adjoint_info(s)
        family_index = where.get(s)
        if info is not None and info[1] in where and where[info[1]][0] == "z":
            derivation, z = info
            family, index = where[z]
        elif family_index is not None:
            derivation = None
            family, index = family_index
        else:
            continue
        unit = index[-1]
        if unit not in (j, k):
            continue
        partner = network.families[family].get(index[:-1] + (k if unit == j else j,))
        if partner is None:
            return None
        mapping[s] = derivation.adjoint(partner) if derivation is not None else partner
    return expr.xreplace(mapping) if mapping else None


def _wrong_quantity(network, target_wrt, activations, inverse, R) -> Iterator[_Candidate]:
    """The claim computed ∂C/∂a where ∂C/∂z was asked (or the reverse)."""
    if target_wrt is None:
        return
    derivation, v, scale = target_wrt
    if v in activations:
        a = activations[v]
        yield _Candidate(
            "wrong-quantity",
            f"this is ∂{derivation.of}/∂{a} (with respect to the activation); ∂{derivation.of}/∂{v} "
            f"needs the factor σ'({v}) = {network.activation_derivative(v)}",
            R * network.activation_derivative(v),
            lhs=scale * derivation.adjoint(a),
            prove_rhs=R,
        )
    elif v in inverse:
        z = inverse[v]
        yield _Candidate(
            "wrong-quantity",
            f"this is ∂{derivation.of}/∂{z} (with respect to the net input); ∂{derivation.of}/∂{v} "
            f"has no factor σ'({z})",
            R / network.activation_derivative(z),
            lhs=scale * derivation.adjoint(z),
            prove_rhs=R,
        )


def _constant_ratio(screen: _Screen, claim: Claim) -> Fraction | None:
    ratios = set()
    for evaluator in screen.points:
        try:
            a, b = evaluator(claim.lhs), evaluator(claim.rhs)
        except (NotExact, Indeterminate, ZeroDivisionError, OverflowError, ValueError, KeyError):
            return None
        if isinstance(a, Fraction) and isinstance(b, Fraction):
            if b == 0:
                return None
            ratio = a / b
            if ratio.denominator > 64 or abs(ratio.numerator) > 64:
                return None
            ratios.add(ratio)
        else:
            if b.a <= 0 <= b.b:
                return None
            quotient = a / b
            guess = Fraction(float(quotient.mid)).limit_denominator(64)
            if not (quotient.a <= guess.numerator / guess.denominator <= quotient.b or abs(float(quotient.mid) - float(guess)) < 1e-40):
                return None
            ratios.add(guess)
    if len(ratios) != 1:
        return None
    return ratios.pop()


def _fraction_text(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _target_variable(claim: Claim, derivations):
    """(derivation, v, scale) when the claim's target is scale · D(of, v)."""
    for s in claim.target.free_symbols:
        info = derivations.adjoint_info(s)
        if info is None:
            continue
        scale = sp.simplify(claim.target / s)
        if s not in scale.free_symbols and not any(derivations.adjoint_info(x) for x in scale.free_symbols):
            derivation, v = info
            return derivation, v, scale
    return None


ACTIVATION_FUNCTIONS = (fn.sigmoid, sp.tanh, fn.relu, fn.sigma)


def _activations(network) -> dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]:
    """Nodes defined as an activation of one argument (a = σ(z), b_h = f(α_h − γ_h)): a ↦ (argument, σ'(argument))."""
    found = {}
    replace = network._function_nodes
    for node in network.order:
        definition = network.definitions[node]
        if isinstance(definition, ACTIVATION_FUNCTIONS):
            (argument,) = definition.args
            t = sp.Dummy("t")
            derivative = sp.diff(type(definition)(t), t).xreplace({t: argument}).xreplace(replace)
            found[node] = (argument, derivative)
    return found


def _relevant_symbols(claim: Claim, derivations) -> set[sp.Symbol]:
    relevant = set(claim.rhs.free_symbols)
    try:
        relevant |= derivations.closed_form(claim.target).free_symbols
    except Exception:  # noqa: BLE001 - relevance only orders candidates
        pass
    return relevant


def _family(s: sp.Symbol) -> str:
    """A name's family: its letters with the indices removed (w5 → w, outh1 → outh, w2_1_3 → w2)."""
    name = s.name
    match = re.match(r"([A-Za-z]+)(\d+)_", name)
    if match:
        return match.group(1) + match.group(2)  # layered: family and layer
    return re.sub(r"[\d_]+", "", name)


def _path_terms(derivation, v: sp.Symbol) -> list[tuple[str, sp.Expr]]:
    """Each path from v to the differentiated quantity as a product of local partials, and each first step's term."""
    terms: list[tuple[str, sp.Expr]] = []
    for t in derivation.terms(v):
        if len(derivation.terms(v)) > 1:
            terms.append((str(t.consumer), derivation.closed_form(t.consumer) * t.partial if t.consumer != derivation.of else t.partial))
    paths: list[tuple[list[sp.Symbol], sp.Expr]] = []
    stack = [(v, [v], sp.S.One)]
    while stack and len(paths) < MAX_PATHS:
        node, path, product = stack.pop()
        if node == derivation.of:
            paths.append((path, product))
            continue
        for t in derivation.terms(node):
            stack.append((t.consumer, path + [t.consumer], product * t.partial))
    if len(paths) > 1:
        for path, product in paths:
            label = " → ".join(str(p) for p in path[1:-1]) or str(path[-1])
            terms.append((label, product))
    return terms
