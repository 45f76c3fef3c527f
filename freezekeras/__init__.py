"""freezekeras: freeze Keras ``.h5`` models into TensorFlow graphs that serve anywhere.

Importing this package is cheap: TensorFlow is imported only when a function
that needs it runs.

Example:
    >>> import freezekeras
    >>> result = freezekeras.convert("model.h5")            # doctest: +SKIP
    >>> [spec.name for spec in result.outputs]               # doctest: +SKIP
    ['predictions/Softmax']
"""

from __future__ import annotations

__version__ = "0.1.0"

from freezekeras.api import convert, inspect  # noqa: E402
from freezekeras.batch import convert_many, expand_models  # noqa: E402
from freezekeras.errors import FreezeKerasError  # noqa: E402
from freezekeras.results import (  # noqa: E402
    BatchItem,
    ConversionResult,
    ConvertOptions,
    InspectResult,
    TensorSpec,
    Verification,
)

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
