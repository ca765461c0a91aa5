"""Formula sets: textbook formulas as data, written once in index notation.

A set is a TOML file (see `formulas/` for the shipped ones):

    id = "nielsen"
    title = "..."
    source = "..."                      # where the formulas come from
    [[formula]]
    id = "BP2"                          # unique in the set
    family = "BP2"                      # instances are counted by family
    title = "error in terms of the error in the next layer"
    latex = '\\delta^l = ((w^{l+1})^T \\delta^{l+1}) \\odot \\sigma\'(z^l)'
    when = { kind = "layered" }         # facts the network must have (a value or a list)
    for = { l = "2..L-1", j = "1..size[l]" }
    lhs = "delta[l, j]"
    rhs = "sum(w[l+1, k, j]*delta[l+1, k], k, 1, size[l+1]) * sigma_prime(z[l, j])"
    assume = { lhs = "...", rhs = "...", text = "..." }   # optional, e.g. one-hot targets

A set may also declare, at its top:

    free = ["eta"]                      # symbols that are no name of the network (a learning
                                        # rate): a formula holds for every value of them
    [roles]                             # names its formulas use, and the role each must have:
    E = "cost"                          # input, target, parameter, constant, node or cost; a
    neto1 = "node"                      # formula applies to a network where each name it uses
    w5 = "parameter"                    # exists with its role (with its `when`, if any)

Template language (the whitelist parser, plus indexing):
  `w[l,j,k] b[l,j] z[l,j] a[l,j] x[k] y[j] t[j]` name the network's symbols
  (`a[1, k]` is the input x_k, `t` is the book's name for the target y);
  `delta[l, j]` is D(C, z[l, j]); `D(X, v)` is ∂X/∂v through the graph;
  `C`, `C0`, `lmbda`, `n` are the cost, the unregularised cost and the L2 constants;
  `L` is the number of layers, `size[l]` the units of layer l;
  `sigma_prime(z[l, j])` is the derivative of the activation of that unit's layer
  and `sigma(z[l, j])` the activation itself; `sum(body, k, lo, hi)` a finite sum;
  any other name is the network's own symbol of that name (free-form sets);
  in a network without index families (free-form, Zhou's threshold networks)
  `v[i, h]` is the name `v1_2` or else `v12`, `gamma[h]` is `gamma2`; in Zhou's
  d-q-l networks `d`, `q` and `l` are the layer sizes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from fractions import Fraction
from typing import Iterator, Mapping

import sympy as sp

from derive.graph import functions as fn
from derive.derivation import Derivations
from derive.shipped import shipped_dir
from derive.errors import FormulaError, InputError
from derive.files import read_toml
from derive.limits import MAX_FORMULA_SET_BYTES
from derive.graph.network import Network, product
from derive.graph.naming import net_input_family
from derive.graph.parser import Vocabulary, parse_formula
from derive.proof.vocabulary import ALIASES, NetworkVocabulary

MAX_INDEX_BITS = 256  # index arithmetic: a power beyond this is no index of any network
MAX_ASSUMPTION_TERMS = 10_000  # an assumption is solved by expanding it


class OutOfBudget(Exception):
    """Building an instance took longer than its budget."""
ROLES = ("input", "target", "parameter", "constant", "node", "cost")


class _D(sp.Function):
    """Placeholder for D(X, v) in a template."""


class _IsMax(sp.Function):
    """Placeholder for ismax(x, pool): [x is the maximum of pool's window], 0 if x is not in it."""


class _Window(sp.Function):
    """Placeholder for window(pool, x): 1 if x is in pool's window, else 0."""


def formulas_dir() -> Path:
    return shipped_dir("formulas")


@dataclass(frozen=True)
class Formula:
    set_id: str
    id: str
    family: str
    title: str
    latex: str
    when: Mapping[str, object]
    ranges: tuple[tuple[sp.Symbol, sp.Expr, sp.Expr], ...]
    lhs: sp.Expr
    rhs: sp.Expr
    lhs_text: str
    rhs_text: str
    assume: tuple[sp.Expr, sp.Expr, str] | None = None
    note: str = ""  # a condition stated with every verdict, e.g. "where no pooling window has a tie"
    roles: Mapping[str, str] = field(default_factory=dict)  # names it uses ↦ the role each must have
    free: frozenset[str] = frozenset()  # symbols that are no name of the network (a rate η)

    def applies_to(self, network: Network) -> bool:
        for key, wanted in self.when.items():
            have = network.facts.get(key)
            options = wanted if isinstance(wanted, list) else [wanted]
            if have not in options:
                return False
        for name, role in self.roles.items():
            found = network.by_name.get(name)
            if found is None or found.name != name or _role(network, found) != role:
                return False
        return True


def _role(network: Network, s: sp.Symbol) -> str | None:
    try:
        return network.role(s)
    except KeyError:
        return None


@dataclass(frozen=True)
class FormulaSet:
    id: str
    title: str
    source: str
    formulas: tuple[Formula, ...]
    path: str = ""
    notes: str = ""

    def applicable(self, network: Network) -> list[Formula]:
        return [f for f in self.formulas if f.applies_to(network)]


@dataclass(frozen=True)
class Instance:
    """A formula at concrete indices: lhs and rhs in the network's own symbols."""

    formula: Formula
    indices: Mapping[str, int]
    lhs: sp.Expr
    rhs: sp.Expr
    assume: Mapping[sp.Symbol, sp.Expr] = field(default_factory=dict)
    unfinished: str = ""  # why it could not be built (its sums outran the budget); lhs, rhs are the templates then

    @property
    def label(self) -> str:
        if not self.indices:
            return self.formula.id
        inner = ", ".join(f"{k}={v}" for k, v in self.indices.items())
        return f"{self.formula.id}[{inner}]"


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def builtin_sets() -> dict[str, FormulaSet]:
    sets = {}
    for path in sorted(formulas_dir().glob("*.toml")):
        s = load_set(path)
        sets[s.id] = s
    return sets


def load_set(path: str | Path) -> FormulaSet:
    path = Path(path)
    where = path.name
    data = read_toml(path, limit=MAX_FORMULA_SET_BYTES, where=where)
    return parse_set(data, where=where, path=str(path))


def parse_set(data: Mapping, *, where: str, path: str = "") -> FormulaSet:
    for key in ("id", "title", "source"):
        if not isinstance(data.get(key), str):
            raise InputError(f"'{key}' (a string) is required", where=where)
    entries = data.get("formula")
    if not isinstance(entries, list) or not entries:
        raise InputError("at least one [[formula]] is required", where=where)
    roles = data.get("roles", {})
    if not isinstance(roles, dict) or not all(r in ROLES for r in roles.values()):
        raise InputError(f"[roles] must map names to one of {', '.join(ROLES)}", where=where)
    free = data.get("free", [])
    if not isinstance(free, list) or not all(isinstance(f, str) and f.isidentifier() for f in free):
        raise InputError("'free' must be a list of names, such as [\"eta\"]", where=where)
    formulas = []
    seen = set()
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise InputError("each [[formula]] must be a table", where=f"{where} [[formula]] #{number}")
        fid = entry.get("id")
        here = f"{where} [[formula]] {fid or '#' + str(number)}"
        if not isinstance(fid, str) or not fid:
            raise InputError("'id' (a string) is required", where=here)
        if fid in seen:
            raise InputError(f"formula id '{fid}' is used twice", where=here)
        seen.add(fid)
        formulas.append(_parse_formula_entry(data["id"], entry, here, roles, frozenset(free)))
    return FormulaSet(
        id=data["id"],
        title=data["title"],
        source=data["source"],
        formulas=tuple(formulas),
        path=path,
        notes=str(data.get("notes", "")),
    )


def _parse_formula_entry(set_id: str, entry: Mapping, where: str, roles: Mapping[str, str] = {},
                         free: frozenset[str] = frozenset()) -> Formula:
    ranges_raw = entry.get("for", {})
    if not isinstance(ranges_raw, dict):
        raise InputError("'for' must be a table such as { j = \"1..size[L]\" }", where=where)
    index_symbols = {}
    ranges = []
    for name, text in ranges_raw.items():
        if not isinstance(text, str) or ".." not in text:
            raise InputError(f"range of '{name}' must look like \"1..size[L]\"", where=f"{where} for.{name}")
        index_symbols[name] = sp.Symbol(name, integer=True)
        lo_text, hi_text = text.split("..", 1)
        lo = _template(lo_text, index_symbols, f"{where} for.{name}")
        hi = _template(hi_text, index_symbols, f"{where} for.{name}")
        ranges.append((index_symbols[name], lo, hi))
    sides = {}
    for key in ("lhs", "rhs"):
        if not isinstance(entry.get(key), str):
            raise InputError(f"'{key}' (a formula string) is required", where=where)
        sides[key] = _template(entry[key], index_symbols, f"{where} {key}")
    assume = None
    if "assume" in entry:
        raw = entry["assume"]
        if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("lhs", "rhs", "text")):
            raise InputError("'assume' must be { lhs = \"…\", rhs = \"…\", text = \"…\" }", where=where)
        assume = (
            _template(raw["lhs"], index_symbols, f"{where} assume.lhs"),
            _template(raw["rhs"], index_symbols, f"{where} assume.rhs"),
            raw["text"],
        )
    when = entry.get("when", {})
    if not isinstance(when, dict):
        raise InputError("'when' must be a table", where=where)
    used = set()
    for side in (sides["lhs"], sides["rhs"], *(assume[:2] if assume else ())):
        used |= {s.name for s in side.free_symbols}
    return Formula(
        set_id=set_id,
        id=entry["id"],
        family=str(entry.get("family", entry["id"])),
        title=str(entry.get("title", "")),
        latex=str(entry.get("latex", "")),
        when=dict(when),
        ranges=tuple(ranges),
        lhs=sides["lhs"],
        rhs=sides["rhs"],
        lhs_text=entry["lhs"],
        rhs_text=entry["rhs"],
        assume=assume,
        note=str(entry.get("note", "")),
        roles={name: role for name, role in roles.items() if name in used},
        free=frozenset(free) & used,
    )


def _template(text: str, index_symbols: Mapping[str, sp.Symbol], where: str) -> sp.Expr:
    """Parse a template; names stay placeholders until a network instantiates them."""

    def name(n: str) -> sp.Expr:
        if n in index_symbols:
            return index_symbols[n]
        return sp.Symbol(n, real=True)

    def indexed(n: str, indices: list) -> sp.Expr:
        return sp.IndexedBase(n)[tuple(indices)]

    def derivative(args: list) -> sp.Expr:
        if len(args) != 2:
            raise ValueError("D(quantity, variable) takes two arguments")
        return _D(*args)

    def finite_sum(args: list) -> sp.Expr:
        if len(args) != 4 or not isinstance(args[1], sp.Symbol):
            raise ValueError("sum(body, index, first, last) takes four arguments, the second a name")
        index = sp.Symbol(args[1].name, integer=True)
        body = args[0].xreplace({args[1]: index})
        return sp.Sum(body, (index, args[2], args[3]))

    def taking(count: int, func):
        def build(args: list) -> sp.Expr:
            if len(args) != count:
                raise ValueError("takes one argument" if count == 1 else "takes two arguments")
            return func(*args)

        return build

    vocabulary = Vocabulary(
        {},
        extra_functions={
            "D": derivative,
            "sum": finite_sum,
            "ismax": taking(2, _IsMax),
            "window": taking(2, _Window),
            "floor": taking(1, sp.floor),
            "ceil": taking(1, sp.ceiling),
        },
        unknown_name=name,
        indexed=indexed,
    )
    try:
        return parse_formula(text, vocabulary)
    except FormulaError as exc:
        raise exc.located(where) from None


# ---------------------------------------------------------------------------
# Instantiation
# ---------------------------------------------------------------------------


class Instantiator:
    """Turns templates into expressions over one network's symbols (their words mean what `shared` says)."""

    def __init__(self, network: Network, derivations: Derivations):
        self.network = network
        self.derivations = derivations
        self.shared = NetworkVocabulary(network, derivations)
        self.zero_outside = set(network.facts.get("zero_outside", ()))
        self.free: frozenset[str] = frozenset()
        self.deadline: float | None = None  # a time.perf_counter() value: building one instance stops there
        self._has_sum: dict[sp.Expr, bool] = {}
        self._bound_symbols: dict[tuple, frozenset] = {}

    def instances(self, formula: Formula, budget: float | None = None) -> Iterator[Instance]:
        """Every instance of `formula`; with a `budget` (seconds), one whose sums take longer is left unfinished."""
        self.free = formula.free
        for env in self._environments(formula.ranges, {}):
            indices = {s.name: v for s, v in env.items()}
            self.deadline = None if budget is None else time.perf_counter() + budget
            try:
                lhs = self.expr(formula.lhs, env)
                rhs = self.expr(formula.rhs, env)
                assume = {}
                if formula.assume is not None:
                    assume = self._assumption(formula.assume, env)
            except LookupError as exc:
                raise InputError(
                    f"formula '{formula.id}' at {env}: {exc.args[0]}", where=formula.set_id
                ) from None
            except OutOfBudget as exc:
                yield Instance(formula, indices, formula.lhs, formula.rhs, unfinished=str(exc))
                continue
            finally:
                self.deadline = None
            yield Instance(formula, indices, lhs, rhs, assume)

    def count(self, formula: Formula) -> int:
        return sum(1 for _ in self._environments(formula.ranges, {}))

    def _environments(self, ranges, env) -> Iterator[dict]:
        if not ranges:
            yield dict(env)
            return
        (symbol, lo, hi), rest = ranges[0], ranges[1:]
        first, last = self.integer(lo, env), self.integer(hi, env)
        for value in range(first, last + 1):
            env[symbol] = value
            yield from self._environments(rest, env)
        env.pop(symbol, None)

    def integer(self, expr: sp.Expr, env: Mapping[sp.Symbol, int]) -> int:
        """Index arithmetic (l - 1, size[l + 1], floor((i + 1)/2), L, K) in plain Python numbers."""
        value = self._rational(expr, env)
        if value.denominator != 1:
            raise LookupError(f"'{expr}' is not a whole number here ({value})")
        return int(value)

    def _rational(self, expr: sp.Expr, env: Mapping[sp.Symbol, int]) -> Fraction:
        if expr.is_Rational:
            return Fraction(int(expr.p), int(expr.q))
        if expr.is_Symbol:
            if expr in env:
                return Fraction(env[expr])
            found = self.shared.integers.get(expr.name)
            if found is not None:
                return Fraction(found)
            raise LookupError(f"'{expr.name}' is not an index or a size here")
        if expr.is_Add:
            return sum((self._rational(a, env) for a in expr.args), Fraction(0))
        if expr.is_Mul:
            result = Fraction(1)
            for a in expr.args:
                result *= self._rational(a, env)
            return result
        if expr.is_Pow and expr.exp.is_Integer:
            base = self._rational(expr.base, env)
            if base == 0 and expr.exp < 0:
                raise LookupError("division by zero in an index")
            bits = max(base.numerator.bit_length(), base.denominator.bit_length())
            if abs(base) != 1 and bits > 1 and abs(int(expr.exp)) * bits > MAX_INDEX_BITS:
                raise LookupError(f"'{expr}' is too large for an index (more than {MAX_INDEX_BITS} bits)")
            return base ** int(expr.exp)
        if isinstance(expr, (sp.floor, sp.ceiling)):
            inner = self._rational(expr.args[0], env)
            return Fraction(math.floor(inner) if isinstance(expr, sp.floor) else math.ceil(inner))
        if isinstance(expr, (sp.Min, sp.Max)):
            pick = min if isinstance(expr, sp.Min) else max
            return pick(self._rational(a, env) for a in expr.args)
        if isinstance(expr, sp.Indexed) and expr.base.label.name == "size":
            (layer,) = (self.integer(i, env) for i in expr.indices)
            if not 1 <= layer <= len(self.shared.sizes):
                raise LookupError(f"there is no layer {layer}")
            return Fraction(self.shared.sizes[layer - 1])
        raise LookupError(f"'{expr}' is not an integer expression")

    def expr(self, template: sp.Expr, env: Mapping[sp.Symbol, int]) -> sp.Expr:
        if template.is_Number:
            return template
        if template.is_Symbol:
            if template in env:
                return sp.Integer(env[template])
            return self.name(template.name)
        if isinstance(template, sp.Indexed):
            family = template.base.label.name
            indices = tuple(self.integer(i, env) for i in template.indices)
            return self.indexed(family, indices)
        if isinstance(template, sp.Sum):
            terms: list[sp.Expr] = []
            self._sum_terms(template.function, template.limits, dict(env), terms)
            return sp.Add(*terms)
        if isinstance(template, _D):
            of, wrt = (self.expr(a, env) for a in template.args)
            return self._adjoint(of, wrt)
        if isinstance(template, (_IsMax, _Window)):
            first, second = (self.expr(a, env) for a in template.args)
            if isinstance(template, _IsMax):
                return self._is_max(first, second)
            return self._window(first, second)
        if isinstance(template, fn.sigma_prime):
            z = self.expr(template.args[0], env)
            return self.network.activation_derivative(z)
        if isinstance(template, fn.sigma):
            z = self.expr(template.args[0], env)
            return self._activation(z)
        args = [self.expr(a, env) for a in template.args]
        if template.is_Mul and len(args) == 2:
            return product(*args)
        return template.func(*args)

    def _sum_terms(self, body, limits, env: dict, terms: list) -> None:
        """Expand a (possibly multiple) Sum; SymPy lists its limits innermost first."""
        if not limits:
            terms.append(self.expr(body, env))
            return
        index, lo, hi = limits[-1]
        for value in range(self.integer(lo, env), self.integer(hi, env) + 1):
            env[index] = value
            self._sum_terms(body, limits[:-1], env, terms)
            if self.deadline is not None and time.perf_counter() > self.deadline:
                raise OutOfBudget(f"expanding its sums took longer than the budget ({len(terms):,} terms so far)")
        env.pop(index, None)

    def sum_terms(self, template: sp.Expr, env: Mapping[sp.Symbol, int], cap: int) -> int:
        """How many terms the sums in `template` expand to at `env` (1 without sums), counting no further than cap + 1.

        Works from the bounds alone: a sum whose inner bounds do not use its
        index counts one value and multiplies, so sum(…, k, 1, 10**9) costs
        no more than a small one; the others are walked, at most cap steps.
        """
        found = self._has_sum.get(template)
        if found is None:
            found = self._has_sum[template] = template.has(sp.Sum)
        if not found:
            return 1
        if isinstance(template, sp.Sum):
            return self._limit_terms(template.function, template.limits, dict(env), cap)
        total = 0
        for a in template.args:
            total += self.sum_terms(a, env, cap - total)
            if total > cap:
                return cap + 1
        return total

    def _limit_terms(self, body, limits, env: dict, cap: int) -> int:
        if not limits:
            return self.sum_terms(body, env, cap)
        (index, lo, hi), rest = limits[-1], limits[:-1]
        first, last = self.integer(lo, env), self.integer(hi, env)
        if last < first:
            return 0
        if index not in self._bounds_in(body, rest):  # the same count for every value of the index
            env[index] = first
            one = self._limit_terms(body, rest, env, cap)
            env.pop(index, None)
            return min(cap + 1, one * (last - first + 1))
        total = 0
        for value in range(first, last + 1):
            env[index] = value
            total += self._limit_terms(body, rest, env, cap - total)
            if total > cap:
                break
        env.pop(index, None)
        return min(total, cap + 1)

    def _bounds_in(self, body, limits) -> frozenset:
        """The symbols that the bounds of `limits` and of the sums inside `body` use."""
        key = (body, tuple(limits))
        found = self._bound_symbols.get(key)
        if found is None:
            symbols = set()
            for _, lo, hi in [*limits, *(l for inner in body.atoms(sp.Sum) for l in inner.limits)]:
                symbols |= lo.free_symbols | hi.free_symbols
            found = self._bound_symbols[key] = frozenset(symbols)
        return found

    def name(self, name: str) -> sp.Expr:
        if name in self.free:
            return sp.Symbol(name, real=True)
        scalar = self.shared.scalar(name)
        if scalar is not None:
            return scalar
        if name in self.shared.integers:
            return sp.Integer(self.shared.integers[name])
        found = self.network.by_name.get(name)
        if found is None:
            raise LookupError(f"the network has no quantity named '{name}'")
        return found

    def indexed(self, family: str, indices: tuple[int, ...]) -> sp.Expr:
        net_inputs = net_input_family(family)
        if net_inputs is not None:  # delta[l, j], deltaF[k, i, j]: ∂C/∂z of that family
            return self.derivations.cost.adjoint(self.indexed(net_inputs, indices))
        table = self.network.families.get(ALIASES.get(family, family))
        if table is None:  # a network without index families: v[1, 2] is v1_2 or v12
            names = ["_".join(str(i) for i in indices)]
            if all(0 <= i < 10 for i in indices) and len(indices) > 1:
                names.append("".join(str(i) for i in indices))
            for name in names:
                found = self.network.by_name.get(family + name)
                if found is not None:
                    return found
            raise LookupError(f"the network has no indexed family '{family}' (nor a name {family + names[-1]})")
        family = ALIASES.get(family, family)
        found = table.get(indices)
        if found is None:
            if family in self.zero_outside:  # zero padding: outside the image is 0
                return sp.S.Zero
            raise LookupError(f"{family}{list(indices)} does not exist in this network")
        return found

    def _window(self, pool: sp.Expr, element: sp.Expr) -> sp.Expr:
        definition = self.network.definitions.get(pool)
        if definition is None:
            raise LookupError(f"window(): {pool} is not a pooling unit")
        return sp.S.One if element in definition.free_symbols else sp.S.Zero

    def _is_max(self, element: sp.Expr, pool: sp.Expr) -> sp.Expr:
        found = self.shared.indicator(element, pool)
        if found is None:
            raise LookupError(f"ismax(): {pool} is not a max-pooling unit")
        return found

    def _adjoint(self, of: sp.Expr, wrt: sp.Expr) -> sp.Expr:
        if not (isinstance(of, sp.Symbol) and isinstance(wrt, sp.Symbol)):
            raise LookupError("D(X, v) needs two names of the network")
        return self.shared.adjoint(of, wrt)

    def _activation(self, z: sp.Symbol) -> sp.Expr:
        """σ(z) in a template: only the node z feeds (a formula set holds for a network's own activations)."""
        node = self.network.activation_node(z)
        if node is None:
            raise LookupError(f"{z} does not feed an elementwise activation")
        return node

    def _assumption(self, assume, env) -> dict[sp.Symbol, sp.Expr]:
        """Solve the assumption for its last leaf symbol, as a substitution."""
        lhs, rhs, _text = assume
        equation = self.expr(lhs, env) - self.expr(rhs, env)
        leaves = [s for s in self.network.leaves if s in equation.free_symbols]
        if not leaves:
            raise LookupError("an assumption must involve inputs, targets or parameters")
        unknown = leaves[-1]
        coefficient = equation.diff(unknown)
        if coefficient.free_symbols or coefficient == 0:
            raise LookupError("an assumption must be linear in its last symbol, with a constant coefficient")
        from derive.proof.algebra import _expanded_terms  # the proof engine's bound on what expand makes

        if _expanded_terms(equation, MAX_ASSUMPTION_TERMS) > MAX_ASSUMPTION_TERMS:
            raise LookupError(f"an assumption must expand to at most {MAX_ASSUMPTION_TERMS:,} terms")
        solution = sp.expand(unknown - equation / coefficient)
        return {unknown: solution}
