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


def default_gru_reset_after(config: Any) -> tuple[Any, bool]:
    """Give GRU layers saved before ``reset_after`` existed (Keras < 2.1.6) ``reset_after=False``.

    Those GRUs applied the reset gate before the recurrent matmul and had one
    bias vector; tf-keras' default is ``True`` (two biases), so it would build
    a different layer and fail to load the weights.

    Args:
        config: A model config (parsed JSON).

    Returns:
        The rewritten config (a new object) and whether anything changed.
    """
    if isinstance(config, dict):
        changed = False
        rewritten = {}
        for key, value in config.items():
            rewritten[key], inner = default_gru_reset_after(value)
            changed = changed or inner
        if rewritten.get("class_name") in {"GRU", "CuDNNGRU"} and isinstance(rewritten.get("config"), dict) \
                and "reset_after" not in rewritten["config"]:
            rewritten["config"] = {**rewritten["config"], "reset_after": False}
            changed = True
        return rewritten, changed
    if isinstance(config, list):
        pairs = [default_gru_reset_after(item) for item in config]
        return [item for item, _ in pairs], any(inner for _, inner in pairs)
    return config, False
