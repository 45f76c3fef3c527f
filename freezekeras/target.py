"""``--target RUNTIME``: the options a runtime needs, chosen from the model's config (no TensorFlow).

What each runtime needs was measured by the serving tests (``tests/test_serving.py``):

- ``opencv``: the model's own NCHW nodes for a ``channels_first`` model (``--keep-nchw``);
  float32 weights (``--fp16`` is refused).
- ``onnx``, ``openvino``: the function route for a Keras 1 or 2 model with recurrent layers
  (``--route function``): the session route's loops keep per-step tensor lists for training.
- ``tflite``: that too, and a fixed batch for recurrent layers (``--batch-size 1``), so that
  their loops' tensor lists have static element shapes.
- ``tf``: nothing.

An option the caller gave is never overridden; the graph is then checked
against the runtime all the same (:func:`freezekeras.graphdef.targets.target_gaps`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from freezekeras.errors import UsageError
from freezekeras.graphdef.lint import shown_names
from freezekeras.kerasfile.config import channels_first_layers, recurrent_layers
from freezekeras.results import ConvertOptions


@dataclass(frozen=True)
class TargetChoice:
    """The options ``--target`` set, and why.

    Attributes:
        target: The runtime.
        options: The options set, as on the command line (``"--route function"``).
        reason: Why, in a few words (``"recurrent layers lstm, lstm_1"``); empty when nothing was set.
    """

    target: str
    options: tuple[str, ...] = ()
    reason: str = ""


def choose(options: ConvertOptions, *, kind: str, config: dict[str, Any] | None,
           source: Any) -> tuple[ConvertOptions, TargetChoice | None]:
    """``options`` with what ``options.target`` needs for this model, where the caller left it unset.

    Args:
        options: The caller's options.
        kind: ``"keras2"``, ``"keras3"`` or ``"saved-model"`` (see :class:`freezekeras.api.RoutePlan`).
        config: The model config (``None`` for a SavedModel).
        source: The model's path, for messages.

    Returns:
        The options to convert with, and what was chosen (``None`` without a target).

    Raises:
        UsageError: An option given cannot serve the target (``--fp16`` for OpenCV).
    """
    target = options.target
    if target is None:
        return options, None
    if target == "opencv" and options.fp16:
        raise UsageError(f"{source}: --target opencv cannot take --fp16: OpenCV's TensorFlow importer reads "
                         "float32 weights only. Drop --fp16.")
    recurrent = recurrent_layers(config) if config is not None else []
    changes: dict[str, Any] = {}
    picked: list[str] = []
    reasons: list[str] = []
    if target == "opencv":
        nchw = channels_first_layers(config) if config is not None else []
        if nchw and not options.keep_nchw:
            changes["keep_nchw"] = True
            picked.append("--keep-nchw")
            reasons.append(f"channels_first layers {_names(nchw)}")
    if target in ("onnx", "openvino", "tflite") and recurrent:
        if kind == "keras2" and options.route is None and not options.output_nodes:
            changes["route"] = "function"
            picked.append("--route function")
        if target == "tflite" and kind != "saved-model" and options.batch_size is None and not options.input_shapes:
            changes["batch_size"] = 1
            picked.append("--batch-size 1")
        if picked:
            reasons.append(f"recurrent layers {_names(recurrent)}")
    return replace(options, **changes), TargetChoice(target, tuple(picked), "; ".join(reasons))


def _names(names: list[str]) -> str:
    return shown_names(list(dict.fromkeys(names)))
