r"""Claims files: a student's or an author's own formulas, to be proven or refuted.

    network = "two-two-two.toml"   # a spec relative to this file, or a built-in name
    syntax = "latex"               # optional default for every formula: "sympy" (default) or "latex"
    example = "x"                  # optional, also per claim: the training example's index letter;
                                   # a^{x,l}_j is a^l_j, C_x the cost (derive.claims.latex_examples)

    [definitions]                  # optional auxiliary names, in order
    delta_o1 = "(outo1 - y1)*outo1*(1 - outo1)"

    [latex_names]                  # optional: LaTeX name as typed -> network name
    "o_{1}" = "outo1"

    assume = { lhs = "y1 + y2 + y3", rhs = "1", text = "y is one-hot" }   # optional, top level or per claim

    [[claim]]
    name = "dE/dw5"
    wrt = "w5"                     # claims ∂(cost)/∂w5 = formula
    formula = "delta_o1*outh1"
    expect = "proven"              # optional: the verdict an answer key expects
    expect_diagnosis = "sign"      # optional: the diagnosis it expects (an id, or "none")

Claim kinds: `gradient` (the default: ∂(of)/∂(wrt) = formula, `of` defaults to
the cost), `update` (Δwrt = −rate·∂C/∂wrt = formula), `identity` (`lhs = rhs`).
In formulas, `D(E, v)` is ∂E/∂v through the graph, `sigma(z)` the activation
applied to z and `sigma_prime(z)` (or `Derivative(sigma(z), z)`) its derivative;
for a layered network `delta2_1` is the neuron error δ^2_1 (`deltaF_1_1_1`, `deltaO_1`
in a convolutional one); `ismax(aF_1_1_1)` is the max-pool indicator
[a^F_{1,11} is the maximum of its pooling window] (LaTeX `[a^F_{1,11} = \max]`),
`ismax(aF_1_2_2, aP_1_1_1)` names the pooling unit where windows overlap.

`assume` states side conditions as formula sets do (a table or a list of
tables; at the top level for every claim, in a claim for that claim): each
`lhs = rhs` may name inputs, targets, parameters and constants, and is solved
for the last of them in the network's order, which must appear linearly with
a constant coefficient; the claim is then proven or refuted where it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import sympy as sp

from derive.claims.mistakes import DIAGNOSES
from derive.derivation import Derivations
from derive.errors import FormulaError, InputError
from derive.claims.latex import NormalNames
from derive.claims.vocabulary import PARSE_ALLOWANCE, ClaimVocabulary
from derive.claims.generic import Generic, read_generic, split_chain
from derive.claims.batch_matrix import names_batch, read_batch, rewrite_numpy_located
from derive.claims.matrix import ShapeMismatch, names_whole_layer, read_matrix, split_masked
from derive.claims.matrix_read import masked
from derive.claims.matrix_sympy import names_whole_layer_sympy, read_sympy_matrix
from derive.claims.indices import fixed_letters, parse_index_table
from derive.graph.network import NAME, Network
from derive.files import path_exists, read_toml
from derive.limits import MAX_CLAIMS_BYTES
from derive.graph.spec import load

KINDS = ("gradient", "update", "identity")
SYNTAXES = ("sympy", "latex")
VERDICTS = ("proven", "refuted", "undecided")
CLAIM_KEYS = {"name", "kind", "wrt", "of", "formula", "lhs", "rhs", "rate", "syntax", "expect", "expect_diagnosis",
              "assume", "indices", "where", "example"}
TOP_KEYS = {"network", "title", "student", "syntax", "definitions", "latex_names", "assume", "claim", "indices",
            "show_correct", "example"}
ASSUME_KEYS = {"lhs", "rhs", "text", "syntax"}


@dataclass(frozen=True)
class Claim:
    """One claim, parsed: `lhs = rhs` over the network's symbols (definitions inlined)."""

    name: str
    kind: str
    syntax: str
    text: str  # the formula as the claim wrote it (for identities, "lhs = rhs")
    lhs: sp.Expr
    rhs: sp.Expr
    target: sp.Expr  # what the formula claims to equal, in derivative symbols: D(C, w5), −η·D(C, w1), …
    wrt: sp.Symbol | None
    of: sp.Symbol | None
    rate: sp.Symbol | None
    expect: str | None
    expect_diagnosis: str | None = None  # a diagnosis id, or "none"
    definitions_used: tuple[str, ...] = ()
    mentioned: tuple[sp.Symbol, ...] = ()  # the derivative symbols (δs) the formula names, even where they cancel
    assume: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict, hash=False)  # leaf ↦ its value under the assumptions
    assumptions: tuple[str, ...] = ()  # their texts, the file's first
    shape_error: str | None = None  # a matrix claim whose shapes do not conform: refuted by them (diagnosis `shape`)
    generic: Generic | None = field(default=None, hash=False, compare=False)  # its instances and links, if several
    narrowed: bool = False  # its letters narrowed by `indices` or `where` (the file's or its own)


@dataclass(frozen=True)
class Unparsed:
    """A claim the file states but derive cannot read: it is graded `unparsed`, and the others still are.

    One student's typo must not cost the class its feedback: only a fault of the
    whole file (its network, its TOML, a table every claim reads) is exit 2.
    """

    name: str
    text: str  # the formula as written, "" when the entry has none
    message: str  # what is wrong, with the column where it is a syntax error
    expect: str | None = None


@dataclass
class ClaimsFile:
    path: str
    network: Network
    derivations: Derivations
    claims: list[Claim]
    definitions: dict[str, sp.Expr] = field(default_factory=dict)
    title: str = ""
    student: str = ""
    unparsed: list["Unparsed"] = field(default_factory=list)  # the claims that could not be read, graded so
    order: list[str] = field(default_factory=list)  # every claim's name, in the file's order
    show_correct: bool = True  # false: the correct formula, the corrected one and the answer key are not shown


def load_claims(path: str | Path) -> ClaimsFile:
    path = Path(path)
    where = str(path)
    data = read_toml(path, limit=MAX_CLAIMS_BYTES, where=where)
    try:
        return parse_claims(data, base=path.parent, path=where)
    except InputError as exc:
        raise exc.located(where) from None


def parse_claims(data: Mapping, *, base: Path, path: str = "<claims>", network: Network | None = None,
                 index_letters: bool = True) -> ClaimsFile:
    """A claims file read against its network (or `network`); `index_letters` False: a one-link formula is
    read as written, never with free index letters (a graded answer: out_{o1} is one reading, not one per o)."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise InputError(f"unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(TOP_KEYS))})")
    reference = data.get("network")
    if not isinstance(reference, str) or not reference:
        raise InputError("'network' must name a spec file (relative to this file) or a built-in network")
    network = network or _network(reference, base)
    derivations = Derivations(network)
    default_syntax = _choice(data.get("syntax", "sympy"), SYNTAXES, "syntax")
    latex_names = data.get("latex_names", {})
    if not isinstance(latex_names, dict) or not all(isinstance(v, str) for v in latex_names.values()):
        raise InputError("must be a table of \"LaTeX name\" = \"network name\"", where="[latex_names]")
    vocabulary = ClaimVocabulary(network, derivations)
    vocabulary.index_letters = index_letters
    raw_names = data.get("definitions", {})
    vocabulary.indices = fixed_letters(network, lambda n: n in network.by_name or (
        isinstance(raw_names, dict) and n in raw_names))
    file_indices = parse_index_table(data.get("indices"), "[indices]")
    vocabulary.example = file_example = _example(data.get("example"), vocabulary, "example")
    show_correct = data.get("show_correct", True)
    if not isinstance(show_correct, bool):
        raise InputError("must be true or false", where="show_correct")
    for latex_name, target in latex_names.items():
        if target not in network.by_name:
            raise InputError(f"'{target}' is not a name of the network", where=f"[latex_names] {latex_name}")
    latex_names = NormalNames.of(latex_names)  # once, not for every LaTeX formula
    vocabulary.allow(PARSE_ALLOWANCE, "the file's definitions and assumptions")

    definitions: dict[str, sp.Expr] = {}
    if not isinstance(raw_names, dict):
        raise InputError("must be a table of name = \"formula\"", where="[definitions]")
    for name, raw in raw_names.items():
        where = f"[definitions] {name}"
        if not NAME.match(name) or name.startswith("__"):
            raise InputError(f"'{name}' is not a name", where=where)
        if name in network.by_name:
            raise InputError(f"'{name}' is already a name of the network", where=where)
        text, syntax = _formula_entry(raw, default_syntax, where)
        either = syntax == "latex" and not (isinstance(raw, dict) and "syntax" in raw)
        definitions[name] = _definition(vocabulary, text, None if either else syntax, latex_names, where)
        vocabulary.define(name, definitions[name])

    file_assumptions = _assumptions(data.get("assume"), vocabulary, default_syntax, latex_names, "assume")
    try:  # every claim reads them: a fault of theirs is the file's, refused once (exit 2)
        solve_assumptions(network, list(file_assumptions))
    except InputError as exc:
        raise exc.located("assume") from None

    entries = data.get("claim", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError("claims are [[claim]] tables")
    if not entries:
        raise InputError("the file has no [[claim]]")
    claims, unparsed, seen = [], [], {}
    for number, entry in enumerate(entries, start=1):
        name = _claim_name(entry, number, seen)
        vocabulary.allow(PARSE_ALLOWANCE, "the claim's formulas and assumptions")
        try:
            vocabulary.example = _example(entry.get("example", file_example), vocabulary, f"[[claim]] {name} example")
            claims.append(_claim(entry, name, vocabulary, default_syntax, latex_names, file_assumptions, file_indices))
        except ShapeMismatch as exc:
            claims.append(_shape_refuted(entry, name, default_syntax, exc))
        except InputError as exc:  # a FormulaError too: this claim's fault, not the file's
            unparsed.append(Unparsed(name, _written(entry), str(exc), _written(entry, "expect") or None))
    return ClaimsFile(
        path=path,
        network=network,
        derivations=derivations,
        claims=claims,
        unparsed=unparsed,
        order=list(seen),
        definitions=definitions,
        title=str(data.get("title", "")),
        student=str(data.get("student", "")),
        show_correct=show_correct,
    )


def _example(raw, vocabulary: ClaimVocabulary, where: str) -> str | None:
    """The example index (`example = "x"`): the letter naming one training example, dropped from scripts."""
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) != 1 or not raw.isascii() or not raw.isalpha():
        raise InputError('must be one letter, the index of the training example, such as "x" (Nielsen), '
                         '"i" (deeplearning.ai) or "k" (Zhou)', where=where)
    if raw in vocabulary.network.by_name or raw in vocabulary.indices:
        raise InputError(f"'{raw}' is a name of the network (or L), not free for the example index", where=where)
    return raw


def _claim_name(entry: Mapping, number: int, seen: dict) -> str:
    """The claim's name, unique in the file (a fault of the file's, as the order of its claims depends on it)."""
    name = entry.get("name", f"claim {number}")
    if not isinstance(name, str):
        raise InputError("must be a string", where=f"[[claim]] #{number} name")
    if name in seen:
        raise InputError(f"two claims are named '{name}'", where=f"[[claim]] {name}")
    seen[name] = None
    return name


def _shape_refuted(entry: Mapping, name: str, default_syntax: str, exc: "ShapeMismatch") -> Claim:
    """A matrix claim its shapes refute, as a claim: no sides to decide, its verdict and diagnosis given."""
    expect, expect_diagnosis = _expectations(entry, f"[[claim]] {name}")
    zero = sp.Integer(0)
    return Claim(name=name, kind="identity", syntax=entry.get("syntax", default_syntax), text=_written(entry),
                 lhs=zero, rhs=zero, target=zero, wrt=None, of=None, rate=None, expect=expect,
                 expect_diagnosis=expect_diagnosis, shape_error=exc.message)


def _written(entry: Mapping, key: str = "formula") -> str:
    """An entry's text as the file wrote it (an identity's two sides joined), for an unparsed claim's row."""
    value = entry.get(key)
    if isinstance(value, str):
        return value
    lhs, rhs = entry.get("lhs"), entry.get("rhs")
    if key == "formula" and isinstance(lhs, str) and isinstance(rhs, str):
        return f"{lhs} = {rhs}"
    return ""


def _network(reference: str, base: Path) -> Network:
    candidate = base / reference
    if reference.endswith(".toml") or path_exists(candidate):
        if not path_exists(candidate):
            raise InputError(f"no spec file '{reference}' next to the claims file", where="network")
        network = load(candidate)
    else:
        try:
            network = load(reference)
        except InputError as exc:
            raise exc.located("network") from None
    if network.kind == "stack":
        raise InputError(f"'{network.name}' is a stack network: claims are checked on a network with a symbolic "
                         "graph; for one layer of it, name a module spec (see examples/batchnorm-homework.toml)",
                         where="network")
    return network


def _choice(value, options, where: str) -> str:
    if value not in options:
        raise InputError(f"must be one of {', '.join(options)}", where=where)
    return value


def _definition(vocabulary: ClaimVocabulary, text: str, syntax: str | None, latex_names, where: str) -> sp.Expr:
    """A definition in its stated syntax; in a LaTeX file without one (None), in whichever of LaTeX and
    SymPy syntax reads it.

    Teachers write helper names as code (`(y1 - outo1)**2/2`) beside formulas in
    LaTeX. A text both read differently is refused with both readings, never guessed.
    """
    if syntax is not None:
        return vocabulary.parse(text, syntax, latex_names, where)
    readings, failures = {}, []
    for candidate in ("latex", "sympy"):
        try:
            readings[candidate] = vocabulary.parse(text, candidate, latex_names, where)
        except InputError as exc:  # a FormulaError, placed in the file
            failures.append(exc)
    if not readings:  # the reader that got furthest says what is wrong (one that read it all: a limit, a name)
        raise max(failures, key=lambda exc: float("inf") if exc.column is None else exc.column)
    if len(readings) == 2 and readings["latex"] != readings["sympy"]:  # as trees: no algebra on a stranger's text
        raise FormulaError(f"reads two ways: as LaTeX {readings['latex']}, in SymPy syntax {readings['sympy']}; "
                           "say which with { formula = \"…\", syntax = \"latex\" }").located(where)
    return readings.get("latex", readings.get("sympy"))


def _formula_entry(raw, default_syntax: str, where: str) -> tuple[str, str]:
    if isinstance(raw, str):
        return raw, default_syntax
    if isinstance(raw, dict) and isinstance(raw.get("formula"), str):
        return raw["formula"], _choice(raw.get("syntax", default_syntax), SYNTAXES, f"{where} syntax")
    raise InputError("must be a formula string, or { formula = \"…\", syntax = \"latex\" }", where=where)


def _assumptions(raw, vocabulary: ClaimVocabulary, default_syntax: str, latex_names, where: str) -> list:
    """`assume = { lhs, rhs, text }` (or a list of them), as in formula sets: [(lhs, rhs, text, where)]."""
    if raw is None:
        return []
    entries = raw if isinstance(raw, list) else [raw]
    found = []
    for number, entry in enumerate(entries, start=1):
        here = where if len(entries) == 1 else f"{where} #{number}"
        if (
            not isinstance(entry, dict)
            or set(entry) - ASSUME_KEYS
            or not all(isinstance(entry.get(k), str) for k in ("lhs", "rhs"))
            or not isinstance(entry.get("text", ""), str)
        ):
            raise InputError(
                'must be { lhs = "…", rhs = "…", text = "…" } (or a list of them), such as '
                '{ lhs = "y1 + y2 + y3", rhs = "1", text = "y is one-hot" }',
                where=here,
            )
        syntax = _choice(entry.get("syntax", default_syntax), SYNTAXES, f"{here} syntax")
        lhs = vocabulary.parse(entry["lhs"], syntax, latex_names, f"{here} lhs")
        rhs = vocabulary.parse(entry["rhs"], syntax, latex_names, f"{here} rhs")
        text = entry.get("text") or f"{entry['lhs']} = {entry['rhs']}"
        found.append((lhs, rhs, text, here))
    return found


def solve_assumptions(network: Network, equations: list) -> dict[sp.Symbol, sp.Expr]:
    """Each assumption lhs = rhs solved for its last leaf (as formula sets do): a substitution.

    An assumption may use inputs, targets, parameters and constants, and must be
    linear in the last of them with a constant coefficient (y3 = 1 − y1 − y2).
    """
    substitution: dict[sp.Symbol, sp.Expr] = {}
    leaves = set(network.leaves)
    for lhs, rhs, _text, where in equations:
        equation = (lhs - rhs).xreplace(substitution)
        others = sorted((str(s) for s in equation.free_symbols if s not in leaves))
        if others:
            raise InputError(f"an assumption may name inputs, targets, parameters and constants only, "
                             f"not {', '.join(others)}", where=where)
        if expanded_terms(equation) > MAX_ASSUMPTION_TERMS:
            raise InputError(f"an assumption must be linear; this one would expand to more than "
                             f"{MAX_ASSUMPTION_TERMS:,} terms", where=where)
        unknowns = [s for s in network.leaves if s in equation.free_symbols]
        if not unknowns:
            if sp.simplify(equation) != 0:
                raise InputError("the assumptions contradict each other", where=where)
            continue
        unknown = unknowns[-1]
        coefficient = sp.expand(equation).coeff(unknown)
        if coefficient == 0 or coefficient.free_symbols or sp.expand(equation - coefficient * unknown).has(unknown):
            raise InputError(f"an assumption must be linear in its last symbol ({unknown}), with a constant "
                             "coefficient", where=where)
        solution = sp.expand(unknown - equation / coefficient)
        substitution = {k: v.xreplace({unknown: solution}) for k, v in substitution.items()}
        substitution[unknown] = solution
    return substitution


MAX_ASSUMPTION_TERMS = 1_000


def expanded_terms(expr: sp.Expr) -> float:
    """An upper bound on the number of terms `expand` makes of expr (products and powers of sums multiply out)."""
    if expr.is_Add:
        return sum(expanded_terms(a) for a in expr.args)
    if expr.is_Mul:
        total = 1.0
        for a in expr.args:
            total *= expanded_terms(a)
        return total
    if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:
        return expanded_terms(expr.base) ** min(int(expr.exp), 1_000)
    return 1.0


def _claim(entry: Mapping, name: str, vocabulary: ClaimVocabulary, default_syntax: str, latex_names,
           file_assumptions: list = (), file_indices: Mapping[str, str] = {}) -> Claim:
    where = f"[[claim]] {name}"
    unknown = set(entry) - CLAIM_KEYS
    if unknown:
        raise InputError(f"unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(CLAIM_KEYS))})", where=where)
    syntax = _choice(entry.get("syntax", default_syntax), SYNTAXES, f"{where} syntax")
    pieces = None
    formula = entry.get("formula")
    if isinstance(formula, str) and formula.strip() and ("=" in formula or "\\equiv" in formula):
        if syntax == "latex" and vocabulary.network.kind in ("batch", "affine", "module"):  # np.sum(…): no `.` in LaTeX
            formula = rewrite_numpy_located(formula, f"{where} formula")
        try:
            if syntax == "latex" and masked(formula) != formula:  # \nabla_a C, ^\top: a matrix claim's
                pieces = split_masked(formula, split_chain)
            else:
                pieces = split_chain(formula, syntax)
        except InputError as exc:
            raise exc.located(f"{where} formula") from None
        if len(pieces) == 1:
            pieces = None
    implied = "identity" if pieces is not None and "wrt" not in entry else "gradient"
    kind = _choice(entry.get("kind", implied), KINDS, f"{where} kind")
    expect, expect_diagnosis = _expectations(entry, where)
    network = vocabulary.network
    vocabulary.used.clear()
    vocabulary.mentioned.clear()

    def text_of(key: str) -> str:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"'{key}' (a formula string) is required for a {kind} claim", where=where)
        return value

    wrt = of = rate = None
    head = None
    if kind == "identity":
        if pieces is not None:
            for key in ("wrt", "of", "rate", "lhs", "rhs"):
                if key in entry:
                    raise InputError(f"an identity written as formula = 'lhs = rhs' has no '{key}'", where=where)
            text = entry["formula"]  # as written (np.sum read as a row sum only in the pieces)
        else:
            for key in ("wrt", "of", "rate", "formula"):
                if key in entry:
                    raise InputError(f"an identity claim has lhs and rhs (or formula = 'lhs = rhs'), not '{key}'",
                                     where=where)
            lhs_text, rhs_text = text_of("lhs"), text_of("rhs")
            pieces = [(lhs_text, 0), (rhs_text, 0)]
            text = f"{lhs_text} = {rhs_text}"
    else:
        wrt, of, rate, head = _differentiated(entry, kind, vocabulary, where)
        text = text_of("formula")
        pieces = pieces or [(text, 0)]
    generic = _instances(entry, kind, syntax, pieces, vocabulary, latex_names, file_indices, head,
                         f"{where} formula" if "formula" in entry else where)
    if generic is not None:
        lhs, rhs = generic.parts[0].lhs, generic.parts[0].rhs
        target, mentioned = lhs, generic.parts[0].mentioned
    elif kind == "identity":
        lhs = vocabulary.parse(pieces[0][0], syntax, latex_names, f"{where} lhs")
        vocabulary.mentioned.clear()  # the δs the right side names
        rhs = vocabulary.parse(pieces[1][0], syntax, latex_names, f"{where} rhs")
        target, mentioned = lhs, tuple(vocabulary.mentioned)
    else:
        target = lhs = head
        rhs = vocabulary.parse(text, syntax, latex_names, f"{where} formula")
        mentioned = tuple(vocabulary.mentioned)
    equations = [*file_assumptions, *_assumptions(entry.get("assume"), vocabulary, syntax, latex_names,
                                                  f"{where} assume")]
    return Claim(
        name=name, kind=kind, syntax=syntax, text=text, lhs=lhs, rhs=rhs, target=target, wrt=wrt, of=of,
        rate=rate, expect=expect, expect_diagnosis=expect_diagnosis, definitions_used=tuple(vocabulary.used),
        mentioned=mentioned, assume=solve_assumptions(network, equations),
        assumptions=tuple(text for *_, text, _where in equations), generic=generic,
        narrowed=bool("indices" in entry or "where" in entry or file_indices),
    )


def _instances(entry: Mapping, kind: str, syntax: str, pieces, vocabulary: ClaimVocabulary, latex_names,
               file_indices, head, where: str) -> Generic | None:
    """The claim's instances and links: as matrices where a member names a whole layer (`\\delta^l`, `w^{l+1}`
    in LaTeX; `delta[l]`, `w[l+1]` in SymPy syntax), else by its index letters and chain (None: one instance)."""
    if head is None and syntax == "latex" and names_batch(pieces, vocabulary):  # dZ^{[l]}, A^{[l-1]T}: a batch
        return read_batch(entry, pieces, vocabulary, file_indices, where)
    if head is None and syntax == "latex" and names_whole_layer(pieces, vocabulary):
        return read_matrix(entry, pieces, vocabulary, latex_names, file_indices, where)
    if head is None and syntax == "sympy" and names_whole_layer_sympy(pieces, vocabulary):
        return read_sympy_matrix(entry, pieces, vocabulary, file_indices, where)
    return read_generic(entry, kind, syntax, pieces, vocabulary, latex_names, file_indices, head, where)


def _expectations(entry: Mapping, where: str) -> tuple[str | None, str | None]:
    """The verdict and the diagnosis an answer key expects (expecting a diagnosis expects a refutation)."""
    expect = entry.get("expect")
    if expect is not None:
        _choice(expect, VERDICTS, f"{where} expect")
    expect_diagnosis = entry.get("expect_diagnosis")
    if expect_diagnosis is not None:

        _choice(expect_diagnosis, (*DIAGNOSES, "none"), f"{where} expect_diagnosis")
        if expect is None:
            expect = "refuted"
    return expect, expect_diagnosis


def _differentiated(entry: Mapping, kind: str, vocabulary: ClaimVocabulary, where: str) -> tuple:
    """A gradient or update claim's wrt, of, rate and target: ∂of/∂wrt, or −rate·∂C/∂wrt."""
    network = vocabulary.network

    def node(key: str, default=None) -> sp.Symbol | None:
        value = entry.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or value not in network.by_name:
            raise InputError(f"'{value}' is not a name of the network", where=f"{where} {key}")
        return network.by_name[value]

    wrt = node("wrt")
    if wrt is None:
        raise InputError("'wrt' (the name differentiated by) is required", where=where)
    of = node("of", network.cost.name)
    if of not in network.definitions:
        raise InputError(f"'{of}' is not computed by the network, so it has no derivative", where=f"{where} of")
    derivative = vocabulary.shared.adjoint(of, wrt)
    if kind != "update":
        if "rate" in entry:
            raise InputError("'rate' belongs to update claims", where=where)
        return wrt, of, None, derivative
    if of != network.cost:
        raise InputError("an update claim is about the cost; leave out 'of'", where=where)
    rate_text = entry.get("rate")
    if not isinstance(rate_text, str):
        raise InputError("'rate' (the learning rate's name, such as \"eta\") is required", where=where)
    rate = vocabulary.rate(rate_text, f"{where} rate")
    return wrt, of, rate, -rate * derivative
