"""Module layers: one layer over a batch with any downstream loss, one class per kind (derive.graph.modules)."""

from __future__ import annotations

from derive.layers.modules.attention import Attention
from derive.layers.modules.base import Module, Parts
from derive.layers.modules.batchnorm import BatchNorm
from derive.layers.modules.dropout import Dropout
from derive.layers.modules.layernorm import LayerNorm
from derive.layers.modules.residual import Residual
from derive.layers.modules.rnn import RNN
from derive.layers.modules.softmax_ce import SoftmaxCrossEntropy

MODULES: dict[str, type[Module]] = {
    "batchnorm": BatchNorm, "layernorm": LayerNorm, "dropout": Dropout, "residual": Residual,
    "softmax_cross_entropy": SoftmaxCrossEntropy, "attention": Attention, "rnn": RNN,
}

__all__ = ["MODULES", "Module", "Parts"]
