"""Rewriting model configs that tf-keras saves but cannot read back."""

from __future__ import annotations

from typing import Any


def function_references_to_names(config: Any) -> tuple[Any, bool]:
    """Replace serialized references to plain functions by the functions' names.

    tf.keras 2.13 and later save a custom activation ``soft_clip`` as
    ``{"module": "builtins", "class_name": "function", "config": "soft_clip",
    "registered_name": "function"}``, and tf-keras' own ``.h5`` loader then
    fails with "Unknown activation function: 'function'", custom objects or
    not. As the plain name ``"soft_clip"`` it is looked up among the custom
    objects, as in older files.

    Args:
        config: A model config (parsed JSON).

    Returns:
        The rewritten config (a new object) and whether anything changed.
    """
    if isinstance(config, dict):
        if (config.get("class_name") == "function" and config.get("registered_name") == "function"
                and isinstance(config.get("config"), str)):
            return config["config"], True
        changed = False
        rewritten = {}
        for key, value in config.items():
            rewritten[key], inner = function_references_to_names(value)
            changed = changed or inner
        return rewritten, changed
    if isinstance(config, list):
        pairs = [function_references_to_names(item) for item in config]
        return [item for item, _ in pairs], any(inner for _, inner in pairs)
    return config, False
