"""The layers of a convolutional network, one class per kind.

`convolutional()` in derive.network reads the `[[layer]]` tables in order and
makes each into one of these; each checks its table, makes its symbols in the
shared `Context`, and answers its plan entry and its facts.
"""

from __future__ import annotations

from derive.graph.network import POOL_KIND
from derive.layers.base import Context, Layer, check_keys, image_shape, input_image
from derive.layers.convolution import Convolution
from derive.layers.dense import Dense
from derive.layers.pooling import Pooling

LAYERS: dict[str, type[Layer]] = {"conv": Convolution, **{kind: Pooling for kind in POOL_KIND}, "dense": Dense}

__all__ = ["LAYERS", "Context", "Convolution", "Dense", "Layer", "Pooling",
           "check_keys", "image_shape", "input_image"]
