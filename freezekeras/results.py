"""The dataclasses the Python API takes and returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from freezekeras.contract import renames, shape_specs
from freezekeras.errors import UsageError


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model or graph.

    Attributes:
        name: The graph node to feed or fetch; for an ``.h5`` model inspected,
            the Keras layer name.
        dtype: The element type, e.g. ``"float32"``.
        shape: The dimensions, ``None`` where unknown; ``None`` for an unknown rank.
        layer: The Keras layer the tensor belongs to, where known.
        node: For an ``.h5`` model inspected, the node ``convert`` will name.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...] | None
    layer: str | None = None
    node: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form: ``{"name", "dtype", "shape"}`` plus ``layer``/``node`` if known."""
        data: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype,
            "shape": None if self.shape is None else list(self.shape),
        }
        for key in ("layer", "node"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


#: The Keras backends a file may have been trained with, as ``--backend`` names them.
BACKENDS = ("tensorflow", "theano")
#: The two ways to freeze: a tf-keras graph session, or a traced concrete function.
ROUTES = ("session", "function")
#: The runtimes ``--target`` knows (:mod:`freezekeras.graphdef.targets` says what each cannot take).
TARGET_NAMES = ("tf", "opencv", "onnx", "openvino", "tflite")
#: The SavedModel signature converted unless ``signature`` says otherwise.
DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class ConvertOptions:
    """Options of :func:`freezekeras.convert`; every field has a sensible default.

    Attributes:
        output: Where to write the graph: a file, or an existing folder (the
            file is then named after the model). Default: the model's path
            with ``.pb`` (``.pbtxt`` with ``text``). ``"-"`` writes it to
            standard output; an existing target that is not a regular file
            (``/dev/null``, a FIFO, a socket) is written into, never replaced.
        output_nodes: Freeze these nodes instead of the model's outputs.
        text: Write the GraphDef as protobuf text instead of binary.
        verify: Check the frozen graph against the Keras model's predictions.
        atol: Largest absolute difference verification accepts. ``None``:
            ``1e-4`` times the largest absolute Keras output (at least ``1e-4``).
        seed: Seed of the random verification inputs.
        architecture: A JSON (``model.to_json()``) or YAML architecture; the
            ``.h5`` then supplies only the weights (a weights-only file or a
            whole model).
        custom_objects: A Python file defining the model's custom layers and
            functions; running it is an explicit opt-in.
        allow_lambda: Load Lambda layers, running the Python bytecode they hold.
        verbose: Leave TensorFlow's logging on.
        reference: Recorded inputs and predictions the frozen graph must
            reproduce (within ``atol``): an ``.npz`` or an HDF5 file with
            ``inputs/`` and ``predictions/`` groups. Checked besides the
            comparison with Keras, or alone when ``verify`` is false.
        backend: The Keras backend that trained the model (``"theano"`` or
            ``"tensorflow"``), for files that do not record it (Keras 1);
            ``"theano"`` flips convolution kernels.
        keep_nchw: Leave ``channels_first`` (NCHW) convolutions and poolings
            as they are, for OpenCV's dnn module and GPU runtimes. By default
            they are rewritten to NHWC between transposes, which TensorFlow's
            CPU kernels need (see :mod:`freezekeras.tf.layout`).
        route: ``"session"`` or ``"function"`` for a Keras 1 or 2 file (default
            session); Keras 3 models and SavedModels always take the function
            route (:mod:`freezekeras.tf.function_route`), and ``"session"`` is
            refused for them.
        signature: The SavedModel signature to freeze.
        optimize: Simplify the frozen graph for inference with TensorFlow's own tools
            (BatchNorm folded into convolutions, constants folded, Identity chains and
            no-ops dropped: :func:`freezekeras.tf.optimize.optimize`); verification
            checks the optimized graph.
        fp16: Store float32 weights as float16 constants with a cast back (about half the
            file); verification's default tolerance is then
            :data:`freezekeras.tf.optimize.FP16_RELATIVE_ATOL` times the largest output.
        input_shapes: Fix input dimensions in the frozen graph (``--input-shape``):
            ``(name, dims)`` pairs, ``name`` an input's node or Keras layer (``None``:
            the only input), ``dims`` with the batch first and ``None`` where left
            unknown; or ``"NAME:DIMS"`` strings, or a mapping. Shapes propagate to the
            outputs. A Sequential saved before it was built gets its input shape here.
        verify_shapes: The same form; sizes only verification's random inputs
            (``--verify-shape``), the graph keeps its unknown dimensions.
        input_names: Rename inputs for serving (``--input-name``): ``(old, new)``
            pairs (or ``"OLD=NEW"`` strings, or a mapping), ``old`` the node or the Keras layer.
        output_names: Rename outputs the same way (``--output-name``).
        batch_size: Fix the batch dimension of every input whose batch is unknown
            (``--batch-size``); ``None`` keeps it unknown.
        target: The runtime the graph is for (``--target``, one of :data:`TARGET_NAMES`):
            picks the options it needs where they are not given (see
            :func:`freezekeras.target.choose`), and the graph is refused, unwritten,
            when it holds what that runtime cannot run
            (:mod:`freezekeras.graphdef.targets`).
    """

    output: Path | None = None
    output_nodes: tuple[str, ...] = ()
    text: bool = False
    verify: bool = True
    atol: float | None = None
    seed: int = 0
    architecture: Path | None = None
    custom_objects: Path | None = None
    allow_lambda: bool = False
    verbose: bool = False
    reference: Path | None = None
    backend: str | None = None
    keep_nchw: bool = False
    route: str | None = None
    signature: str = DEFAULT_SIGNATURE
    optimize: bool = False
    fp16: bool = False
    input_shapes: tuple[tuple[str | None, tuple[int | None, ...]], ...] = ()
    verify_shapes: tuple[tuple[str | None, tuple[int | None, ...]], ...] = ()
    input_names: tuple[tuple[str, str], ...] = ()
    output_names: tuple[tuple[str, str], ...] = ()
    batch_size: int | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        """Check the values; a single node name is taken as a one-name tuple.

        Raises:
            UsageError: ``seed`` is negative, ``atol`` is not a finite number >= 0, or
                ``backend`` is not one of :data:`BACKENDS`.
        """
        if isinstance(self.output_nodes, str):
            object.__setattr__(self, "output_nodes", (self.output_nodes,))
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"seed {self.seed!r}: use a whole number of 0 or more (--seed).")
        if self.atol is not None and not (math.isfinite(self.atol) and self.atol >= 0):
            raise UsageError(f"atol {self.atol!r}: use a finite number of 0 or more (--atol).")
        if self.backend not in (None, *BACKENDS):
            raise UsageError(f"backend {self.backend!r}: use one of {', '.join(BACKENDS)} (--backend).")
        if self.route not in (None, *ROUTES):
            raise UsageError(f"route {self.route!r}: use one of {', '.join(ROUTES)} (--route).")
        if self.target not in (None, *TARGET_NAMES):
            raise UsageError(f"target {self.target!r}: use one of {', '.join(TARGET_NAMES)} (--target).")
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise UsageError(f"batch size {self.batch_size!r}: use a whole number of 1 or more (--batch-size).")
        for key, option in (("input_shapes", "--input-shape"), ("verify_shapes", "--verify-shape")):
            object.__setattr__(self, key, shape_specs(getattr(self, key), option))
        for key, option in (("input_names", "--input-name"), ("output_names", "--output-name")):
            object.__setattr__(self, key, renames(getattr(self, key), option))


def severity(difference: float) -> float:
    """Order differences worst first: NaN (one side only) ranks above any number."""
    return math.inf if math.isnan(difference) else difference


@dataclass(frozen=True)
class Verification:
    """How the frozen graph's outputs compare with the Keras model's.

    Attributes:
        passed: Every output is within ``atol``.
        max_abs_diff: The largest absolute difference over all outputs.
        atol: The tolerance used.
        per_output: The largest absolute difference of each output, by node name.
        input_shapes: The shapes of the random inputs fed, by node name.
    """

    passed: bool
    max_abs_diff: float
    atol: float
    per_output: dict[str, float] = field(default_factory=dict)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def worst_output(self) -> str | None:
        """The output with the largest difference (``None`` for a model without outputs)."""
        return max(self.per_output, key=lambda name: severity(self.per_output[name]), default=None)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form of this result."""
        data = asdict(self)
        data["input_shapes"] = {k: list(v) for k, v in self.input_shapes.items()}
        return data


@dataclass(frozen=True)
class ConversionResult:
    """What :func:`freezekeras.convert` produced.

    Attributes:
        model: The input model (a Keras file or a SavedModel folder).
        output: The frozen graph written.
        inputs: The nodes to feed, in the Keras model's input order.
        outputs: The nodes to fetch, in the Keras model's output order.
        node_count: Nodes in the frozen graph.
        size_bytes: Size of the written file.
        verification: The comparison with Keras, or ``None`` if skipped.
        warnings: Things in the frozen graph a serving runtime may reject.
        timings: Seconds spent per step (``load``, ``freeze``, ``write``,
            ``verify``, ``reference``).
        reference: The comparison with the recorded predictions of
            ``ConvertOptions.reference`` (``input_shapes``: the recorded
            inputs fed), or ``None`` without one.
        route: ``"session"`` or ``"function"``: how the model was frozen.
        route_reason: Why that route, in a few words.
        transforms: What ``optimize`` and ``fp16`` did (their reports, by name); empty without them.
        target: The ``--target`` runtime, or ``None``.
        target_options: The options ``target`` picked, as on the command line
            (``("--route function", "--batch-size 1")``); empty when it needed none.
    """

    model: Path
    output: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    node_count: int
    size_bytes: int
    verification: Verification | None
    warnings: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    reference: Verification | None = None
    route: str = "session"
    route_reason: str = ""
    transforms: dict[str, dict[str, int]] = field(default_factory=dict)
    target: str | None = None
    target_options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form documented in docs/json.md."""
        return {
            "model": str(self.model),
            "output": str(self.output),
            "route": self.route,
            "route_reason": self.route_reason,
            "target": None if self.target is None else {"runtime": self.target, "options": list(self.target_options)},
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
            "node_count": self.node_count,
            "size_bytes": self.size_bytes,
            "verification": None if self.verification is None else self.verification.to_json(),
            "reference": None if self.reference is None else self.reference.to_json(),
            "warnings": list(self.warnings),
            "transforms": self.transforms,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class InspectResult:
    """What :func:`freezekeras.inspect` found in a file.

    Attributes:
        path: The file inspected.
        format: ``"keras-h5"``, ``"keras-archive"`` (a Keras 3 ``.keras`` file),
            ``"keras-weights"`` (Keras 3 weights with an architecture), ``"saved-model"`` or ``"graphdef"``.
        inputs: Inputs in the model's order (graph order for a GraphDef; sorted by key for a SavedModel).
        outputs: Outputs in the model's order (graph order for a GraphDef; sorted by key for a SavedModel).
        details: Format-specific facts: ``keras_version``, ``backend``,
            ``layer_count``, ``param_count``, ``route`` (``"session"`` or
            ``"function"``) and, for Keras 3, ``repairs`` (if any) and
            ``architecture`` (weights) for a Keras model; ``signature``, ``route``,
            ``tags``, ``meta_graph_count``, ``signatures``, ``function_count``,
            ``tensorflow_version``, ``keras_metadata``, ``fingerprint``,
            ``variables_bytes`` and ``assets`` for a SavedModel; ``node_count``,
            ``op_histogram`` (op type to count), ``param_count``,
            ``const_bytes``, ``functions`` and ``lint`` for a GraphDef.
    """

    path: Path
    format: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form documented in README.md."""
        return {
            "path": str(self.path),
            "format": self.format,
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
            **self.details,
        }

    @property
    def lint_errors(self) -> list[dict[str, Any]]:
        """The error-level lint findings of a graph (``inspect --check`` fails on them); empty otherwise."""
        return [finding for finding in self.details.get("lint") or [] if finding["severity"] == "error"]


@dataclass(frozen=True)
class BatchItem:
    """The outcome of one model of :func:`freezekeras.convert_many`: a result or an error.

    Attributes:
        model: The input file.
        result: The conversion, or ``None`` if it failed.
        error: The one-line error message, or ``None`` if it succeeded.
        exit_code: What the command line exits with for this model alone (0 on success).
        exception: The exception caught, for a traceback (``--debug``); not compared.
    """

    model: Path
    result: ConversionResult | None = None
    error: str | None = None
    exit_code: int = 0
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """The model was converted (and verified, unless verification was off)."""
        return self.result is not None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form: the conversion's object plus ``status``, ``exit_code``, ``error``.

        A failure gives ``model``, ``output`` (``null``), ``status`` ``"failed"``,
        ``exit_code``, ``error`` and ``verification`` (the failed comparison, or ``null``).
        """
        if self.result is not None:
            return {**self.result.to_json(), "status": "converted", "exit_code": self.exit_code, "error": None}
        verification = getattr(self.exception, "verification", None)
        return {
            "model": str(self.model),
            "output": None,
            "status": "failed",
            "exit_code": self.exit_code,
            "error": self.error,
            "verification": None if verification is None else verification.to_json(),
        }
