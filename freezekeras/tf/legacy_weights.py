"""Loading weights saved by Keras 1 or by the Theano backend, as Keras 2 did.

tf-keras still converts Keras 1 weight layouts (per-gate LSTM/GRU arrays,
``th``-ordered kernels) in ``preprocess_weights_for_loading``, but only when a
file has no ``keras_version`` attribute at all: Keras 1.2 wrote ``"1.2.2"``, so
its files would load unconverted. It also dropped Keras 2's flipping of
Theano-trained convolution kernels. This module loads through tf-keras' own
loader with the version normalised to ``"1"``, then flips the kernels the way
Keras 2's ``conv_utils.convert_kernel`` did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from freezekeras.errors import ConversionError
from freezekeras.kerasfile.h5file import text_attribute
from freezekeras.kerasfile.keras1 import is_keras1
from freezekeras.tf.internals import hdf5_weight_loaders
from freezekeras.tf.layers import all_layers

#: The layers whose kernels Keras 2 flipped when loading Theano-trained weights
#: into TensorFlow (``_need_convert_kernel`` in Keras 2.x ``engine/saving.py``).
FLIPPED_LAYERS = {"Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "ConvLSTM2D"}


def needs_legacy_loading(keras_version: str | None, backend: str | None) -> bool:
    """Whether weights from this Keras version and backend need converting."""
    return is_keras1(keras_version) or (backend or "").lower() == "theano"


def load_legacy_weights(model: Any, path: Path, *, keras_version: str | None, backend: str | None) -> list[str]:
    """Load the weights of ``path`` into ``model``, converting Keras 1 and Theano layouts.

    Args:
        model: The built tf-keras model.
        path: The ``.h5`` file (a whole model or weights only).
        keras_version: The file's ``keras_version``.
        backend: The file's ``backend``.

    Returns:
        The names of the layers whose kernels were flipped (Theano only).
    """
    import h5py

    load_group, load_group_by_name = hdf5_weight_loaders()

    with h5py.File(path, "r") as handle:
        group = handle["model_weights"] if "layer_names" not in handle.attrs and "model_weights" in handle else handle
        attrs = dict(group.attrs)
        if is_keras1(keras_version or text_attribute(attrs.get("keras_version"))):
            attrs["keras_version"] = "1"  # tf-keras converts Keras 1 layouts only for "1"
            # By name: a Keras 1 model's layers may be ordered otherwise in tf-keras (merged models).
            _check_every_layer_saved(model, group, path)
            load_group_by_name(_GroupWithAttrs(group, attrs), model)
        else:
            load_group(_GroupWithAttrs(group, attrs), model)
    if (backend or "").lower() != "theano":
        return []
    return flip_theano_kernels(model)


def flip_theano_kernels(model: Any) -> list[str]:
    """Flip the spatial axes of convolution kernels, as Keras 2 did for Theano weights.

    Theano computes a true convolution, TensorFlow a correlation: the same
    kernel mirrored. Keras 2 flipped every axis but the last two (input and
    output channels) of Conv1D/2D/3D, Conv2DTranspose and ConvLSTM2D kernels
    (and ConvLSTM2D's recurrent kernel); separable and depthwise kernels were
    left as they were, and so are they here.

    Returns:
        The names of the layers flipped.
    """
    import numpy as np

    flipped = []
    for layer in all_layers(model):
        if type(layer).__name__ not in FLIPPED_LAYERS:
            continue
        weights = layer.get_weights()
        count = 2 if type(layer).__name__ == "ConvLSTM2D" else 1
        for index in range(count):
            kernel = weights[index]
            weights[index] = np.copy(kernel[(slice(None, None, -1),) * (kernel.ndim - 2)])
        layer.set_weights(weights)
        flipped.append(layer.name)
    return flipped


def _check_every_layer_saved(model: Any, group: Any, path: Path) -> None:
    """Loading by name skips layers the file lacks; a frozen graph must not keep their random weights."""
    saved = {text_attribute(name) for name in group.attrs.get("layer_names", [])}
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in saved]
    if missing:
        raise ConversionError(
            f"{path}: holds no weights for layer{'s' if len(missing) > 1 else ''} {', '.join(missing)} of "
            "the model; pass the weights file saved with this model."
        )


class _GroupWithAttrs:
    """An h5py group seen with other attributes (the file stays read-only)."""

    def __init__(self, group: Any, attrs: dict[str, Any]):
        self._group = group
        self.attrs = attrs

    def __getitem__(self, key: str) -> Any:
        return self._group[key]

    def __contains__(self, key: str) -> bool:
        return key in self._group
