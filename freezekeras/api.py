"""The Python API's :func:`convert` (:func:`~freezekeras.inspection.inspect` lives apart, free of TensorFlow).

Neither prints nor exits: they return result dataclasses or raise a
:class:`~freezekeras.errors.FreezeKerasError`.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from freezekeras.errors import (
    ConversionError,
    ReferenceMismatchError,
    UsageError,
    VerificationError,
    error_summary,
)
from freezekeras.graphdef.reading import read_graph_def
from freezekeras.kerasfile.h5file import read_keras_file
from freezekeras.output import AtomicFile, output_path
from freezekeras.results import ConversionResult, ConvertOptions, TensorSpec
from freezekeras.tf.freezing import (
    find_leftovers,
    freeze_graph,
    order_nodes,
    record_output_shapes,
    serialize,
    stable_function_names,
)
from freezekeras.tf.imports import import_tensorflow
from freezekeras.tf.layers import all_layers
from freezekeras.tf.layout import channels_first_nodes, relayout_note, to_channels_last
from freezekeras.tf.loading import KerasSession, keras_session
from freezekeras.tf.reference import Recording, check_recording, read_recording
from freezekeras.tf.tensors import tensor_spec
from freezekeras.tf.verification import BATCH_SIZE, FREE_DIM_SIZE, INT_HIGH, verify

#: Called after each step of a conversion with the step's name and its duration in seconds.
StepCallback = Callable[[str, float], None]

def convert(model: str | os.PathLike, options: ConvertOptions | None = None, *,
            on_step: StepCallback | None = None) -> ConversionResult:
    """Freeze a Keras ``.h5`` model into a TensorFlow ``GraphDef`` file.

    The model is built in tf-keras in inference mode, frozen, written
    atomically and, unless ``options.verify`` is false, read back and checked
    against Keras' own predictions before the file appears at its path. With
    ``options.reference``, it is also checked against recorded predictions.

    Args:
        model: The Keras ``.h5`` file.
        options: Conversion options; defaults when ``None``.
        on_step: Called with ``(step, seconds)`` after ``load``, ``freeze``,
            ``write``, ``verify`` and ``reference``.

    Returns:
        The output path, the nodes to feed and fetch, and the verification.

    Raises:
        UsageError: A path or output node name is wrong, or the reference
            file does not fit the model.
        ModelFileError: The file is not a Keras model freezekeras can read.
        LambdaLayerError: The model holds Lambda layers and they are not allowed.
        UnknownObjectError: The model uses custom layers or functions.
        ConversionError: Keras or TensorFlow failed.
        VerificationError: The frozen graph's outputs differ from Keras';
            nothing is written.
        ReferenceMismatchError: They differ from the recorded predictions
            (a VerificationError too); nothing is written.
    """
    options = options or ConvertOptions()
    path = Path(model)
    info = read_keras_file(path, architecture=_path_or_none(options.architecture), backend=options.backend)
    recording = None if options.reference is None else read_recording(Path(options.reference))
    target = output_path(path, _path_or_none(options.output), text=options.text)
    timer = _Timer(on_step)
    with AtomicFile(target) as out, contextlib.ExitStack() as stack:
        with timer.step("load"):
            keras = stack.enter_context(keras_session(
                info, custom_objects=_path_or_none(options.custom_objects),
                allow_lambda=options.allow_lambda, verbose=options.verbose,
            ))
        outputs = _select_outputs(keras, options.output_nodes, path)
        with timer.step("freeze"):
            graph_def, inputs, relaid = _freeze(keras, outputs, path, keep_nchw=options.keep_nchw)
        warnings = _warnings(graph_def, keras, inputs, relaid, kept=options.keep_nchw)
        with timer.step("write"):
            out.write(serialize(graph_def, text=options.text, source=path))
        node_count = len(graph_def.node)
        del graph_def  # verification reads the written file; a large model's constants need not be held twice
        verification = reference = None
        written = _read_back(out.temporary) if options.verify or recording is not None else None
        if options.verify:
            with timer.step("verify"):
                verification = _verify(keras, written, inputs, outputs, options, path)
            if not verification.passed:
                raise _verification_error(path, verification, warnings)
        if recording is not None:
            with timer.step("reference"):
                reference = _check_reference(written, recording, inputs, outputs, options, path)
            if not reference.passed:
                raise _reference_error(path, recording, reference)
        out.commit()
    return ConversionResult(
        model=path,
        output=target,
        inputs=inputs,
        outputs=outputs,
        node_count=node_count,
        size_bytes=target.stat().st_size,
        verification=verification,
        warnings=warnings,
        timings=timer.timings,
        reference=reference,
    )


def _freeze(keras: KerasSession, outputs: tuple[TensorSpec, ...], path: Path, *,
            keep_nchw: bool) -> tuple[Any, tuple[TensorSpec, ...], list[str]]:
    """The frozen graph, inputs and outputs in the Keras order; the inputs it still has; and its
    channels-first nodes (rewritten to NHWC, so that it runs on CPUs, unless ``keep_nchw``)."""
    graph_def = freeze_graph(keras.session, keras.graph, [spec.name for spec in outputs], source=path)
    relaid = channels_first_nodes(graph_def, functions=False)
    if relaid and not keep_nchw:
        graph_def = to_channels_last(graph_def, [spec.name for spec in outputs])
    stable_function_names(graph_def)
    kept = {node.name for node in graph_def.node}
    inputs = tuple(spec for spec in keras.inputs() if spec.name in kept)
    order_nodes(graph_def, first=[spec.name for spec in inputs], last=[spec.name for spec in outputs])
    record_output_shapes(graph_def, keras.graph, [spec.name for spec in outputs])
    return graph_def, inputs, relaid


def _warnings(graph_def: Any, keras: KerasSession, inputs: tuple[TensorSpec, ...],
              relaid: list[str], *, kept: bool) -> tuple[str, ...]:
    """What a user should know about the frozen graph before serving it."""
    unused = [spec.name for spec in keras.inputs() if spec not in inputs]
    return (
        *keras.notes,
        *([relayout_note(relaid, kept=kept)] if relaid else []),
        *find_leftovers(graph_def),
        *(f"input {name} is not used by the outputs, so the frozen graph has no such node" for name in unused),
        *(f"stateful layer {name} is frozen with its state at zero: every run starts afresh"
          for name in _stateful_layers(keras.model)),
    )


def _select_outputs(keras: KerasSession, names: tuple[str, ...], path: Path) -> tuple[TensorSpec, ...]:
    if not names:
        return keras.outputs()
    return tuple(_output_node(keras, name, path) for name in names)


def _output_node(keras: KerasSession, name: str, path: Path) -> TensorSpec:
    """The spec of ``--output-node name``, or the UsageError that says why it cannot be fetched."""
    op_name, _, index = name.partition(":")
    try:
        op = keras.graph.get_operation_by_name(op_name)
        position = int(index or 0)
    except (KeyError, ValueError):
        return _raise_node_error(path, name, f"is not in the model's graph.{_near_names(keras, name)}")
    if not 0 <= position < len(op.outputs):
        count = len(op.outputs)
        return _raise_node_error(path, name, f"asks for output {position} of {op_name}, which has "
                                             f"{count or 'no'} output{'' if count == 1 else 's'}.")
    tensor = op.outputs[position]
    if tensor.dtype.name in {"resource", "variant"}:
        return _raise_node_error(path, name, f"gives a {tensor.dtype.name} handle (a variable or a container), "
                                             "not values; name the node that reads it instead.")
    return tensor_spec(tensor)


def _raise_node_error(path: Path, name: str, problem: str) -> TensorSpec:
    raise UsageError(f"{path}: --output-node {name} {problem} "
                     f"Run 'freezekeras inspect {path}' to list the output nodes.")


def _near_names(keras: KerasSession, name: str) -> str:
    layer_output = _layer_output_node(keras.model, name)
    if layer_output:
        return f" That is a Keras layer name; its output node is {layer_output}."
    close = difflib.get_close_matches(name, [op.name for op in keras.graph.get_operations()], n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


def _layer_output_node(model: Any, name: str) -> str | None:
    try:
        output = model.get_layer(name).output
    except (ValueError, AttributeError):  # no such layer, or a layer used more than once
        return None
    tensor = output[0] if isinstance(output, (list, tuple)) else output
    return tensor.op.name


def _read_back(written: Path) -> Any:
    """The graph as written (what verification checks), as TensorFlow's own ``GraphDef``."""
    return read_graph_def(written, message=import_tensorflow().compat.v1.GraphDef())


def _verify(keras: KerasSession, graph_def: Any, inputs, outputs, options: ConvertOptions, path: Path):
    tf = import_tensorflow()
    try:
        return verify(
            graph_def, inputs, outputs,
            reference=lambda feeds: keras.run([spec.name for spec in outputs], feeds),
            seed=options.seed, int_high=_integer_input_limit(keras.model), atol=options.atol,
        )
    except ConversionError as exc:
        raise ConversionError(f"{path}: {exc}") from exc
    except tf.errors.OpError as exc:  # e.g. random inputs too small for the model
        raise ConversionError(
            f"{path}: running the model on random inputs for verification failed "
            f"({error_summary(exc)}; unknown dimensions were given size {FREE_DIM_SIZE}, the batch "
            f"{BATCH_SIZE}); nothing was written. Pass --no-verify to convert without checking."
        ) from exc


def _check_reference(graph_def: Any, recording: Recording, inputs, outputs, options: ConvertOptions,
                     path: Path):
    tf = import_tensorflow()
    try:
        return check_recording(graph_def, recording, inputs, outputs, atol=options.atol)
    except tf.errors.OpError as exc:  # e.g. inputs the shape checks could not catch
        raise UsageError(
            f"{recording.path}: the frozen graph of {path} cannot run on the recorded inputs "
            f"({error_summary(exc)}); nothing was written. Record inputs this model takes."
        ) from exc


def _reference_error(path: Path, recording: Recording, reference) -> ReferenceMismatchError:
    return ReferenceMismatchError(
        f"{path}: the frozen graph's outputs differ from the predictions recorded in {recording.path} "
        f"by up to {reference.max_abs_diff:.3g} (output {reference.worst_output}, tolerance {reference.atol:.3g}); "
        f"nothing was written. Check that the file records this model's predictions, or pass --atol "
        "to accept the difference.",
        verification=reference,
    )


def _verification_error(path: Path, verification, warnings: Sequence[str]) -> VerificationError:
    random_ops = [line for line in warnings if line.startswith("random ops")]
    if random_ops:  # e.g. Dropout called with training=True: no two runs agree
        why = (f"The graph draws random numbers at inference ({random_ops[0]}), so no two runs agree; "
               "pass --no-verify to keep it anyway.")
    else:
        why = "Rerun with --debug and report it, or pass --atol or --no-verify to keep the graph anyway."
    return VerificationError(
        f"{path}: the frozen graph's outputs differ from Keras' by up to "
        f"{verification.max_abs_diff:.3g} (output {verification.worst_output}, tolerance {verification.atol:.3g}); "
        f"nothing was written. {why}",
        verification=verification,
    )


def _integer_input_limit(model: Any, default: int = INT_HIGH) -> int:
    """Random integer inputs stay below this: the smallest Embedding or CategoryEncoding size, at most ``default``."""
    sizes = [getattr(layer, "input_dim", None) if type(layer).__name__ == "Embedding"
             else getattr(layer, "num_tokens", None) if type(layer).__name__ == "CategoryEncoding"
             else None for layer in all_layers(model)]
    return max(1, min([default] + [int(size) for size in sizes if size]))


def _stateful_layers(model: Any) -> list[str]:
    return sorted({layer.name for layer in all_layers(model) if getattr(layer, "stateful", False)})


def _path_or_none(value: str | os.PathLike | None) -> Path | None:
    return None if value is None else Path(value)


class _Timer:
    def __init__(self, on_step: StepCallback | None):
        self.on_step = on_step
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        if self.on_step is not None:
            self.on_step(name, self.timings[name])
