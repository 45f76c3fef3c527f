"""A serving contract: fixed input shapes and chosen node names (``--input-shape``, ``--input-name``, ...).

Parsing the options and checking them against a model's inputs and outputs,
without TensorFlow: the graph itself is changed in :mod:`freezekeras.tf.contract`.

``DIMS`` is written ``1,224,224,3``, ``1x224x224x3`` or ``(1, 224, 224, 3)``;
``-1`` or ``?`` keeps a dimension unknown. ``NAME:DIMS`` names the input (its
graph node, or its Keras layer); a bare ``DIMS`` is for a model with one input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from freezekeras.errors import UsageError

Dims = tuple[int | None, ...]
#: One ``--input-shape`` or ``--verify-shape``: the input named (``None``: the only one) and its dimensions.
ShapeSpec = tuple[str | None, Dims]
#: One ``--input-name`` or ``--output-name``: ``(OLD, NEW)``.
Rename = tuple[str, str]

_EXAMPLE = {"--input-shape": "--input-shape image:1,224,224,3",
            "--verify-shape": "--verify-shape seq:2,5000,4"}
#: A name TensorFlow accepts for a node (its NodeDef name rule).
_NODE_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\-/>]*")
_UNKNOWN = {"-1", "?", "none", "None"}


def parse_dims(text: str, *, option: str = "--input-shape", spec: str | None = None) -> Dims:
    """``"1,224,224,3"``, ``"1x224x224x3"`` or ``"(1, 224, 224, 3)"`` as dimensions; ``-1``/``?`` unknown.

    Raises:
        UsageError: A dimension is neither a whole number of 1 or more nor ``-1``/``?``.
    """
    whole = spec if spec is not None else text
    body = text.strip()
    if body[:1] in "([" and body[-1:] in ")]":
        body = body[1:-1]
    parts = [part.strip() for part in (body.split(",") if "," in body else re.split(r"[x×]", body))]
    if parts and parts[-1] == "" and len(parts) > 1:  # "(3,)": Python's one-element tuple
        parts = parts[:-1]
    if parts == [""]:
        raise UsageError(f"{option} {whole}: gives no dimensions. Write DIMS as whole numbers of 1 or more separated "
                         f"by commas (or x), -1 or ? for an unknown one: {_EXAMPLE[option]}.")
    dims: list[int | None] = []
    for part in parts:
        if part in _UNKNOWN:
            dims.append(None)
        elif part.isdigit() and int(part) > 0:
            dims.append(int(part))
        else:
            shown = f"'{part}' is" if part else "an empty dimension is"
            raise UsageError(f"{option} {whole}: {shown} not a dimension. Write DIMS as whole numbers of 1 or more "
                             f"separated by commas (or x), -1 or ? for an unknown one: {_EXAMPLE[option]}.")
    return tuple(dims)


def parse_shape_spec(text: str, *, option: str = "--input-shape") -> ShapeSpec:
    """``"NAME:DIMS"`` or a bare ``"DIMS"`` as ``(name or None, dims)``."""
    name, sep, dims = text.rpartition(":")
    if not sep:
        return None, parse_dims(text, option=option, spec=text)
    if not name.strip():
        raise UsageError(f"{option} {text}: the input's name is empty. Write NAME:DIMS, or DIMS alone for a model "
                         f"with one input: {_EXAMPLE[option]}.")
    return name.strip(), parse_dims(dims, option=option, spec=text)


def parse_rename(text: str, *, option: str = "--input-name") -> Rename:
    """``"OLD=NEW"`` as ``(OLD, NEW)``; NEW must be a valid TensorFlow node name."""
    old, sep, new = text.partition("=")
    old, new = old.strip(), new.strip()
    if not sep or not old or not new:
        raise UsageError(f"{option} {text}: write OLD=NEW, the name convert prints (or the Keras layer's) and "
                         f"the one to serve it under: {option} {'image=input' if 'input' in option else 'probs=scores'}.")
    if not _NODE_NAME.fullmatch(new):
        raise UsageError(f"{option} {text}: '{new}' cannot name a TensorFlow node; use letters, digits and . "
                         "(then also _ - / >), no spaces or colons.")
    return old, new


def shape_specs(value: Any, option: str) -> tuple[ShapeSpec, ...]:
    """``ConvertOptions.input_shapes``/``verify_shapes`` normalised: strings parsed, a mapping's items taken."""
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else ([value] if isinstance(value, str)
                                                                               else value or ())
    specs = []
    for item in items:
        if isinstance(item, str):
            specs.append(parse_shape_spec(item, option=option))
        elif isinstance(item, Sequence) and len(item) == 2 and (item[0] is None or isinstance(item[0], str)):
            name, dims = item
            specs.append((name, parse_dims(dims, option=option) if isinstance(dims, str)
                          else tuple(None if d is None or d == -1 else int(d) for d in dims)))
        else:
            raise UsageError(f"{option} {item!r}: give NAME:DIMS strings, or (name, dims) pairs.")
    return tuple(specs)


def renames(value: Any, option: str) -> tuple[Rename, ...]:
    """``ConvertOptions.input_names``/``output_names`` normalised: ``OLD=NEW`` strings parsed, a mapping's items."""
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else ([value] if isinstance(value, str)
                                                                               else value or ())
    pairs = []
    for item in items:
        pairs.append(parse_rename(item if isinstance(item, str) else "=".join(map(str, item)), option=option))
    return tuple(pairs)


def format_dims(dims: Sequence[int | None] | None) -> str:
    """``(None, 224, 224, 3)``, as freezekeras prints shapes."""
    if dims is None:
        return "(unknown rank)"
    inner = ", ".join("None" if d is None else str(d) for d in dims)
    return f"({inner},)" if len(dims) == 1 else f"({inner})"


def listing(specs: Sequence[Any], *, shapes: bool = True) -> str:
    """``point (None, 2), extra (None, 3)``: the model's inputs (or outputs) for an error message."""
    if not specs:
        return "none"
    return ", ".join(f"{spec.name} {format_dims(spec.shape)}" if shapes else spec.name for spec in specs)


def find_spec(specs: Sequence[Any], name: str) -> Any:
    """The spec named ``name``: its graph node (``op`` or ``op:0``), else its Keras layer; ``None`` if neither."""
    for spec in specs:
        if name in (spec.name, f"{spec.name}:0"):
            return spec
    matches = [spec for spec in specs if getattr(spec, "layer", None) == name]
    return matches[0] if len(matches) == 1 else None


def resolve_shapes(path: Any, specs: Sequence[ShapeSpec], inputs: Sequence[Any], *,
                   option: str = "--input-shape", fixed: bool = True, batch: int | None = None) -> dict[str, Dims]:
    """Each spec checked against the model's ``inputs`` and merged with the input's own shape, by node name.

    A ``None`` in a spec keeps the model's dimension; with ``fixed`` false
    (``--verify-shape``) the result may keep unknown dimensions. ``batch``
    (``--batch-size``) fixes the batch of every input that neither the model nor
    a spec fixes; those inputs are in the result too.

    Raises:
        UsageError: A spec names no input, a bare DIMS for a model with several
            inputs, an input twice, the wrong number of dimensions, or a size
            the model fixes differently; or ``batch`` differs from a batch the
            model or a spec fixes; the message lists the inputs.
    """
    resolved: dict[str, Dims] = {}
    for name, dims in specs:
        spec = _input_for(path, name, dims, inputs, option)
        shown = f"{option} {'' if name is None else name + ':'}{format_dims(dims)[1:-1].replace(' ', '')}"
        if spec.name in resolved:
            raise UsageError(f"{path}: {option} gives input {spec.name} twice. Give each input once.")
        if spec.shape is None:
            merged: Dims = tuple(dims)
        elif len(dims) != len(spec.shape):
            raise UsageError(f"{path}: {shown} has {len(dims)} dimension{'s' if len(dims) != 1 else ''}, but input "
                             f"{spec.name} has {len(spec.shape)}: {format_dims(spec.shape)}, the batch first; "
                             f"the inputs are {listing(inputs)}.")
        else:
            for index, (want, have) in enumerate(zip(dims, spec.shape)):
                if want is not None and have is not None and want != have:
                    raise UsageError(f"{path}: {shown} sets dimension {index} of input {spec.name} to {want}, but "
                                     f"the model fixes it at {have}: {format_dims(spec.shape)}. Use {have} or -1 "
                                     "there.")
            merged = tuple(have if want is None else want for want, have in zip(dims, spec.shape))
        resolved[spec.name] = merged
    if batch is not None:
        _fix_batch(path, resolved, inputs, batch)
    return resolved


def _fix_batch(path: Any, resolved: dict[str, Dims], inputs: Sequence[Any], batch: int) -> None:
    """Give every input of known rank ``batch`` as its batch in ``resolved``, unless it fixes another."""
    for spec in inputs:
        dims = resolved.get(spec.name, spec.shape)
        if not dims:  # unknown rank, or a scalar: no batch to fix
            continue
        if dims[0] is not None and dims[0] != batch:
            who = "--input-shape" if spec.name in resolved else "the model"
            raise UsageError(f"{path}: --batch-size {batch} differs from the batch {dims[0]} {who} gives input "
                             f"{spec.name}: {format_dims(dims)}. Drop --batch-size, or use {dims[0]}.")
        resolved[spec.name] = (batch, *dims[1:])


def _input_for(path: Any, name: str | None, dims: Dims, inputs: Sequence[Any], option: str) -> Any:
    shown = ",".join("-1" if d is None else str(d) for d in dims)
    if name is None:
        if len(inputs) == 1:
            return inputs[0]
        raise UsageError(f"{path}: {option} {shown} names no input, and the model has {len(inputs)} inputs: "
                         f"{listing(inputs)}. Write NAME:DIMS.")
    spec = find_spec(inputs, name)
    if spec is None:
        raise UsageError(f"{path}: {option} names no input '{name}'; the inputs are {listing(inputs)}. "
                         "Use one of them.")
    return spec


def resolve_renames(path: Any, pairs: Sequence[Rename], specs: Sequence[Any], *, option: str,
                    what: str) -> dict[str, str]:
    """``{node name: new name}`` for ``--input-name``/``--output-name``; OLD is the node or the Keras layer.

    Raises:
        UsageError: OLD names none of ``specs`` (listed), or names one twice.
    """
    resolved: dict[str, str] = {}
    for old, new in pairs:
        spec = find_spec(specs, old)
        if spec is None:
            raise UsageError(f"{path}: {option} names no {what} '{old}'; the {what}s are "
                             f"{listing(specs, shapes=False)}. Use one of them.")
        if spec.name in resolved:
            raise UsageError(f"{path}: {option} renames {what} {spec.name} twice. Rename each {what} once.")
        resolved[spec.name] = new
    return resolved


def check_new_names(path: Any, inputs: Mapping[str, str], outputs: Mapping[str, str], nodes: Iterable[str]) -> None:
    """Refuse a new name that another new name or an existing node (other than the renamed one) already has.

    Raises:
        UsageError: Two renames give one name, or a new name is an existing node's.
    """
    options = [("--input-name", old, new) for old, new in inputs.items()]
    options += [("--output-name", old, new) for old, new in outputs.items()]
    seen: dict[str, tuple[str, str]] = {}
    for option, old, new in options:
        if new in seen:
            first_option, first_old = seen[new]
            raise UsageError(f"{path}: {first_option} {first_old}={new} and {option} {old}={new} give two nodes the "
                             f"name {new}. Pick different names.")
        seen[new] = (option, old)
    existing = set(nodes)
    for option, old, new in options:
        if new in existing and new != old.partition(":")[0]:
            raise UsageError(f"{path}: {option} {old}={new} clashes with the node {new} already in the graph. "
                             "Pick another name.")
