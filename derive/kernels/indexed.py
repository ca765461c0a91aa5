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

import operator
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import sympy as sp

from derive.kernels.elementwise import BUFFERED_SIZE, KernelError
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
        self._preference: tuple[sp.Symbol, ...] = ()  # the labels of the output being compiled
        self._ones_cache: dict = {}
        self._function: Callable | None = None  # the tape as generated code, made at the first run
        self._buffers: dict[int, np.ndarray] = {}  # a step's large result, kept for its next call
        self._read: list[str] = []
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
        target = ((LEAD,) if lead else ()) + tuple(labels)
        self._preference = target
        value = self._compile(expr)
        stray = set(value.labels) - set(target)
        if stray:
            raise KernelError(f"{name}: the formula depends on {', '.join(map(str, stray))}, not among its indices")
        aligned = self._align(value, target)
        if aligned != value.slot and set(value.labels) == set(target):  # a transposed view: made contiguous once
            aligned = self._step(np.ascontiguousarray, aligned)
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
        """`expr`'s value, computed once per form: x[k, d] − mu[d] under Σ_k and x[n, d] − mu[d] in xhat are one
        array, its free letters renamed in order (the same size for each, so that the arrays match)."""
        free = _free_letters(expr, self._sizes_of)
        if any(size is None for size in free.values()):
            found = self._memo.get(expr)
            if found is None:
                found = self._memo[expr] = self._build(expr)
            return found
        canonical = {letter: sp.Symbol(f"_{n}:{size}") for n, (letter, size) in enumerate(free.items())}
        key = ("renamed", expr.xreplace(canonical))
        found = self._memo.get(key)
        if found is None:
            value = self._build(expr)
            self._memo[key] = Value(value.slot, tuple(canonical.get(label, label) for label in value.labels))
            return value
        back = {renamed: letter for letter, renamed in canonical.items()}
        return Value(found.slot, tuple(back.get(label, label) for label in found.labels))

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
            return self._sum_of_terms(expr.args)
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

    def _sizes_of(self, name: str):
        spec = self.inputs.get(name)
        return None if spec is None else spec.sizes

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
        if not value.labels:  # a scalar stays a Python float: it never widens a float32 array
            return Value(self._step(lambda a: float(function(a)), value.slot), ())
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
        if not base.labels:
            return Value(self._step(lambda a: float(function(float(a))), base.slot), ())
        return Value(self._step(function, base.slot), base.labels)

    def _order(self, labels) -> tuple[sp.Symbol, ...]:
        """Labels in the order the output being compiled wants (the lead axis first), so that its arrays come
        out contiguous; others after, in the order met."""
        wanted = {label: rank for rank, label in enumerate(self._preference)}
        return tuple(sorted(labels, key=lambda label: (label != LEAD, wanted.get(label, len(wanted)))))

    def _union(self, values: Sequence[Value]) -> tuple[sp.Symbol, ...]:
        """The labels of an elementwise result: the layout of the operand with the most axes, so that the
        largest array is read in its own order (no transpose), then any others."""
        labels: list[sp.Symbol] = []
        for value in sorted(values, key=lambda v: -len(v.labels)):
            labels += [label for label in value.labels if label not in labels]
        return tuple(labels)

    def _align(self, value: Value, target: tuple[sp.Symbol, ...]) -> int:
        """`value`'s array with its axes in `target`'s order, size 1 where it does not depend on a label."""
        present = [label for label in target if label in value.labels]
        permutation = tuple(value.labels.index(label) for label in present)
        if not value.labels or (permutation == tuple(range(len(permutation))) and len(present) == len(target)):
            return value.slot
        if permutation == tuple(range(len(permutation))):
            if target[-len(present):] == tuple(present):  # leading axes only: numpy broadcasts those itself
                return value.slot
            expand = tuple(slice(None) if label in value.labels else None for label in target)
            return self._step(lambda a: a[expand], value.slot)
        expand = tuple(slice(None) if label in value.labels else None for label in target)
        return self._step(lambda a: a.transpose(permutation)[expand], value.slot)

    def _elementwise(self, function, values: list[Value]) -> Value:
        if len(values) == 1:
            return values[0]
        scalars = [v for v in values if not v.labels]
        arrays = [v for v in values if v.labels]
        if function is np.subtract:  # a − b, in this order
            target = self._union(values)
            slots = [self._align(v, target) if v.labels else v.slot for v in values]
            return Value(self._step(np.subtract, *slots), target)
        scalar_function = operator.add if function is np.add else operator.mul
        result = None
        if scalars:  # folded among themselves as Python floats first: one array operation for all of them
            result = scalars[0].slot
            for value in scalars[1:]:
                result = self._step(scalar_function, result, value.slot)
        if not arrays:
            return Value(result, ())
        # the smallest operands first (γ/(N·sqrt(var + ε)) on a row of D before the N×D array), the scalar
        # folded into the smallest: the large arrays see as few operations as the formula allows
        arrays = sorted(arrays, key=lambda v: len(v.labels))
        current = arrays[0]
        if result is not None:
            current = Value(self._step(function, current.slot, result), current.labels)
        for value in arrays[1:]:
            target = self._union([current, value])
            current = Value(self._step(function, self._align(current, target), self._align(value, target)), target)
        return current

    def _sum_of_terms(self, terms) -> Value:
        """a + b − c …: a term −X is subtracted (one array operation, not a negation and an addition)."""
        added = [self._compile(t) for t in terms if not _negated(t)]
        taken = [self._compile(-t) for t in terms if _negated(t)]
        if not added:
            return self._elementwise(np.multiply, [self._constant(-1.0), self._sum_of_terms([-t for t in terms])])
        value = self._elementwise(np.add, added)
        for term in taken:
            value = self._elementwise(np.subtract, [value, term]) if value.labels or term.labels else Value(
                self._step(operator.sub, value.slot, term.slot), ())
        return value

    def _sum(self, expr: sp.Sum) -> Value:
        body, limits = expr.function, expr.limits
        summed = []
        for index, first, last in limits:
            if first != 1:
                raise KernelError(f"a sum over {index} from {first}: only sums from 1 over a whole axis are compiled")
            summed.append((index, last))
        values = [self._compile(f) for f in sp.Mul.make_args(body)]
        for index, last in summed:
            size = self._label_size.get(index)
            if size is not None and sp.expand(size - last) != 0:
                raise KernelError(f"the sum over {index} runs to {last}, but its axis has {size} entries")
        indices = [index for index, _ in summed]
        arrays = _paired(self, [v for v in values if v.labels])
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
        """Σ over `indices` of a·b: a matrix product where the labels allow (BLAS), else multiply and reduce."""
        only_a = [i for i in indices if i in a.labels and i not in b.labels]
        only_b = [i for i in indices if i in b.labels and i not in a.labels]
        a = self._reduced(a, only_a) if only_a else a  # summed on one side only: sum it there first
        b = self._reduced(b, only_b) if only_b else b
        summed = [i for i in indices if i in a.labels and i in b.labels]
        shared = [label for label in a.labels if label in b.labels and label not in summed]
        rest_a = [label for label in a.labels if label not in summed and label not in shared]
        rest_b = [label for label in b.labels if label not in summed and label not in shared]
        if len(summed) != 1 or len(rest_a) > 1 or len(rest_b) > 1 or not (rest_a or rest_b):
            product = self._elementwise(np.multiply, [a, b])  # Σ_k a·b with nothing else to multiply: a dot per row
            return self._reduced(product, summed) if summed else product
        if rest_a and rest_b and self._order(rest_a + rest_b) != tuple(rest_a + rest_b):
            a, b, rest_a, rest_b = b, a, rest_b, rest_a  # the product's axes in the wanted order
        k = summed[0]
        left = self._align(a, tuple(shared) + tuple(rest_a) + (k,))
        right = self._align(b, tuple(shared) + (k,) + tuple(rest_b))
        if not rest_b:  # (…, r, k) @ (…, k) is a matrix-vector product
            return Value(self._step(np.matmul, left, right), tuple(shared + rest_a))
        if not rest_a:  # (…, k) @ (…, k, c)
            return Value(self._step(np.matmul, left, right), tuple(shared + rest_b))
        return Value(self._step(np.matmul, left, right), tuple(shared + rest_a + rest_b))

    def _reduced(self, value: Value, indices: list[sp.Symbol]) -> Value:
        axes = tuple(value.labels.index(i) for i in indices)
        kept = tuple(label for label in value.labels if label not in indices)
        if len(value.labels) == 2 and len(axes) == 1:  # a 2-D sum as a matrix-vector product with ones (BLAS)
            ones = self._ones
            if axes == (0,):
                return Value(self._step(lambda a: ones(a.shape[0], a.dtype) @ a, value.slot), kept)
            return Value(self._step(lambda a: a @ ones(a.shape[1], a.dtype), value.slot), kept)
        return Value(self._step(lambda a: np.add.reduce(a, axis=axes), value.slot), kept)

    def _ones(self, count: int, dtype) -> np.ndarray:
        found = self._ones_cache.get((count, dtype))
        if found is None:
            found = self._ones_cache[(count, dtype)] = np.ones(count, dtype=dtype)
        return found

    # -- running -------------------------------------------------------------------
    def run(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._function is None:
            self._function = self._generate()
        outputs = self._function(*[arrays[name] for name in self._read])
        return dict(zip(self.names, outputs))

    def _generate(self) -> Callable:
        """The tape as one Python function: a line per step, each step's callable bound by a generated
        name (`f12`), the slots as locals (`s12`). No name from a formula reaches the source."""
        self._read = [name for name in self._input_slots if name not in self._fed]
        arguments = ", ".join(f"s{self._input_slots[name]}" for name in self._read)
        namespace: dict = {}
        lines = [f"def program({arguments}):"]
        for out, function, args in self.steps:
            namespace[f"f{out}"] = _buffered(function, self._buffers, out) if function in BUFFERED else function
            lines.append(f"    s{out} = f{out}({', '.join(f's{a}' for a in args)})")
        lines.append(f"    return ({''.join(f's{slot}, ' for slot in self.outputs)})")
        exec(compile("\n".join(lines), "<derive.kernels.indexed>", "exec"), namespace)  # noqa: S102
        return namespace["program"]


BUFFERED = {np.add, np.subtract, np.multiply, np.square, np.sqrt, np.reciprocal, np.exp, np.log, np.matmul}


def _buffered(ufunc, buffers: dict, key: int) -> Callable:
    """`ufunc` writing a large result into the array it wrote at the previous call of this program: a fresh
    array past glibc's mmap threshold costs page faults on every step (see elementwise.BUFFERED_SIZE). A
    program's results are therefore valid until its next run: a kernel is not re-entrant."""
    def call(*args):
        first = args[0]
        big = any(isinstance(a, np.ndarray) and a.size >= BUFFERED_SIZE for a in args)
        if not big:
            return ufunc(*args)
        if ufunc is np.matmul:
            left, right = args
            if left.ndim < 2 or right.ndim < 2:  # a matrix-vector product: a small result
                return ufunc(*args)
            shape = (*np.broadcast_shapes(left.shape[:-2], right.shape[:-2]), left.shape[-2], right.shape[-1])
        elif all(np.shape(a) == first.shape for a in args[1:]):
            shape = first.shape
        else:
            shape = np.broadcast_shapes(*[np.shape(a) for a in args])
        buffer = buffers.get(key)
        if buffer is None or buffer.shape != shape:
            buffer = buffers[key] = np.empty(shape, dtype=np.result_type(*args))
        return ufunc(*args, out=buffer)
    return call


def _paired(program: "Program", arrays: list[Value]) -> list[Value]:
    """A sum's factors multiplied first where two have the same letters (dout·σ'(z) before · W): what is left
    to contract is then two arrays, a matrix product, not one array of every letter."""
    arrays = list(arrays)
    while len(arrays) > 2:
        pair = next(((a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:]
                     if set(a.labels) == set(b.labels)), None)
        if pair is None:
            break
        arrays.remove(pair[0])
        arrays.remove(pair[1])
        arrays.append(program._elementwise(np.multiply, list(pair)))
    return arrays


def _free_letters(expr: sp.Expr, sizes_of: Callable) -> dict[sp.Symbol, sp.Symbol | None]:
    """The index letters of `expr` not bound by a sum inside it, in the order first met, each with the size
    of the axis it indexes (None where no array says)."""
    found: dict[sp.Symbol, sp.Symbol | None] = {}

    def visit(node, bound):
        if isinstance(node, _D):
            node = node.args[1]
            sizes = sizes_of("d" + node.base.label.name) if isinstance(node, sp.Indexed) else None
        elif isinstance(node, sp.Indexed):
            sizes = sizes_of(node.base.label.name)
        else:
            sizes = ()
        if isinstance(node, sp.Indexed):
            for position, index in enumerate(node.indices):
                if isinstance(index, sp.Symbol) and index not in bound and index not in found:
                    found[index] = sizes[position] if sizes and position < len(sizes) else None
            return
        if isinstance(node, sp.Sum):
            bound = bound | {limit[0] for limit in node.limits}
        for arg in node.args:
            visit(arg, bound)

    visit(expr, frozenset())
    return found


def _negated(term: sp.Expr) -> bool:
    return term.is_Mul and term.args[0].is_Number and term.args[0].is_negative


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

