"""Naming a refuted claim's mistake, by proof.

A diagnosis is a proof about a corrected claim: candidate corrections are
built for each mistake class of the reference sheet (negate; scale by the
constant ratio; multiply by the missing σ'; put back the weight that connects
those units; add the missing path's term; …), screened at a few exact points,
and the first one the prover *proves* names the mistake. A claim that is
refuted and matches none of them gets no diagnosis rather than a guess.
"""

from __future__ import annotations

import math

import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import sympy as sp

from derive.claims.zeros import without_defined_zeros
from derive.graph import functions as fn
from derive.graph import registry
from derive.claims.mistakes import DIAGNOSES
from derive.claims.claimsfile import Claim, ClaimsFile
from derive.claims import diagnosis_units as units
from derive.derivation import graph_free_symbols
from derive.graph.network import per_network
from derive.graph.numeric import ExactArithmetic, Evaluator, Indeterminate, IntervalArithmetic, NotExact, OutOfTime
from derive.proof import SUBSTITUTES, Prover

# A diagnosis proves corrected claims one after another; all of them together get at
# most DIAGNOSIS_BUDGETS times the prover's per-identity budget (--budget), so the
# budget bounds a refuted claim's whole time: 30 s at the default budget of 5 s.
DIAGNOSIS_BUDGETS = 6
MAX_CANDIDATES = 400
MAX_PATHS = 64
MAX_CANDIDATE_SIZE = 2_000  # leaves of a closed form built into a candidate (a deep net's grow exponentially)
SCREEN_POINTS = 2


@dataclass(frozen=True)
class Diagnosis:
    id: str
    message: str
    corrected: sp.Expr | None  # None for a claim its shapes refute: it has no corrected formula of numbers
    seconds: float = field(default=0.0, compare=False)  # the search's time (the report's is the claim's)

    def to_dict(self) -> dict:
        corrected = None if self.corrected is None else str(self.corrected)
        return {"id": self.id, "title": DIAGNOSES[self.id], "message": self.message, "corrected": corrected}




@dataclass
class _Candidate:
    id: str
    message: str
    corrected: sp.Expr  # the claim's right side, corrected
    lhs: sp.Expr | None = None  # what must be proven equal to `prove_rhs` (default: the claim's lhs)
    prove_rhs: sp.Expr | None = None
    assume: dict | None = None  # the assumptions to prove it under (default: the claim's)


def diagnose(cf: ClaimsFile, claim: Claim, prover: Prover, deadline: float | None = None) -> Diagnosis | None:
    """The first candidate correction the prover proves, before `deadline` (default: DIAGNOSIS_BUDGETS budgets).

    The search's time is the found Diagnosis's `seconds`; `diagnose_timed` also
    gives it when nothing is found.
    """
    return diagnose_timed(cf, claim, prover, deadline)[0]


def diagnose_timed(cf: ClaimsFile, claim: Claim, prover: Prover,
                   deadline: float | None = None) -> tuple[Diagnosis | None, float]:
    """diagnose's answer and the seconds it spent (which a claim's reported time must include)."""
    start = time.perf_counter()
    if deadline is None:
        deadline = start + DIAGNOSIS_BUDGETS * prover.budget
    try:
        found = _first_proven(cf, claim, prover, deadline)
    except OutOfTime:  # the deadline passed while screening or building candidates
        found = None
    seconds = time.perf_counter() - start
    if found is not None:
        found = Diagnosis(found.id, found.message, found.corrected, seconds)
    return found, seconds


def _first_proven(cf: ClaimsFile, claim: Claim, prover: Prover, deadline: float) -> Diagnosis | None:
    units.check_deadline(deadline)
    screen = Screen(cf, prover, claim, deadline)
    tried = 0
    for candidate in _candidates(cf, claim, screen):
        if tried >= MAX_CANDIDATES:
            break
        units.check_deadline(deadline)  # before screening this candidate
        tried += 1
        lhs = candidate.lhs if candidate.lhs is not None else claim.lhs
        rhs = candidate.prove_rhs if candidate.prove_rhs is not None else candidate.corrected
        assume = candidate.assume if candidate.assume is not None else claim.assume
        if assume is claim.assume and not screen.agrees(lhs, rhs):
            continue
        units.check_deadline(deadline)  # before proving it
        if prover.decide(lhs, rhs, assume, deadline=deadline).status == "proven":
            return Diagnosis(candidate.id, candidate.message, candidate.corrected)
    return None


SKIPPED = (Indeterminate, ZeroDivisionError, OverflowError, ValueError, KeyError)


class Screen:
    """A few fixed random points where the claim's sides have values: a cheap filter before proofs.

    Evaluation stops at `deadline` (OutOfTime). With `rng`, the points are
    drawn from it instead of the prover's generator.
    """

    def __init__(self, cf: ClaimsFile, prover: Prover, claim: Claim, deadline: float | None = None, rng=None):
        self.prover = prover
        self.deadline = deadline
        network = cf.network
        leaves = set(network.leaves)
        for side in (claim.lhs, claim.rhs):
            leaves |= {s for s in side.free_symbols if cf.derivations.definition(s) is None}
        self.points = []
        saved = prover._rng
        prover._rng = rng or saved
        try:
            for _ in range(SCREEN_POINTS * 4):
                if len(self.points) == SCREEN_POINTS:
                    break
                point = {s: prover._random_value(s) for s in sorted(leaves, key=lambda s: s.name)}
                if claim.assume:
                    solve = Evaluator(ExactArithmetic(), point, lambda s: None)
                    point.update({s: solve(value) for s, value in claim.assume.items()})
                for arithmetic in (ExactArithmetic(), IntervalArithmetic()):
                    evaluator = Evaluator(arithmetic, point, cf.derivations.definition, SUBSTITUTES)
                    evaluator.deadline = deadline
                    try:
                        evaluator(claim.lhs)
                        evaluator(claim.rhs)
                    except NotExact:
                        continue
                    except SKIPPED:
                        break
                    self.points.append(evaluator)
                    break
        finally:
            prover._rng = saved

    def values(self, expr: sp.Expr) -> list | None:
        """expr's value at each point (None where it has none), or None when it cannot be screened."""
        found = []
        for evaluator in self.points:
            try:
                found.append(evaluator(expr))
            except NotExact:
                return None
            except SKIPPED:
                found.append(None)
        return found

    def agrees(self, lhs: sp.Expr, rhs: sp.Expr) -> bool:
        """False only when the two certainly differ at a point (True when nothing can screen them)."""
        left = self.values(lhs)
        right = self.values(rhs) if left is not None else None
        return left is None or right is None or not any(map(differ, left, right))


def differ(a, b) -> bool:
    """Whether two values of one point (exact, or enclosures) certainly differ; False when either is None."""
    if a is None or b is None:
        return False
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a != b
    difference = a - b
    return bool(difference.a > 0 or difference.b < 0)


def _candidates(cf: ClaimsFile, claim: Claim, screen: Screen) -> Iterator[_Candidate]:
    """Every candidate correction, in the order of DIAGNOSES (lazily: a proven early one saves the later work)."""
    network, derivations = cf.network, cf.derivations
    R = claim.rhs
    one_hot = _one_hot(network, claim)
    if one_hot is not None:
        yield one_hot
    yield _Candidate("sign", "the sign is flipped: the correct value is −1 × the claim", -R)
    yield from _constant_factor(screen, claim)

    deadline = screen.deadline
    target_wrt = _target_variable(claim, derivations)
    applied = _activations(network, deadline)  # a ↦ (its argument, σ' at that argument)
    activations = {arg: a for a, (arg, _) in applied.items() if isinstance(arg, sp.Symbol)}  # z ↦ a
    inverse = {a: z for z, a in activations.items()}
    # Written through other δs (Σ w δ without σ'), the slip is a missing σ'; in closed
    # form (δ = a − y) it is the derivative of the wrong quantity. Both corrections
    # are proven before either is named; this only decides which name comes first.
    through_deltas = any(derivations.adjoint_info(s) is not None for s in R.free_symbols)
    wrong_quantity = list(_wrong_quantity(network, target_wrt, activations, inverse, R))
    if not through_deltas:
        yield from wrong_quantity
    yield from _missing_sigma_prime(network, derivations, claim, applied)
    yield from _sigma_for_sigma_prime(applied, R)
    if through_deltas:
        yield from wrong_quantity

    yield from _transposed_indices(network, derivations, target_wrt, R)
    yield from _wrapped(units.transposed_in_partial(cf, claim, deadline))
    yield from _wrong_weight_or_unit(network, R)
    if target_wrt is not None:
        yield from _shared_parameter(network, target_wrt, R)
        yield from _missing_paths(target_wrt, R)
    # the wider wiring searches last (diagnosis_units.py): a weight in one term of
    # several; a unit, input or δ of another layer
    yield from _wrapped(units.wrong_weight_in_one_term(network, R, deadline))
    yield from _wrapped(units.wrong_unit_across_layers(network, derivations, R, deadline))


def _wrapped(found: Iterator[tuple]) -> Iterator[_Candidate]:
    for kind, message, corrected in found:
        yield _Candidate(kind, message, corrected)


def _constant_factor(screen: Screen, claim: Claim) -> Iterator[_Candidate]:
    factor = _constant_ratio(screen, claim)
    if factor is not None and factor not in (1, -1, 0):
        shown = _fraction_text(factor)
        yield _Candidate(
            "constant-factor",
            f"off by a constant factor: the correct value is {shown} × the claim",
            sp.Rational(factor.numerator, factor.denominator) * claim.rhs,
        )
    elif factor is None and (root := _root_ratio(screen, claim)) is not None:  # attention's 1/√d with d = 2
        yield _Candidate(
            "constant-factor",
            f"off by a constant factor: the correct value is {sp.sstr(root)} × the claim",
            root * claim.rhs,
        )


def _root_ratio(screen: Screen, claim: Claim) -> sp.Expr | None:
    """±√(p/q) when the sides' ratio is that at every screening point (p, q ≤ 64): a candidate the prover
    then has to prove, like every other."""
    guesses = set()
    for evaluator in screen.points:
        try:
            a, b = evaluator(claim.lhs), evaluator(claim.rhs)
            quotient = float(a / b) if isinstance(a, Fraction) and isinstance(b, Fraction) else float((a / b).mid)
        except (NotExact, Indeterminate, ZeroDivisionError, OverflowError, ValueError, KeyError, AttributeError):
            return None
        if not math.isfinite(quotient) or quotient == 0:
            return None
        square = Fraction(quotient * quotient).limit_denominator(64)
        if square <= 0 or abs(math.sqrt(square) - abs(quotient)) > 1e-9 * abs(quotient):
            return None
        guesses.add((square, quotient > 0))
    if len(guesses) != 1:
        return None
    square, positive = guesses.pop()
    root = sp.sqrt(sp.Rational(square.numerator, square.denominator))
    return root if positive else -root


def _missing_sigma_prime(network, derivations, claim: Claim, applied) -> Iterator[_Candidate]:
    """The claim times σ' of each activation, those the claim involves first (at most 50)."""
    relevant = _relevant_symbols(claim, derivations)
    ordered = sorted(applied, key=lambda a: (a not in relevant and applied[a][0] not in relevant, network.position[a]))
    for a in ordered[:50]:
        argument, derivative = applied[a]
        yield _Candidate(
            "missing-sigma-prime",
            f"the factor σ'({argument}) = {derivative} is missing",
            claim.rhs * derivative,
        )


def _sigma_for_sigma_prime(applied, R: sp.Expr) -> Iterator[_Candidate]:
    for a in sorted((s for s in R.free_symbols if s in applied), key=lambda s: s.name):
        argument, derivative = applied[a]
        yield _Candidate(
            "sigma-for-sigma-prime",
            f"{a} = σ({argument}) is written where σ'({argument}) = {derivative} belongs",
            R * derivative / a,
        )


def _transposed_indices(network, derivations, target_wrt, R: sp.Expr) -> Iterator[_Candidate]:
    """Each weight of the claim with its indices exchanged, all of them at once, and the unit indices swapped."""
    weights = network.families.get("w", {})
    if not weights:
        return
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


def _wrong_weight_or_unit(network, R: sp.Expr) -> Iterator[_Candidate]:
    """Each parameter or node of the claim replaced by another of its family that the claim does not use."""
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


def _shared_parameter(network, target_wrt, R: sp.Expr) -> Iterator[_Candidate]:
    """A parameter feeding several nodes: the claim proven equal to one term of its gradient's sum."""
    derivation, v, scale = target_wrt
    terms = derivation.terms(v)
    closed = derivation.small_closed_form(v, MAX_CANDIDATE_SIZE)
    if len(terms) > 1 and v in set(network.parameters) and closed is not None:
        for t in terms:
            yield _Candidate(
                "shared-parameter",
                f"{v} feeds {', '.join(str(u.consumer) for u in terms)}; the claim counts only the term "
                f"through {t.consumer}",
                scale * closed,
                lhs=scale * t.adjoint * t.partial,
                prove_rhs=R,
            )


MAX_ONLY_PATH = 6  # first steps tried as the one path a claim kept (softmax's Jacobian taken as diagonal)


def _missing_paths(target_wrt, R: sp.Expr) -> Iterator[_Candidate]:
    derivation, v, scale = target_wrt
    terms = _path_terms(derivation, v)
    for through, term in terms:
        yield _Candidate(
            "missing-path",
            f"the path through {through} is missing: add {_readable(scale * term, derivation)}",
            R + scale * term,
        )
    firsts: dict = {}
    for through, term in terms:
        if "→" not in through:
            firsts.setdefault(through, term)  # a first step once, in the order the derivation has them
    firsts = list(firsts.items())
    if 3 <= len(firsts) <= MAX_ONLY_PATH:  # only one path kept: every other is missing
        for kept, _ in firsts:
            others = [(through, term) for through, term in firsts if through != kept]
            yield _Candidate(
                "missing-path",
                f"only the path through {kept} is counted: the paths through "
                f"{', '.join(through for through, _ in others)} are missing (a Jacobian taken as diagonal?)",
                R + scale * sp.Add(*[term for _, term in others]),
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


def _constant_ratio(screen: Screen, claim: Claim) -> Fraction | None:
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


ACTIVATION_FUNCTIONS = registry.ACTIVATION_CLASSES  # sigmoid, tanh, relu, …, σ: registry.py


@per_network  # the same for every claim of a file; a deadline that stops it leaves nothing cached
def _activations(network, deadline: float | None = None) -> dict[sp.Symbol, tuple[sp.Expr, sp.Expr]]:
    """Nodes defined as an activation of one argument (a = σ(z), b_h = f(α_h − γ_h)): a ↦ (argument, σ'(argument))."""
    found = {}
    replace = network._function_nodes
    for node in network.order:
        definition = network.definitions[node]
        if isinstance(definition, ACTIVATION_FUNCTIONS):
            units.check_deadline(deadline)
            (argument,) = definition.args
            t = sp.Dummy("t")
            derivative = sp.diff(type(definition)(t), t).xreplace({t: argument}).xreplace(replace)
            found[node] = (argument, derivative)
    return found


def _relevant_symbols(claim: Claim, derivations) -> set[sp.Symbol]:
    relevant = set(claim.rhs.free_symbols)
    try:
        relevant |= graph_free_symbols(derivations.closed_form(claim.target))
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


def _readable(expr: sp.Expr, derivation) -> sp.Expr:
    """The term as a reader should meet it: without sums that are 0 by a definition (batch norm's mean), and a
    generic cost's partial cost_partial(i, out…) written as the claims write it, D(L, out_i)."""
    expr = without_defined_zeros(expr, derivation.network)
    cost = derivation.of
    return expr.replace(lambda e: isinstance(e, fn.cost_partial),
                        lambda e: sp.Symbol(f"D({cost}, {e.args[int(e.args[0])]})"))


def _path_terms(derivation, v: sp.Symbol) -> list[tuple[str, sp.Expr]]:
    """Each path from v to the differentiated quantity as a product of local partials, and each first step's term."""
    terms: list[tuple[str, sp.Expr]] = []
    for t in derivation.terms(v):
        if len(derivation.terms(v)) > 1:
            if t.consumer == derivation.of:
                terms.append((str(t.consumer), t.partial))
            elif (closed := derivation.small_closed_form(t.consumer, MAX_CANDIDATE_SIZE)) is not None:
                terms.append((str(t.consumer), closed * t.partial))
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
