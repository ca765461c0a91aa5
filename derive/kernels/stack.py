"""The stack backend: a network of layers over a mini-batch (batch norm, attention), stage after stage.

Each layer of a stack network (derive.graph.stack) becomes a stage of derive.kernels.stages,
compiled from its formula set's formulas once each is proven for every size; the batch's mean
cross-entropy ends the stack. Prediction runs the same forward pass: a batch-norm layer then
normalises with the statistics of the examples it is given (the whole training or test set
when training measures accuracy), not with running averages.
"""

from __future__ import annotations

import math

import numpy as np

from derive.graph.network import Network
from derive.kernels.base import Block, Kernel
from derive.kernels.elementwise import KernelError, quiet
from derive.kernels import stages


def _stage(layer, first: bool, masks):
    blocks = [b.name for b in layer.blocks]
    if layer.kind == "affine":
        return stages.Affine(*blocks, input_gradient=not first)
    if layer.kind == "activation":
        return stages.Activation(layer.options["function"])
    if layer.kind in ("batchnorm", "layernorm"):
        return stages.Norm(layer.kind, *blocks, layer.options["eps"])
    if layer.kind == "residual":
        return stages.Residual(*blocks, layer.options["function"])
    if layer.kind == "attention":
        return stages.Attention(layer.number, input_gradient=not first)
    if layer.kind == "dropout":
        return stages.Dropout(layer.options["keep"], masks)
    if layer.kind == "readout":
        return stages.Readout(layer.options["position"])
    raise KernelError(f"no stage for a {layer.kind} layer")


class StackKernel(Kernel):
    backend = "stack"

    def __init__(self, network: Network, derivations, dtype: str):
        layers = network.facts["layers"]
        self.input_shape = tuple(network.facts["input_shape"])
        blocks, offset = [], 0
        symbols = iter(network.parameters)
        for layer in layers:
            for spec in layer.blocks:
                size = math.prod(spec.shape)
                names = np.array([next(symbols) for _ in range(size)], dtype=object).reshape(spec.shape)
                blocks.append(Block(spec.name, spec.shape, offset, names, fan_in=spec.fan_in,
                                    is_bias=spec.role != "weight"))
                offset += size
        super().__init__(network, dtype, blocks)
        self.roles = {spec.name: spec.role for layer in layers for spec in layer.blocks}
        self.mask_seed: int | None = None  # set: every step draws the same dropout masks (gradcheck)
        self._masks = np.random.default_rng(0)
        self.stages = [_stage(layer, index == 0, self.masks) for index, layer in enumerate(layers[:-1])]
        self.loss = stages.SoftmaxCrossEntropy()

    def masks(self) -> np.random.Generator:
        """The generator of dropout masks: seeded by init(seed), so a training run is reproducible."""
        return self._masks

    def init(self, seed: int = 0) -> np.ndarray:
        """Weights N(0, 1/fan_in), biases and shifts 0, scales 1 (a normalisation starts as the identity)."""
        self._masks = np.random.default_rng([seed, 1])
        rng = np.random.default_rng(seed)
        params = np.empty(self.size, dtype=self.dtype)
        for block in self.blocks:
            role = self.roles[block.name]
            if role == "weight":
                block.view(params)[...] = rng.standard_normal(block.shape) / math.sqrt(block.fan_in)
            else:
                block.view(params)[...] = 1.0 if role == "scale" else 0.0
        return params

    def _forward(self, params, x, training: bool = True):
        """Every stage's cache and the scores; not `training`: dropout is the identity."""
        views = self.views(params)
        a = self._cast(x).reshape(len(x), *self.input_shape)
        cache = []
        for stage in self.stages:
            cached, a = stage.forward(views, a, training)
            cache.append(cached)
        return views, cache, a

    @quiet
    def predict(self, params, x):
        return self.loss.predict(self._forward(params, x, training=False)[2])

    @quiet
    def value_and_grad(self, params, x, y):
        if self.mask_seed is not None:
            self._masks = np.random.default_rng(self.mask_seed)
        views, cache, scores = self._forward(params, x)
        loss, upstream = self.loss.loss_and_gradient(scores, self._cast(y))
        grad = np.empty_like(params)
        grads = self.views(grad)
        for stage, cached in zip(reversed(self.stages), reversed(cache)):
            upstream = stage.backward(views, grads, upstream, cached)
        return loss, grad
