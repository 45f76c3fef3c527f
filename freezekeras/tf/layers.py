"""Walking a built Keras model's layers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def all_layers(model: Any) -> Iterator[Any]:
    """Every layer of ``model``: nested models' and wrapped (TimeDistributed, Bidirectional) ones too."""
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        yield layer
        stack.extend(getattr(layer, "layers", []))
        for attribute in ("layer", "forward_layer", "backward_layer"):
            inner = getattr(layer, attribute, None)
            if inner is not None:
                stack.append(inner)
