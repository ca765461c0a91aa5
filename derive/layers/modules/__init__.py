"""Module layers: one layer over a batch with any downstream loss, one class per kind (derive.graph.modules)."""

from __future__ import annotations

from derive.layers.modules.base import Module, Parts
from derive.layers.modules.batchnorm import BatchNorm

MODULES: dict[str, type[Module]] = {"batchnorm": BatchNorm}

__all__ = ["MODULES", "Module", "Parts"]
