"""Elementwise formulas as numbers: the numeric implementations of the registry's functions, and
per-layer formulas (σ, σ', δ^L, a pooling window's) lambdified or generated as ufunc calls.

Symbols are renamed to fixed identifiers (`_s0`, `_s1`, …) before `lambdify`, which execs the
source it generates: a user's symbol name never reaches it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import sympy as sp

from derive.errors import DeriveError
from derive.graph import functions as fn
from derive.graph import registry


class KernelError(DeriveError):
    """The network cannot be compiled into a numeric kernel (generic σ, an unsupported layout)."""


def quiet(function: Callable) -> Callable:
    """`function` with numpy's floating-point warnings off: overflow and 0/0 give inf and nan, for the caller to check."""
    return np.errstate(all="ignore")(function)


def _step(z, at_zero=0):
    return (z > 0).astype(z.dtype) if isinstance(z, np.ndarray) else float(z > 0)


# The named functions' implementations come from their entries in registry.py.
NUMPY_FUNCTIONS = {**registry.NUMPY_FUNCTIONS, "Heaviside": _step}
MATH_FUNCTIONS = {**registry.MATH_FUNCTIONS, "Heaviside": lambda z, h=0: float(z > 0)}

# The expressions the free-form kernel's code generator may evaluate as one formula of stacked arrays.
PACKABLE = (sp.Add, sp.Mul, sp.Pow, *registry.PACKABLE_CLASSES, sp.Heaviside, sp.Abs)

BUFFERED_SIZE = 16384  # elements (128 KiB of float64, glibc's default mmap threshold): from here on, reuse buffers


class Elementwise:
    """A per-layer formula of equal-shape arrays (σ, σ', δ^L): lambdified, and on large arrays
    evaluated into buffers kept between calls (see _ArrayFormula); `plain` never keeps any."""

    def __init__(self, expr: sp.Expr, arguments: list[sp.Symbol], modules=None):
        self.plain = lambdify_safe(expr, arguments, modules or [NUMPY_FUNCTIONS, "numpy"])
        try:
            self.formula = _ArrayFormula(expr, arguments)
        except NotImplementedError:
            self.formula = None

    def __call__(self, *arrays):
        if self.formula is not None and arrays[0].size >= BUFFERED_SIZE:
            return self.formula(*arrays)
        return self.plain(*arrays)


def lambdify_safe(exprs, arguments: list[sp.Symbol], modules, cse: bool = False) -> Callable:
    """lambdify `exprs` (one or a list) of `arguments`, the arguments renamed to safe names first."""
    safe = [sp.Symbol(f"_s{i}", real=True) for i in range(len(arguments))]
    rename = dict(zip(arguments, safe))
    renamed = [e.xreplace(rename) for e in exprs] if isinstance(exprs, list) else exprs.xreplace(rename)
    for e in renamed if isinstance(renamed, list) else [renamed]:  # SymPy expressions (xreplace made them)
        if e.free_symbols - set(safe):
            raise KernelError(f"an elementwise expression depends on more than {arguments}: {e}")
        if e.atoms(*fn.GENERIC_FUNCTIONS):
            raise KernelError("a generic σ or cost has no numbers: declare a concrete activation and cost to train")
    return sp.lambdify(safe, renamed, modules=modules, cse=cse)


class _ArrayFormula:
    """An elementwise expression over equal-shape arrays, generated as one ufunc call per operation
    writing into buffers kept between calls.

    Large temporaries allocated afresh at every step cost page faults when the memory comes
    from the system each time (the 28×28 conv net ran 3.6× slower for it), so kernels evaluate
    their per-layer formulas (σ, σ', δ^L) this way on large batches. The returned array is a
    buffer: the next call with the same shape overwrites it. Expressions built from other
    functions than those below are evaluated by plain lambdify instead.
    """

    FUNCTIONS = {sp.Abs: "absolute"}

    def __init__(self, expr: sp.Expr, arguments: list[sp.Symbol]):
        self.arguments = list(arguments)
        self.lines: list[str] = []
        self.temporaries = 0
        self.result = self._emit(expr)
        names = ", ".join([f"_a{i}" for i in range(len(arguments))] + [f"_b{j}" for j in range(self.temporaries)])
        source = f"def _formula({names}):\n" + "".join(f"    {line}\n" for line in self.lines) + f"    return {self.result}\n"
        namespace = {name: f for name, f in vars(np).items() if isinstance(f, np.ufunc)}  # the registry's emitters' too
        exec(compile(source, "<derive array formula>", "exec"), namespace)
        self.function = namespace["_formula"]
        self.source = source
        self.buffers: dict[tuple, list[np.ndarray]] = {}

    def __call__(self, *arrays):
        key = (arrays[0].shape, arrays[0].dtype)
        buffers = self.buffers.get(key)
        if buffers is None:
            buffers = self.buffers[key] = [np.empty(*key) for _ in range(self.temporaries)]
        return self.function(*arrays, *buffers)

    # -- code generation: each call returns the name holding the value ----------------------
    def _temporary(self, *operands: str) -> str:
        for name in operands:  # a temporary is used once (the expression is a tree): reuse it
            if name.startswith("_b"):
                return name
        self.temporaries += 1
        return f"_b{self.temporaries - 1}"

    def _op(self, ufunc: str, *operands: str) -> str:
        target = self._temporary(*operands)
        self.lines.append(f"{ufunc}({', '.join(operands)}, out={target})")
        return target

    def _emit(self, e: sp.Expr) -> str:
        if e in self.arguments:
            return f"_a{self.arguments.index(e)}"
        if e.is_Number:
            return repr(float(e))
        if e.is_Add:
            positive = [t for t in e.args if not t.could_extract_minus_sign()]
            negative = [-t for t in e.args if t.could_extract_minus_sign()]
            if not positive:
                return self._op("negative", self._emit(sp.Add(*negative)))
            value = self._emit(positive[0])
            for t in positive[1:]:
                value = self._op("add", value, self._emit(t))
            for t in negative:
                value = self._op("subtract", value, self._emit(t))
            return value
        if e.is_Mul:
            coefficient, factors = e.as_coeff_mul()
            if coefficient == -1:
                return self._op("negative", self._emit(sp.Mul(*factors)))
            value = self._emit(factors[0]) if coefficient == 1 else self._op("multiply", self._emit(factors[0]), repr(float(coefficient)))
            for f in factors[1:]:
                value = self._op("multiply", value, self._emit(f))
            return value
        if e.is_Pow:
            base, exponent = e.args
            if exponent == 2:
                return self._op("square", self._emit(base))
            if exponent == -1:
                return self._op("divide", "1.0", self._emit(base))
            if exponent == sp.Rational(1, 2):
                return self._op("sqrt", self._emit(base))
            return self._op("power", self._emit(base), self._emit(exponent))
        emitter = registry.EMITTERS.get(e.func)
        if emitter is not None and len(e.args) == 1:  # sigmoid, relu, tanh, exp, log, …: registry.py
            return emitter(self, self._emit(e.args[0]))
        if isinstance(e, fn.maxpool):
            value = self._op("maximum", self._emit(e.args[0]), self._emit(e.args[1]))
            for element in e.args[2:]:
                value = self._op("maximum", value, self._emit(element))
            return value
        if isinstance(e, sp.Heaviside):
            at_zero = e.args[1] if len(e.args) > 1 else sp.S.Half
            return self._op("heaviside", self._emit(e.args[0]), repr(float(at_zero)))
        if e.func in self.FUNCTIONS and len(e.args) == 1:
            return self._op(self.FUNCTIONS[e.func], self._emit(e.args[0]))
        raise NotImplementedError(f"no array formula for {e.func}")


