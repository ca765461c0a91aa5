"""The LaTeX reader's sums: `\\sum_{k=1}^{3}` expanded term by term, and open bounds `\\sum_{k=1}^{n}` measured."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from derive.errors import FormulaError, ReadingFault
from derive.graph.parser import Token
from derive.claims.latex_examples import network_of
from derive.claims.latex_names import NameReader
from derive.claims.latex_tokens import index_arithmetic

MAX_SUM_TERMS = 1_000  # terms all the sums of one formula expand to, nested ones included


class _Absent(FormulaError):
    """An open-bounded sum whose summand's names do not exist even for its first index."""


@dataclass
class Probe:
    """One reading of a sum's body at one value of `index`: the names read that use an open bound's index."""

    index: str
    records: list = field(default_factory=list)  # (name shown, the indices it uses, whether it exists)

    @property
    def found(self) -> list[str]:
        return [shown for shown, uses, exists in self.records if self.index in uses and exists]

    @property
    def missing(self) -> list[str]:
        return [shown for shown, uses, exists in self.records if self.index in uses and not exists]


WIDTH_NAMES = {"n", "s", "N", "M"}  # n_l (Nielsen's course notes), s_{l+1} (UFLDL), N_l, M_l: layer l's width


@dataclass(frozen=True)
class WidthBound:
    text: str  # as the claim wrote it, with the layer's number: n_{3}
    layer: int
    column: int

    def __str__(self) -> str:
        return self.text


class SumReader(NameReader):
    """Reads sums; the formula parser built on it supplies `product`, each term's reading."""

    sum_terms: int  # terms the formula's sums have expanded to so far

    def sum(self) -> sp.Expr:
        """`\\sum_{k=1}^{3}`, `\\sum_{k=1}^{n}`, or without bounds `\\sum_k`, `\\sum_{i,j}` (each from 1, open)."""
        command = self.advance()
        self.enter()
        bounds: dict[str, object] = {}
        while (self.at("_") or self.at("^")) and self.token.text not in bounds:
            script = self.advance().text
            bounds[script] = self.lower_bound() if script == "_" else self.upper_bound()
        if "_" not in bounds:
            raise self.error("expected the bounds of the sum, as in \\sum_{k=1}^{n},")
        indices, first = bounds["_"]
        if first is None and "^" in bounds:
            raise FormulaError(f"expected a lower bound with the upper one, as in \\sum_{{{indices[0]}=1}}^{{n}}",
                               column=command.column)
        if first is not None and "^" not in bounds:
            raise self.error("expected the bounds of the sum, as in \\sum_{k=1}^{n},")
        if first is None:  # \sum_k, \sum_{i,j}: each index from 1, as far as the summand's names go
            where = "\\sum_{" + ",".join(indices) + "}"
            specs = [(index, 1, None, where) for index in indices]
        else:
            last = bounds["^"]
            where = f"\\sum_{{{indices[0]}={first}}}^{{{last}}}"
            specs = [(indices[0], first, last, where)]
        for index in indices:
            if index == self.example:
                raise FormulaError(f"a sum over the example index {index} is a sum over the training set; the network "
                                   f"computes one example: write the claim for it ({index} in a script is dropped)",
                                   column=command.column)
            if index in self.indices:
                raise FormulaError(f"the index {index} is already used by an outer sum", column=command.column)
        value = self.expand(specs, self.pos, command)
        self.depth -= 1
        return value

    def expand(self, specs: list, body: int, command: Token) -> sp.Expr:
        """The sum over the first index of `specs`, of the sums over the others, of the product at `body`."""
        if not specs:
            self.pos = body
            return self.product(signed=True)
        (index, first, last, where), rest = specs[0], specs[1:]
        if isinstance(last, WidthBound):
            last = self.width(last, index, first, command, where, lambda: self.expand(rest, body, command))
        elif not isinstance(last, int):
            last = self.open_bound(index, first, last, command, where, lambda: self.expand(rest, body, command))
        count = last - first + 1
        if count < 1:
            raise FormulaError(f"empty sum: the upper bound {last} is below the lower bound {first}",
                               column=command.column)
        self.sum_terms += count
        if self.sum_terms > MAX_SUM_TERMS:
            raise FormulaError(f"the sums expand to more than {MAX_SUM_TERMS:,} terms", column=command.column)
        terms = []
        for value in range(first, last + 1):
            self.indices[index] = value
            self.pos = body
            terms.append(self.expand(rest, body, command))
        del self.indices[index]
        return sp.Add(*terms)

    def lower_bound(self) -> tuple[list[str], int | None]:
        """`{k=1}`: the index and its first value; `k`, `{k}`, `{i,j}`: the indices, and None (no bounds)."""
        if self.token.kind == "letters":
            return [self.first_char().text], None
        self.expect("{")
        indices = [self.index_letter()]
        if self.at("=") and len(indices) == 1:
            self.advance()
            return indices, self.bound(self.script_items, "lower bound")
        while self.at(","):
            self.advance()
            indices.append(self.index_letter())
        if len(set(indices)) != len(indices):
            raise FormulaError("a sum's indices must differ", column=self.token.column)
        self.expect("}", closing="\\sum_{")
        return indices, None

    def index_letter(self) -> str:
        token = self.token
        if token.kind != "letters" or len(token.text) != 1:
            raise self.error("expected a one-letter index, as in \\sum_{k=1}")
        self.advance()
        return token.text

    def upper_bound(self) -> "int | str | WidthBound":
        """An integer, or a name: one [definitions] gives a whole number, or else an open bound (`n`);
        or a layer's width (`n_{l+1}`)."""
        width = self.width_bound()
        if width is not None:
            return width
        start, column = self.pos, self.token.column
        parts = self.plain_script()
        if parts is not None and len(parts) == 1 and len(parts[0]) == 1 and parts[0][0][0] in ("letter", "word"):
            text = parts[0][0][1]
            try:
                value = self.vocabulary.name(text)
            except LookupError:
                value = None
            if isinstance(value, sp.Integer):
                return int(value)
            if value is not None and value.is_number:
                raise FormulaError(f"the upper bound {text} of a sum is {value}, not a whole number", column=column)
            return text
        self.pos = start
        return self.bound(self.plain_script, "upper bound")

    def width_bound(self) -> "WidthBound | None":
        """`n_{l+1}`, `n_l`, `s_{l+1}`, `M_l` (braced or not): the width of a layer, by its number."""
        start = self.pos
        braced = self.at("{")
        if braced:
            self.advance()
        token = self.token
        if not (token.kind == "letters" and token.text in WIDTH_NAMES and self.at("_", self.peek())):
            self.pos = start
            return None
        self.advance()
        self.advance()
        layer = self.bound(self.plain_script, "layer of the bound")
        if braced:
            self.expect("}", closing="^{")
        return WidthBound(f"{token.text}_{{{layer}}}", layer, token.column)

    def width(self, bound: "WidthBound", index: str, first: int, command: Token, where: str, read) -> int:
        """A width bound, accepted when it names the layer the summand's names fix: the last k at which they
        exist must be the layer's width (`\\sum_{k=1}^{n_l}` over the units of layer l+1 is refused)."""
        sizes = network_of(self.vocabulary).facts.get("sizes") if network_of(self.vocabulary) else None
        if not sizes or not 1 <= bound.layer <= len(sizes):
            raise FormulaError(f"{where}: {bound.text} is the width of layer {bound.layer}, which the network does "
                               "not have", column=bound.column)
        last = self.open_bound(index, first, bound.text, command, where, read)
        if last != sizes[bound.layer - 1]:
            raise ReadingFault(f"{where}: {bound.text} is {sizes[bound.layer - 1]}, the width of layer "
                               f"{bound.layer}, but the summand's names run to {index}={last}: the bound names "
                               "another layer than the one the summand sums over", column=bound.column)
        return last

    def open_bound(self, index: str, first: int, bound: str | None, command: Token, where: str, read) -> int:
        """The symbolic upper bound `n` of `\\sum_{k=1}^{n}`: the last k for which the summand's names exist.

        The summand is read for k = first, first + 1, …; n is the last k at which every
        name that uses k exists. Where some of them exist at n + 1 and others do not,
        the bound is ambiguous and refused; so is a summand with no name using k.
        `bound` is None for a sum written without bounds (`\\sum_k`); `read` reads the summand once.
        """
        fix = (f"write the bound as a number or define {bound} in [definitions]" if bound
               else f"write the bounds, as in \\sum_{{{index}=1}}^{{3}}")
        shown = bound or f"the range of {index}"
        body = self.pos
        value = first
        while True:
            if value - first >= MAX_SUM_TERMS:
                raise FormulaError(f"the sum up to {bound} would have more than {MAX_SUM_TERMS:,} terms",
                                   column=command.column)
            probe = Probe(index)
            self.probes.append(probe)
            self.indices[index] = value
            self.pos = body
            try:
                read()
            except FormulaError:
                if not probe.missing:  # a real error, not a consequence of an absent name
                    raise
            finally:
                self.probes.pop()
                del self.indices[index]
            outer = self.probes[-1] if self.probes else None
            if outer is not None and (not probe.missing or value == first):
                outer.records.extend(probe.records)  # what an outer bound learns from this reading
            if probe.missing and probe.found:
                have = ", ".join(sorted(set(probe.found)))
                lack = ", ".join(sorted(set(probe.missing)))
                raise FormulaError(
                    f"{where}: {'the bound ' if bound else ''}{shown} is ambiguous: at {index}={value} the network "
                    f"has {have} but not {lack}; {fix}",
                    column=command.column,
                )
            if probe.missing:
                break
            if not probe.found:
                raise FormulaError(
                    f"{where}: no name in the summand uses {index}, so {shown} is unknown; {fix}",
                    column=command.column,
                )
            value += 1
        if value == first:
            lack = ", ".join(sorted(set(probe.missing)))
            raise _Absent(f"{where}: the network has no {lack}", column=command.column)
        self.pos = body
        return value - 1

    def bound(self, read, what: str) -> int:
        column = self.token.column
        parts = read()
        value = index_arithmetic(parts[0]) if parts is not None and len(parts) == 1 else None
        if value is None:
            raise FormulaError(f"the {what} of a sum must be an integer", column=column)
        return value
