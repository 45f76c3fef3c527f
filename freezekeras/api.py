"""The Python API's :func:`convert` (:func:`~freezekeras.inspection.inspect` lives apart, free of TensorFlow).

Neither prints nor exits: they return result dataclasses or raise a
:class:`~freezekeras.errors.FreezeKerasError`.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import gc
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from freezekeras.contract import check_new_names, format_dims, resolve_renames, resolve_shapes
from freezekeras.errors import (
    ConversionError,
    ReferenceMismatchError,
    TargetError,
    UsageError,
    VerificationError,
    error_summary,
)
from freezekeras.graphdef.lint import shown_names
from freezekeras.graphdef.reading import parse_graph_def
from freezekeras.graphdef.savedmodel import is_saved_model, read_signatures
from freezekeras.graphdef.targets import TARGETS, target_gaps
from freezekeras.kerasfile.generation import keras_generation
from freezekeras.kerasfile.h5file import read_keras_file
from freezekeras.kerasfile.keras3 import read_keras3_file
from freezekeras.kerasfile.shapes import free_size_needed
from freezekeras.kerasfile.unbuilt import built_sequential
from freezekeras.output import AtomicFile, StreamOutput, open_output, output_path
from freezekeras.paths import check_input_path
from freezekeras.results import DEFAULT_SIGNATURE, ConversionResult, ConvertOptions, TensorSpec
from freezekeras.target import TargetChoice, choose
from freezekeras.tf.contract import fix_input_shapes, rename_nodes
from freezekeras.tf.freezing import (
    find_leftovers,
    freeze_graph,
    order_nodes,
    record_output_shapes,
    serialize,
    stable_function_names,
)
from freezekeras.tf.function_route import freeze_traced, keras3_model, saved_model, traced_tf_keras_model
from freezekeras.tf.imports import import_tensorflow
from freezekeras.tf.layers import integer_input_limit, stateful_layers
from freezekeras.tf.layout import channels_first_nodes, relayout_note, to_channels_last
from freezekeras.tf.loading import KerasSession, keras_session
from freezekeras.tf.optimize import FP16_RELATIVE_ATOL, optimize, to_fp16
from freezekeras.tf.reference import Recording, check_recording, read_recording
from freezekeras.tf.tensors import tensor_spec
from freezekeras.tf.verification import BATCH_SIZE, FREE_DIM_SIZE, INT_HIGH, RELATIVE_ATOL, verify

#: Called after each step of a conversion with the step's name and its duration in seconds.
StepCallback = Callable[[str, float], None]

def convert(model: str | os.PathLike, options: ConvertOptions | None = None, *,
            on_step: StepCallback | None = None) -> ConversionResult:
    """Freeze a Keras model or a SavedModel into a TensorFlow ``GraphDef`` file.

    Keras 1 and 2 ``.h5`` files are built in tf-keras in a graph session and
    frozen there (the session route); Keras 3 files and SavedModel folders are
    traced into a concrete function and frozen with
    ``convert_variables_to_constants_v2`` (the function route, also
    ``options.route="function"`` for Keras 2 files). The graph is written
    atomically and, unless ``options.verify`` is false, read back and checked
    against the model's own predictions before the file appears at its path.
    With ``options.reference``, it is also checked against recorded predictions.

    Args:
        model: The Keras file (``.h5``, ``.keras``) or SavedModel folder.
        options: Conversion options; defaults when ``None``.
        on_step: Called with ``(step, seconds)`` after ``load``, ``freeze``,
            ``write``, ``verify`` and ``reference``.

    Returns:
        The output path, the nodes to feed and fetch, the route, and the verification.

    Raises:
        UsageError: A path, route, signature or output node name is wrong, or
            the reference file does not fit the model.
        ModelFileError: The file is not a model freezekeras can read.
        LambdaLayerError: The model holds Lambda layers and they are not allowed.
        UnknownObjectError: The model uses custom layers or functions.
        ConversionError: Keras or TensorFlow failed.
        VerificationError: The frozen graph's outputs differ from the model's;
            nothing is written.
        ReferenceMismatchError: They differ from the recorded predictions
            (a VerificationError too); nothing is written.
    """
    options = options or ConvertOptions()
    path = Path(model)
    plan = plan_route(path, options)
    options, plan, choice = _choose_target(plan, path, options)
    recording = None if options.reference is None else read_recording(Path(options.reference))
    target = output_path(path, _path_or_none(options.output), text=options.text)
    timer = _Timer(on_step)
    with open_output(target) as out, contextlib.ExitStack() as stack:
        with timer.step("load"):
            loaded = stack.enter_context(_load(plan, path, options))
        with timer.step("freeze"):
            frozen = _freeze(plan, loaded, path, options)
            _serving_contract(frozen, plan, options, path)
        if options.optimize or options.fp16:
            with timer.step("optimize"):
                _transform(frozen, options)
        _check_target(frozen, options, path)  # the graph as it will be written
        with timer.step("write"):
            out.write(serialize(frozen.graph_def, text=options.text, source=path))
        node_count = len(frozen.graph_def.node)
        frozen.channels_first = bool(channels_first_nodes(frozen.graph_def))
        frozen.graph_def = None  # verification reads the written file; a large model's constants need not be held twice
        # The model is held by `frozen.predict` and `stack` alone, until verification has its predictions.
        loaded = None
        release = functools.partial(_release, frozen, stack, collect=plan.route == "function")
        verification = reference = None
        # Verification alone reads the file back inside the check, which drops it once imported.
        written = (_read_back(out, text=options.text) if recording is not None
                   else functools.partial(_read_back, out, text=options.text))
        if options.verify:
            with timer.step("verify"):
                verification = _verify(frozen, written, options, path, release=release)
            if not verification.passed:
                raise _verification_error(path, verification, frozen.warnings)
        if recording is not None:
            release()
            with timer.step("reference"):
                reference = _check_reference(written, recording, frozen, options, path)
            if not reference.passed:
                raise _reference_error(path, recording, reference)
        out.commit()
    return ConversionResult(
        model=path,
        output=target,
        inputs=frozen.inputs,
        outputs=frozen.outputs,
        node_count=node_count,
        size_bytes=out.size,
        verification=verification,
        warnings=frozen.warnings,
        timings=timer.timings,
        reference=reference,
        route=plan.route,
        route_reason=plan.reason,
        transforms=frozen.transforms,
        target=options.target,
        target_options=choice.options if choice else (),
    )


@dataclass(frozen=True)
class RoutePlan:
    """Which route a model takes, and why; with what was read of the file (no TensorFlow yet).

    Attributes:
        route: ``"session"`` or ``"function"``.
        reason: Why, in a few words, for the output.
        kind: ``"keras2"`` (Keras 1 or 2 ``.h5``), ``"keras3"`` or ``"saved-model"``.
        info: The file's metadata: a :class:`~freezekeras.kerasfile.h5file.KerasFileInfo`
            or :class:`~freezekeras.kerasfile.keras3.Keras3FileInfo` (``None`` for a SavedModel).
    """

    route: str
    reason: str
    kind: str
    info: Any = None
    notes: tuple[str, ...] = ()

    @property
    def config(self) -> dict[str, Any] | None:
        """The model config read from the file (``None`` for a SavedModel)."""
        if self.info is None:
            return None
        return self.info.model_config if self.kind == "keras2" else self.info.config


def plan_route(path: Path, options: ConvertOptions) -> RoutePlan:
    """Read ``path`` (without TensorFlow) and choose its route: the file decides, ``options.route`` only for Keras 2.

    Raises:
        UsageError: ``options.route`` asks for the session route for a Keras 3
            model or a SavedModel, or an option applies to the other route.
        ModelFileError: The file is not a model freezekeras can read.
    """
    check_input_path(path, saved_model=True)
    architecture = _path_or_none(options.architecture)
    if is_saved_model(path):
        plan = RoutePlan("function", _saved_model_reason(path, options.signature), "saved-model")
    elif keras_generation(path) == "keras3":
        info = read_keras3_file(path, architecture=architecture)
        plan = RoutePlan("function", f"a Keras {info.keras_version or '3'} model: Keras 3 traces into TensorFlow "
                                     "functions", "keras3", info)
    else:
        info = read_keras_file(path, architecture=architecture, backend=options.backend)
        info, notes = built_sequential(info, options.input_shapes)
        chosen = options.route or "session"
        version = f"Keras {info.keras_version}" if info.keras_version else "Keras"
        plan = RoutePlan(chosen, f"a {version} .h5" + (", --route function" if options.route == "function" else ""),
                         "keras2", info, notes)
    _check_route_options(plan, path, options)
    return plan


def _choose_target(plan: RoutePlan, path: Path,
                   options: ConvertOptions) -> tuple[ConvertOptions, RoutePlan, TargetChoice | None]:
    """The options and plan ``options.target`` needs (:func:`freezekeras.target.choose`)."""
    chosen, choice = choose(options, kind=plan.kind, config=plan.config, source=path)
    if choice is None or chosen.route == plan.route or chosen.route is None:
        return chosen, plan, choice
    plan = replace(plan, route=chosen.route, reason=f"{plan.reason}, --target {choice.target}: {choice.reason}")
    _check_route_options(plan, path, chosen)
    return chosen, plan, choice


def _check_target(frozen: _Frozen, options: ConvertOptions, path: Path) -> None:
    """Refuse a graph holding what the ``--target`` runtime cannot run (:mod:`freezekeras.graphdef.targets`)."""
    if options.target is None:
        return
    gaps = target_gaps(frozen.graph_def, options.target)
    if gaps:
        gap, nodes = gaps[0]
        raise TargetError(f"{path}: {TARGETS[options.target]} cannot run the frozen graph: it has {gap.label}: "
                          f"{len(nodes)} ({shown_names(nodes, limit=2)}); nothing was written. "
                          f"{gap.fix[0].upper()}{gap.fix[1:]}, or drop --target to write the graph anyway.")


def _saved_model_reason(path: Path, signature: str) -> str:
    """What a SavedModel holds, read without TensorFlow; refused if it lacks ``signature``."""
    signatures = read_signatures(path)
    if signature not in signatures:
        raise UsageError(f"{path}: has no signature '{signature}'; it has: {', '.join(signatures) or 'none'}. "
                         "Pass --signature with one of them.")
    others = [key for key in signatures if key != signature]
    also = f" (also: {', '.join(others)})" if others else ""
    return f"a SavedModel, signature {signature}{also}; it holds TensorFlow graphs, and no Python from it runs"


def _check_route_options(plan: RoutePlan, path: Path, options: ConvertOptions) -> None:
    if options.route == "session" and plan.kind != "keras2":
        what = "a SavedModel" if plan.kind == "saved-model" else "a Keras 3 model"
        raise UsageError(f"{path}: is {what}, which only the function route freezes (the session route builds "
                         "tf-keras models). Drop --route session.")
    if plan.route == "function" and options.output_nodes:
        raise UsageError(f"{path}: --output-node names nodes of the session route's graph; the function route "
                         "freezes the model's own outputs. Drop --output-node, or convert with --route session.")
    if plan.kind == "saved-model" and (options.architecture or options.custom_objects or options.allow_lambda):
        raise UsageError(f"{path}: is a SavedModel, which runs no Python and needs no --architecture, "
                         "--custom-objects or --allow-lambda. Drop them.")
    if plan.kind != "saved-model" and options.signature != DEFAULT_SIGNATURE:
        raise UsageError(f"{path}: --signature picks a SavedModel's signature; this is a Keras model. Drop it.")


@dataclass
class _Frozen:
    """A frozen graph with what verification and the result need: nodes, warnings, the model's own predictions."""

    graph_def: Any
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    warnings: tuple[str, ...]
    predict: Callable[[dict[str, Any]], Sequence[Any]]
    int_high: int
    transforms: dict[str, dict[str, int]] = field(default_factory=dict)
    relative_atol: float = RELATIVE_ATOL
    verify_shapes: dict[str, tuple[int | None, ...]] = field(default_factory=dict)
    free_size: int | None = None  # the size the config says unknown dimensions need (None: the default)
    channels_first: bool = False  # the graph has channels-first (NCHW) nodes (--keep-nchw)


def _serving_contract(frozen: _Frozen, plan: RoutePlan, options: ConvertOptions, path: Path) -> None:
    """``--input-shape``, ``--input-name``/``--output-name`` and ``--verify-shape`` on the frozen graph, in place."""
    frozen.warnings = (*plan.notes, *frozen.warnings)
    shapes = resolve_shapes(path, options.input_shapes, frozen.inputs, batch=options.batch_size)
    shapes = {name: dims for name, dims in shapes.items()
              if dims != next(spec.shape for spec in frozen.inputs if spec.name == name)}
    if shapes:
        frozen.graph_def, frozen.outputs = fix_input_shapes(frozen.graph_def, shapes, frozen.outputs)
        frozen.inputs = tuple(replace(spec, shape=shapes.get(spec.name, spec.shape)) for spec in frozen.inputs)
    inputs = resolve_renames(path, options.input_names, frozen.inputs, option="--input-name", what="input")
    outputs = resolve_renames(path, options.output_names, frozen.outputs, option="--output-name", what="output")
    if inputs or outputs:
        check_new_names(path, inputs, outputs, (node.name for node in frozen.graph_def.node))
        rename_nodes(frozen.graph_def, inputs, outputs)
        old_names = {new: old for old, new in inputs.items()}
        predict = frozen.predict
        frozen.predict = lambda feeds: predict({old_names.get(name, name): value for name, value in feeds.items()})
        frozen.inputs = tuple(replace(spec, name=inputs.get(spec.name, spec.name)) for spec in frozen.inputs)
        frozen.outputs = tuple(replace(spec, name=outputs.get(spec.name, spec.name)) for spec in frozen.outputs)
    frozen.verify_shapes = resolve_shapes(path, options.verify_shapes, frozen.inputs, option="--verify-shape")
    if plan.kind == "keras2" and not options.verify_shapes:
        frozen.free_size = free_size_needed(plan.info.model_config, FREE_DIM_SIZE, MAX_FREE_SIZE)


def _transform(frozen: _Frozen, options: ConvertOptions) -> None:
    """``--optimize`` then ``--fp16`` on the frozen graph (folding would undo the float16 casts the other way)."""
    if options.optimize:
        frozen.graph_def, report = optimize(frozen.graph_def, inputs=[spec.name for spec in frozen.inputs],
                                            outputs=[spec.name for spec in frozen.outputs])
        frozen.transforms["optimize"] = report.to_json()
    if options.fp16:
        frozen.graph_def, report = to_fp16(frozen.graph_def)
        frozen.transforms["fp16"] = report.to_json()
        frozen.relative_atol = FP16_RELATIVE_ATOL


def _load(plan: RoutePlan, path: Path, options: ConvertOptions) -> contextlib.AbstractContextManager[Any]:
    """The model, built: a :class:`KerasSession` (session route) or a :class:`TracedModel` (function route)."""
    custom_objects = _path_or_none(options.custom_objects)
    if plan.kind == "saved-model":
        return saved_model(path, signature=options.signature, verbose=options.verbose)
    if plan.kind == "keras3":
        return keras3_model(plan.info, custom_objects=custom_objects, allow_lambda=options.allow_lambda,
                            input_shapes=options.input_shapes, batch_size=options.batch_size,
                            verbose=options.verbose)
    if plan.route == "function":
        return traced_tf_keras_model(plan.info, custom_objects=custom_objects, allow_lambda=options.allow_lambda,
                                     input_shapes=options.input_shapes, batch_size=options.batch_size,
                                     verbose=options.verbose)
    return keras_session(plan.info, custom_objects=custom_objects, allow_lambda=options.allow_lambda,
                         verbose=options.verbose)


def _freeze(plan: RoutePlan, loaded: Any, path: Path, options: ConvertOptions) -> _Frozen:
    if plan.route == "session":
        return _freeze_session(loaded, path, options)
    graph_def = freeze_traced(loaded, source=path)
    graph_def, relaid = _relayout(graph_def, [spec.name for spec in loaded.outputs], keep_nchw=options.keep_nchw)
    kept = {node.name for node in graph_def.node}
    inputs = tuple(spec for spec in loaded.inputs if spec.name in kept)
    warnings = _warnings(graph_def, loaded.notes, relaid, options.keep_nchw,
                         unused=[spec.name for spec in loaded.inputs if spec not in inputs], stateful=loaded.stateful)
    return _Frozen(graph_def, inputs, loaded.outputs, warnings, loaded.predict, loaded.int_high)


def _freeze_session(keras: KerasSession, path: Path, options: ConvertOptions) -> _Frozen:
    """The session route's frozen graph: inputs and outputs in the Keras order, channels-first nodes
    rewritten to NHWC (so that it runs on CPUs) unless ``keep_nchw``."""
    outputs = _select_outputs(keras, options.output_nodes, path)
    names = [spec.name for spec in outputs]
    graph_def = freeze_graph(keras.session, keras.graph, names, source=path)
    graph_def, relaid = _relayout(graph_def, names, keep_nchw=options.keep_nchw)
    stable_function_names(graph_def)
    kept = {node.name for node in graph_def.node}
    inputs = tuple(spec for spec in keras.inputs() if spec.name in kept)
    order_nodes(graph_def, first=[spec.name for spec in inputs], last=names)
    record_output_shapes(graph_def, keras.graph, names)
    warnings = _warnings(graph_def, keras.notes, relaid, options.keep_nchw,
                         unused=[spec.name for spec in keras.inputs() if spec not in inputs],
                         stateful=stateful_layers(keras.model))
    return _Frozen(graph_def, inputs, outputs, warnings, lambda feeds: keras.run(names, feeds),
                   integer_input_limit(keras.model, INT_HIGH))


def _relayout(graph_def: Any, outputs: Sequence[str], *, keep_nchw: bool) -> tuple[Any, list[str]]:
    """``graph_def`` with its channels-first nodes computing in NHWC (unless ``keep_nchw``), and those nodes."""
    relaid = channels_first_nodes(graph_def, functions=False)
    if relaid and not keep_nchw:
        graph_def = to_channels_last(graph_def, outputs)
    return graph_def, relaid


def _warnings(graph_def: Any, notes: Sequence[str], relaid: list[str], kept: bool, *, unused: Sequence[str],
              stateful: Sequence[str]) -> tuple[str, ...]:
    """What a user should know about the frozen graph before serving it."""
    return (
        *notes,
        *([relayout_note(relaid, kept=kept)] if relaid else []),
        *find_leftovers(graph_def),
        *(f"input {name} is not used by the outputs, so the frozen graph has no such node" for name in unused),
        *(f"stateful layer {name} is frozen with its state at zero: every run starts afresh" for name in stateful),
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


def _read_back(out: AtomicFile | StreamOutput, *, text: bool) -> bytes:
    """The graph as written (what verification checks), as binary ``GraphDef`` bytes.

    Read back from the temporary file; for a target written into only at the end (stdout,
    ``/dev/null``, a FIFO), which cannot be read back, the bytes kept for it. Binary bytes
    are TensorFlow's to import as they are; protobuf text (``text``) is parsed and serialized.
    """
    data = out.data if out.temporary is None else out.temporary.read_bytes()
    return parse_graph_def(data, out.target).SerializeToString() if text else data


def _release(frozen: _Frozen, stack: contextlib.ExitStack, *, collect: bool) -> None:
    """Free the model (its session, its variables) once verification has its predictions: the written
    graph is imported next, and a large model's weights and constants need not be held at once.

    The session route's variables live in its session, which closing frees; the function route's in
    the model, whose layers refer to one another: ``collect`` runs the garbage collector for them
    (a fifth of a second once TensorFlow is imported).
    """
    frozen.predict = None
    stack.close()
    if collect:
        gc.collect()


def _verify(frozen: _Frozen, graph_def: Any, options: ConvertOptions, path: Path,
            release: Callable[[], None] | None = None):
    """Verification on random inputs; unknown dimensions too small for the model (a time axis shorter than
    its cropping or pooling) are doubled, from the size the config asks for, while the error is a shape error.

    ``release`` frees the model once its predictions are made, at the last size only: until then
    a shape error of the frozen graph's run may still need the model's predictions for a larger size.
    """
    tf = import_tensorflow()
    free = _free_inputs(frozen)
    sizes = _free_sizes(frozen, free)
    for attempt, size in enumerate(sizes):
        try:
            return verify(graph_def, frozen.inputs, frozen.outputs, reference=frozen.predict, seed=options.seed,
                          int_high=frozen.int_high, atol=options.atol, relative_atol=frozen.relative_atol,
                          shapes=frozen.verify_shapes, free_size=size, channels_first=frozen.channels_first,
                          release=release if attempt + 1 == len(sizes) else None)
        except ConversionError as exc:
            raise ConversionError(f"{path}: {exc}") from exc
        except (tf.errors.OpError, ValueError) as exc:  # e.g. random inputs too small for the model
            if attempt + 1 < len(sizes) and _is_shape_error(exc):
                continue
            raise _verify_run_error(path, exc, frozen, free, sizes[:attempt + 1]) from exc
    raise AssertionError("unreachable: at least one size is tried")


#: The largest size verification gives an unknown dimension when the default is too small for the model.
MAX_FREE_SIZE = 8192
#: ... as long as a random input stays below this many elements.
_MAX_ELEMENTS = 1 << 25
_SHAPE_ERROR = re.compile(r"shape|size|dimension|negative|cropping|out of range|must be greater", re.IGNORECASE)


def _free_inputs(frozen: _Frozen) -> list[TensorSpec]:
    """The inputs with unknown dimensions past the batch that ``--verify-shape`` does not size."""
    free = []
    for spec in frozen.inputs:
        dims = frozen.verify_shapes.get(spec.name, spec.shape) or ()
        if any(dim is None for dim in dims[1:]):
            free.append(spec)
    return free


def _free_sizes(frozen: _Frozen, free: Sequence[TensorSpec]) -> list[int]:
    """The sizes to try for unknown dimensions: the config's (or the default), doubled while inputs stay small."""
    if not free:
        return [FREE_DIM_SIZE]
    sizes = [FREE_DIM_SIZE]
    while sizes[-1] * 2 <= MAX_FREE_SIZE and all(_elements(spec, sizes[-1] * 2, frozen) <= _MAX_ELEMENTS
                                                 for spec in free):
        sizes.append(sizes[-1] * 2)
    start = min(frozen.free_size or FREE_DIM_SIZE, sizes[-1])
    return [size for size in sizes if size >= start]


def _elements(spec: TensorSpec, size: int, frozen: _Frozen) -> int:
    dims = frozen.verify_shapes.get(spec.name, spec.shape) or ()
    count = 1
    for index, dim in enumerate(dims):
        count *= dim if dim is not None else (BATCH_SIZE if index == 0 else size)
    return count


def _is_shape_error(exc: BaseException) -> bool:
    """An error that a longer input may cure: TensorFlow's InvalidArgumentError or Keras' ValueError about shapes."""
    tf = import_tensorflow()
    return isinstance(exc, (tf.errors.InvalidArgumentError, ValueError)) and bool(_SHAPE_ERROR.search(str(exc)))


def _verify_run_error(path: Path, exc: BaseException, frozen: _Frozen, free: Sequence[TensorSpec],
                      sizes: Sequence[int]) -> ConversionError:
    if free:
        names = ", ".join(f"{spec.name} {format_dims(spec.shape)}" for spec in free)
        tried = f"every size from {sizes[0]} to {sizes[-1]}" if len(sizes) > 1 else f"size {sizes[0]}"
        where = f"the unknown dimensions of {names} were given {tried}, the batch {BATCH_SIZE}"
        example = f"{free[0].name}:{_example_dims(free[0], frozen)}"
    else:
        names = ", ".join(f"{spec.name} {format_dims(frozen.verify_shapes.get(spec.name, spec.shape))}"
                          for spec in frozen.inputs)
        where = f"inputs {names or 'none'}, an unknown batch given size {BATCH_SIZE}"
        example = "NAME:DIMS"
    return ConversionError(
        f"{path}: running the model on random inputs for verification failed ({error_summary(exc)}; {where}); "
        f"nothing was written. Pass --verify-shape {example} with sizes the model takes, or --no-verify to "
        "convert without checking."
    )


def _example_dims(spec: TensorSpec, frozen: _Frozen) -> str:
    dims = frozen.verify_shapes.get(spec.name, spec.shape) or ()
    return ",".join(str(BATCH_SIZE) if index == 0 and dim is None else "N" if dim is None else str(dim)
                    for index, dim in enumerate(dims))


def _check_reference(graph_def: Any, recording: Recording, frozen: _Frozen, options: ConvertOptions, path: Path):
    tf = import_tensorflow()
    try:
        return check_recording(graph_def, recording, frozen.inputs, frozen.outputs, atol=options.atol,
                               relative_atol=frozen.relative_atol, channels_first=frozen.channels_first)
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
