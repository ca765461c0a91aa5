"""How a claim names things: the network's names, the file's definitions, rates, δs, D(E, v), σ and ismax.

A claim's formula is read by the whitelist parser (or the LaTeX one) with this
vocabulary, bounded in size, and folded: every subexpression that equals a
node's definition becomes the node. What D, σ, σ′ and the max-pool indicator
mean is shared with formula sets (derive/proof/vocabulary.py); the names of
neuron errors with the derivation (derive/graph/naming.py).
"""

from __future__ import annotations

from functools import cached_property
from typing import Mapping

import sympy as sp

from derive.graph import functions as fn
from derive.derivation import Derivations
from derive.errors import FormulaError, InputError
from derive.claims.latex import parse_latex_counted
from derive.graph.naming import delta_spellings
from derive.graph.network import NAME, Network, symbol
from derive.graph.parser import MAX_EXACT_DIGITS, Vocabulary, check_constant, parse_formula
from derive.proof.vocabulary import NetworkVocabulary

# The parsing work allowed for the file's definitions and assumptions, and again for each claim (its
# formulas and assumptions): LaTeX tokens read (a sum reads its body once per term), or two per
# character of SymPy text. About a second of parsing on the project's machine: a file's parsing
# stays within a budget a claim, the most a single formula may take (MAX_STEPS) and then some.
PARSE_ALLOWANCE = 150_000

# A parsed formula, with its definitions inlined, is at most this deep and this large (as a tree, each
# use of a definition counted again): the parsers' own limits allow about 200 levels and 10,000 nodes,
# and every later step (folding, algebra, printing) recurses on the depth and walks the tree.
MAX_EXPR_DEPTH = 200
MAX_EXPR_NODES = 20_000
# Exponents within exponents (w5**w5**…): the prover's algebra costs O(n²) and more in a tower's height
# (a tower of 40 sigmoids took 13 budgets); LaTeX allows 8 (claims/latex_names.MAX_TOWER).
MAX_TOWER = 16
MAX_EXACT_BITS = int(MAX_EXACT_DIGITS * 3.33) + 1  # the parsers' bound on one number, through definitions too


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
        self.shared = NetworkVocabulary(network, derivations)
        names: dict[str, sp.Expr] = dict(network.by_name)
        for spelling, z in delta_spellings(network).items():  # delta2_1 for z2_1, deltaF_1_23 for zF_1_23
            names.setdefault(spelling, derivations.cost.adjoint(z))
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

    # index letters bound in every LaTeX formula (L, the number of layers), and the claim's own at an instance
    indices: Mapping[str, int] = {}
    # the claims file's example index (`example = "x"`): `a^{x,l}_j` is `a^l_j`, `C_x` the cost (latex_examples)
    example: str | None = None

    def parse(self, text: str, syntax: str, latex_names: Mapping[str, str], where: str,
              indices: Mapping[str, int] | None = None) -> sp.Expr:
        """A formula, with every subexpression that equals a node's definition folded into the node."""
        try:
            self.spend(text, syntax)
            if syntax == "latex":
                parsed, steps = parse_latex_counted(text, self, latex_names, max_steps=self.work_left,
                                                    indices=self.indices if indices is None else indices,
                                                    example=self.example)
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

    # -- functions: their meaning is the shared vocabulary's, their errors a claim's --------
    def _derivative(self, args: list) -> sp.Expr:
        if len(args) != 2:
            raise ValueError("takes two arguments: the quantity and the variable, D(E, w5)")
        quantity, variable = args
        if not isinstance(variable, sp.Symbol) or variable not in self.network.position:
            raise ValueError("the second argument must be a name of the network")
        if any(self.derivations.adjoint_info(s) is not None for s in quantity.free_symbols):
            # D(E, w5) is a symbol standing for a value, not a function of w5: its derivative is not 0
            raise ValueError("a second derivative (D of an expression holding D(…) or a δ) is not supported")
        return self.shared.derivative(quantity, variable)

    def _ismax(self, args: list) -> sp.Expr:
        """ismax(a): [a is the maximum of its pooling window]; ismax(a, p): of pooling unit p's window."""
        if len(args) not in (1, 2):
            raise ValueError("takes the unit, and the pooling unit when the unit lies in several windows: "
                             "ismax(aF_1_1_1) or ismax(aF_1_2_2, aP_1_1_1)")
        pools = self.shared.pools
        if not pools:
            raise ValueError("the network has no max-pooling layer")
        element = args[0]
        if not isinstance(element, sp.Symbol) or element not in self.network.position:
            raise ValueError("the first argument must be a unit of the network, such as aF_1_1_1")
        if len(args) == 2:
            found = self.shared.indicator(element, args[1])
            if found is None:
                raise ValueError(f"{args[1]} is not a max-pooling unit (such as aP_1_1_1)")
            return found
        owners = pools.get(element, [])
        if not owners:
            example = next(iter(pools))
            raise ValueError(f"{element} is not in any max-pooling window (the windows hold units such as {example})")
        if len(owners) > 1:
            shown = ", ".join(str(p) for p in owners)
            raise ValueError(f"{element} lies in the windows of {shown}: name the pooling unit, "
                             f"ismax({element}, {owners[0]})")
        return self.shared.indicator(element, owners[0])

    def _is_max(self, args: list) -> sp.Expr:
        """The derivation's own form is_max(i, a_1, …, a_m), accepted when the a's are a pooling window."""
        if len(args) < 2 or not args[0].is_Integer or not 1 <= int(args[0]) <= len(args) - 1:
            raise ValueError("is_max(i, a_1, ..., a_m) needs an integer 1 <= i <= m; "
                             "or write ismax(aF_1_1_1), the unit is the maximum of its window")
        if not self.shared.is_window(tuple(args[1:])):
            raise ValueError("its units are not a max-pooling window of the network, in order; "
                             "write ismax(aF_1_1_1), the unit is the maximum of its window")
        return fn.is_max(*args)

    def _sigma(self, args: list) -> sp.Expr:
        (z,) = _one(args)
        found = self.shared.activation(z)
        if found is None:
            raise ValueError("σ is ambiguous in this network; write the activation by name (sigmoid, tanh, …)")
        return found

    def _sigma_prime(self, args: list) -> sp.Expr:
        (z,) = _one(args)
        found = self.shared.activation_derivative(z)
        if found is None:
            raise ValueError("σ' is ambiguous in this network; write the derivative out")
        return found


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
            if isinstance(definition, fn.maxpool):  # the book's a^P = max(a^F, …) as a student writes it: \max
                self.exact.setdefault(sp.Max(*definition.args), node)
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


def _one(args: list) -> list:
    if len(args) != 1:
        raise ValueError("takes one argument")
    return args
