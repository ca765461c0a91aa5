"""Checking claims: a verdict for each, the correct formula, and the name of the mistake.

Each claim gets at most 1 + DIAGNOSIS_BUDGETS budgets (--budget): one for the
decision (the prover's), and the rest, shared, for naming the correct
formula's parts by the file's definitions and naming a refuted claim's mistake
(derive.diagnosis). What a result prints (the claim's sides, the correct
formula) is built once here, within the claim's time, and shared by the text
and the JSON output, so the two never disagree or differ in what they can print.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, replace

import sympy as sp

from derive.graph import functions as fn
from derive.claims.claimsfile import Claim, ClaimsFile, Unparsed, expanded_terms
from derive.claims.decide import PartOutcome, decide_parts
from derive.claims.parts_output import hide_correct, parts_dict
from derive.claims.vocabulary import MAX_EXPR_DEPTH
from derive.claims.zeros import without_defined_zeros
from derive.claims.diagnosis import DIAGNOSIS_BUDGETS, Diagnosis, Screen, diagnose, differ
from derive.graph.naming import delta_latex, delta_names, net_inputs
from derive.graph.network import NO_TIE
from derive.graph.numeric import OutOfTime
from derive.proof import DEFAULT_BUDGET, Prover, Verdict
from derive.proof.vocabulary import ismax, max_pools

# Of the DIAGNOSIS_BUDGETS, naming the correct formula's parts gets at most this many (it
# screens at exact points first, so it takes far less); the diagnosis gets the rest.
NAMING_BUDGETS = 1
# The correct formula is expanded (δ by δ) only while it stays this small, as a tree:
# a deep network's fully expanded gradient has a term per path.
MAX_EXPECTED_NODES = 2_000


@dataclass
class ClaimResult:
    claim: Claim
    verdict: Verdict
    expected: sp.Expr
    expected_text: str
    expected_latex: str
    diagnosis: Diagnosis | None = None
    lhs_text: str = ""  # the claim's sides as SymPy text, printed once (see check)
    rhs_text: str = ""
    outcome: PartOutcome | None = None  # a claim of several instances or links: the part the verdict is about
    show_correct: bool = True  # the file's show_correct: false hides the correct formula and the answer key
    general: dict | None = None  # with --general: the verdict for every size (derive.claims.general_check)

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
        """Proven, or (with `expect`) the verdict the answer key expects; with --general, proven for every size."""
        if self.general is not None and self.general["status"] != "proven":
            return self.claim.expect is not None and self.claim.expect == self.general["status"]
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
            "lhs": self.lhs_text or str(claim.lhs),
            "rhs": self.rhs_text or str(claim.rhs),
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
        if claim.generic is not None:
            entry.update(parts_dict(claim, self.outcome))
        if self.general is not None:
            entry["general"] = self.general
            if self.general["status"] == "refuted":
                entry["verdict"] = "refuted"
        if not self.show_correct:
            hide_correct(entry)
        if claim.expect is not None and self.show_correct:
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

    @property
    def unparsed(self) -> list[Unparsed]:
        return self.claims_file.unparsed

    def summary(self) -> dict:
        counts = {"proven": 0, "refuted": 0, "undecided": 0}
        for r in self.results:
            counts[r.verdict.status] += 1
        if self.unparsed:  # only then: a file read whole reports what it always did
            counts["unparsed"] = len(self.unparsed)
        counts["total"] = len(self.results) + len(self.unparsed)
        counts["passed"] = sum(r.passed for r in self.results)
        with_expect = [r for r in self.results if r.claim.expect is not None]
        counts["expect_mismatches"] = (sum(1 for r in with_expect if not r.expect_matched)
                                       + sum(1 for u in self.unparsed if u.expect is not None))
        return counts

    @property
    def passed(self) -> bool:
        return not self.unparsed and all(r.passed for r in self.results)

    def in_file_order(self) -> list:
        """The ClaimResults and the Unparsed claims together, as the file lists them."""
        by_name = {r.claim.name: r for r in self.results} | {u.name: u for u in self.unparsed}
        return [by_name[name] for name in self.claims_file.order if name in by_name]

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
            "claims": [unparsed_dict(r) if isinstance(r, Unparsed) else r.to_dict() for r in self.in_file_order()],
            "summary": self.summary(),
            "assumptions": self.assumptions,
            "grade": self.grade,
            "seconds": round(self.seconds, 3),
        }


def unparsed_dict(u: Unparsed) -> dict:
    """An unparsed claim in --json: its name, formula and why, where a graded claim has its verdict."""
    entry = {"name": u.name, "formula": u.text, "verdict": "unparsed", "message": u.message}
    if u.expect is not None:
        entry.update(expect=u.expect, expect_matched=False)
    return entry


def check(claims_file: ClaimsFile, *, budget: float = DEFAULT_BUDGET, seed: int = 0, progress=None) -> FileResult:
    """Each claim's verdict, correct formula and (when refuted) diagnosis: at most 7 budgets a claim.

    The decision gets one budget (the prover's); naming the correct formula's
    parts and the mistake share DIAGNOSIS_BUDGETS more, from one deadline.
    """
    start = time.perf_counter()
    prover = Prover(claims_file.derivations, budget=budget, seed=seed)
    results = []
    for claim in progress(claims_file.claims) if progress else claims_file.claims:
        began = time.perf_counter()
        if claim.shape_error is not None:
            results.append(shape_result(claim, claims_file.show_correct))
            continue
        outcome = None
        if claim.generic is not None:  # instances and links: the part the verdict is about stands for the claim
            outcome = decide_parts(claim, prover, budget)
            verdict, decided = outcome.verdict, outcome.claim
        else:
            verdict, decided = prover.decide(claim.lhs, claim.rhs, claim.assume, claim.assumptions), claim
        now = time.perf_counter()
        deadline = now + DIAGNOSIS_BUDGETS * budget
        expected = expected_formula(claims_file, decided, prover, deadline=min(deadline, now + NAMING_BUDGETS * budget))
        diagnosis = diagnose(claims_file, decided, prover, deadline) if verdict.status == "refuted" else None
        text, latex = render(claims_file, decided, expected)
        verdict = replace(verdict, seconds=time.perf_counter() - began)  # the whole claim: decision, naming, diagnosis
        results.append(ClaimResult(claim, verdict, expected, text, latex, diagnosis,
                                   lhs_text=str(decided.lhs), rhs_text=str(decided.rhs), outcome=outcome,
                                   show_correct=claims_file.show_correct))
    return FileResult(claims_file, results, time.perf_counter() - start)


def shape_result(claim: Claim, show_correct: bool) -> ClaimResult:
    """A matrix claim whose shapes do not conform: refuted by them, with the diagnosis `shape` and no
    correct formula of numbers (the message names the transpose that would conform)."""
    verdict = Verdict("refuted", "the shapes do not conform: no numbers make the two sides comparable")
    diagnosis = Diagnosis("shape", claim.shape_error, None)
    return ClaimResult(claim, verdict, None, "", "", diagnosis, lhs_text=claim.text.split("=", 1)[0].strip(),
                       rhs_text=claim.text.split("=", 1)[-1].strip(), show_correct=show_correct)


# ---------------------------------------------------------------------------
# The correct formula, in the claim's own names
# ---------------------------------------------------------------------------


def expected_formula(cf: ClaimsFile, claim: Claim, prover: Prover, deadline: float | None = None) -> sp.Expr:
    """What the claim's right side should be, through the δs and definitions the claim uses.

    The target's chain rule is expanded one level at a time, stopping at the
    derivative symbols the claim itself uses and at those that equal one of the
    file's definitions (which are then written by the definition's name), and
    before the formula outgrows MAX_EXPECTED_NODES or MAX_EXPR_DEPTH: it stays
    equal to the target whatever is left unexpanded. On a layered or convolutional
    network whose claim names no δ, it stops at the neuron errors δ (_layer_deltas).
    A target that is a node itself (an identity about z^2_1) gets the node's definition.
    """
    derivations = cf.derivations
    keep = {s for s in claim.rhs.free_symbols if derivations.adjoint_info(s) is not None} | set(claim.mentioned)
    stops = _layer_deltas(cf, claim, keep)
    named = _named_adjoints(cf, claim, prover, deadline)
    expr = _expanded(derivations, claim.target, keep | set(named), stops)
    if stops and len(expr.free_symbols) == 1 and expr.free_symbols != claim.target.free_symbols:
        expr = _expanded(derivations, claim.target, keep | set(named), {})  # ∂C/∂b^3_2 = δ^3_2 alone: δ's formula
    if expr in cf.network.definitions:  # `z2_1` teaches nothing: the node's definition does
        expr = cf.network.definitions[expr]
    expr = _under_assumption(expr.xreplace(named), claim.assume).xreplace(_named_nodes(cf, claim))
    return without_defined_zeros(expr, cf.network)



def _expanded(derivations, target: sp.Expr, keep: set, stops: dict) -> sp.Expr:
    """The target's chain rule expanded level by level, past every derivative symbol but those kept
    and the neuron errors of `stops` (other than the target's own), while it fits."""
    expr, own = target, target.free_symbols
    for _ in range(200):
        expandable = {
            s: derivations.definition(s)
            for s in expr.free_symbols
            if (info := derivations.adjoint_info(s)) is not None and s not in keep
            and (s in own or info[1] not in stops.get(info[0], ()))
        }
        if not expandable:
            break
        expanded = expr.xreplace(expandable)
        if not _fits(expanded, MAX_EXPECTED_NODES, MAX_EXPR_DEPTH):
            break
        expr = expanded
    return expr


def _layer_deltas(cf: ClaimsFile, claim: Claim, keep: set) -> dict:
    """Where the correct formula stops on a layered or convolutional network whose claim names no δ:
    at the neuron errors ∂C/∂z (∂C/∂b^F_1 is the sum of the δ^F_{1,ij}, not their expansion).

    {the cost's derivation: its net inputs z}, or {} (the claim writes its own δs, or the network
    has none). The target's own δ is expanded still: δ^2_1 is answered through the next layer's δs.
    """
    network, derivations = cf.network, cf.derivations
    if network.kind not in ("layered", "cnn"):
        return {}
    zs = delta_names(network)
    written = {info[1] for s in keep if (info := derivations.adjoint_info(s)) is not None and info[1] in zs}
    if not written:
        return {derivations.cost: zs}
    # the claim writes δs: the correct formula stops at the δs of those layers (δ^l_j beside the δ^l_k it wrote)
    places = net_inputs(network)  # z ↦ (family, index)

    def layer(z) -> tuple:  # z2_1 → ("z", 2) in a layered network; a CNN's family (zF) is its layer
        key, index = places[z]
        return (key, index[0]) if network.kind == "layered" and index else (key,)

    layers = {layer(z) for z in written}
    return {derivations.cost: {z: name for z, name in zs.items() if layer(z) in layers}}


def _fits(expr: sp.Expr, nodes: int, depth: int) -> bool:
    """Whether `expr`, as a tree (shared parts counted at each use), has at most `nodes` nodes and `depth` levels."""
    count, stack = 0, [(expr, 1)]
    while stack:
        node, level = stack.pop()
        count += 1
        if count > nodes or level > depth:
            return False
        stack.extend((arg, level + 1) for arg in node.args)
    return True


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
    if len(assume) != 1 or sp.count_ops(expr) > 400 or expanded_terms(expr) > MAX_EXPECTED_NODES:
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
    """Derivative symbols equal to a definition of the file: D(E, neto1) ↦ delta_o1 (as many as time allows).

    Each pair is screened at two exact points first (every value computed
    once), and only pairs that agree there are proven.
    """
    derivation = cf.derivations.of(claim.of) if claim.of is not None else cf.derivations.cost
    named: dict[sp.Symbol, sp.Expr] = {}
    nodes = derivation.nodes()
    # the claim's own definitions first, then the file's others
    ordered = [*claim.definitions_used, *(n for n in cf.definitions if n not in claim.definitions_used)]
    if len(nodes) > 200 or not ordered:
        return named
    try:
        # its own generator: naming leaves the prover's random points as they were
        screen = Screen(cf, prover, claim, deadline, rng=random.Random(prover.seed))
        adjoints = [(a, screen.values(a)) for a in map(derivation.adjoint, nodes)]
        for name in ordered:
            value = screen.values(cf.definitions[name])
            values = {1: value, -1: None if value is None else [None if v is None else -v for v in value]}
            for adjoint, seen in adjoints:
                if adjoint in named:
                    continue
                if deadline is not None and time.perf_counter() > deadline:
                    return named
                for sign in (1, -1):  # Zhou's g_j and e_h are negated δs
                    if _may_equal(seen, values[sign]) and _quick_equal(
                        prover, adjoint, sign * cf.definitions[name], claim.assume, deadline
                    ):
                        named[adjoint] = sign * sp.Symbol(name, real=True)
                        break
                if adjoint in named:
                    break
    except OutOfTime:
        pass
    return named


def _may_equal(a: list | None, b: list | None) -> bool:
    return a is None or b is None or not any(map(differ, a, b))


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
    deltas = delta_names(network)
    text_names: dict[sp.Expr, sp.Expr] = {}
    latex_names = dict(network.latex_names)
    for s in expr.free_symbols:
        info = derivations.adjoint_info(s)
        if info is None:
            continue
        derivation, wrt = info
        if derivation.of == network.cost and wrt in deltas:
            text_names[s] = sp.Symbol(deltas[wrt], real=True)
            latex_names[s] = delta_latex(network, wrt) or sp.latex(text_names[s])
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

