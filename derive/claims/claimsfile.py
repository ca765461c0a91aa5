r"""Claims files: a student's or an author's own formulas, to be proven or refuted.

    network = "two-two-two.toml"   # a spec relative to this file, or a built-in name
    syntax = "latex"               # optional default for every formula: "sympy" (default) or "latex"

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
from functools import cached_property
from pathlib import Path
from typing import Mapping

import sympy as sp

from derive.graph import functions as fn
from derive.graph import registry
from derive.derivation import Derivations
from derive.errors import FormulaError, InputError
from derive.claims.latex import NormalNames, parse_latex_counted
from derive.graph.network import NAME, Network, symbol
from derive.graph.parser import MAX_EXACT_DIGITS, Vocabulary, check_constant, parse_formula
from derive.files import path_exists, read_toml
from derive.limits import MAX_CLAIMS_BYTES
from derive.graph.spec import load

KINDS = ("gradient", "update", "identity")
SYNTAXES = ("sympy", "latex")
VERDICTS = ("proven", "refuted", "undecided")
CLAIM_KEYS = {"name", "kind", "wrt", "of", "formula", "lhs", "rhs", "rate", "syntax", "expect", "expect_diagnosis",
              "assume"}
TOP_KEYS = {"network", "title", "student", "syntax", "definitions", "latex_names", "assume", "claim"}
ASSUME_KEYS = {"lhs", "rhs", "text", "syntax"}
# The parsing work allowed for the file's definitions and assumptions, and again for each claim (its
# formulas and assumptions): LaTeX tokens read (a sum reads its body once per term), or two per
# character of SymPy text. About a second of parsing on the project's machine: a file's parsing
# stays within a budget a claim, the most a single formula may take (MAX_STEPS) and then some.
PARSE_ALLOWANCE = 150_000


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


@dataclass
class ClaimsFile:
    path: str
    network: Network
    derivations: Derivations
    claims: list[Claim]
    definitions: dict[str, sp.Expr] = field(default_factory=dict)
    title: str = ""
    student: str = ""
    errors: list[tuple[str, str]] = field(default_factory=list)  # (claim name, message) for claims that did not parse


def load_claims(path: str | Path) -> ClaimsFile:
    path = Path(path)
    where = str(path)
    data = read_toml(path, limit=MAX_CLAIMS_BYTES, where=where)
    try:
        return parse_claims(data, base=path.parent, path=where)
    except InputError as exc:
        raise exc.located(where) from None


def parse_claims(data: Mapping, *, base: Path, path: str = "<claims>") -> ClaimsFile:
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise InputError(f"unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(TOP_KEYS))})")
    reference = data.get("network")
    if not isinstance(reference, str) or not reference:
        raise InputError("'network' must name a spec file (relative to this file) or a built-in network")
    network = _network(reference, base)
    derivations = Derivations(network)
    default_syntax = _choice(data.get("syntax", "sympy"), SYNTAXES, "syntax")
    latex_names = data.get("latex_names", {})
    if not isinstance(latex_names, dict) or not all(isinstance(v, str) for v in latex_names.values()):
        raise InputError("must be a table of \"LaTeX name\" = \"network name\"", where="[latex_names]")
    vocabulary = ClaimVocabulary(network, derivations)
    for latex_name, target in latex_names.items():
        if target not in network.by_name:
            raise InputError(f"'{target}' is not a name of the network", where=f"[latex_names] {latex_name}")
    latex_names = NormalNames.of(latex_names)  # once, not for every LaTeX formula
    vocabulary.allow(PARSE_ALLOWANCE, "the file's definitions and assumptions")

    definitions: dict[str, sp.Expr] = {}
    raw_definitions = data.get("definitions", {})
    if not isinstance(raw_definitions, dict):
        raise InputError("must be a table of name = \"formula\"", where="[definitions]")
    for name, raw in raw_definitions.items():
        where = f"[definitions] {name}"
        if not NAME.match(name) or name.startswith("__"):
            raise InputError(f"'{name}' is not a name", where=where)
        if name in network.by_name:
            raise InputError(f"'{name}' is already a name of the network", where=where)
        text, syntax = _formula_entry(raw, default_syntax, where)
        definitions[name] = vocabulary.parse(text, syntax, latex_names, where)
        vocabulary.define(name, definitions[name])

    file_assumptions = _assumptions(data.get("assume"), vocabulary, default_syntax, latex_names, "assume")

    entries = data.get("claim", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError("claims are [[claim]] tables")
    if not entries:
        raise InputError("the file has no [[claim]]")
    claims = []
    seen = set()
    for number, entry in enumerate(entries, start=1):
        name = entry.get("name", f"claim {number}")
        if not isinstance(name, str):
            raise InputError("must be a string", where=f"[[claim]] #{number} name")
        if name in seen:
            raise InputError(f"two claims are named '{name}'", where=f"[[claim]] {name}")
        seen.add(name)
        vocabulary.allow(PARSE_ALLOWANCE, "the claim's formulas and assumptions")
        claims.append(_claim(entry, name, vocabulary, default_syntax, latex_names, file_assumptions))
    return ClaimsFile(
        path=path,
        network=network,
        derivations=derivations,
        claims=claims,
        definitions=definitions,
        title=str(data.get("title", "")),
        student=str(data.get("student", "")),
    )


def _network(reference: str, base: Path) -> Network:
    candidate = base / reference
    if reference.endswith(".toml") or path_exists(candidate):
        if not path_exists(candidate):
            raise InputError(f"no spec file '{reference}' next to the claims file", where="network")
        return load(candidate)
    try:
        return load(reference)
    except InputError as exc:
        raise exc.located("network") from None


def _choice(value, options, where: str) -> str:
    if value not in options:
        raise InputError(f"must be one of {', '.join(options)}", where=where)
    return value


def _formula_entry(raw, default_syntax: str, where: str) -> tuple[str, str]:
    if isinstance(raw, str):
        return raw, default_syntax
    if isinstance(raw, dict) and isinstance(raw.get("formula"), str):
        return raw["formula"], _choice(raw.get("syntax", default_syntax), SYNTAXES, f"{where} syntax")
    raise InputError("must be a formula string, or { formula = \"…\", syntax = \"latex\" }", where=where)


def _assumptions(raw, vocabulary: "ClaimVocabulary", default_syntax: str, latex_names, where: str) -> list:
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


def _claim(entry: Mapping, name: str, vocabulary: "ClaimVocabulary", default_syntax: str, latex_names,
           file_assumptions: list = ()) -> Claim:
    where = f"[[claim]] {name}"
    unknown = set(entry) - CLAIM_KEYS
    if unknown:
        raise InputError(f"unknown key '{sorted(unknown)[0]}' (known: {', '.join(sorted(CLAIM_KEYS))})", where=where)
    kind = _choice(entry.get("kind", "gradient"), KINDS, f"{where} kind")
    syntax = _choice(entry.get("syntax", default_syntax), SYNTAXES, f"{where} syntax")
    expect = entry.get("expect")
    if expect is not None:
        _choice(expect, VERDICTS, f"{where} expect")
    expect_diagnosis = entry.get("expect_diagnosis")
    if expect_diagnosis is not None:
        from derive.claims.check import DIAGNOSES

        _choice(expect_diagnosis, (*DIAGNOSES, "none"), f"{where} expect_diagnosis")
        if expect is None:
            expect = "refuted"
    network = vocabulary.network
    vocabulary.used.clear()
    vocabulary.mentioned.clear()

    def text_of(key: str) -> str:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"'{key}' (a formula string) is required for a {kind} claim", where=where)
        return value

    def node(key: str, default=None) -> sp.Symbol | None:
        value = entry.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or value not in network.by_name:
            raise InputError(f"'{value}' is not a name of the network", where=f"{where} {key}")
        return network.by_name[value]

    wrt = of = rate = None
    if kind == "identity":
        for key in ("wrt", "of", "rate", "formula"):
            if key in entry:
                raise InputError(f"an identity claim has lhs and rhs, not '{key}'", where=where)
        lhs_text, rhs_text = text_of("lhs"), text_of("rhs")
        lhs = vocabulary.parse(lhs_text, syntax, latex_names, f"{where} lhs")
        vocabulary.mentioned.clear()  # the δs the right side names
        rhs = vocabulary.parse(rhs_text, syntax, latex_names, f"{where} rhs")
        text = f"{lhs_text} = {rhs_text}"
        target = lhs
    else:
        wrt = node("wrt")
        if wrt is None:
            raise InputError("'wrt' (the name differentiated by) is required", where=where)
        of = node("of", network.cost.name)
        if of not in network.definitions:
            raise InputError(f"'{of}' is not computed by the network, so it has no derivative", where=f"{where} of")
        derivative = vocabulary.derivations.of(of).adjoint(wrt)
        if kind == "update":
            if of != network.cost:
                raise InputError("an update claim is about the cost; leave out 'of'", where=where)
            rate_text = entry.get("rate")
            if not isinstance(rate_text, str):
                raise InputError("'rate' (the learning rate's name, such as \"eta\") is required", where=where)
            rate = vocabulary.rate(rate_text, f"{where} rate")
            target = -rate * derivative
        else:
            if "rate" in entry:
                raise InputError("'rate' belongs to update claims", where=where)
            target = derivative
        text = text_of("formula")
        lhs = target
        rhs = vocabulary.parse(text, syntax, latex_names, f"{where} formula")
    mentioned = tuple(vocabulary.mentioned)
    equations = [*file_assumptions, *_assumptions(entry.get("assume"), vocabulary, syntax, latex_names,
                                                  f"{where} assume")]
    return Claim(
        name=name,
        kind=kind,
        syntax=syntax,
        text=text,
        lhs=lhs,
        rhs=rhs,
        target=target,
        wrt=wrt,
        of=of,
        rate=rate,
        expect=expect,
        expect_diagnosis=expect_diagnosis,
        definitions_used=tuple(vocabulary.used),
        mentioned=mentioned,
        assume=solve_assumptions(network, equations),
        assumptions=tuple(text for *_, text, _where in equations),
    )


class ClaimVocabulary(Vocabulary):
    """The names a claim may use: the network's, the file's definitions, rates, δs, D(E, v).

    `sigma` means the activation: applied to a node that feeds an activation it
    is that activation's node; in a network with one concrete activation it is
    that function; in a network with the generic σ it is σ itself.
    """

    def __init__(self, network: Network, derivations: Derivations):
        self.network = network
        self.derivations = derivations
        self.definitions: dict[str, sp.Expr] = {}
        self.rates: dict[str, sp.Symbol] = {}
        self.used: list[str] = []
        self.mentioned: list[sp.Symbol] = []
        names: dict[str, sp.Expr] = dict(network.by_name)
        # neuron errors by name: delta2_1 for z2_1 (layered), deltaF_1_2_3 and deltaF_1_23 for zF_1_2_3
        net_inputs = {s for key, family in network.families.items() if key.startswith("z") for s in family.values()}
        for name, s in network.by_name.items():
            if name.startswith("z") and s in net_inputs and s in network.definitions:
                names.setdefault("delta" + name[1:], derivations.cost.adjoint(s))
        super().__init__(
            names,
            extra_functions={
                "D": self._derivative,
                "Derivative": self._derivative,
                "sigma": self._sigma,
                "sigma_prime": self._sigma_prime,
                "ismax": self._ismax,
                "is_max": self._is_max,
            },
            unknown_name=self._unknown,
        )

    # -- names -----------------------------------------------------------------------
    def name(self, name: str) -> sp.Expr:
        if name in self.definitions:
            if name not in self.used:
                self.used.append(name)
            return self.definitions[name]
        if name in self.rates:
            return self.rates[name]
        found = super().name(name)
        if isinstance(found, sp.Symbol) and found not in self.mentioned and self.derivations.adjoint_info(found):
            self.mentioned.append(found)
        return found

    def _unknown(self, name: str) -> sp.Expr:
        known = sorted(self.network.by_name)
        shown = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
        raise LookupError(f"unknown name '{name}' (the network's names: {shown}; or add it to [definitions])")

    def define(self, name: str, value: sp.Expr) -> None:
        self.definitions[name] = value

    # -- the parsing allowance -------------------------------------------------------
    work_left: int = PARSE_ALLOWANCE
    work_what: str = "the formulas"

    def allow(self, units: int, what: str) -> None:
        """Start a new allowance of parsing work (a LaTeX token read, or half a SymPy character)."""
        self.work_left, self.work_what = units, what

    def spend(self, text: str, syntax: str) -> None:
        """Charge a SymPy formula's characters (a LaTeX formula is charged the tokens it reads, as it reads)."""
        cost = 2 * len(text) if syntax == "sympy" else 0
        if cost > self.work_left or self.work_left <= 0:
            raise FormulaError(f"{self.work_what} hold more than the {PARSE_ALLOWANCE:,} tokens' worth of "
                               "formulas one section may (a LaTeX sum counts its body once per term)")
        self.work_left -= cost

    def rate(self, text: str, where: str) -> sp.Symbol:
        if not NAME.match(text) or text in self.network.by_name or text in self.definitions:
            raise InputError(f"'{text}' must be a new name for the rate, such as \"eta\"", where=where)
        found = self.rates.get(text)
        if found is None:
            found = symbol(text)
            self.rates[text] = found
        return found

    def parse(self, text: str, syntax: str, latex_names: Mapping[str, str], where: str) -> sp.Expr:
        """A formula, with every subexpression that equals a node's definition folded into the node."""
        try:
            self.spend(text, syntax)
            if syntax == "latex":
                parsed, steps = parse_latex_counted(text, self, latex_names, max_steps=self.work_left)
                self.work_left -= steps
            else:
                parsed = parse_formula(text, self)
            bound_size(parsed)
        except FormulaError as exc:
            raise exc.located(where) from None
        except RecursionError:  # a backstop: bound_size and the parsers' depth limits stop nesting first
            raise FormulaError(f"formula is nested deeper than {MAX_EXPR_DEPTH} levels").located(where) from None
        return self.folder(parsed)

    @cached_property
    def folder(self) -> "NodeFolder":
        return NodeFolder(self.network)

    # -- functions -------------------------------------------------------------------
    def _derivative(self, args: list) -> sp.Expr:
        if len(args) != 2:
            raise ValueError("takes two arguments: the quantity and the variable, D(E, w5)")
        quantity, variable = args
        if not isinstance(variable, sp.Symbol) or variable not in self.network.position:
            raise ValueError("the second argument must be a name of the network")
        if any(self.derivations.adjoint_info(s) is not None for s in quantity.free_symbols):
            # D(E, w5) is a symbol standing for a value, not a function of w5: its derivative is not 0
            raise ValueError("a second derivative (D of an expression holding D(…) or a δ) is not supported")
        return self.graph_derivative(quantity, variable)

    def graph_derivative(self, quantity: sp.Expr, variable: sp.Symbol) -> sp.Expr:
        """∂quantity/∂variable through the graph: Σ_s ∂quantity/∂s · D(s, variable)."""
        if quantity == variable:
            return sp.S.One
        if isinstance(quantity, sp.Symbol) and quantity in self.network.definitions:
            return self.derivations.of(quantity).adjoint(variable)
        total = []
        for s in quantity.free_symbols:
            if s == variable:
                inner = sp.S.One
            elif s in self.network.definitions:
                inner = self.derivations.of(s).adjoint(variable)
            else:
                continue
            if inner != 0:
                total.append(sp.diff(quantity, s) * inner)
        return sp.Add(*total)

    # -- the max-pool indicator ----------------------------------------------------------
    @cached_property
    def pools(self) -> dict[sp.Symbol, list[sp.Symbol]]:
        return max_pools(self.network)

    def _ismax(self, args: list) -> sp.Expr:
        """ismax(a): [a is the maximum of its pooling window]; ismax(a, p): of pooling unit p's window."""
        if len(args) not in (1, 2):
            raise ValueError("takes the unit, and the pooling unit when the unit lies in several windows: "
                             "ismax(aF_1_1_1) or ismax(aF_1_2_2, aP_1_1_1)")
        if not self.pools:
            raise ValueError("the network has no max-pooling layer")
        element = args[0]
        if not isinstance(element, sp.Symbol) or element not in self.network.position:
            raise ValueError("the first argument must be a unit of the network, such as aF_1_1_1")
        if len(args) == 2:
            pool = args[1]
            definition = self.network.definitions.get(pool) if isinstance(pool, sp.Symbol) else None
            if not isinstance(definition, fn.maxpool):
                raise ValueError(f"{pool} is not a max-pooling unit (such as aP_1_1_1)")
            if element not in definition.args:
                return sp.S.Zero  # not in that window: never its maximum
            return indicator(element, pool, definition)
        pools = self.pools.get(element, [])
        if not pools:
            example = next(iter(self.pools))
            raise ValueError(f"{element} is not in any max-pooling window (the windows hold units such as {example})")
        if len(pools) > 1:
            shown = ", ".join(str(p) for p in pools)
            raise ValueError(f"{element} lies in the windows of {shown}: name the pooling unit, "
                             f"ismax({element}, {pools[0]})")
        return indicator(element, pools[0], self.network.definitions[pools[0]])

    def _is_max(self, args: list) -> sp.Expr:
        """The derivation's own form is_max(i, a_1, …, a_m), accepted when the a's are a pooling window."""
        if len(args) < 2 or not args[0].is_Integer or not 1 <= int(args[0]) <= len(args) - 1:
            raise ValueError("is_max(i, a_1, ..., a_m) needs an integer 1 <= i <= m; "
                             "or write ismax(aF_1_1_1), the unit is the maximum of its window")
        window = tuple(args[1:])
        for pools in self.pools.values():
            for pool in pools:
                if self.network.definitions[pool].args == window:
                    return fn.is_max(*args)
        raise ValueError("its units are not a max-pooling window of the network, in order; "
                         "write ismax(aF_1_1_1), the unit is the maximum of its window")

    def _activation_node(self, z: sp.Expr) -> sp.Symbol | None:
        for user in self.network.consumers.get(z, ()) if isinstance(z, sp.Symbol) else ():
            definition = self.network.definitions[user]
            if isinstance(definition, sp.Function) and definition.args == (z,):
                return user
        return None

    def _activation_function(self):
        """The network's one activation function, or None when it has several or none."""
        kinds = {
            type(d) for d in self.network.definitions.values()
            if isinstance(d, registry.ACTIVATION_CLASSES)
        }
        return kinds.pop() if len(kinds) == 1 else None

    def _sigma(self, args: list) -> sp.Expr:
        (z,) = _one(args)
        node = self._activation_node(z)
        if node is not None:
            return node
        func = self._activation_function()
        if func is None:
            raise ValueError("σ is ambiguous in this network; write the activation by name (sigmoid, tanh, …)")
        return func(z)

    def _sigma_prime(self, args: list) -> sp.Expr:
        (z,) = _one(args)
        if self._activation_node(z) is not None:
            return self.network.activation_derivative(z)
        func = self._activation_function()
        if func is None:
            raise ValueError("σ' is ambiguous in this network; write the derivative out")
        if func is fn.sigma:
            return fn.sigma_prime(z)
        t = sp.Dummy("t")
        return sp.diff(func(t), t).xreplace({t: z})


class NodeFolder:
    """Folds a formula's subexpressions that equal a node's definition back into the node, bottom-up.

    `sigmoid(w1*x1 + w2*x2 + b1)` becomes `outh1`: first `w1*x1 + w2*x2 + b1` is
    the definition of `neth1`, then `sigmoid(neth1)` that of `outh1`. A sum
    holding a definition's terms (all scaled by one number) among others keeps
    the others: `w1*x1 + w2*x2 + b1 + 1` is `neth1 + 1`, `-w1*x1 - w2*x2 - b1`
    is `-neth1`. `1/(1 + exp(-x))` is read as `sigmoid(x)`. It is substitution
    of equals, so a claim's verdict cannot change, and a claim written out in
    the leaves meets the derivation's node symbols before any algebra.
    """

    MAX_NODES = 20_000  # the formula's size up to which it is folded (parsing bounds it already)

    def __init__(self, network: Network):
        self.exact: dict[sp.Expr, sp.Symbol] = {}
        self.sums: list[tuple[sp.Symbol, tuple[sp.Expr, ...]]] = []
        self.by_term: dict[sp.Expr, list[int]] = {}  # a sum's first term (without its number) ↦ its sums
        for node in network.order:
            definition = network.definitions[node]
            if definition.is_Atom:
                continue
            self.exact.setdefault(definition, node)
            if definition.is_Add:
                index = len(self.sums)
                self.sums.append((node, definition.args))
                self.by_term.setdefault(definition.args[0].as_coeff_Mul()[1], []).append(index)

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        if not self.exact or expr.is_Atom or _count(expr, self.MAX_NODES) >= self.MAX_NODES:
            return expr
        cache: dict[sp.Expr, sp.Expr] = {}

        def visit(e: sp.Expr) -> sp.Expr:
            if e.is_Atom:
                return e
            found = cache.get(e)
            if found is not None:
                return found
            args = tuple(visit(a) for a in e.args)
            rebuilt = e.func(*args) if args != e.args else e
            sigmoid = self._sigmoid(rebuilt)
            if sigmoid is not rebuilt:  # its argument is new: fold it
                (argument,) = sigmoid.args
                argument = self._fold_sum(argument) if argument.is_Add else argument
                rebuilt = fn.sigmoid(self.exact.get(argument, argument))
            if rebuilt.is_Add:
                rebuilt = self._fold_sum(rebuilt)
            rebuilt = self.exact.get(rebuilt, rebuilt)
            cache[e] = rebuilt
            return rebuilt

        return visit(expr)

    @staticmethod
    def _sigmoid(e: sp.Expr) -> sp.Expr:
        """1/(1 + exp(−x)) ↦ sigmoid(x)."""
        if e.is_Pow and e.exp == -1 and e.base.is_Add and len(e.base.args) == 2:
            one, other = sorted(e.base.args, key=lambda a: a != 1)
            if one == 1 and isinstance(other, sp.exp):
                return fn.sigmoid(sp.expand(-other.args[0]) if other.args[0].is_Add else -other.args[0])
        return e

    def _fold_sum(self, e: sp.Expr) -> sp.Expr:
        while True:
            terms = list(e.args)
            present = set(terms)
            for term in terms:
                coefficient, rest = term.as_coeff_Mul()
                for index in self.by_term.get(rest, ()):
                    node, parts = self.sums[index]
                    scale = coefficient / parts[0].as_coeff_Mul()[0]
                    scaled = [scale * p for p in parts]
                    if len(scaled) <= len(terms) and all(p in present for p in scaled):
                        remaining = list(terms)
                        for p in scaled:
                            remaining.remove(p)
                        folded = self.exact.get(sp.Add(*parts), node)
                        e = sp.Add(*remaining, scale * folded)
                        break
                else:
                    continue
                break
            else:
                return e
            if not e.is_Add:
                return e


# A parsed formula, with its definitions inlined, is at most this deep and this large (as a tree, each
# use of a definition counted again): the parsers' own limits allow about 200 levels and 10,000 nodes,
# and every later step (folding, algebra, printing) recurses on the depth and walks the tree.
MAX_EXPR_DEPTH = 200
MAX_EXPR_NODES = 20_000
# Exponents within exponents (w5**w5**…): the prover's algebra costs O(n²) and more in a tower's height
# (a tower of 40 sigmoids took 13 budgets); LaTeX allows 8 (latex_input.MAX_TOWER).
MAX_TOWER = 16
MAX_EXACT_BITS = int(MAX_EXACT_DIGITS * 3.33) + 1  # the parsers' bound on one number, through definitions too


def bound_size(expr: sp.Expr) -> None:
    """A FormulaError when `expr` (a tree, shared parts counted at each use) is too deep, too large, a tower of
    exponents too tall, or holds a number too large to work with.

    Iterative, and it stops at MAX_EXPR_NODES, so a chain of definitions each
    using the previous twice (2^n nodes as a tree) is refused at once.
    """
    count, stack, order = 0, [(expr, 1, 0)], []
    while stack:
        node, depth, tower = stack.pop()
        count += 1
        if count > MAX_EXPR_NODES:
            raise FormulaError(f"the formula, with its definitions written out, has more than {MAX_EXPR_NODES:,} "
                               "parts; name fewer definitions within definitions")
        if depth > MAX_EXPR_DEPTH:
            raise FormulaError(f"the formula, with its definitions written out, is nested deeper than "
                               f"{MAX_EXPR_DEPTH} levels")
        if node.is_Rational and max(abs(node.p), node.q).bit_length() > MAX_EXACT_BITS:
            raise FormulaError(f"the formula, with its definitions written out, holds a number of more than "
                               f"{MAX_EXACT_DIGITS:,} digits")
        if tower > MAX_TOWER:
            raise FormulaError(f"the formula, with its definitions written out, has exponents within exponents "
                               f"more than {MAX_TOWER} deep")
        order.append(node)
        if node.is_Pow:
            stack.append((node.base, depth + 1, tower))
            stack.append((node.exp, depth + 1, tower + (not node.exp.is_Number)))
        else:
            stack.extend((arg, depth + 1, tower) for arg in node.args)
    # number-only parts (exp(400) + 1), largest first: each must be evaluable
    symbolic: dict[int, bool] = {}
    for node in reversed(order):  # children before parents
        symbolic[id(node)] = node.is_Symbol or any(symbolic[id(a)] for a in node.args)
    stack = [expr]
    while stack:
        node = stack.pop()
        if symbolic[id(node)]:
            stack.extend(node.args)
        elif not node.is_Atom:
            check_constant(node)


def _count(expr: sp.Expr, limit: int) -> int:
    count, stack = 0, [expr]
    while stack and count < limit:
        count += 1
        stack.extend(stack.pop().args)
    return count


def max_pools(network: Network) -> dict[sp.Symbol, list[sp.Symbol]]:
    """Each unit of a max-pooling window ↦ the pooling units whose windows hold it."""
    found: dict[sp.Symbol, list[sp.Symbol]] = {}
    for node in network.order:
        definition = network.definitions[node]
        if isinstance(definition, fn.maxpool):
            for element in definition.args:
                found.setdefault(element, []).append(node)
    return found


class ismax(sp.Function):
    """The max-pool indicator as a claim writes it, for printing: ismax(aF_1_1_1) or ismax(aF_1_2_2, aP_1_1_1).

    Never used in a proof: the vocabulary turns it into the derivation's is_max(i, window…).
    """

    def _latex(self, printer, exp=None):
        element = printer._print(self.args[0])
        right = r"\max" if len(self.args) == 1 else printer._print(self.args[1])
        head = rf"\left[{element} = {right}\right]"
        return head if exp is None else rf"{head}^{{{exp}}}"


def indicator(element: sp.Symbol, pool: sp.Symbol, definition: sp.Expr) -> sp.Expr:
    """[element is the maximum of pool's window], as the derivation writes it: is_max(i, window…)."""
    return fn.is_max(sp.Integer(definition.args.index(element) + 1), *definition.args)


def _one(args: list) -> list:
    if len(args) != 1:
        raise ValueError("takes one argument")
    return args
