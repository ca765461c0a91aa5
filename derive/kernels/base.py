"""What every kernel shares: its parameters as named blocks of one flat buffer, and its scratch arrays.

Large intermediate arrays live in buffers kept between calls (allocating them afresh each step
costs page faults), so a kernel is not re-entrant: use one per thread.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from derive.graph.network import Network

DTYPES = {"float64": np.float64, "float32": np.float32}


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

    def ones(self, n: int) -> np.ndarray:
        """n ones: a sum over rows or columns as a matrix-vector product (BLAS), faster than np.sum on small arrays."""
        ones = self._buffers.get(("ones", n))
        if ones is None:
            ones = self._buffers[("ones", n)] = np.ones(n, dtype=self.dtype)
        return ones

    def workspace(self, *key, shape, zero: bool = False) -> np.ndarray:
        """A scratch array kept between calls (see elementwise._ArrayFormula for why); `key` names its use."""
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
