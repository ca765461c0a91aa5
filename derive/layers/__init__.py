"""The layers of a convolutional network, one class per kind.

`convolutional()` in derive/graph/convolutional.py reads the `[[layer]]` tables in order and
makes each into one of these; each checks its table, makes its symbols in the
shared `Context`, and answers its facts; later stages ask
each built layer (the network's `layers` fact) for their part: its numeric
kernel stage, its column of the drawing, its row of the report.
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
