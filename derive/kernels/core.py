"""Numeric kernels generated from the proven symbolic results.

`compile_kernel(network)` returns a `Kernel` whose `value_and_grad(params, x, y)`
computes the mean cost of a mini-batch and its gradient, with no Python loop
over examples. Where the numbers come from:

* Layered and convolutional networks run BP1–BP4 in matrix form, one array
  operation per layer. The structure is read off the symbolic graph and
  checked against it unit by unit (each z is `Σ w a + b` with the expected
  weights, or the convolution's cross-correlation window); every elementwise
  piece is lambdified from the derivation: the activation, its derivative σ'
  as the derivation wrote it (a(1 − a) for the sigmoid), and the output error
  δ^L, taken from the derived closed form of ∂C/∂z^L and reduced exactly by
  `cancel` (a − y for cross-entropy with sigmoid outputs, a·Σy − y for softmax
  with log-likelihood), so the saturating quotients never reach floating point.
  A pooling layer's forward formula and its routing factors (the max mask,
  1/|window|, a/aP) are the pool unit's definition and local partials,
  lambdified over the window's elements.
* Free-form networks lambdify the loss and every gradient together, common
  subexpressions eliminated once (`cse`), vectorised over the batch: weighted
  sums sharing their operands become one matrix product, statements applying
  one formula to a layer's units one formula of (units × batch) arrays, and
  the batch means of all gradients one matrix product of stacked factors
  (see _BatchMeans). At batch 1 a `math`-module scalar kernel avoids numpy's
  per-call overhead.

Large intermediate arrays live in buffers kept between calls (allocating them
afresh each step costs page faults), so a kernel is not re-entrant: use one
per thread.

Symbols are renamed to fixed identifiers (`_s0`, `_s1`, …) before `lambdify`,
which execs the source it generates: a user's symbol name never reaches it.
Sigmoid and softmax are computed without overflow; the loss of softmax with
log-likelihood and of sigmoid with cross-entropy goes through log-sum-exp.
What can still overflow (a user's cost with log or 1/x, parameters driven to
huge values by a large learning rate) comes back as inf or nan, never as a
warning or an exception: kernels run with numpy's floating-point warnings
off, and the batch-1 `math` kernel, which raises on 1/0, log(0) or exp(1000),
hands such an example to the numpy kernel. The caller checks (training does).
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sympy as sp
from numpy.lib.stride_tricks import sliding_window_view

from derive.graph import functions as fn
from derive.graph import registry
from derive.derivation import Derivations
from derive.errors import DeriveError, InputError
from derive.graph.network import Network, product
from derive.graph.registry import safe_sigmoid  # noqa: F401 (part of this module's interface)

DTYPES = {"float64": np.float64, "float32": np.float32}


class KernelError(DeriveError):
    """The network cannot be compiled into a numeric kernel (generic σ, an unsupported layout)."""


# -- numerically safe elementwise functions ------------------------------------------


def _quiet(function: Callable) -> Callable:
    """`function` with numpy's floating-point warnings off: overflow and 0/0 give inf and nan, for the caller to check."""
    return np.errstate(all="ignore")(function)



def _step(z, at_zero=0):
    return (z > 0).astype(z.dtype) if isinstance(z, np.ndarray) else float(z > 0)


# The named functions' implementations come from their entries in registry.py.
NUMPY_FUNCTIONS = {**registry.NUMPY_FUNCTIONS, "Heaviside": _step}
MATH_FUNCTIONS = {**registry.MATH_FUNCTIONS, "Heaviside": lambda z, h=0: float(z > 0)}


BUFFERED_SIZE = 16384  # elements (128 KiB of float64, glibc's default mmap threshold): from here on, reuse buffers


class _Elementwise:
    """A per-layer formula of equal-shape arrays (σ, σ', δ^L): lambdified, and on large arrays
    evaluated into buffers kept between calls (see _ArrayFormula); `plain` never keeps any."""

    def __init__(self, expr: sp.Expr, arguments: list[sp.Symbol], modules=None):
        self.plain = _lambdify_safe(expr, arguments, modules or [NUMPY_FUNCTIONS, "numpy"])
        try:
            self.formula = _ArrayFormula(expr, arguments)
        except NotImplementedError:
            self.formula = None

    def __call__(self, *arrays):
        if self.formula is not None and arrays[0].size >= BUFFERED_SIZE:
            return self.formula(*arrays)
        return self.plain(*arrays)


def _elementwise(expr: sp.Expr, arguments: list[sp.Symbol]) -> _Elementwise:
    return _Elementwise(expr, arguments)


def _lambdify_safe(exprs, arguments: list[sp.Symbol], modules, cse: bool = False) -> Callable:
    """lambdify `exprs` (one or a list) of `arguments`, the arguments renamed to safe names first."""
    safe = [sp.Symbol(f"_s{i}", real=True) for i in range(len(arguments))]
    rename = dict(zip(arguments, safe))
    renamed = [e.xreplace(rename) for e in exprs] if isinstance(exprs, list) else exprs.xreplace(rename)
    for e in renamed if isinstance(renamed, list) else [renamed]:
        if sp.sympify(e).free_symbols - set(safe):
            raise KernelError(f"an elementwise expression depends on more than {arguments}: {e}")
        if sp.sympify(e).atoms(*fn.GENERIC_FUNCTIONS):
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


# -- parameters ------------------------------------------------------------------------


@dataclass
class Block:
    """One named parameter array inside the flat buffer."""

    name: str
    shape: tuple[int, ...]
    offset: int
    symbols: np.ndarray  # the SymPy symbol of each entry, in the block's layout
    fan_in: int = 1
    is_bias: bool = False
    size: int = field(init=False)  # computed once: a kernel takes several views per call
    end: int = field(init=False)

    def __post_init__(self):
        self.size = math.prod(self.shape)
        self.end = self.offset + self.size

    def view(self, flat: np.ndarray) -> np.ndarray:
        return flat[self.offset : self.end].reshape(self.shape)


class Kernel(ABC):
    """value_and_grad(params, x, y) -> (mean cost, gradient), params one flat buffer."""

    backend = "?"

    def __init__(self, network: Network, dtype: str, blocks: list[Block]):
        self.network = network
        self.dtype = np.dtype(DTYPES[dtype])
        self.blocks = blocks
        self.size = sum(b.size for b in blocks)
        self.constants: dict[str, float] = {}
        self._buffers: dict[tuple, np.ndarray] = {}

    def _ones(self, n: int) -> np.ndarray:
        """n ones: a sum over rows or columns as a matrix-vector product (BLAS), faster than np.sum on small arrays."""
        ones = self._buffers.get(("ones", n))
        if ones is None:
            ones = self._buffers[("ones", n)] = np.ones(n, dtype=self.dtype)
        return ones

    def _workspace(self, *key, shape, zero: bool = False) -> np.ndarray:
        """A scratch array kept between calls (see _ArrayFormula for why); `key` names its use."""
        buffer = self._buffers.get((*key, shape))
        if buffer is None:
            buffer = self._buffers[(*key, shape)] = np.empty(shape, dtype=self.dtype)
        if zero:
            buffer.fill(0)
        return buffer

    # parameters
    def init(self, seed: int = 0) -> np.ndarray:
        """Nielsen's initialisation: weights N(0, 1/fan_in), biases N(0, 1)."""
        rng = np.random.default_rng(seed)
        params = np.empty(self.size, dtype=self.dtype)
        for block in self.blocks:
            scale = 1.0 if block.is_bias else 1.0 / math.sqrt(block.fan_in)
            block.view(params)[...] = rng.standard_normal(block.shape) * scale
        return params

    def views(self, params: np.ndarray) -> dict[str, np.ndarray]:
        return {b.name: b.view(params) for b in self.blocks}

    def from_values(self, values: dict[sp.Symbol, float]) -> np.ndarray:
        params = np.empty(self.size, dtype=self.dtype)
        for block in self.blocks:
            view = block.view(params)
            for index, s in np.ndenumerate(block.symbols):
                view[index] = float(values[s])
        return params

    def to_values(self, params: np.ndarray) -> dict[sp.Symbol, float]:
        values = {}
        for block in self.blocks:
            view = block.view(params)
            for index, s in np.ndenumerate(block.symbols):
                values[s] = float(view[index])
        return values

    # the work
    @abstractmethod
    def value_and_grad(self, params: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """The batch's mean cost and its gradient, as a flat buffer like `params`."""

    @abstractmethod
    def predict(self, params: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The output activations, one row per example."""

    def _cast(self, array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array, dtype=self.dtype)


def compile_kernel(network: Network, dtype: str = "float64", backend: str | None = None) -> Kernel:
    """A kernel for `network`: "layered", "cnn" or "free-form" (default: by the network's kind)."""
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}")
    backend = backend or {"layered": "layered", "cnn": "cnn"}.get(network.kind, "free-form")
    derivations = Derivations(network)
    if backend == "layered":
        return LayeredKernel(network, derivations, dtype)
    if backend == "cnn":
        return ConvolutionalKernel(network, derivations, dtype)
    if backend == "free-form":
        return FreeFormKernel(network, derivations, dtype)
    raise InputError(f"unknown kernel backend '{backend}' (known: layered, cnn, free-form)")


# ---------------------------------------------------------------------------
# Dense layers and the output (shared by the layered and convolutional kernels)
# ---------------------------------------------------------------------------


@dataclass
class _Dense:
    weight: Block
    bias: Block
    zs: list[sp.Symbol]
    activation: Callable | None  # z -> a (None: softmax)
    derivative: Callable | None  # (z, a) -> σ'(z)


def _activation_pieces(network: Network, zs: list[sp.Symbol], nodes: list[sp.Symbol]):
    """The layer's activation and σ' as lambdified patterns, checked for every unit."""
    Z, A = sp.Symbol("Z", real=True), sp.Symbol("A", real=True)
    first_z, first_a = zs[0], nodes[0]
    definition = network.definitions[first_a]
    if isinstance(definition, fn.softmax):
        return None, None
    forward = definition.xreplace({first_z: Z})
    derivative = network.local_partials(first_a)[first_z].xreplace({first_z: Z, first_a: A})
    for z, a in zip(zs[1:], nodes[1:]):
        if network.definitions[a].xreplace({z: Z}) != forward:
            raise KernelError(f"the units of {a}'s layer do not share one activation")
    return _elementwise(forward, [Z]), _elementwise(derivative, [Z, A])


def _dense_blocks(network: Network, label_w: str, label_b: str, zs, sources, offset: int) -> tuple[Block, Block]:
    """Weight and bias blocks of a dense layer, after checking z_j = Σ_k w_jk s_k + b_j for every unit."""
    families = network.families
    weights = np.empty((len(zs), len(sources)), dtype=object)
    biases = np.empty(len(zs), dtype=object)
    w_index = {s: idx for idx, s in families[label_w].items()}
    b_index = {s: idx for idx, s in families[label_b].items()}
    for j, z in enumerate(zs):
        definition = network.definitions[z]
        terms = {}
        bias = None
        for term in sp.Add.make_args(definition):
            if term in b_index:
                bias = term
                continue
            w, s = _weight_and_source(term, w_index)
            terms[s] = w
        if bias is None or len(terms) != len(sources):
            raise KernelError(f"{z} is not Σ w·a + b over the previous layer")
        for k, s in enumerate(sources):
            if s not in terms:
                raise KernelError(f"{z} does not use {s}")
            weights[j, k] = terms[s]
        biases[j] = bias
    weight = Block(label_w.replace("w", "W", 1), weights.shape, offset, weights, fan_in=len(sources))
    bias = Block(label_b, biases.shape, offset + weight.size, biases, is_bias=True)
    return weight, bias


def _weight_and_source(term: sp.Expr, w_index) -> tuple[sp.Symbol, sp.Symbol]:
    factors = term.args if term.is_Mul else ()
    if len(factors) != 2:
        raise KernelError(f"{term} is not a weight times a unit")
    a, b = factors
    return (a, b) if a in w_index else (b, a)


class _Output:
    """The cost and δ^L = ∂C/∂z^L, from the derivation, for a batch."""

    def __init__(self, network: Network, derivations: Derivations, zs, outputs, activation_name: str):
        self.network = network
        facts = network.facts
        self.cost_kind = facts["cost"]
        if self.cost_kind == "generic" or activation_name == "sigma":
            raise KernelError("a generic σ or cost has no numbers: declare a concrete activation and cost to train")
        targets = list(network.targets)
        Zs, As, Ys = (sp.Symbol(n, real=True) for n in ("Z", "A", "Y"))
        cost = derivations.of(_data_cost(network))
        self.softmax = activation_name == "softmax"
        delta = [sp.cancel(sp.together(cost.closed_form(z))) for z in zs]
        if self.softmax:
            # the derivation's δ^L_j, reduced exactly, is a_j·Σ_k y_k − y_j: check it for every j
            total = sp.Add(*targets)
            for j, d in enumerate(delta):
                if sp.expand(d - (outputs[j] * total - targets[j])) != 0:
                    raise KernelError("δ^L of this softmax output is not a·Σy − y")
            self.delta = None
            if self.cost_kind != "log_likelihood":
                raise KernelError("a softmax output is compiled with the log-likelihood cost only")
        else:
            pattern = delta[0].xreplace({zs[0]: Zs, outputs[0]: As, targets[0]: Ys})
            for j in range(1, len(zs)):
                if delta[j].xreplace({zs[j]: Zs, outputs[j]: As, targets[j]: Ys}) != pattern:
                    raise KernelError("the output units do not share one δ^L")
            # factored (−a(a − 1)(a − y) for the quadratic cost): the same δ in fewer array operations
            self.delta = _elementwise(sp.factor(pattern), [Zs, As, Ys])
        if self.cost_kind == "cross_entropy" and activation_name != "sigmoid":
            raise KernelError("cross-entropy is compiled with sigmoid outputs only")

    def loss_and_error(self, z, a, y, memo, ones):
        """The batch's mean cost and δ^L divided by the batch size (BP1, the mean folded in once).

        `memo` is what `_softmax_rows` left for the log-likelihood: the shifted z and Σ e^z per row;
        `ones`: as many ones as there are outputs.
        """
        scale = 1.0 / len(y)
        if self.delta is None:
            shifted, total = memo
            targets = y @ ones
            # −Σ y (z − max − log Σe^(z−max)): the log-likelihood through log-sum-exp
            loss = float(targets @ np.log(total)) - float(np.vdot(y, shifted))
            delta = a * targets[:, None]  # the derivation's a·Σy − y
            delta -= y
        else:
            if self.cost_kind == "quadratic":
                difference = y - a
                loss = 0.5 * float(np.vdot(difference, difference))
            else:  # −[y log σ(z) + (1 − y) log(1 − σ(z))] = log(1 + e^z) − y z, through logaddexp
                loss = float(np.logaddexp(0, z).sum()) - float(np.vdot(y, z))
            delta = self.delta(z, a, y)
        delta *= scale
        return loss * scale, delta


def _softmax_rows(z, ones):
    """Softmax of each row, shifting z by its row maximum in place; returns (a, (shifted z, Σ e^shifted))."""
    # the row maxima from a transposed copy: a reduction along each short row costs 4-7x more
    top = np.maximum.reduce(np.ascontiguousarray(z.T), axis=0)
    np.subtract(z, top[:, None], out=z)
    e = np.exp(z)
    total = e @ ones
    e /= total[:, None]
    return e, (z, total)


def _data_cost(network: Network) -> sp.Symbol:
    return network.families.get("C0", {}).get((), network.cost)


# ---------------------------------------------------------------------------
# Layered networks: BP1–BP4 in matrix form
# ---------------------------------------------------------------------------


class LayeredKernel(Kernel):
    backend = "layered"

    def __init__(self, network: Network, derivations: Derivations, dtype: str):
        facts, families = network.facts, network.families
        sizes, L = facts["sizes"], facts["L"]
        blocks: list[Block] = []
        self.layers: list[_Dense] = []
        previous = [families["a"][(1, k)] for k in range(1, sizes[0] + 1)]
        offset = 0
        for l in range(2, L + 1):
            zs = [families["z"][(l, j)] for j in range(1, sizes[l - 1] + 1)]
            nodes = [families["a"][(l, j)] for j in range(1, sizes[l - 1] + 1)]
            weight, bias = _dense_blocks(network, "w", "b", zs, previous, offset)
            weight.name, bias.name = f"W{l}", f"b{l}"
            offset += weight.size + bias.size
            blocks += [weight, bias]
            activation, derivative = _activation_pieces(network, zs, nodes)
            self.layers.append(_Dense(weight, bias, zs, activation, derivative))
            previous = nodes
        super().__init__(network, dtype, blocks)
        self.output = _Output(network, derivations, self.layers[-1].zs, previous, facts["activations"][-1])
        self.regularized = facts.get("regularization") == "l2"
        self.constants = {"lmbda": 0.0, "n": 1.0}

    def _forward(self, params, x, buffered: bool = True):
        """z and a of every layer; `buffered`: large arrays in workspaces kept between calls."""
        a = x
        zs, activations, memo = [], [x], None
        for index, layer in enumerate(self.layers):
            shape = (len(x), layer.weight.shape[0])
            z = self._workspace(index, "z", shape=shape) if buffered and math.prod(shape) >= BUFFERED_SIZE else None
            z = np.matmul(a, layer.weight.view(params).T, out=z)
            z += params[layer.bias.offset : layer.bias.end]
            if layer.activation is None:
                a, memo = _softmax_rows(z, self._ones(z.shape[1]))
            else:
                a = (layer.activation if buffered else layer.activation.plain)(z)
            zs.append(z)
            activations.append(a)
        return zs, activations, memo

    @_quiet
    def predict(self, params, x):
        return self._forward(params, self._cast(x), buffered=False)[1][-1]

    @_quiet
    def value_and_grad(self, params, x, y):
        x, y = self._cast(x), self._cast(y)
        zs, activations, memo = self._forward(params, x)
        grad = np.empty_like(params)
        loss, delta = self.output.loss_and_error(zs[-1], activations[-1], y, memo, self._ones(y.shape[1]))  # BP1, over m
        ones = self._ones(len(x))
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            weight = layer.weight.view(params)
            np.matmul(delta.T, activations[index], out=layer.weight.view(grad))  # BP4
            np.matmul(ones, delta, out=grad[layer.bias.offset : layer.bias.end])  # BP3: Σ over the batch
            if index:
                shape = (len(x), weight.shape[1])
                out = self._workspace(index, "delta", shape=shape) if math.prod(shape) >= BUFFERED_SIZE else None
                delta = np.matmul(delta, weight, out=out)  # BP2: (w^{l+1})ᵀ δ^{l+1} …
                delta *= self.layers[index - 1].derivative(zs[index - 1], activations[index])  # … ⊙ σ'(z^l)
        if self.regularized:
            lmbda, n = self.constants["lmbda"], self.constants["n"]
            for layer in self.layers:
                w = layer.weight.view(params)
                layer.weight.view(grad)[...] += (lmbda / n) * w
                loss += lmbda / (2 * n) * float(np.vdot(w, w))
        return loss, grad


# ---------------------------------------------------------------------------
# Convolutional networks: im2col convolutions, window pooling, dense layers
# ---------------------------------------------------------------------------


@dataclass
class _Conv:
    weight: Block  # (K, C, kr, kc)
    bias: Block  # (K,)
    stride: int
    padding: tuple[int, int]
    activation: Callable
    derivative: Callable
    out_shape: tuple[int, int, int]


@dataclass
class _Pool:
    kind: str  # "max", "average", "l2"
    size: tuple[int, int]
    stride: int
    out_shape: tuple[int, int, int]
    forward: Callable  # (window elements e_1…e_n) -> the pooled unit: the layer's definition, lambdified
    routing: Callable  # (e_1…e_n, unit) -> [∂unit/∂e_k for each k]: its local partials, lambdified


def _first_maxima(pooled, *elements):
    """For each k, where element k is its window's first maximal element in row-major order
    (PyTorch's choice at a tie): element k equals the pooled maximum and no earlier one did."""
    masks, taken = [], None
    for element in elements:
        hit = element == pooled
        if taken is None:
            taken = hit.copy()
        else:
            hit &= ~taken
            taken |= hit
        masks.append(hit)
    return masks


class _first_maxima_of(sp.Function):
    """_first_maxima_of(P, e_1…e_n): the n masks of _first_maxima, computed once for all n partials."""


class _mask(sp.Function):
    """_mask(masks, k): the k-th (1-based) of those masks."""


POOL_FUNCTIONS = {
    "maxpool": lambda *elements: functools.reduce(np.maximum, elements),
    "_first_maxima_of": _first_maxima,
    "_mask": lambda masks, k: masks[k - 1],
}


class ConvolutionalKernel(Kernel):
    """Convolutions as im2col matrix products, pooling as strided window views, then dense layers.

    Inside, the maps of conv and pool stages are laid out channel first, (C, m, H, W), so that a
    convolution is one product (K, C·kr·kc) @ (C·kr·kc, m·h·w) whose result is already the next
    stage's contiguous input, and each window position of a pooling is a strided view of it.
    """

    backend = "cnn"

    def __init__(self, network: Network, derivations: Derivations, dtype: str):
        families = network.families
        self.input_shape = tuple(network.facts["input_shape"])
        current = {k if len(k) == 3 else (1, *k): s for k, s in families["x"].items()}
        blocks: list[Block] = []
        self.stages: list[object] = []
        offset = 0
        flat_sources = None
        for layer in network.facts["plan"]:
            label = layer["label"]
            if layer["kind"] == "conv":
                stage = self._conv(network, layer, current, offset)
                blocks += [stage.weight, stage.bias]
                offset += stage.weight.size + stage.bias.size
                self.stages.append(stage)
                current = dict(families[f"a{label}"])
            elif layer["kind"] == "pool":
                self.stages.append(self._pool(network, layer, current))
                current = dict(families[f"a{label}"])
            else:
                sources = [current[k] for k in sorted(current)] if flat_sources is None else flat_sources
                units = layer["units"]
                zs = [families[f"z{label}"][(n,)] for n in range(1, units + 1)]
                nodes = [families[f"a{label}"][(n,)] for n in range(1, units + 1)]
                weight, bias = _dense_blocks(network, f"w{label}", f"b{label}", zs, sources, offset)
                offset += weight.size + bias.size
                blocks += [weight, bias]
                activation, derivative = _activation_pieces(network, zs, nodes)
                self.stages.append(_Dense(weight, bias, zs, activation, derivative))
                flat_sources = nodes
        super().__init__(network, dtype, blocks)
        last = self.stages[-1]
        self.output = _Output(network, derivations, last.zs, flat_sources, network.facts["output_activation"])

    # -- compilation: each layer's layout, checked against its symbols ---------------
    def _conv(self, network, layer, current, offset) -> _Conv:
        families, label = network.families, layer["label"]
        channels = layer["in_shape"][0]
        K, out_h, out_w = layer["out_shape"]
        kr, kc = layer["kernel"]
        stride, (pad_r, pad_c) = layer["stride"], layer["padding"]
        weights = np.empty((K, channels, kr, kc), dtype=object)
        for key, s in families[f"w{label}"].items():
            if len(key) == 4:
                k, c, p, q = key
                weights[k - 1, c - 1, p - 1, q - 1] = s
        biases = np.array([families[f"b{label}"][(k,)] for k in range(1, K + 1)], dtype=object)
        for (k, i, j), z in families[f"z{label}"].items():  # each unit is the declared cross-correlation
            expected = sp.Add(
                *[
                    product(weights[k - 1, c - 1, p - 1, q - 1], current[source])
                    for c in range(1, channels + 1)
                    for p in range(1, kr + 1)
                    for q in range(1, kc + 1)
                    if (source := (c, stride * (i - 1) + p - pad_r, stride * (j - 1) + q - pad_c)) in current
                ],
                biases[k - 1],
            )
            if network.definitions[z] != expected:
                raise KernelError(f"{z} is not the convolution its layer declares")
        weight = Block(f"W{label}", weights.shape, offset, weights, fan_in=channels * kr * kc)
        bias = Block(f"b{label}", biases.shape, offset + weight.size, biases, is_bias=True)
        zs = [families[f"z{label}"][(k, 1, 1)] for k in range(1, K + 1)]
        nodes = [families[f"a{label}"][(k, 1, 1)] for k in range(1, K + 1)]
        activation, derivative = _activation_pieces(network, zs, nodes)
        return _Conv(weight, bias, stride, (pad_r, pad_c), activation, derivative, (K, out_h, out_w))

    def _pool(self, network, layer, current) -> _Pool:
        units = network.families[f"a{layer['label']}"]
        (mr, mc), stride, kind = layer["size"], layer["stride"], layer["pool"]
        first = None
        for (c, i, j), unit in units.items():  # each window is the declared one
            members = [current[(c, stride * (i - 1) + p, stride * (j - 1) + q)] for p in range(1, mr + 1) for q in range(1, mc + 1)]
            if kind == "max":
                expected = fn.maxpool(*members)
            elif kind == "average":
                expected = sp.Add(*members) / len(members)
            else:
                expected = sp.sqrt(sp.Add(*[e**2 for e in members]))
            if network.definitions[unit] != expected:
                raise KernelError(f"{unit} is not the pooling window its layer declares")
            first = first or (unit, members)
        # every unit is the same function of its window, so the first unit's definition and local
        # partials, over placeholders e_1…e_n and P for the unit, are the whole layer's
        unit, members = first
        elements = [sp.Symbol(f"E{k}", real=True) for k in range(1, len(members) + 1)]
        pooled = sp.Symbol("P", real=True)
        names = dict(zip(members, elements))
        definition = network.definitions[unit].xreplace(names)
        partials = network.local_partials(unit)
        routing = [partials[m].xreplace({**names, unit: pooled}) for m in members]
        # is_max(k, e…): e_k is the maximum, that is the unit P, and (at a tie) the first such;
        # one scan of the window, shared by all k
        routing = [r.replace(fn.is_max, lambda k, *e: _mask(_first_maxima_of(pooled, *e), k)) for r in routing]
        modules = [POOL_FUNCTIONS, NUMPY_FUNCTIONS, "numpy"]
        forward = _Elementwise(definition, elements, modules)
        backward = _lambdify_safe(routing, [*elements, pooled], modules, cse=True)
        return _Pool(kind, (mr, mc), stride, tuple(layer["out_shape"]), forward, backward)

    # -- running -----------------------------------------------------------------
    def _forward(self, params, x, buffered: bool = True):
        """Every stage's inputs and outputs; `buffered`: large arrays in workspaces kept between calls."""
        m = x.shape[0]
        a = self._cast(x).reshape((m, *self.input_shape)).transpose(1, 0, 2, 3)  # (C, m, H, W)
        cache = []
        for index, stage in enumerate(self.stages):
            if isinstance(stage, _Conv):
                cols = _im2col(a, stage, self._workspace(index, "cols", shape=_cols_shape(a, stage)) if buffered else None)
                K = stage.out_shape[0]
                z = self._workspace(index, "z", shape=(K, cols.shape[1])) if buffered else None
                z = np.matmul(stage.weight.view(params).reshape(K, -1), cols, out=z)  # (K, m·h·w)
                z += params[stage.bias.offset : stage.bias.end, None]
                out = (stage.activation if buffered else stage.activation.plain)(z)
                cache.append((a, cols, z, out))
                a = out.reshape(K, m, *stage.out_shape[1:])
            elif isinstance(stage, _Pool):
                elements = _pool_elements(a, stage)
                out = (stage.forward if buffered else stage.forward.plain)(*elements)
                cache.append((a, elements, out))
                a = out
            else:
                if a.ndim == 4:  # each example's (c, i, j), Nielsen's order of the flattened map
                    C, _, h, w = a.shape
                    flat = self._workspace(index, "flat", shape=(m, C * h * w)) if buffered else np.empty((m, C * h * w), a.dtype)
                    np.copyto(flat.reshape(m, C, h, w), a.transpose(1, 0, 2, 3))
                else:
                    flat = a
                z = flat @ stage.weight.view(params).T
                z += params[stage.bias.offset : stage.bias.end]
                if stage.activation is None:
                    out, memo = _softmax_rows(z, self._ones(z.shape[1]))
                else:
                    out, memo = (stage.activation if buffered else stage.activation.plain)(z), None
                cache.append((flat, z, out, memo))
                a = out
        return cache

    @_quiet
    def predict(self, params, x):
        return self._forward(params, x, buffered=False)[-1][2]

    @_quiet
    def value_and_grad(self, params, x, y):
        x, y = self._cast(x), self._cast(y)
        m = x.shape[0]
        cache = self._forward(params, x)
        grad = np.empty_like(params)
        flat, z, out, memo = cache[-1]
        loss, delta = self.output.loss_and_error(z, out, y, memo, self._ones(y.shape[1]))  # δ^L (BP1), batch mean
        upstream = None  # ∂C/∂(this stage's output), owned by this call: updated in place
        for index in range(len(self.stages) - 1, -1, -1):
            stage = self.stages[index]
            if isinstance(stage, _Dense):
                flat, z, out, _ = cache[index]
                if upstream is not None:  # a hidden dense layer: δ = ∂C/∂a ⊙ σ'(z)
                    delta = upstream
                    delta *= stage.derivative(z, out)
                weight = stage.weight.view(params)
                np.matmul(delta.T, flat, out=stage.weight.view(grad))
                np.matmul(self._ones(m), delta, out=grad[stage.bias.offset : stage.bias.end])
                if index:
                    upstream = np.matmul(delta, weight, out=self._workspace(index, "up", shape=(m, weight.shape[1])))
                    if not isinstance(self.stages[index - 1], _Dense):  # back to (C, m, h, w)
                        C, h, w = self.stages[index - 1].out_shape
                        upstream = upstream.reshape(m, C, h, w).transpose(1, 0, 2, 3)
            elif isinstance(stage, _Pool):
                source, elements, out = cache[index]
                result = self._workspace(index, "up", shape=source.shape, zero=not _covers(stage, source.shape))
                upstream = _pool_backward(upstream, elements, out, stage, result)
            else:
                source, cols, z, out = cache[index]
                K = stage.out_shape[0]
                delta = upstream.reshape(K, -1)  # (K, m·h·w): a view, upstream being contiguous here
                delta *= stage.derivative(z, out)
                np.matmul(delta, cols.T, out=stage.weight.view(grad).reshape(K, -1))
                np.add.reduce(delta, axis=1, out=grad[stage.bias.offset : stage.bias.end])
                if index:
                    w = stage.weight.view(params).reshape(K, -1)
                    columns = np.matmul(w.T, delta, out=self._workspace(index, "dcols", shape=cols.shape))
                    padded = _padded_shape(source.shape, stage)
                    upstream = _col2im(columns, source.shape, stage, self._workspace(index, "up", shape=padded, zero=True))
        return loss, grad


def _cols_shape(a: np.ndarray, stage: _Conv) -> tuple[int, int]:
    _, out_h, out_w = stage.out_shape
    _, C, kr, kc = stage.weight.shape
    return (C * kr * kc, a.shape[1] * out_h * out_w)


def _padded_shape(shape, stage: _Conv) -> tuple[int, ...]:
    C, m, H, W = shape
    pad_r, pad_c = stage.padding
    return (C, m, H + 2 * pad_r, W + 2 * pad_c)


def _covers(stage: _Pool, shape) -> bool:
    """Whether the windows tile the map exactly: then the backward pass writes every element once."""
    (mr, mc), s = stage.size, stage.stride
    _, out_h, out_w = stage.out_shape
    return s == mr == mc and shape[2] == s * out_h and shape[3] == s * out_w


def _im2col(a: np.ndarray, stage: _Conv, out: np.ndarray | None = None) -> np.ndarray:
    """Every receptive field as a column: (C·kr·kc, m·out_h·out_w) from a (C, m, H, W), one strided copy."""
    pad_r, pad_c = stage.padding
    if pad_r or pad_c:
        a = np.pad(a, ((0, 0), (0, 0), (pad_r, pad_r), (pad_c, pad_c)))
    _, out_h, out_w = stage.out_shape
    _, C, kr, kc = stage.weight.shape
    s = stage.stride
    windows = sliding_window_view(a, (kr, kc), axis=(2, 3))[:, :, : s * (out_h - 1) + 1 : s, : s * (out_w - 1) + 1 : s]
    # (C, m, out_h, out_w, kr, kc) -> (C, kr, kc, m, out_h, out_w): the innermost run stays a row of the map
    windows = windows.transpose(0, 4, 5, 1, 2, 3)
    if out is None:
        return np.ascontiguousarray(windows).reshape(C * kr * kc, -1)
    np.copyto(out.reshape(windows.shape), windows)
    return out


def _col2im(cols: np.ndarray, shape, stage: _Conv, out: np.ndarray) -> np.ndarray:
    """The transpose of _im2col: add each column's entries back onto the (C, m, H, W) input, in `out` (zeros, padded)."""
    C, m, H, W = shape
    pad_r, pad_c = stage.padding
    _, out_h, out_w = stage.out_shape
    _, _, kr, kc = stage.weight.shape
    s = stage.stride
    patches = cols.reshape(C, kr, kc, m, out_h, out_w)
    for p in range(kr):
        for q in range(kc):
            out[:, :, p : p + s * out_h : s, q : q + s * out_w : s] += patches[:, p, q]
    return out[:, :, pad_r : pad_r + H, pad_c : pad_c + W]


def _pool_elements(a: np.ndarray, stage: _Pool) -> list[np.ndarray]:
    """The window's k-th element of every pooling unit, for each k in row-major order: strided views of a."""
    mr, mc = stage.size
    _, out_h, out_w = stage.out_shape
    s = stage.stride
    return [a[:, :, p : p + s * (out_h - 1) + 1 : s, q : q + s * (out_w - 1) + 1 : s] for p in range(mr) for q in range(mc)]


def _pool_backward(upstream, elements, out, stage: _Pool, result: np.ndarray) -> np.ndarray:
    """∂C/∂(window element k) = ∂C/∂(unit) · ∂unit/∂e_k, the local partial the derivation gives,
    into `result` (zeros unless the windows tile the map)."""
    mr, mc = stage.size
    _, out_h, out_w = stage.out_shape
    s = stage.stride
    routing = stage.routing(*elements, out)
    disjoint = s >= mr and s >= mc  # each element in one window at most: write instead of add
    for k, factor in enumerate(routing):
        p, q = divmod(k, mc)
        part = result[:, :, p : p + s * (out_h - 1) + 1 : s, q : q + s * (out_w - 1) + 1 : s]
        if disjoint:
            np.multiply(upstream, factor, out=part)
        else:
            part += upstream * factor
    return result


# ---------------------------------------------------------------------------
# Free-form networks: lambdify with common subexpressions
# ---------------------------------------------------------------------------


class _linear(sp.Function):
    """_linear(k, n, v_1…v_n, c_11…c_kn, b_1…b_k): the k sums Σ_j c_ij v_j + b_i, as one matrix product."""


class _row(sp.Function):
    """_row(G, i): row i of a _linear group or a pack G (printed as G[i])."""

    def _numpycode(self, printer):
        return f"{printer._print(self.args[0])}[{int(self.args[1])}]"


def _numpy_linear(k, n, *arguments):
    rows = np.array(arguments[:n])
    weights = np.array(arguments[n : n + k * n], dtype=rows.dtype).reshape(k, n)
    result = weights @ rows
    result += np.array(arguments[n + k * n :], dtype=rows.dtype)[:, None]
    return result


LINEAR_FUNCTIONS = {"_linear": _numpy_linear, "_row": lambda group, i: group[i]}
LINEAR_MINIMUM = 8  # products a group must replace to pay for one matrix product (an array operation costs ~0.5 µs)


def _linear_forms(replacements: list[tuple], batch: set[sp.Symbol]) -> list[tuple]:
    """Weighted sums Σ_j c_j v_j + b (c, b constant over the batch, v varying) that share their v's,
    each replaced by a row of one matrix product: a layer's Σ_k w_jk a_k + b_j, found in the cse'd
    statements of a free-form graph. Groups too small to pay for a matrix product stay as they are."""
    varying, defined = set(batch), {}
    for index, (symbol, value) in enumerate(replacements):
        defined[symbol] = index
        if value.free_symbols & varying:
            varying.add(symbol)
    groups: dict[tuple, list] = {}
    for index, (_, value) in enumerate(replacements):
        for node in sp.preorder_traversal(value):
            if not node.is_Add:
                continue
            weights, offset = {}, sp.S.Zero
            for term in node.args:
                if not term.free_symbols & varying:
                    offset += term
                    continue
                coefficient, rest = term.as_independent(*varying, as_Add=False)
                weights[rest] = weights.get(rest, sp.S.Zero) + coefficient
            if len(weights) < 2 or all(c.is_Number for c in weights.values()):
                continue
            key = tuple(sorted(weights, key=sp.default_sort_key))
            forms = groups.setdefault(key, [])
            if all(node != form[1] for form in forms):
                forms.append((index, node, [weights[v] for v in key], offset))
    inserted, rewrite = {}, {}
    for number, (key, forms) in enumerate(groups.items()):
        if len(key) * len(forms) < LINEAR_MINIMUM:
            continue
        first = min(form[0] for form in forms)
        arguments = [*key, *[c for form in forms for c in form[2]], *[form[3] for form in forms]]
        if any(defined.get(s, -1) >= first for a in arguments for s in a.free_symbols):
            continue  # a coefficient computed later than the first sum is needed: leave this group
        group = sp.Symbol(f"_g{number}", real=True)
        inserted.setdefault(first, []).append((group, _linear(len(forms), len(key), *arguments)))
        for i, form in enumerate(forms):
            rewrite[form[1]] = _row(group, i)
    if not rewrite:
        return replacements
    result = []
    for index, (symbol, value) in enumerate(replacements):
        result += inserted.get(index, [])
        result.append((symbol, value.xreplace(rewrite)))
    return result


PACKABLE = (sp.Add, sp.Mul, sp.Pow, *registry.PACKABLE_CLASSES, sp.Heaviside, sp.Abs)


def _packs(replacements: list[tuple], batch: list[sp.Symbol], scalars: list[sp.Symbol], theta, matrix) -> tuple[list[tuple], dict]:
    """Statements that compute the same formula of different operands, at the same depth of the
    graph (the units of one layer: σ(z_j), a_j(1 − a_j)·Σ…), evaluated together as one formula of
    stacked (units × batch) arrays: one array operation per layer instead of one per unit.

    A statement's formula is its expression with each operand (a symbol, or a row of a packed
    or _linear group) replaced by a placeholder in order of appearance; equal formulas evaluate
    each member exactly, whatever the order. Per placeholder, the members' operands are passed
    once if they are all the same, as a column if they are constants (parameters), as the packed
    array itself if they are its rows in order, and stacked otherwise. Returns the rewritten
    statements and the functions they call."""
    varying, level, member_of = set(batch), {}, {}
    for symbol, value in replacements:
        if value.free_symbols & varying or value.atoms(_linear):
            varying.add(symbol)
            level[symbol] = 1 + max((level.get(s, 0) for s in value.free_symbols if s in varying), default=0)

    def operands(value):
        found, walk = [], sp.preorder_traversal(value)
        for node in walk:
            if node.is_Symbol or isinstance(node, _row):
                if isinstance(node, _row):
                    walk.skip()
                if node not in found:
                    found.append(node)
        return found

    groups: dict[tuple, list] = {}
    for index, (symbol, value) in enumerate(replacements):
        if symbol not in varying or value.atoms(_linear) or any(not isinstance(f, PACKABLE) for f in value.atoms(sp.Function) if not isinstance(f, _row)):
            continue
        leaves = operands(value)
        holders = [sp.Symbol(f"_h{j}", real=True) for j in range(len(leaves))]
        template = value.xreplace(dict(zip(leaves, holders)))
        groups.setdefault((level[symbol], template), []).append((index, symbol, leaves))
    result, namespace = list(replacements), {}
    rewrite_at: dict[int, list] = {}
    drop = set()
    for number, ((_, template), members) in enumerate(groups.items()):
        if len(members) < 2:
            continue
        operands, ok = _Operands(scalars, batch), True
        for j in range(len(members[0][2])):
            column = [m[2][j] for m in members]
            if all(c == column[0] for c in column):
                operands.add("same", [column[0]])
            elif not any(c.free_symbols & varying for c in column):
                operands.add("column", column)
            elif not all(c.free_symbols & varying for c in column):
                ok = False
                break
            elif (whole := _whole(column, member_of)) is not None:
                operands.add("matrix", [whole])
            else:
                operands.add("rows", column)
        if not ok or all(mode == "same" for mode, _ in operands.parts):
            continue
        holders = [sp.Symbol(f"_h{j}", real=True) for j in range(len(operands.parts))]
        name = f"_pack{number}"
        namespace[name] = _pack_function(name, template, operands)
        packed = sp.Symbol(f"_p{number}", real=True)
        first = members[0][0]
        rewrite_at.setdefault(first, []).append((packed, sp.Function(name)(theta, matrix, *operands.arguments)))
        for i, (index, symbol, _) in enumerate(members):
            member_of[symbol] = (packed, i)
            drop.add(index)
            rewrite_at.setdefault(index, []).append((symbol, _row(packed, i)))
    # each _linear group as a function of its own, its parameters gathered by one index
    for index, (symbol, value) in enumerate(replacements):
        if isinstance(value, _linear):
            k, n, *arguments = value.args
            k, n = int(k), int(n)
            operands = _Operands(scalars, batch)
            operands.add("rows", arguments[:n])
            operands.add("column", arguments[n : n + k * n])
            operands.add("column", arguments[n + k * n :])
            name = f"_linear{index}"
            namespace[name] = _linear_function(name, k, n, operands)
            rewrite_at.setdefault(index, []).append((symbol, sp.Function(name)(theta, matrix, *operands.arguments)))
            drop.add(index)
    if not namespace:
        return replacements, {}
    result = []
    for index, statement in enumerate(replacements):
        if index in drop:
            result += rewrite_at[index]
        else:
            result += rewrite_at.get(index, [])
            result.append(statement)
    return _in_dependency_order(result), namespace


def _in_dependency_order(statements: list[tuple]) -> list[tuple]:
    """The statements reordered so that each comes after those it uses (stable otherwise)."""
    defined_by = {symbol for symbol, _ in statements}
    done, ordered, pending = set(), [], list(statements)
    while pending:
        for i, (symbol, value) in enumerate(pending):
            if all(s in done for s in value.free_symbols if s in defined_by):
                ordered.append((symbol, value))
                done.add(symbol)
                del pending[i]
                break
        else:
            raise KernelError("packing the free-form kernel made a cycle")  # cannot happen: levels order them
    return ordered


def _whole(column: list, member_of: dict):
    """The packed or _linear group whose rows, in order, are `column`; None if there is none."""
    if all(isinstance(c, _row) for c in column):
        group = column[0].args[0]
        if all(c.args[0] == group and int(c.args[1]) == i for i, c in enumerate(column)):
            return group
        return None
    places = [member_of.get(c) for c in column]
    if all(p is not None for p in places) and all(p[0] == places[0][0] and p[1] == i for i, p in enumerate(places)):
        return places[0][0]
    return None


class _Operands:
    """How the stacked operands of a pack or _linear group are assembled at run time.

    Each part is ("same" | "matrix", 1 argument passed), ("theta", indices into the parameter
    vector: no argument), ("batch", indices into the batch matrix: no argument), or ("column" |
    "rows", k arguments stacked). Parameters and batch rows are gathered by one fancy index
    each, not stacked from k Python values."""

    def __init__(self, scalars: list[sp.Symbol], batch: list[sp.Symbol]):
        self.scalar_index = {s: i for i, s in enumerate(scalars)}
        self.batch_index = {s: i for i, s in enumerate(batch)}
        self.parts: list[tuple] = []
        self.arguments: list[sp.Expr] = []

    def add(self, mode: str, column: list[sp.Expr]) -> None:
        if mode == "column" and all(c in self.scalar_index for c in column):
            self.parts.append(("theta", np.array([self.scalar_index[c] for c in column], dtype=np.intp)))
        elif mode == "rows" and all(c in self.batch_index for c in column):
            self.parts.append(("batch", np.array([self.batch_index[c] for c in column], dtype=np.intp)))
        else:
            self.parts.append((mode, len(column)))
            self.arguments += column

    def assemble(self, theta, batch, arguments) -> list:
        values, at = [], 0
        for mode, extra in self.parts:
            if mode == "theta":
                values.append(theta[extra])
            elif mode == "batch":
                values.append(batch[extra])
            elif mode in ("same", "matrix"):
                values.append(arguments[at])
                at += 1
            elif mode == "column":
                values.append(np.array(arguments[at : at + extra], dtype=batch.dtype))
                at += extra
            else:
                values.append(np.array(arguments[at : at + extra]))
                at += extra
        return values


def _operand_lines(operands: _Operands, namespace: dict, name: str) -> tuple[list[str], list[str]]:
    """Source lines binding _h0, _h1, … to the assembled operands; the names of the arguments they take."""
    lines, parameters, at = [], [], 0
    for j, (mode, extra) in enumerate(operands.parts):
        if mode == "gathered":  # bound by the caller
            continue
        if mode in ("theta", "batch"):
            namespace[f"{name}_i{j}"] = extra
            source = "_theta" if mode == "theta" else "_batch"
            lines.append(f"_h{j} = {source}[{name}_i{j}]")
        elif mode in ("same", "matrix"):
            lines.append(f"_h{j} = _a{at}")
            parameters.append(f"_a{at}")
            at += 1
        else:
            taken = [f"_a{at + i}" for i in range(extra)]
            parameters += taken
            at += extra
            dtype = ", dtype=_batch.dtype" if mode == "column" else ""
            lines.append(f"_h{j} = numpy.array(({', '.join(taken)},){dtype})")
    return lines, parameters


_PRINTER_SETTINGS = {"allow_unknown_functions": True, "fully_qualified_modules": False, "inline": True}


def _generated(name: str, lines: list[str], parameters: list[str], namespace: dict) -> Callable:
    """Python source made of our own names only (_theta, _batch, _a…, _h…), compiled in `namespace`."""
    source = f"def {name}(_theta, _batch, {', '.join(parameters)}):\n" + "".join(f"    {line}\n" for line in lines)
    namespace.update({k: getattr(np, k) for k in dir(np) if not k.startswith("_")})
    namespace.update(NUMPY_FUNCTIONS, numpy=np)
    exec(compile(source, f"<derive {name}>", "exec"), namespace)
    return namespace[name]


def _pack_function(name: str, template: sp.Expr, operands: _Operands) -> Callable:
    """The pack's formula on its stacked operands, generated as straight-line source."""
    from sympy.printing.numpy import NumPyPrinter

    namespace: dict = {}
    theta = [j for j, (mode, _) in enumerate(operands.parts) if mode == "theta"]
    if len(theta) > 1:  # all parameter columns by one index: (columns, members, 1), each column a view
        members = len(operands.parts[theta[0]][1])
        namespace[f"{name}_theta"] = np.concatenate([operands.parts[j][1] for j in theta])
        operands.parts = [("gathered", None) if mode == "theta" else (mode, extra) for mode, extra in operands.parts]
    lines, parameters = _operand_lines(operands, namespace, name)
    if len(theta) > 1:
        lines.insert(0, f"_t = _theta[{name}_theta].reshape({len(theta)}, {members}, 1)")
        for column, j in enumerate(theta):
            lines.append(f"_h{j} = _t[{column}]")
    for j, (mode, _) in enumerate(operands.parts):
        if mode in ("theta", "column"):  # one value per member: a column against the batch
            lines.append(f"_h{j} = _h{j}[:, None]")
    lines.append(f"return {NumPyPrinter(_PRINTER_SETTINGS).doprint(template)}")
    return _generated(name, lines, parameters, namespace)


def _linear_function(name: str, k: int, n: int, operands: _Operands) -> Callable:
    namespace: dict = {}
    lines, parameters = _operand_lines(operands, namespace, name)
    lines += ["_h3 = _h1.reshape(" + f"{k}, {n}" + ").astype(_h0.dtype, copy=False) @ _h0",
              "_h3 += _h2.astype(_h0.dtype, copy=False)[:, None]", "return _h3"]
    return _generated(name, lines, parameters, namespace)


class _BatchMeans:
    """The batch means of several expressions, all the reductions done by one matrix product.

    After common subexpressions are eliminated, each expression is a sum of terms c·Π f: the
    numbers and batch-constant factors (parameters, constants) make the coefficient c, and of
    the factors that vary over the batch, the one computed last (typically a δ) is the term's
    right factor R, the product of the others (an input, an activation, or 1) its left factor L.
    The mean of c·L·R over the batch is c·(L·R)/m, and all those dot products are entries of
    one matrix product of the stacked L rows with the stacked R rows: for a layered graph that
    is BP4's δᵀa, found in the derivation's own expressions. The rows themselves, and the
    coefficients, come from one lambdified function over the batch (cse'd, as before).
    """

    def __init__(self, expressions: list[sp.Expr], batch: list[sp.Symbol], scalars: list[sp.Symbol]):
        self.ones = sp.Symbol("_ones", real=True)  # an array of m ones: the L of a term with one batch factor
        replacements, reduced = sp.cse(expressions, symbols=sp.numbered_symbols("_c"), list=True)
        replacements = _linear_forms(replacements, set(batch))
        self.theta, self.matrix = sp.Symbol("_theta", real=True), sp.Symbol("_batch", real=True)
        replacements, packs = _packs(replacements, list(batch), list(scalars), self.theta, self.matrix)
        varying = {*batch, self.ones, self.matrix}
        rank = {s: -1 for s in batch}
        rank[self.ones] = -2
        for index, (symbol, value) in enumerate(replacements):
            if value.free_symbols & varying:
                varying.add(symbol)
                rank[symbol] = index
        lefts, rights, coefficients, terms, constants = {}, {}, [], [], []
        for output, expression in enumerate(reduced):
            constant = sp.S.Zero
            for term in sp.Add.make_args(expression):
                factors, coefficient = [], sp.S.One
                for factor in sp.Mul.make_args(term):
                    if not factor.free_symbols & varying:
                        coefficient *= factor
                    elif factor.is_Pow and factor.exp == 2:
                        factors += [factor.base, factor.base]
                    else:
                        factors.append(factor)
                if not factors:
                    constant += coefficient
                    continue
                last = max(range(len(factors)), key=lambda i: max(rank.get(s, -1) for s in factors[i].free_symbols))
                right = factors.pop(last)
                left = sp.Mul(*factors) if factors else self.ones
                terms.append((output, lefts.setdefault(left, len(lefts)), rights.setdefault(right, len(rights))))
                coefficients.append(coefficient)
            constants.append(constant)
        self.outputs = len(reduced)
        self.lefts, self.rights = len(lefts), len(rights)
        owners = np.array([t[0] for t in terms], dtype=np.intp)
        self.pairs = np.array([t[1] * len(rights) + t[2] for t in terms], dtype=np.intp)
        self.owners = None if np.array_equal(owners, np.arange(self.outputs)) else owners
        numeric = all(c.is_Number for c in coefficients)
        self.coefficients = np.array([float(c) for c in coefficients]) if numeric else None
        # small graphs: gather, weigh and sum the terms by one matrix-vector product
        self.summation = None
        if numeric and self.outputs * self.lefts * self.rights <= 100_000:
            self.summation = np.zeros((self.outputs, self.lefts * self.rights))
            np.add.at(self.summation, (owners, self.pairs), self.coefficients)
        self.constants = [i for i, c in enumerate(constants) if c != 0]
        rows = [*lefts, *rights, *([] if numeric else coefficients), *(constants[i] for i in self.constants)]
        self.function = sp.lambdify(
            [self.theta, self.matrix, *batch, self.ones, *scalars], rows,
            modules=[packs, LINEAR_FUNCTIONS, NUMPY_FUNCTIONS, "numpy"],
            cse=lambda exprs: (replacements, exprs),
        )

    @_quiet
    def __call__(self, theta, batch_matrix, ones, scalar_values) -> np.ndarray:
        """The mean of every expression over the batch (float64).

        theta: the constants and parameters as an array, scalar_values the same as floats;
        batch_matrix: one row per batch symbol (inputs, then targets)."""
        rows = self.function(theta, batch_matrix, *batch_matrix, ones, *scalar_values)
        p, q = self.lefts, self.rights
        products = (np.array(rows[:p]) @ np.array(rows[p : p + q]).T).ravel() if p else np.zeros(0)
        at = p + q
        if self.summation is not None:
            means = self.summation @ products
            means *= 1.0 / len(ones)
            for index, value in zip(self.constants, rows[at:]):
                means[index] += value
            return means
        if self.coefficients is None:
            coefficients = np.array(rows[at : at + len(self.pairs)], dtype=np.float64)
            at += len(self.pairs)
        else:
            coefficients = self.coefficients
        terms = products[self.pairs] * coefficients
        if self.owners is None:
            means = terms / len(ones)
        else:
            means = np.bincount(self.owners, weights=terms, minlength=self.outputs) / len(ones)
        for index, value in zip(self.constants, rows[at:]):
            means[index] += value
        return means


def _cse_inlining_sigmoid(expressions):
    replacements, reduced = sp.cse(expressions, list=True)
    inline = lambda e: e.replace(fn.sigmoid, lambda u: (1 + sp.tanh(u / 2)) / 2)  # noqa: E731
    return [(s, inline(v)) for s, v in replacements], [inline(e) for e in reduced]


class FreeFormKernel(Kernel):
    """All gradients in one lambdified function over renamed symbols, cse'd; vectorised over the batch."""

    backend = "free-form"

    def __init__(self, network: Network, derivations: Derivations, dtype: str):
        parameters = list(network.parameters)
        blocks = []
        for index, p in enumerate(parameters):
            blocks.append(Block(p.name, (), index, np.array(p, dtype=object), fan_in=self._fan_in(network, p)))
        super().__init__(network, dtype, blocks)
        self.inputs = list(network.inputs)
        self.targets = list(network.targets)
        self.constant_symbols = list(network.constants)
        d = derivations.cost
        outputs = [network.substituted(network.cost)] + [network.substituted(d.closed_form(p)) for p in parameters]
        arguments = [*self.inputs, *self.targets, *self.constant_symbols, *parameters]
        safe = [sp.Symbol(f"_s{i}", real=True) for i in range(len(arguments))]
        renamed = [e.xreplace(dict(zip(arguments, safe))) for e in outputs]
        if any(e.atoms(*fn.GENERIC_FUNCTIONS) for e in renamed):
            raise KernelError("a generic σ or cost has no numbers: declare a concrete activation and cost to train")
        batch = len(self.inputs) + len(self.targets)
        self._means = _BatchMeans(renamed, safe[:batch], safe[batch:])
        # batch 1: after cse, σ(u) is written (1 + tanh(u/2))/2 so that the generated code calls
        # math.tanh directly instead of a Python-level sigmoid per unit
        self._scalar = sp.lambdify(safe, renamed, modules=[MATH_FUNCTIONS, "math"], cse=_cse_inlining_sigmoid)
        self.output_nodes = self._outputs(network)
        self._predict = _quiet(sp.lambdify(
            safe[: len(self.inputs)] + safe[len(self.inputs) + len(self.targets):],
            [network.substituted(o).xreplace(dict(zip(arguments, safe))) for o in self.output_nodes],
            modules=[NUMPY_FUNCTIONS, "numpy"],
            cse=True,
        )) if self.output_nodes else None
        self.constants = {c.name: 1.0 for c in self.constant_symbols}

    @staticmethod
    def _fan_in(network, p) -> int:
        users = network.consumers.get(p, ())
        return max((len(network.definitions[u].free_symbols) - 1 for u in users), default=1) or 1

    @staticmethod
    def _outputs(network) -> list[sp.Symbol]:
        """The nodes the cost compares with targets: those the cost uses directly (in order)."""
        used = network.definitions[network.cost].free_symbols
        return [n for n in network.order if n in used]

    def _constants(self):
        return [self.constants.get(c.name, 1.0) for c in self.constant_symbols]

    def value_and_grad(self, params, x, y):
        x, y = self._cast(x), self._cast(y)
        m = x.shape[0]
        constants = self._constants() if self.constant_symbols else ()
        if m == 1:  # one example: plain floats through the math module
            try:
                result = self._scalar(*x[0].tolist(), *y[0].tolist(), *constants, *params.tolist())
                return float(result[0]), np.array(result[1:], dtype=self.dtype)
            except (ArithmeticError, ValueError, TypeError):  # 1/0, exp(1000), log(0), (-1)**0.5 (complex):
                pass  # numpy's inf and nan below instead
        theta = np.concatenate((constants, params)) if constants else params
        # numpy scalars, not Python floats: w**2 of a huge w gives inf (not OverflowError), (-1)**0.5 nan
        scalars = [np.float64(v) for v in (*constants, *params.tolist())]
        means = self._means(theta, np.concatenate((x.T, y.T)), self._ones(m), scalars)
        return float(means[0]), means[1:].astype(self.dtype)

    def predict(self, params, x):
        if self._predict is None:
            raise KernelError("the cost uses no node to compare with targets")
        x = self._cast(x)
        out = self._predict(*x.T, *self._constants(), *params)
        return np.stack([np.broadcast_to(o, x.shape[:1]) for o in out], axis=1)
