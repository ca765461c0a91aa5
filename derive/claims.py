"""Claims files: a student's or an author's own formulas, to be proven or refuted.

    network = "two-two-two.toml"   # a spec relative to this file, or a built-in name
    syntax = "latex"               # optional default for every formula: "sympy" (default) or "latex"

    [definitions]                  # optional auxiliary names, in order
    delta_o1 = "(outo1 - y1)*outo1*(1 - outo1)"

    [latex_names]                  # optional: LaTeX name as typed -> network name
    "o_{1}" = "outo1"

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
for a layered network `delta2_1` is the neuron error δ^2_1.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import sympy as sp

from . import functions as fn
from .derivation import Derivations
from .errors import FormulaError, InputError
from .latex_input import parse_latex
from .network import NAME, Network, symbol
from .parser import Vocabulary, parse_formula
from .spec import load

KINDS = ("gradient", "update", "identity")
SYNTAXES = ("sympy", "latex")
VERDICTS = ("proven", "refuted", "undecided")
CLAIM_KEYS = {"name", "kind", "wrt", "of", "formula", "lhs", "rhs", "rate", "syntax", "expect", "expect_diagnosis"}
TOP_KEYS = {"network", "title", "student", "syntax", "definitions", "latex_names", "claim"}
MAX_CLAIMS_BYTES = 2_000_000


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
    try:
        if path.stat().st_size > MAX_CLAIMS_BYTES:
            raise InputError(f"the file is larger than {MAX_CLAIMS_BYTES:,} bytes", where=where)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", where=where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file: {exc}", where=where) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"TOML syntax error: {exc}", where=where) from None
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
        claims.append(_claim(entry, name, vocabulary, default_syntax, latex_names))
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
    if reference.endswith(".toml") or candidate.exists():
        if not candidate.exists():
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


def _claim(entry: Mapping, name: str, vocabulary: "ClaimVocabulary", default_syntax: str, latex_names) -> Claim:
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
        from .check import DIAGNOSES

        _choice(expect_diagnosis, (*DIAGNOSES, "none"), f"{where} expect_diagnosis")
        if expect is None:
            expect = "refuted"
    network = vocabulary.network
    vocabulary.used.clear()

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
        return super().name(name)

    def _unknown(self, name: str) -> sp.Expr:
        known = sorted(self.network.by_name)
        shown = ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
        raise LookupError(f"unknown name '{name}' (the network's names: {shown}; or add it to [definitions])")

    def define(self, name: str, value: sp.Expr) -> None:
        self.definitions[name] = value

    def rate(self, text: str, where: str) -> sp.Symbol:
        if not NAME.match(text) or text in self.network.by_name or text in self.definitions:
            raise InputError(f"'{text}' must be a new name for the rate, such as \"eta\"", where=where)
        found = self.rates.get(text)
        if found is None:
            found = symbol(text)
            self.rates[text] = found
        return found

    def parse(self, text: str, syntax: str, latex_names: Mapping[str, str], where: str) -> sp.Expr:
        try:
            if syntax == "latex":
                return parse_latex(text, self, latex_names)
            return parse_formula(text, self)
        except FormulaError as exc:
            raise exc.located(where) from None

    # -- functions -------------------------------------------------------------------
    def _derivative(self, args: list) -> sp.Expr:
        if len(args) != 2:
            raise ValueError("takes two arguments: the quantity and the variable, D(E, w5)")
        quantity, variable = args
        if not isinstance(variable, sp.Symbol) or variable not in self.network.position:
            raise ValueError("the second argument must be a name of the network")
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
            if isinstance(d, (fn.sigmoid, sp.tanh, fn.relu, fn.sigma))
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


def _one(args: list) -> list:
    if len(args) != 1:
        raise ValueError("takes one argument")
    return args
