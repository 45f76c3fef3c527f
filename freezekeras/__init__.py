"""freezekeras: freeze Keras models into TensorFlow graphs that serve anywhere.

Importing this package is cheap: the names below are imported when first used,
and TensorFlow only when a function that needs it runs.

Example:
    >>> import freezekeras
    >>> result = freezekeras.convert("model.h5")            # doctest: +SKIP
    >>> [spec.name for spec in result.outputs]               # doctest: +SKIP
    ['predictions/Softmax']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: The public names and the modules that define them (imported on first use, PEP 562).
_PUBLIC = {
    "convert": "freezekeras.api",
    "inspect": "freezekeras.inspection",
    "convert_many": "freezekeras.batch",
    "expand_models": "freezekeras.batch",
    "FreezeKerasError": "freezekeras.errors",
    "BatchItem": "freezekeras.results",
    "ConversionResult": "freezekeras.results",
    "ConvertOptions": "freezekeras.results",
    "InspectResult": "freezekeras.results",
    "TensorSpec": "freezekeras.results",
    "Verification": "freezekeras.results",
}

__all__ = [
    "BatchItem",
    "ConversionResult",
    "ConvertOptions",
    "FreezeKerasError",
    "InspectResult",
    "TensorSpec",
    "Verification",
    "convert",
    "convert_many",
    "expand_models",
    "inspect",
]

if TYPE_CHECKING:
    from freezekeras.api import convert
    from freezekeras.batch import convert_many, expand_models
    from freezekeras.errors import FreezeKerasError
    from freezekeras.inspection import inspect
    from freezekeras.results import (
        BatchItem,
        ConversionResult,
        ConvertOptions,
        InspectResult,
        TensorSpec,
        Verification,
    )


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'freezekeras' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
