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


def integer_input_limit(model: Any, default: int) -> int:
    """Random integer inputs stay below this: the smallest Embedding or CategoryEncoding size, at most ``default``."""
    sizes = [getattr(layer, "input_dim", None) if type(layer).__name__ == "Embedding"
             else getattr(layer, "num_tokens", None) if type(layer).__name__ == "CategoryEncoding"
             else None for layer in all_layers(model)]
    return max(1, min([default] + [int(size) for size in sizes if size]))


def stateful_layers(model: Any) -> list[str]:
    """Names of the model's stateful (recurrent) layers, sorted."""
    return sorted({layer.name for layer in all_layers(model) if getattr(layer, "stateful", False)})
