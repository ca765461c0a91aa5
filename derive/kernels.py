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
* Free-form networks lambdify the loss and every gradient together, common
  subexpressions eliminated once (`cse`), vectorised over the batch; at
  batch 1 a `math`-module scalar kernel avoids numpy's per-call overhead.

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

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import sympy as sp
from numpy.lib.stride_tricks import sliding_window_view

from . import functions as fn
from .derivation import Derivations
from .errors import DeriveError, InputError
from .network import Network, product

DTYPES = {"float64": np.float64, "float32": np.float32}


class KernelError(DeriveError):
    """The network cannot be compiled into a numeric kernel (generic σ, an unsupported layout)."""


# -- numerically safe elementwise functions ------------------------------------------


def _quiet(function: Callable) -> Callable:
    """`function` with numpy's floating-point warnings off: overflow and 0/0 give inf and nan, for the caller to check."""
    return np.errstate(all="ignore")(function)



def safe_sigmoid(z):
    """σ(z) = (1 + tanh(z/2))/2: no overflow for any z, in the input's dtype."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _math_sigmoid(z):
    return 0.5 * (1.0 + math.tanh(0.5 * z))


def _relu(z):
    return np.maximum(z, 0)


def _step(z, at_zero=0):
    return (z > 0).astype(z.dtype) if isinstance(z, np.ndarray) else float(z > 0)


NUMPY_FUNCTIONS = {"sigmoid": safe_sigmoid, "relu": _relu, "Heaviside": _step}
MATH_FUNCTIONS = {"sigmoid": _math_sigmoid, "relu": lambda z: max(z, 0.0), "Heaviside": lambda z, h=0: float(z > 0)}


def _elementwise(expr: sp.Expr, arguments: list[sp.Symbol]) -> Callable:
    """lambdify `expr` of `arguments` with safe names, for numpy arrays."""
    safe = [sp.Symbol(f"_s{i}", real=True) for i in range(len(arguments))]
    renamed = expr.xreplace(dict(zip(arguments, safe)))
    if renamed.free_symbols - set(safe):
        raise KernelError(f"an elementwise expression depends on more than {arguments}: {expr}")
    if renamed.atoms(*fn.GENERIC_FUNCTIONS):
        raise KernelError("a generic σ or cost has no numbers: declare a concrete activation and cost to train")
    return sp.lambdify(safe, renamed, modules=[NUMPY_FUNCTIONS, "numpy"])


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

    def loss_and_error(self, z, a, y, memo):
        """The batch's mean cost and δ^L divided by the batch size (BP1, the mean folded in once).

        `memo` is what `_softmax_rows` left for the log-likelihood: the shifted z and Σ e^z per row.
        """
        scale = 1.0 / len(y)
        if self.delta is None:
            shifted, total = memo
            targets = y.sum(axis=1)
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


def _softmax_rows(z):
    """Softmax of each row, shifting z by its row maximum in place; returns (a, (shifted z, Σ e^shifted))."""
    np.subtract(z, z.max(axis=1, keepdims=True), out=z)
    e = np.exp(z)
    total = e.sum(axis=1)
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

    def _forward(self, params, x):
        a = x
        zs, activations, memo = [], [x], None
        for layer in self.layers:
            z = a @ layer.weight.view(params).T
            z += params[layer.bias.offset : layer.bias.end]
            if layer.activation is None:
                a, memo = _softmax_rows(z)
            else:
                a = layer.activation(z)
            zs.append(z)
            activations.append(a)
        return zs, activations, memo

    @_quiet
    def predict(self, params, x):
        return self._forward(params, self._cast(x))[1][-1]

    @_quiet
    def value_and_grad(self, params, x, y):
        x, y = self._cast(x), self._cast(y)
        zs, activations, memo = self._forward(params, x)
        grad = np.empty_like(params)
        loss, delta = self.output.loss_and_error(zs[-1], activations[-1], y, memo)  # BP1, over m
        for index in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[index]
            weight = layer.weight.view(params)
            np.matmul(delta.T, activations[index], out=layer.weight.view(grad))  # BP4
            np.add.reduce(delta, axis=0, out=grad[layer.bias.offset : layer.bias.end])  # BP3
            if index:
                delta = delta @ weight  # BP2: (w^{l+1})ᵀ δ^{l+1} …
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


class ConvolutionalKernel(Kernel):
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
        return _Pool(kind, (mr, mc), stride, tuple(layer["out_shape"]))

    # -- running -----------------------------------------------------------------
    def _forward(self, params, x):
        a = self._cast(x).reshape((x.shape[0], *self.input_shape))
        cache = []
        for stage in self.stages:
            if isinstance(stage, _Conv):
                cols = _im2col(a, stage)
                w = stage.weight.view(params).reshape(stage.weight.shape[0], -1)
                m = a.shape[0]
                K, out_h, out_w = stage.out_shape
                z = cols @ w.T  # (m·out_h·out_w, K)
                z += stage.bias.view(params)
                z = z.reshape(m, out_h, out_w, K).transpose(0, 3, 1, 2)
                out = stage.activation(z)
                cache.append((a, cols, z, out))
                a = out
            elif isinstance(stage, _Pool):
                out, extra = _pool_forward(a, stage)
                cache.append((a, extra, out))
                a = out
            else:
                flat = a.reshape(a.shape[0], -1)
                z = flat @ stage.weight.view(params).T
                z += stage.bias.view(params)
                if stage.activation is None:
                    out, memo = _softmax_rows(z)
                    cache.append((flat, z, out, memo))
                else:
                    out = stage.activation(z)
                    cache.append((flat, z, out, None))
                a = out
        return cache

    @_quiet
    def predict(self, params, x):
        return self._forward(params, x)[-1][2]

    @_quiet
    def value_and_grad(self, params, x, y):
        x, y = self._cast(x), self._cast(y)
        m = x.shape[0]
        cache = self._forward(params, x)
        grad = np.empty_like(params)
        flat, z, out, memo = cache[-1]
        loss, delta = self.output.loss_and_error(z, out, y, memo)  # δ of the output units (BP1), batch mean
        upstream = None  # ∂C/∂(this stage's output)
        for index in range(len(self.stages) - 1, -1, -1):
            stage = self.stages[index]
            if isinstance(stage, _Dense):
                if upstream is not None:  # a hidden dense layer: δ = ∂C/∂a ⊙ σ'(z)
                    flat, z, out, _ = cache[index]
                    delta = upstream * stage.derivative(z, out)
                flat = cache[index][0]
                np.matmul(delta.T, flat, out=stage.weight.view(grad))
                np.sum(delta, axis=0, out=stage.bias.view(grad))
                upstream = delta @ stage.weight.view(params)
                if index and not isinstance(self.stages[index - 1], _Dense):
                    upstream = upstream.reshape(cache[index - 1][-1].shape)
            elif isinstance(stage, _Pool):
                source, extra, out = cache[index]
                upstream = _pool_backward(upstream, source, extra, out, stage)
            else:
                source, cols, z, out = cache[index]
                delta = upstream * stage.derivative(z, out)  # (m, K, h, w)
                K = stage.out_shape[0]
                rows = delta.transpose(0, 2, 3, 1).reshape(-1, K)
                gw = stage.weight.view(grad).reshape(K, -1)
                np.matmul(rows.T, cols, out=gw)
                np.sum(rows, axis=0, out=stage.bias.view(grad))
                if index:
                    w = stage.weight.view(params).reshape(K, -1)
                    upstream = _col2im(rows @ w, source.shape, stage)
        return float(loss), grad


def _im2col(a: np.ndarray, stage: _Conv) -> np.ndarray:
    """Every receptive field as a row: (m·out_h·out_w, C·kr·kc), via sliding_window_view."""
    pad_r, pad_c = stage.padding
    if pad_r or pad_c:
        a = np.pad(a, ((0, 0), (0, 0), (pad_r, pad_r), (pad_c, pad_c)))
    K, out_h, out_w = stage.out_shape
    _, C, kr, kc = stage.weight.shape
    windows = sliding_window_view(a, (kr, kc), axis=(2, 3))[:, :, :: stage.stride, :: stage.stride][:, :, :out_h, :out_w]
    # (m, C, out_h, out_w, kr, kc) -> (m, out_h, out_w, C, kr, kc)
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5)).reshape(-1, C * kr * kc)


def _col2im(cols: np.ndarray, shape, stage: _Conv) -> np.ndarray:
    """The transpose of _im2col: add each row's entries back onto the input."""
    m, C, H, W = shape
    pad_r, pad_c = stage.padding
    _, out_h, out_w = stage.out_shape
    _, _, kr, kc = stage.weight.shape
    s = stage.stride
    patches = cols.reshape(m, out_h, out_w, C, kr, kc)
    out = np.zeros((m, C, H + 2 * pad_r, W + 2 * pad_c), dtype=cols.dtype)
    for p in range(kr):
        for q in range(kc):
            out[:, :, p : p + s * out_h : s, q : q + s * out_w : s] += patches[:, :, :, :, p, q].transpose(0, 3, 1, 2)
    return out[:, :, pad_r : pad_r + H, pad_c : pad_c + W]


def _pool_windows(a: np.ndarray, stage: _Pool) -> np.ndarray:
    mr, mc = stage.size
    _, out_h, out_w = stage.out_shape
    windows = sliding_window_view(a, (mr, mc), axis=(2, 3))[:, :, :: stage.stride, :: stage.stride]
    return windows[:, :, :out_h, :out_w].reshape(*a.shape[:2], out_h, out_w, mr * mc)


def _pool_forward(a: np.ndarray, stage: _Pool):
    windows = _pool_windows(a, stage)
    if stage.kind == "max":
        # the first maximal element in row-major order: PyTorch's choice at a tie
        winner = windows.argmax(axis=-1)
        return np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0], winner
    if stage.kind == "average":
        return windows.mean(axis=-1), None
    return np.sqrt((windows * windows).sum(axis=-1)), None


def _pool_backward(upstream: np.ndarray, source: np.ndarray, extra, out: np.ndarray, stage: _Pool) -> np.ndarray:
    """Route ∂C/∂(pool unit) to its window: to the maximum, 1/|window| each, or a/aP each."""
    mr, mc = stage.size
    _, out_h, out_w = stage.out_shape
    s = stage.stride
    result = np.zeros_like(source)
    if stage.kind == "max":
        for p in range(mr):
            for q in range(mc):
                mask = extra == p * mc + q
                result[:, :, p : p + s * out_h : s, q : q + s * out_w : s] += upstream * mask
        return result
    for p in range(mr):
        for q in range(mc):
            part = result[:, :, p : p + s * out_h : s, q : q + s * out_w : s]
            if stage.kind == "average":
                part += upstream * (1.0 / (mr * mc))
            else:
                element = source[:, :, p : p + s * out_h : s, q : q + s * out_w : s]
                part += upstream * element / out
    return result


# ---------------------------------------------------------------------------
# Free-form networks: lambdify with common subexpressions
# ---------------------------------------------------------------------------


class _linear(sp.Function):
    """_linear(k, n, v_1…v_n, c_11…c_kn, b_1…b_k): the k sums Σ_j c_ij v_j + b_i, as one matrix product."""


class _row(sp.Function):
    """_row(G, i): sum i of the _linear group G."""


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
        varying = {*batch, self.ones}
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
        self.constants = [i for i, c in enumerate(constants) if c != 0]
        rows = [*lefts, *rights, *([] if numeric else coefficients), *(constants[i] for i in self.constants)]
        self.function = sp.lambdify(
            [*batch, self.ones, *scalars], rows, modules=[LINEAR_FUNCTIONS, NUMPY_FUNCTIONS, "numpy"],
            cse=lambda exprs: (replacements, exprs),
        )

    @_quiet
    def __call__(self, batch_values, ones, scalar_values) -> np.ndarray:
        """The mean of every expression over the batch (float64)."""
        rows = self.function(*batch_values, ones, *scalar_values)
        p, q = self.lefts, self.rights
        products = (np.array(rows[:p]) @ np.array(rows[p : p + q]).T).ravel()
        at = p + q
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
        self._scalar = sp.lambdify(safe, renamed, modules=[MATH_FUNCTIONS, "math"], cse=True)
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
        values = list(params)
        if m == 1:  # one example: plain floats through the math module
            try:
                result = self._scalar(*map(float, x[0]), *map(float, y[0]), *self._constants(), *map(float, values))
                return float(result[0]), np.array(result[1:], dtype=self.dtype)
            except (ArithmeticError, ValueError):  # 1/0, exp(1000), log(0): numpy's inf and nan below instead
                pass
        means = self._means([*x.T, *y.T], np.ones(m, dtype=self.dtype), [*self._constants(), *values])
        return float(means[0]), means[1:].astype(self.dtype)

    def predict(self, params, x):
        if self._predict is None:
            raise KernelError("the cost uses no node to compare with targets")
        x = self._cast(x)
        out = self._predict(*x.T, *self._constants(), *params)
        return np.stack([np.broadcast_to(o, x.shape[:1]) for o in out], axis=1)
