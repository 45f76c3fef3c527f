"""Turning results into text for people and JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from freezekeras.results import BatchItem, ConversionResult, InspectResult, TensorSpec


def to_json(result: ConversionResult | InspectResult) -> str:
    """Return ``result`` as one JSON object (the schema README.md documents)."""
    return json.dumps(result.to_json(), indent=2)


def batch_json(items: Sequence[BatchItem]) -> str:
    """Return the outcomes of a batch as one JSON list, one object per model (README.md)."""
    return json.dumps([item.to_json() for item in items], indent=2)


def batch_text(items: Sequence[BatchItem]) -> str:
    """Return the readable reports of a batch's converted models, one after the other."""
    return "\n\n".join(conversion_text(item.result) for item in items if item.result is not None)


def batch_status(item: BatchItem) -> str:
    """Return one model's status line: ``a.h5: converted -> a.pb (12 nodes, verified, max diff 0)``.

    For a failure, ``error: `` and the error's one line (which starts with the file).
    """
    result = item.result
    if result is None:
        return f"error: {item.error}"
    check = result.verification
    verified = "not verified" if check is None else f"verified, max diff {check.max_abs_diff:.3g}"
    return f"{item.model}: converted -> {result.output} ({result.node_count} nodes, {verified})"


def conversion_text(result: ConversionResult) -> str:
    """Return the readable report of a conversion: nodes to feed and fetch, the route, verification."""
    lines = [f"wrote {result.output} ({result.node_count} nodes, {_size(result.size_bytes)})", ""]
    lines += _table("inputs (feed)", result.inputs)
    lines += [""] + _table("outputs (fetch)", result.outputs)
    lines += ["", f"route: {result.route} ({result.route_reason})" if result.route_reason else f"route: {result.route}"]
    if result.target is not None:
        picked = " ".join(result.target_options) or "no options needed"
        lines.append(f"target: {result.target} ({picked}; checked: nothing it cannot run)")
    lines += _transform_lines(result.transforms)
    check = result.verification
    if check is None:
        lines.append("verification: skipped (--no-verify)")
    else:
        shapes = ", ".join(f"{name} {_shape(shape)}" for name, shape in check.input_shapes.items())
        fed = f"random inputs {shapes}" if shapes else "no inputs"
        lines.append(f"verification: passed, max |frozen - keras| = {check.max_abs_diff:.3g} "
                     f"(tolerance {check.atol:.3g}; {fed})")
    if result.reference is not None:
        lines.append(_reference_line(result.reference))
    return "\n".join(lines)


def _transform_lines(transforms: dict[str, dict[str, int]]) -> list[str]:
    lines = []
    if "optimize" in transforms:
        done = transforms["optimize"]
        lines.append(f"optimized: {done['nodes_before']} -> {done['nodes_after']} nodes "
                     f"({done['folded_batch_norms']} BatchNorms folded into convolutions)")
    if "fp16" in transforms:
        done = transforms["fp16"]
        lines.append(f"fp16: {done['constants_converted']} constants stored as float16, "
                     f"{_size(done['bytes_before'])} -> {_size(done['bytes_after'])}")
    return lines


def _reference_line(check) -> str:
    shapes = ", ".join(f"{name} {_shape(shape)}" for name, shape in check.input_shapes.items())
    return (f"reference: passed, max |frozen - recorded| = {check.max_abs_diff:.3g} "
            f"(tolerance {check.atol:.3g}; recorded inputs {shapes or 'none'})")


def inspection_text(result: InspectResult) -> str:
    """Return the readable report of an inspection."""
    lines = [f"{result.path}: {_describe(result)}", ""]
    lines += _table("inputs", result.inputs)
    lines += [""] + _table("outputs", result.outputs)
    histogram = result.details.get("op_histogram")
    if histogram:
        ops = ", ".join(f"{op} {count}" for op, count in histogram.items())
        lines += ["", f"ops: {ops}"]
    functions = result.details.get("functions")
    if functions:
        lines += ["", "functions: " + ", ".join(_function(f) for f in functions)]
    if "lint" in result.details:
        lines += [""] + _lint(result.details["lint"])
    repairs = result.details.get("repairs")
    if repairs:
        lines += ["", "config repairs (made before Keras loads the model):"] + [f"  {note}" for note in repairs]
    return "\n".join(lines)


def _function(function: dict[str, Any]) -> str:
    count = function["node_count"]
    return f"{function['name']} ({count} node{'' if count == 1 else 's'})"


def _lint(findings: Sequence[dict[str, Any]]) -> list[str]:
    if not findings:
        return ["lint: clean"]
    return ["lint:"] + [f"  {finding['severity']}: {finding['message']}" for finding in findings]


def _describe(result: InspectResult) -> str:
    d = result.details
    if result.format == "saved-model":
        others = [key for key in d["signatures"] if key != d["signature"]]
        also = f" (also: {', '.join(others)})" if others else ""
        return (f"TensorFlow SavedModel (tags {', '.join(d['tags']) or 'none'}), signature {d['signature']}{also}, "
                f"{d['function_count']} functions, {_size(d['variables_bytes'])} of variables"
                + (", Keras metadata" if d.get("keras_metadata") else ""))
    if result.format == "keras-weights":
        params = "unknown" if d.get("param_count") is None else f"{d['param_count']:,}"
        return (f"Keras 3 weights (architecture {d.get('architecture') or 'unknown'}), {d['layer_count']} layers, "
                f"{params} parameters")
    if result.format in {"keras-h5", "keras-archive"}:
        params = "unknown" if d.get("param_count") is None else f"{d['param_count']:,}"
        return (f"Keras model (keras_version {d.get('keras_version') or 'unknown'}, "
                f"backend {d.get('backend') or 'unknown'}), {d['layer_count']} layers, "
                f"{params} parameters")
    return (f"frozen TensorFlow graph, {d['node_count']} nodes, {d['param_count']:,} parameters "
            f"({_size(d['const_bytes'])} of constants)")


def _table(title: str, specs: Sequence[TensorSpec]) -> list[str]:
    has_node = any(spec.node for spec in specs)
    header = ["name", "dtype", "shape"] + (["graph node"] if has_node else [])
    rows = [[spec.name, spec.dtype, _shape(spec.shape)] + ([spec.node or ""] if has_node else [])
            for spec in specs]
    if not rows:
        return [f"{title}: none"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"{title}:"]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return lines


def _shape(shape: Any) -> str:
    if shape is None:
        return "unknown"
    return "(" + ", ".join("None" if dim is None else str(dim) for dim in shape) + ("," if len(shape) == 1 else "") + ")"


def _size(size: float) -> str:
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.1f} {unit}"
