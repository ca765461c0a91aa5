"""Array code from index formulas: a formula set's template, proven for every size, run on numpy arrays.

A template such as batch norm's

    dx[n, d] = gamma[d] / (N sqrt(var[d] + eps)) (N dout[n, d] − Σ_k dout[k, d] − xhat[n, d] Σ_k dout[k, d] xhat[k, d])

names each array by its indices. Compiled here, every value is an array whose axes are labelled by
the index letters it depends on: Σ_k sums the axis labelled k (a product of two arrays summed over
the letters they share is one tensordot or batched matmul, so BLAS does it), everything else
broadcasts by label. The sizes the template names (N, D, T, d, C) are read off the arrays at each
call, so one program serves every batch size, as the template's proof serves every size.

A program is compiled once into a tape of numpy calls, each identical subexpression computed once
(Σ_k dout·xhat serves dgamma and dx). Arrays may carry leading axes the template does not name
(a batch of sequences for attention): they are kept, never summed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import sympy as sp

from derive.kernels.elementwise import KernelError
from derive.proof.formulas import _D

LEAD = sp.Symbol("_lead")  # the label of the leading axis no template names


@dataclass(frozen=True)
class Value:
    slot: int
    labels: tuple[sp.Symbol, ...]


@dataclass(frozen=True)
class Input:
    """An array the program reads: its template's sizes for each named axis, and whether it has the lead axis."""

    sizes: tuple[sp.Symbol, ...]
    lead: bool = False


class Program:
    """Compiled index formulas: `run(arrays)` returns each output as an array in its labels' order."""

    def __init__(self, inputs: Mapping[str, Input], constants: Mapping[sp.Symbol, float] | None = None):
        self.inputs = dict(inputs)
        self.constants = dict(constants or {})
        self._slots = 0
        self._input_slots: dict[str, int] = {}
        self._size_slots: dict[sp.Symbol, int] = {}
        self._label_size: dict[sp.Symbol, sp.Symbol] = {LEAD: sp.Symbol("_lead_size")}
        self._memo: dict[sp.Expr, Value] = {}
        self.steps: list[tuple[int, Callable, tuple[int, ...]]] = []
        self.outputs: list[int] = []
        self.names: list[str] = []
        self._fed: set[str] = set()  # outputs later formulas read as inputs
        self._sources: dict[sp.Symbol, tuple[str, int]] = {}  # a size ↦ an input array and its axis
        for name, spec in self.inputs.items():
            for axis, size in enumerate(spec.sizes):
                self._sources.setdefault(size, (name, axis + int(spec.lead)))

    # -- compiling -------------------------------------------------------------
    def output(self, name: str, expr: sp.Expr, labels: Sequence[sp.Symbol], lead: bool = False,
               feeds: Input | None = None, ranges=()) -> None:
        """Compute `expr` as the output `name`, with axes in the order of `labels` (the lead axis first);
        `feeds`: later formulas read it as the input `name` of these sizes (mu feeds var and xhat);
        `ranges`: the formula's (index, first, last) for its free indices."""
        scoped = {index: _scoped(index, last) for index, _, last in ranges}
        expr, labels = _scope_sums(expr.xreplace(scoped)), [scoped.get(label, label) for label in labels]
        value = self._compile(expr)
        target = ((LEAD,) if lead else ()) + tuple(labels)
        stray = set(value.labels) - set(target)
        if stray:
            raise KernelError(f"{name}: the formula depends on {', '.join(map(str, stray))}, not among its indices")
        aligned = self._align(value, target)
        missing = [label for label in target if label not in value.labels]
        if missing:  # constant along some axes: spread it, as the formula's indices say
            sizes = [self._size_of(label) for label in target]
            aligned = self._step(lambda a, *shape: np.broadcast_to(a, shape).copy(), aligned, *sizes)
        self.outputs.append(aligned)
        self.names.append(name)
        if feeds is not None:
            self.inputs[name] = feeds
            self._input_slots[name] = aligned
            self._fed.add(name)
            for axis, size in enumerate(feeds.sizes):
                self._sources.setdefault(size, (name, axis + int(feeds.lead)))

    def _new(self) -> int:
        self._slots += 1
        return self._slots - 1

    def _step(self, function: Callable, *args: int) -> int:
        out = self._new()
        self.steps.append((out, function, args))
        return out

    def _input(self, name: str) -> int:
        if name not in self._input_slots:
            self._input_slots[name] = self._new()
        return self._input_slots[name]

    def _size_of(self, label: sp.Symbol) -> int:
        return self._size(self._label_size[label])

    def _size(self, size: sp.Symbol) -> int:
        if size not in self._size_slots:
            if size == self._label_size[LEAD]:
                source = next((n, 0) for n, spec in self.inputs.items() if spec.lead)
            elif size in self._sources:
                source = self._sources[size]
            else:
                raise KernelError(f"no array has an axis of size {size}")
            name, axis = source
            self._size_slots[size] = self._step(lambda a, axis=axis: float(a.shape[axis]), self._input(name))
        return self._size_slots[size]

    def _compile(self, expr: sp.Expr) -> Value:
        found = self._memo.get(expr)
        if found is None:
            found = self._memo[expr] = self._build(expr)
        return found

    def _build(self, expr: sp.Expr) -> Value:
        if expr.is_Number:
            return self._constant(float(expr))
        if isinstance(expr, sp.Symbol):
            if expr in self.constants:
                return self._constant(self.constants[expr])
            if expr in self._sources:
                return Value(self._size(expr), ())
            raise KernelError(f"no value for {expr}")
        if isinstance(expr, sp.Indexed):
            return self._array(expr.base.label.name, expr.indices)
        if isinstance(expr, _D):
            quantity = expr.args[1]
            if not isinstance(quantity, sp.Indexed):
                raise KernelError(f"{expr} is not the gradient of an array's entry")
            return self._array("d" + quantity.base.label.name, quantity.indices)
        if isinstance(expr, sp.Add):
            return self._elementwise(np.add, [self._compile(a) for a in expr.args])
        if isinstance(expr, sp.Mul):
            return self._elementwise(np.multiply, [self._compile(a) for a in expr.args])
        if isinstance(expr, sp.Pow):
            return self._power(self._compile(expr.base), expr.exp)
        if isinstance(expr, sp.exp):
            return self._unary(np.exp, expr.args[0])
        if isinstance(expr, sp.log):
            return self._unary(np.log, expr.args[0])
        if isinstance(expr, sp.Sum):
            return self._sum(expr)
        raise KernelError(f"no array code for {type(expr).__name__} in {expr}")

    def _constant(self, number: float) -> Value:
        return Value(self._step(lambda: number), ())

    def _array(self, name: str, indices) -> Value:
        spec = self.inputs.get(name)
        if spec is None:
            raise KernelError(f"the formula reads {name}, which this stage does not have")
        if len(indices) != len(spec.sizes) or len(set(indices)) != len(indices) or not all(
                isinstance(i, sp.Symbol) for i in indices):
            raise KernelError(f"{name}{list(indices)}: each index must be a distinct letter, one per axis")
        for index, size in zip(indices, spec.sizes):
            known = self._label_size.setdefault(index, size)
            if known != size:
                raise KernelError(f"the index {index} runs over both {known} and {size}")
        return Value(self._input(name), ((LEAD,) if spec.lead else ()) + tuple(indices))

    def _unary(self, function, argument) -> Value:
        value = self._compile(argument)
        return Value(self._step(function, value.slot), value.labels)

    def _power(self, base: Value, exponent: sp.Expr) -> Value:
        if not exponent.is_Number:
            raise KernelError(f"a power with the exponent {exponent} has no array code here")
        if exponent == 2:
            function = np.square
        elif exponent == sp.Rational(1, 2):
            function = np.sqrt
        elif exponent == -1:
            function = np.reciprocal
        elif exponent == sp.Rational(-1, 2):
            function = lambda a: 1.0 / np.sqrt(a)  # noqa: E731
        else:
            number = float(exponent)
            function = lambda a: np.power(a, number)  # noqa: E731
        return Value(self._step(lambda a: function(a) if isinstance(a, np.ndarray) else function(np.float64(a)),
                                base.slot), base.labels)

    def _union(self, values: Sequence[Value]) -> tuple[sp.Symbol, ...]:
        labels: list[sp.Symbol] = []
        for value in values:
            labels += [label for label in value.labels if label not in labels]
        if LEAD in labels:  # the lead axis first, as every array has it
            labels.remove(LEAD)
            labels.insert(0, LEAD)
        return tuple(labels)

    def _align(self, value: Value, target: tuple[sp.Symbol, ...]) -> int:
        """`value`'s array with its axes in `target`'s order, size 1 where it does not depend on a label."""
        present = [label for label in target if label in value.labels]
        permutation = tuple(value.labels.index(label) for label in present)
        expand = tuple(slice(None) if label in value.labels else None for label in target)
        if not value.labels or (permutation == tuple(range(len(permutation))) and None not in expand):
            return value.slot
        if permutation == tuple(range(len(permutation))):
            return self._step(lambda a: a[expand], value.slot)
        return self._step(lambda a: a.transpose(permutation)[expand], value.slot)

    def _elementwise(self, function, values: list[Value]) -> Value:
        target = self._union(values)
        slots = [self._align(v, target) for v in values]
        result = slots[0]
        for slot in slots[1:]:
            result = self._step(function, result, slot)
        return Value(result, target)

    def _sum(self, expr: sp.Sum) -> Value:
        body, limits = expr.function, expr.limits
        summed = []
        for index, first, last in limits:
            if first != 1:
                raise KernelError(f"a sum over {index} from {first}: only sums from 1 over a whole axis are compiled")
            summed.append((index, last))
        factors = sp.Mul.make_args(body)
        values = [self._compile(f) for f in factors]
        for index, last in summed:
            size = self._label_size.get(index)
            if size is not None and sp.expand(size - last) != 0:
                raise KernelError(f"the sum over {index} runs to {last}, but its axis has {size} entries")
        indices = [index for index, _ in summed]
        arrays = [v for v in values if v.labels]
        scalars = [v for v in values if not v.labels]
        present = {label for v in arrays for label in v.labels}
        inside = [i for i in indices if i in present]
        if len(arrays) == 2 and inside:
            value = self._contract(arrays[0], arrays[1], inside)
        elif arrays:
            value = self._elementwise(np.multiply, arrays)
            if inside:
                value = self._reduced(value, inside)
        else:
            value = None
        for index, last in summed:  # a summand that does not depend on the index: times the count
            if index not in present:
                count = Value(self._size(last), ()) if isinstance(last, sp.Symbol) else self._compile(last)
                value = count if value is None else self._elementwise(np.multiply, [value, count])
        if scalars:
            value = self._elementwise(np.multiply, [value, *scalars])
        return value

    def _contract(self, a: Value, b: Value, indices: list[sp.Symbol]) -> Value:
        """Σ over `indices` of a·b: a tensordot when no other label is shared, else a batched matmul or einsum."""
        summed = [i for i in indices if i in a.labels and i in b.labels]
        only_a = [i for i in indices if i in a.labels and i not in b.labels]
        only_b = [i for i in indices if i in b.labels and i not in a.labels]
        if only_a or only_b:  # summed on one side only: sum it there first
            if only_a:
                a = self._reduced(a, only_a)
            if only_b:
                b = self._reduced(b, only_b)
            if not summed:
                return self._elementwise(np.multiply, [a, b])
        shared = [label for label in a.labels if label in b.labels and label not in summed]
        kept_a = [label for label in a.labels if label not in summed]
        kept_b = [label for label in b.labels if label not in summed and label not in shared]
        if not shared:
            axes = ([a.labels.index(i) for i in summed], [b.labels.index(i) for i in summed])
            return Value(self._step(lambda x, y: np.tensordot(x, y, axes=axes), a.slot, b.slot),
                         tuple(kept_a + kept_b))
        letters = {label: chr(ord("a") + n) for n, label in enumerate(self._union([a, b]))}
        out = tuple(shared + [label for label in kept_a if label not in shared] + kept_b)
        if len(summed) == 1 and len(a.labels) == len(b.labels) == len(shared) + 2:
            # a batch of matrix products: matmul on (shared…, row, k) @ (shared…, k, col)
            row = next(label for label in a.labels if label not in shared and label not in summed)
            col = next(label for label in b.labels if label not in shared and label not in summed)
            left = self._align(a, tuple(shared) + (row, summed[0]))
            right = self._align(b, tuple(shared) + (summed[0], col))
            return Value(self._step(np.matmul, left, right), tuple(shared) + (row, col))
        subscripts = ("".join(letters[label] for label in a.labels) + "," + "".join(letters[label] for label in b.labels)
                      + "->" + "".join(letters[label] for label in out))
        return Value(self._step(lambda x, y: np.einsum(subscripts, x, y), a.slot, b.slot), out)

    def _reduced(self, value: Value, indices: list[sp.Symbol]) -> Value:
        axes = tuple(value.labels.index(i) for i in indices)
        return Value(self._step(lambda a: np.add.reduce(a, axis=axes), value.slot),
                     tuple(label for label in value.labels if label not in indices))

    # -- running -------------------------------------------------------------------
    def run(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        slots: list = [None] * self._slots
        for name, slot in self._input_slots.items():
            if name not in self._fed:
                slots[slot] = arrays[name]
        for out, function, args in self.steps:
            slots[out] = function(*[slots[a] for a in args])
        return {name: slots[slot] for name, slot in zip(self.names, self.outputs)}


def _scoped(index: sp.Symbol, last: sp.Expr) -> sp.Symbol:
    """The index as a label that knows its range: two formulas' k over N and k over M are two labels, while
    the same Σ_k over N in two formulas is one subexpression, computed once."""
    return sp.Symbol(f"{index.name}:{last}")


def _scope_sums(expr: sp.Expr) -> sp.Expr:
    def scoped(node: sp.Sum) -> sp.Expr:
        body, limits = node.function, []
        for index, first, last in node.limits:
            label = _scoped(index, last)
            body = body.xreplace({index: label})
            limits.append((label, first, last))
        return sp.Sum(body, *limits)
    return expr.replace(lambda e: isinstance(e, sp.Sum), scoped)

