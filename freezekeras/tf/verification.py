"""Checking that a frozen graph computes what the Keras model computed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from freezekeras.errors import ConversionError
from freezekeras.graphdef.reading import parse_graph_def
from freezekeras.results import TensorSpec, Verification, severity
from freezekeras.tf.imports import import_tensorflow
from freezekeras.tf.internals import import_serialized_graph_def
from freezekeras.tf.layout import channels_first_nodes, frozen_session_config
from freezekeras.tf.tensors import run_session

#: Size given to an unknown batch dimension in the random inputs.
BATCH_SIZE = 2
#: Size given to any other unknown dimension (time steps, image sides).
FREE_DIM_SIZE = 32
#: Random integer inputs are below this (or the model's smallest Embedding or CategoryEncoding size).
INT_HIGH = 10
#: Default tolerance, relative to the largest absolute Keras output (at least 1).
RELATIVE_ATOL = 1e-4


def random_inputs(specs: Sequence[TensorSpec], *, seed: int = 0, int_high: int = INT_HIGH,
                  shapes: Mapping[str, Sequence[int | None]] | None = None,
                  free_size: int = FREE_DIM_SIZE) -> dict[str, Any]:
    """Make deterministic random inputs for ``specs``, keyed by node name.

    Floats are uniform in [-1, 1); integers uniform in [0, ``int_high``);
    booleans fair coin flips. An unknown first dimension becomes the batch another
    input fixes, else :data:`BATCH_SIZE`; any other unknown one ``free_size`` (:data:`FREE_DIM_SIZE`).
    ``shapes`` (``--verify-shape``) replaces an input's own shape, by node name.

    Raises:
        ConversionError: An input has a dtype with no random values (strings).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = {}
    # One batch for all inputs: the first an input fixes (its own shape, or ``shapes``), else BATCH_SIZE.
    known = [dims[0] for spec in specs if (dims := (shapes or {}).get(spec.name, spec.shape)) and dims[0] is not None]
    batch = known[0] if known else BATCH_SIZE
    for spec in specs:
        dims = (shapes or {}).get(spec.name, spec.shape) or ()
        shape = tuple(batch if i == 0 and dim is None else _concrete(dim, i, free_size) for i, dim in enumerate(dims))
        dtype = _numpy_dtype(spec.dtype)
        if dtype is None:
            raise ConversionError(
                f"cannot verify: no random inputs of dtype {spec.dtype} for input {spec.name}; "
                "pass --no-verify to convert without checking."
            )
        if dtype.kind == "f":
            value = rng.uniform(-1.0, 1.0, size=shape)
        elif dtype.kind in "iu":
            value = rng.integers(0, int_high, size=shape)
        elif dtype.kind == "b":
            value = rng.integers(0, 2, size=shape).astype(bool)
        else:
            value = rng.integers(0, int_high, size=shape)  # e.g. complex: small whole numbers
        feeds[spec.name] = value.astype(dtype)
    return feeds


def run_graph_def(graph_def: Any, feeds: dict[str, Any], fetches: Sequence[str], *,
                  channels_first: bool | None = None) -> list[Any]:
    """Import ``graph_def`` into a fresh graph and run it once.

    Args:
        graph_def: The frozen ``GraphDef``: its serialized bytes (imported as they are, with no
            parse in Python), TensorFlow's message, or any with the same fields; or a function
            returning one of them (then held only until it is imported).
        feeds: Values keyed by node or tensor name.
        fetches: Node or tensor names to fetch.
        channels_first: Whether the graph has channels-first (NCHW) nodes, which need the layout
            optimizer on CPUs (:func:`~freezekeras.tf.layout.frozen_session_config`); ``None``: looked
            up in ``graph_def`` (for bytes, parsed again to do so).

    Returns:
        The fetched arrays, in the order of ``fetches``.
    """
    tf = import_tensorflow()
    if callable(graph_def):  # reads it: then dropped once imported, before the run copies the constants
        graph_def = graph_def()
    if channels_first is None:
        message = parse_graph_def(graph_def, Path("the frozen graph")) if isinstance(graph_def, bytes) else graph_def
        channels_first = bool(channels_first_nodes(message))
        del message
    graph = tf.Graph()
    if isinstance(graph_def, bytes):
        import_serialized_graph_def(graph, graph_def)
    else:
        if not isinstance(graph_def, tf.compat.v1.GraphDef):  # e.g. freezekeras.graphdef.messages's own class
            graph_def = tf.compat.v1.GraphDef.FromString(graph_def.SerializeToString())
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
    del graph_def
    free_memory_returned()  # the import's copies of the constants, before the run makes its own
    with tf.compat.v1.Session(graph=graph, config=frozen_session_config(channels_first=channels_first)) as session:
        return run_session(session, fetches, feeds)


def free_memory_returned() -> None:
    """Give the memory the C library holds free back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    TensorFlow frees a graph's copies of its constants and a run's activations into the C
    library's heaps, which keep them; what runs next then grows the process from there.
    Returned, they no longer count in the process's peak memory.
    """
    import ctypes
    import ctypes.util

    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def compare(names: Sequence[str], expected: Sequence[Any], actual: Sequence[Any], *,
            atol: float | None = None, input_shapes: dict[str, tuple[int, ...]] | None = None,
            relative_atol: float = RELATIVE_ATOL) -> Verification:
    """Compare the frozen graph's outputs with Keras' own.

    NaNs (and infinities) in the same places count as equal; a NaN on one
    side only, or a shape mismatch, fails.

    Args:
        names: Output names, for the per-output report.
        expected: Keras' outputs.
        actual: The frozen graph's outputs.
        atol: The largest absolute difference accepted; ``None``:
            ``relative_atol`` times the largest absolute Keras output (at least 1).
        input_shapes: The shapes fed, recorded in the result.
        relative_atol: The default tolerance relative to the outputs' scale (:data:`RELATIVE_ATOL`;
            larger for a graph with float16 weights).
    """
    import numpy as np

    per_output = {}
    scale = 1.0
    for name, want, got in zip(names, expected, actual):
        want, got = np.asarray(want), np.asarray(got)
        if want.shape != got.shape:
            per_output[name] = float("inf")
            continue
        want, got = want.astype(np.float64), got.astype(np.float64)
        finite = np.isfinite(want)
        if finite.any():
            scale = max(scale, float(np.max(np.abs(want[finite]))))
        same = (want == got) | (np.isnan(want) & np.isnan(got))  # equal infinities, NaN for NaN
        with np.errstate(invalid="ignore"):  # inf - inf: such places are `same` already
            diff = np.where(same, 0.0, np.abs(want - got))  # NaN where only one side is NaN
        per_output[name] = float(np.max(diff)) if diff.size else 0.0
    tolerance = atol if atol is not None else relative_atol * scale
    return Verification(
        passed=all(diff <= tolerance for diff in per_output.values()),  # NaN fails
        max_abs_diff=max(per_output.values(), key=severity, default=0.0),
        atol=tolerance,
        per_output=per_output,
        input_shapes=dict(input_shapes or {}),
    )


def verify(graph_def: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
           reference: Callable[[dict[str, Any]], Sequence[Any]], *, seed: int = 0,
           int_high: int = INT_HIGH, atol: float | None = None,
           relative_atol: float = RELATIVE_ATOL, shapes: Mapping[str, Sequence[int | None]] | None = None,
           free_size: int = FREE_DIM_SIZE, channels_first: bool | None = None,
           release: Callable[[], None] | None = None) -> Verification:
    """Feed random inputs to ``reference``, then to ``graph_def``, and compare.

    Args:
        graph_def: The frozen graph, as read back from disk, or a function that reads it (see :func:`run_graph_def`).
        inputs: Its input nodes.
        outputs: Its output nodes.
        reference: Computes Keras' outputs from the same feeds.
        seed: Seed of the random inputs.
        int_high: Upper bound (exclusive) of integer inputs.
        atol: See :func:`compare`.
        relative_atol: See :func:`compare`.
        shapes: Shapes of the random inputs by node name, instead of the inputs' own (``--verify-shape``).
        free_size: The size of unknown dimensions past the batch (see :func:`random_inputs`).
        channels_first: See :func:`run_graph_def`.
        release: Called once ``reference`` has given its outputs, before ``graph_def`` is
            imported: it frees the model (its session, its variables), so that the model's
            weights and the frozen graph's constants are not held at once.
    """
    feeds = random_inputs(inputs, seed=seed, int_high=int_high, shapes=shapes, free_size=free_size)
    names = [spec.name for spec in outputs]
    expected = reference(feeds)
    del reference
    if release is not None:
        release()
        free_memory_returned()
    actual = run_graph_def(graph_def, feeds, names, channels_first=channels_first)
    shapes = {name: tuple(value.shape) for name, value in feeds.items()}
    return compare(names, expected, actual, atol=atol, input_shapes=shapes, relative_atol=relative_atol)


def _numpy_dtype(name: str):
    import numpy as np

    try:
        return np.dtype(name)
    except TypeError:  # string, resource, variant, bfloat16...
        return None


def _concrete(dim: int | None, index: int, free_size: int = FREE_DIM_SIZE) -> int:
    if dim is not None:
        return dim
    return BATCH_SIZE if index == 0 else free_size
