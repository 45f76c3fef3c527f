"""Recorded inputs and predictions (``--reference``): reading them and checking a frozen graph against them.

Two formats are read:

- ``.npz`` (``numpy.savez``): ``x0, x1, ...`` and ``y0, y1, ...`` give the
  inputs and outputs by position (the model's order), or keys name them by
  Keras layer or graph node; the two styles may be mixed.
- HDF5 with an ``inputs/`` and a ``predictions/`` group, each holding one
  dataset per input or output, named by Keras layer or graph node (the layout
  of deeplearning4j's Keras-import test files). A group's only dataset gives
  the model's only input or output, whatever its name.

Every input and output must be given exactly once and every key must name
one; otherwise :class:`~freezekeras.errors.UsageError` says which key and what
was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freezekeras.errors import UsageError, error_summary
from freezekeras.graphdef.reading import tensor_name
from freezekeras.paths import check_input_path, file_signature
from freezekeras.results import TensorSpec, Verification
from freezekeras.tf.verification import RELATIVE_ATOL, compare, run_graph_def

#: The groups of an HDF5 reference file: inputs, and the predictions to reproduce.
HDF5_GROUPS = {"inputs": "input", "predictions": "output"}
#: The positional keys of an ``.npz`` reference file: ``x0`` is the first input, ``y0`` the first output.
NPZ_LETTERS = {"input": "x", "output": "y"}
FORMATS_HINT = ("Pass an .npz (x0.., y0.., or keys named by input and output) or an HDF5 file "
                "with inputs/ and predictions/ groups")


@dataclass(frozen=True)
class Recording:
    """The arrays of a reference file, not yet matched to a graph's inputs and outputs.

    Attributes:
        path: The file.
        format: ``"npz"`` or ``"hdf5"``.
        arrays: The arrays by key: the ``.npz`` keys, or ``inputs/NAME`` and
            ``predictions/NAME`` for HDF5.
    """

    path: Path
    format: str
    arrays: dict[str, Any] = field(default_factory=dict)


def read_recording(path: Path) -> Recording:
    """Read every array of a reference file (``.npz`` or HDF5).

    Raises:
        UsageError: The file is missing, a directory, neither an ``.npz`` nor
            HDF5, unreadable, or an HDF5 file without ``inputs/`` and ``predictions/``.
    """
    check_input_path(path, option="--reference", expected="an .npz or HDF5 file of inputs and predictions")
    kind = file_signature(path) if path.stat().st_size else None
    if kind == "zip":
        return Recording(path, "npz", _read_npz(path))
    if kind == "hdf5":
        return Recording(path, "hdf5", _read_hdf5(path))
    raise UsageError(f"{path}: is neither an .npz nor an HDF5 file (given as --reference). {FORMATS_HINT}.")


def match_recording(recording: Recording, inputs: Sequence[TensorSpec],
                    outputs: Sequence[TensorSpec]) -> tuple[dict[str, Any], list[Any]]:
    """Pair the recorded arrays with the graph's inputs and outputs.

    Returns:
        The inputs to feed, keyed by node name and cast to the node's dtype,
        and the recorded predictions in the order of ``outputs``.

    Raises:
        UsageError: A key names nothing or more than one input/output, an
            input or output is given twice or not at all, or an array's shape
            or dtype does not fit its node.
    """
    specs = {"input": list(inputs), "output": list(outputs)}
    given: dict[tuple[str, int], list[str]] = {}
    for key in recording.arrays:
        targets = _targets(recording, key, specs)
        if len(targets) != 1:
            what = "names no input or output of the model" if not targets else \
                f"could be any of {', '.join(_describe(specs, t) for t in sorted(targets))}"
            _fail(recording, inputs, outputs, f"the key {key} {what}")
        given.setdefault(targets.pop(), []).append(key)
    for target, keys in given.items():
        if len(keys) > 1:
            _fail(recording, inputs, outputs,
                  f"the keys {' and '.join(keys)} both give {_describe(specs, target)}")
    for role, role_specs in specs.items():
        for index in range(len(role_specs)):
            if (role, index) not in given:
                _fail(recording, inputs, outputs, f"nothing is recorded for {_describe(specs, (role, index))}")
    feeds = {spec.name: _feedable(recording, given[("input", i)][0], spec) for i, spec in enumerate(inputs)}
    expected = [_prediction(recording, given[("output", i)][0], spec) for i, spec in enumerate(outputs)]
    _check_batches(recording, [given[("input", i)][0] for i in range(len(inputs))], inputs,
                   [given[("output", i)][0] for i in range(len(outputs))], outputs)
    return feeds, expected


def check_recording(graph_def: Any, recording: Recording, inputs: Sequence[TensorSpec],
                    outputs: Sequence[TensorSpec], *, atol: float | None = None,
                    relative_atol: float = RELATIVE_ATOL, channels_first: bool | None = None) -> Verification:
    """Run ``graph_def`` on the recorded inputs and compare with the recorded predictions.

    ``graph_def`` and ``channels_first`` are as for :func:`freezekeras.tf.verification.run_graph_def`.

    The whole recorded batch is fed at once. The comparison is
    :func:`freezekeras.tf.verification.compare`'s: NaN and infinities in the same
    places agree; ``atol=None`` is its default tolerance, relative to the
    largest recorded prediction.

    Raises:
        UsageError: The recording does not fit the graph (see :func:`match_recording`).
        tensorflow.errors.OpError: The graph cannot run on the recorded inputs.
    """
    feeds, expected = match_recording(recording, inputs, outputs)
    names = [spec.name for spec in outputs]
    actual = run_graph_def(graph_def, feeds, names, channels_first=channels_first)
    shapes = {name: tuple(value.shape) for name, value in feeds.items()}
    return compare(names, expected, actual, atol=atol, input_shapes=shapes, relative_atol=relative_atol)


def expected_keys(recording: Recording, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> str:
    """The keys a reference file of ``recording``'s format should hold for this graph, for messages."""
    if recording.format == "hdf5":
        groups = {role: group for group, role in HDF5_GROUPS.items()}
        keys = [f"{groups[role]}/{_label(spec)}" for role, specs in (("input", inputs), ("output", outputs))
                for spec in specs]
    else:
        keys = [f"{NPZ_LETTERS[role]}{i} or {_label(spec)}"
                for role, specs in (("input", inputs), ("output", outputs)) for i, spec in enumerate(specs)]
    return ", ".join(keys) or "none"


def _read_npz(path: Path) -> dict[str, Any]:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:  # a damaged zip, object arrays (pickles), members that are not .npy
        raise UsageError(f"{path}: cannot be read as an .npz ({error_summary(exc)}; given as --reference). "
                         f"{FORMATS_HINT}.") from exc
    if not arrays or not all(isinstance(value, np.ndarray) for value in arrays.values()):
        raise UsageError(f"{path}: is a zip archive but not an .npz of arrays (given as --reference). "
                         f"{FORMATS_HINT}.")
    return arrays


def _read_hdf5(path: Path) -> dict[str, Any]:
    import h5py

    arrays: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as handle:
            missing = [group for group in HDF5_GROUPS if not isinstance(handle.get(group), h5py.Group)]
            if missing:
                labels = " (outputs/ is not read: it may hold training labels)" if "outputs" in handle else ""
                raise UsageError(
                    f"{path}: has no {' and no '.join(g + '/' for g in missing)} group (given as --reference)"
                    f"{labels}. Record the inputs as inputs/<input layer> and the expected outputs as "
                    "predictions/<output layer>, or pass an .npz."
                )
            for group in HDF5_GROUPS:
                handle[group].visititems(lambda name, item, group=group: _keep(arrays, f"{group}/{name}", item))
    except OSError as exc:
        raise UsageError(f"{path}: the HDF5 file cannot be read ({error_summary(exc)}; given as --reference). "
                         "Copy or record it again.") from exc
    return arrays


def _keep(arrays: dict[str, Any], key: str, item: Any) -> None:
    import h5py

    if isinstance(item, h5py.Dataset):
        arrays[key] = item[()]


def _targets(recording: Recording, key: str, specs: dict[str, list[TensorSpec]]) -> set[tuple[str, int]]:
    """The inputs and outputs (``(role, index)``) a key can name.

    In HDF5, a group's only dataset gives the model's only input (or output)
    whatever its name: Keras 1.2 named a Sequential model's input
    ``lstm_input_1`` where Keras 2 says ``lstm_1_input``.
    """
    if recording.format == "hdf5":
        group, _, name = key.partition("/")
        role = HDF5_GROUPS[group]
        named = {(role, i) for i, spec in enumerate(specs[role]) if name in _names(spec)}
        alone = [other for other in recording.arrays if other.startswith(f"{group}/")] == [key]
        return named or ({(role, 0)} if alone and len(specs[role]) == 1 else set())
    return {(role, i) for role, role_specs in specs.items() for i, spec in enumerate(role_specs)
            if key == f"{NPZ_LETTERS[role]}{i}" or key in _names(spec)}


def _names(spec: TensorSpec) -> set[str]:
    return {spec.name, tensor_name(spec.name)} | ({spec.layer} if spec.layer else set())


def _label(spec: TensorSpec) -> str:
    return spec.layer or spec.name


def _describe(specs: dict[str, list[TensorSpec]], target: tuple[str, int]) -> str:
    role, index = target
    spec = specs[role][index]
    node = f" (node {spec.name})" if spec.layer and spec.layer != spec.name else ""
    return f"{role} {_label(spec)}{node}"


def _feedable(recording: Recording, key: str, spec: TensorSpec) -> Any:
    """The recorded array for input ``spec``, cast to its dtype; UsageError if it cannot be fed."""
    import numpy as np

    value = np.asarray(recording.arrays[key])
    _check_shape(recording, key, value, spec, "input")
    try:
        dtype = np.dtype(spec.dtype)
    except TypeError:
        dtype = None
    if dtype is None or not np.can_cast(value.dtype, dtype, casting="same_kind"):
        raise UsageError(f"{recording.path}: {key} holds {value.dtype} values, which input {_label(spec)} "
                         f"({spec.dtype}) cannot take. Record {spec.dtype} values.")
    return value.astype(dtype)


def _prediction(recording: Recording, key: str, spec: TensorSpec) -> Any:
    import numpy as np

    value = np.asarray(recording.arrays[key])
    _check_shape(recording, key, value, spec, "output")
    if value.dtype.kind not in "biuf":
        raise UsageError(f"{recording.path}: {key} holds {value.dtype} values, not numbers, for output "
                         f"{_label(spec)}. Record the model's predictions.")
    return value


def _check_shape(recording: Recording, key: str, value: Any, spec: TensorSpec, role: str) -> None:
    if spec.shape is None:
        return
    if len(value.shape) != len(spec.shape) or any(
            want is not None and want != got for want, got in zip(spec.shape, value.shape)):
        raise UsageError(f"{recording.path}: {key} has shape {_shape(value.shape)} but {role} {_label(spec)} "
                         f"has shape {_shape(spec.shape)}. Record arrays of that shape.")


def _check_batches(recording: Recording, input_keys: list[str], inputs: Sequence[TensorSpec],
                   output_keys: list[str], outputs: Sequence[TensorSpec]) -> None:
    """Inputs and predictions with an unknown batch dimension must record the same number of samples."""
    keys = [key for key, spec in [*zip(input_keys, inputs), *zip(output_keys, outputs)]
            if spec.shape and spec.shape[0] is None]
    sizes = {key: recording.arrays[key].shape[0] for key in keys}
    if len(set(sizes.values())) > 1:
        counts = ", ".join(f"{key} {size}" for key, size in sizes.items())
        raise UsageError(f"{recording.path}: the arrays record different numbers of samples ({counts}). "
                         "Record the predictions of the recorded inputs, one row per sample.")


def _shape(shape: Sequence[int | None]) -> str:
    dims = ", ".join("None" if dim is None else str(dim) for dim in shape)
    return f"({dims},)" if len(shape) == 1 else f"({dims})"


def _fail(recording: Recording, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], problem: str) -> None:
    raise UsageError(f"{recording.path}: {problem}. Use the keys {expected_keys(recording, inputs, outputs)}.")
