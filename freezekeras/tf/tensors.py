"""Naming graph tensors and running a session by node names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from freezekeras.graphdef.reading import tensor_name
from freezekeras.results import TensorSpec


def tensor_spec(tensor: Any, *, layer: str | None = None) -> TensorSpec:
    """A graph tensor's node name (``op``, or ``op:N`` for an op's later outputs), dtype and shape."""
    shape = tensor.shape
    dims = None if shape.rank is None else tuple(shape.as_list())
    name = tensor.op.name if tensor.value_index == 0 else tensor.name
    return TensorSpec(name=name, dtype=tensor.dtype.name, shape=dims, layer=layer)



def run_session(session: Any, fetches: Sequence[str], feeds: dict[str, Any]) -> list[Any]:
    """``session.run`` by node names (``op`` or ``op:N``) for both fetches and feeds."""
    return session.run([tensor_name(name) for name in fetches],
                       feed_dict={tensor_name(name): value for name, value in feeds.items()})
