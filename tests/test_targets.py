"""--target RUNTIME and --batch-size (issue 10, requirement 5).

What ``--target`` picks is read from the model's config (``freezekeras.target.choose``, no TensorFlow);
what each runtime cannot take is found in the graph (``freezekeras.graphdef.targets``, protobuf
alone). Every gap is proven here against the runtime itself: a graph that has it is refused by that
runtime. That ``--target`` then makes every cell of the serving matrix run is tests/test_serving.py.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_nothing_changed, assert_one_error_line, build_stacked_lstm, describe, run_cli, snapshot

from freezekeras.errors import UsageError
from freezekeras.graphdef.messages import GraphDef
from freezekeras.graphdef.targets import GAPS, TARGETS, target_findings, target_gaps
from freezekeras.kerasfile.config import channels_first_layers, recurrent_layers
from freezekeras.results import TARGET_NAMES, ConvertOptions
from freezekeras.target import choose

# --------------------------------------------------------------------------- choosing options (no TensorFlow)


def _layer(class_name: str, name: str, **config) -> dict:
    return {"class_name": class_name, "config": {"name": name, **config}}


RNN_CONFIG = {"class_name": "Sequential", "config": {"name": "s", "layers": [
    _layer("InputLayer", "seq", batch_input_shape=[None, None, 4]),
    _layer("Bidirectional", "bi", layer=_layer("LSTM", "forward_lstm", units=3)),
    _layer("TimeDistributed", "td", layer=_layer("Dense", "dense", units=2)),
    _layer("Functional", "inner", layers=[_layer("GRU", "gru", units=2)]),
    _layer("RNN", "custom_rnn", cell=_layer("MyCell", "cell")),
]}}
NCHW_CONFIG = {"class_name": "Sequential", "config": {"name": "s", "layers": [
    _layer("Conv2D", "conv", data_format="channels_first"), _layer("Conv2D", "conv2", data_format="channels_last"),
    _layer("Dense", "head")]}}
CNN_CONFIG = {"class_name": "Sequential", "config": {"name": "s", "layers": [_layer("Conv2D", "conv")]}}


def test_recurrent_and_channels_first_layers_are_found_inside_wrappers_and_nested_models():
    assert recurrent_layers(RNN_CONFIG) == ["forward_lstm", "gru", "custom_rnn"]
    assert recurrent_layers(CNN_CONFIG) == []
    assert channels_first_layers(NCHW_CONFIG) == ["conv"]
    assert channels_first_layers(RNN_CONFIG) == []


@pytest.mark.parametrize(("target", "kind", "config", "given", "picked", "changed"), [
    ("tf", "keras2", RNN_CONFIG, {}, (), {}),
    ("onnx", "keras2", RNN_CONFIG, {}, ("--route function",), {"route": "function"}),
    ("openvino", "keras2", RNN_CONFIG, {}, ("--route function",), {"route": "function"}),
    ("tflite", "keras2", RNN_CONFIG, {}, ("--route function", "--batch-size 1"), {"route": "function", "batch_size": 1}),
    ("tflite", "keras3", RNN_CONFIG, {}, ("--batch-size 1",), {"batch_size": 1}),
    ("onnx", "keras3", RNN_CONFIG, {}, (), {}),  # Keras 3 takes the function route anyway
    ("tflite", "saved-model", None, {}, (), {}),  # its functions are traced already: nothing to fix
    ("onnx", "keras2", CNN_CONFIG, {}, (), {}),
    ("tflite", "keras2", CNN_CONFIG, {}, (), {}),
    ("opencv", "keras2", NCHW_CONFIG, {}, ("--keep-nchw",), {"keep_nchw": True}),
    ("opencv", "keras3", CNN_CONFIG, {}, (), {}),
    # what the caller gave is kept
    ("onnx", "keras2", RNN_CONFIG, {"route": "session"}, (), {}),
    ("onnx", "keras2", RNN_CONFIG, {"output_nodes": ("lstm/transpose",)}, (), {}),
    ("tflite", "keras2", RNN_CONFIG, {"route": "session"}, ("--batch-size 1",), {"batch_size": 1}),
    ("tflite", "keras2", RNN_CONFIG, {"batch_size": 4}, ("--route function",), {"route": "function"}),
    ("tflite", "keras2", RNN_CONFIG, {"input_shapes": ("seq:3,?,4",)}, ("--route function",), {"route": "function"}),
    ("opencv", "keras2", NCHW_CONFIG, {"keep_nchw": True}, (), {}),
])
def test_target_picks_what_its_runtime_needs_and_keeps_what_was_given(target, kind, config, given, picked, changed):
    options = ConvertOptions(target=target, **given)
    chosen, choice = choose(options, kind=kind, config=config, source="m.h5")
    assert choice.target == target
    assert choice.options == picked
    assert bool(choice.reason) == bool(picked)
    fields = ("route", "batch_size", "keep_nchw")
    assert {f: getattr(chosen, f) for f in fields} == {f: changed.get(f, getattr(options, f)) for f in fields}


def test_no_target_changes_nothing():
    options = ConvertOptions(route="session")
    assert choose(options, kind="keras2", config=RNN_CONFIG, source="m.h5") == (options, None)


def test_opencv_refuses_fp16_before_anything_is_loaded():
    with pytest.raises(UsageError, match="--target opencv cannot take --fp16"):
        choose(ConvertOptions(target="opencv", fp16=True), kind="keras2", config=CNN_CONFIG, source="m.h5")


@pytest.mark.parametrize(("field", "value", "phrase"), [
    ("target", "coreml", "target 'coreml': use one of tf, opencv, onnx, openvino, tflite (--target)"),
    ("batch_size", 0, "batch size 0: use a whole number of 1 or more (--batch-size)"),
    ("batch_size", 1.5, "batch size 1.5"),
])
def test_bad_target_and_batch_size_values_are_usage_errors(field, value, phrase):
    with pytest.raises(UsageError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        ConvertOptions(**{field: value})


def test_the_gap_table_names_every_target():
    assert tuple(TARGETS) == TARGET_NAMES
    assert {runtime for gap in GAPS for runtime in gap.runtimes} <= set(TARGET_NAMES) - {"tf"}


# --------------------------------------------------------------------------- finding gaps (protobuf alone)


def _node(graph_or_function, name: str, op: str, *inputs: str, **attrs):
    node = graph_or_function.add()
    node.name, node.op = name, op
    node.input.extend(inputs)
    for key, setter in attrs.items():
        setter(node.attr[key])
    return node


def _shape_const(container, name: str, values: list[int], *, packed: bool = False, scalar: bool = False):
    def value(attr):
        tensor = attr.tensor
        tensor.dtype = 3
        if not scalar:
            tensor.tensor_shape.dim.add().size = len(values)
        if packed:
            tensor.tensor_content = struct.pack(f"<{len(values)}i", *values)
        else:
            tensor.int_val.extend(values)
    return _node(container, name, "Const", value=value)


def _list_graph(element_shape: list[int], **kwargs):
    graph = GraphDef()
    _shape_const(graph.node, "shape", element_shape, **kwargs)
    _node(graph.node, "n", "Const")
    _node(graph.node, "list", "TensorListReserve", "shape", "n")
    return graph


@pytest.mark.parametrize(("element_shape", "kwargs", "static"), [
    ([1, 8], {}, True),
    ([1, 8], {"packed": True}, True),
    ([-1, 8], {}, False),
    ([-1, 8], {"packed": True}, False),
    ([-1], {"scalar": True}, False),  # an unknown rank
    ([], {}, True),  # a scalar element
])
def test_tensor_lists_need_static_element_shapes_for_tflite(element_shape, kwargs, static):
    found = target_gaps(_list_graph(element_shape, **kwargs), "tflite")
    assert [(gap.kind, nodes) for gap, nodes in found] == ([] if static else [("dynamic-tensor-lists", ("list",))])
    assert target_gaps(_list_graph(element_shape, **kwargs), "onnx") == []


def test_a_computed_element_shape_is_not_static():
    graph = GraphDef()
    _node(graph.node, "x", "Placeholder")
    _node(graph.node, "shape", "Shape", "x")
    _node(graph.node, "list", "EmptyTensorList", "shape", "n")
    assert [gap.kind for gap, _ in target_gaps(graph, "tflite")] == ["dynamic-tensor-lists"]


def test_loops_pushing_onto_lists_are_accumulators_for_onnx_openvino_and_tflite():
    graph = GraphDef()
    for name, pushes in (("body_push", True), ("body_plain", False)):
        function = graph.library.function.add()
        function.signature.name = name
        _node(function.node_def, "item", "TensorListPushBack" if pushes else "TensorListSetItem")

    def body(name):
        return lambda attr: setattr(attr.func, "name", name)

    _node(graph.node, "loop_a", "While", body=body("body_push"))
    _node(graph.node, "loop_b", "StatelessWhile", body=body("body_plain"))
    for target in ("onnx", "openvino", "tflite"):
        assert [(gap.kind, nodes) for gap, nodes in target_gaps(graph, target)] == [
            ("accumulating-loops", ("loop_a",))]
    assert [(gap.kind, nodes) for gap, nodes in target_gaps(graph, "opencv")] == [("loops", ("loop_a", "loop_b"))]
    assert target_gaps(graph, "tf") == []


def test_opencv_gaps_are_gathers_and_half_weights_and_findings_say_what_to_do():
    graph = GraphDef()
    _node(graph.node, "kernel_fp16", "Const", dtype=lambda attr: setattr(attr, "type", 19))
    _node(graph.node, "kernel", "Const", dtype=lambda attr: setattr(attr, "type", 1))
    _node(graph.node, "lookup", "GatherV2")
    findings = target_findings(graph, "opencv")
    assert [(f.kind, f.severity, f.nodes) for f in findings] == [
        ("opencv:gathers", "error", ("lookup",)), ("opencv:half-weights", "error", ("kernel_fp16",))]
    assert findings[1].line == ("OpenCV's dnn module cannot run float16 weights (--fp16): 1 (kernel_fp16); "
                                "convert without --fp16")
    assert target_findings(graph, "tflite") == []
    with pytest.raises(KeyError):
        target_gaps(graph, "coreml")


# --------------------------------------------------------------------------- each gap, refused by its runtime


@pytest.fixture(scope="module")
def lstm(tmp_path_factory) -> Path:
    return build_stacked_lstm(tmp_path_factory.mktemp("targets") / "lstm.h5")


def _convert(model: Path, output: Path, **options):
    import freezekeras

    return freezekeras.convert(model, ConvertOptions(output=output, **options))


def _feeds(result, batch: int = 2) -> dict:
    rng = np.random.default_rng(0)
    return {spec.name: rng.normal(size=[batch if d is None and i == 0 else 5 if d is None else d
                                        for i, d in enumerate(spec.shape)]).astype("float32")
            for spec in result.inputs}


def _refuses(runtime: str, result, tmp_path: Path) -> None:
    import runtimes

    reason = runtimes.ADAPTERS[runtime].available()
    if reason:
        pytest.skip(f"{runtime}: {reason}")
    with pytest.raises(Exception) as refused:  # noqa: PT011 - each runtime raises its own kind
        runtimes.ADAPTERS[runtime].run(result.output, _feeds(result), list(result.inputs),
                                       [spec.name for spec in result.outputs], workdir=tmp_path)
    assert not isinstance(refused.value, (AssertionError, KeyError, TypeError)), refused.value


@pytest.mark.slow
@pytest.mark.parametrize(("runtime", "target"), [("onnxruntime", "onnx"), ("openvino", "openvino"),
                                                 ("tflite", "tflite")])
def test_the_session_routes_accumulating_loops_are_refused_by_each_runtime(lstm, tmp_path, runtime, target):
    result = _convert(lstm, tmp_path / "session.pb")
    from freezekeras.graphdef.reading import read_graph_def

    kinds = [gap.kind for gap, _ in target_gaps(read_graph_def(result.output), target)]
    assert "accumulating-loops" in kinds
    _refuses(runtime, result, tmp_path)


@pytest.mark.slow
def test_dynamic_tensor_lists_alone_are_refused_by_tflite_and_a_fixed_batch_runs(lstm, tmp_path):
    from freezekeras.graphdef.reading import read_graph_def

    dynamic = _convert(lstm, tmp_path / "dynamic.pb", route="function")
    assert [gap.kind for gap, _ in target_gaps(read_graph_def(dynamic.output), "tflite")] == ["dynamic-tensor-lists"]
    _refuses("tflite", dynamic, tmp_path)
    fixed = _convert(lstm, tmp_path / "fixed.pb", route="function", batch_size=1)
    assert [spec.shape for spec in fixed.inputs] == [(1, None, 4)]
    assert target_gaps(read_graph_def(fixed.output), "tflite") == []


@pytest.mark.slow
def test_half_weights_are_refused_by_opencv(tmp_path):
    from conftest import build_conv_bn

    from freezekeras.graphdef.reading import read_graph_def

    result = _convert(build_conv_bn(tmp_path / "cnn.h5"), tmp_path / "half.pb", fp16=True)
    assert [gap.kind for gap, _ in target_gaps(read_graph_def(result.output), "opencv")] == ["half-weights"]
    _refuses("opencv", result, tmp_path)


# --------------------------------------------------------------------------- convert --target, inspect --target


@pytest.mark.slow
def test_target_tflite_writes_the_same_graph_as_the_options_it_picks(lstm, tmp_path):
    targeted = _convert(lstm, tmp_path / "target.pb", target="tflite")
    explicit = _convert(lstm, tmp_path / "explicit.pb", route="function", batch_size=1)
    assert (targeted.target, targeted.target_options) == ("tflite", ("--route function", "--batch-size 1"))
    assert targeted.route == "function" and "--target tflite: recurrent layers lstm_a, lstm_b" in targeted.route_reason
    assert targeted.output.read_bytes() == explicit.output.read_bytes()
    assert (explicit.target, explicit.target_options) == (None, ())


@pytest.mark.slow
def test_convert_target_refuses_a_graph_its_runtime_cannot_run_and_writes_nothing(lstm, tmp_path):
    before = snapshot(tmp_path)
    result = run_cli("convert", lstm, "--target", "opencv", "-o", tmp_path / "lstm.pb")
    assert_one_error_line(result, 1, lstm, "OpenCV's dnn module cannot run the frozen graph: it has While loops "
                          "(recurrent layers): 2 (lstm_a/while, lstm_b/while); nothing was written. Serve recurrent "
                          "models with an ONNX runtime, OpenVINO or TensorFlow Lite (--target onnx, openvino or "
                          "tflite), or drop --target to write the graph anyway.")
    assert_nothing_changed(before, tmp_path)
    session = run_cli("convert", lstm, "--target", "onnx", "--route", "session", "-o", tmp_path / "lstm.pb")
    assert_one_error_line(session, 1, lstm, "tf2onnx and ONNX runtimes cannot run the frozen graph: it has recurrent "
                          "loops that keep per-step tensor lists", "Convert with --route function")
    assert_nothing_changed(before, tmp_path)


@pytest.mark.slow
def test_convert_target_reports_its_choice_in_text_and_json(lstm, tmp_path):
    text = run_cli("convert", lstm, "--target", "onnx", "-o", tmp_path / "a.pb")
    assert text.exit_code == 0, describe(text)
    assert "\ntarget: onnx (--route function; checked: nothing it cannot run)\n" in text.stdout
    data = json.loads(run_cli("convert", lstm, "--target", "tf", "-o", tmp_path / "b.pb", "--json").stdout)
    assert data["target"] == {"runtime": "tf", "options": []}
    assert data["route"] == "session"
    plain = json.loads(run_cli("convert", lstm, "-o", tmp_path / "c.pb", "--json").stdout)
    assert plain["target"] is None


@pytest.mark.parametrize(("args", "code", "phrase"), [
    (("--target", "coreml"), 2, "Invalid value for '--target': 'coreml' is not one of 'tf', 'opencv', 'onnx', "
                                "'openvino', 'tflite'."),
    (("--batch-size", "0"), 2, "Invalid value for '--batch-size': 0 is not in the range x>=1."),
    (("--target", "opencv", "--fp16"), 2, "--target opencv cannot take --fp16"),
    (("--batch-size", "2", "--input-shape", "seq:3,?,4"), 2,
     "--batch-size 2 differs from the batch 3 --input-shape gives input lstm_a_input: (3, None, 4). Drop "
     "--batch-size, or use 3."),
])
def test_bad_target_and_batch_size_options_are_one_line_usage_errors(lstm, tmp_path, args, code, phrase):
    before = snapshot(tmp_path)
    if "seq:" in " ".join(args):
        args = tuple(arg.replace("seq:", "lstm_a_input:") for arg in args)
    result = run_cli("convert", lstm, "-o", tmp_path / "out.pb", *args)
    assert result.exit_code == code, describe(result)
    assert phrase in result.stderr, describe(result)
    assert len(result.stderr.splitlines()) == 1
    assert_nothing_changed(before, tmp_path)


def test_batch_size_fixes_every_input_and_refuses_a_batch_the_model_fixes(tmp_path):
    import tf_keras as keras
    from conftest import build_multi_io

    model = build_multi_io(tmp_path / "multi.h5")
    result = run_cli("convert", model, "--batch-size", "4", "-o", tmp_path / "multi.pb", "--json")
    assert result.exit_code == 0, describe(result)
    data = json.loads(result.stdout)
    assert [spec["shape"][0] for spec in data["inputs"]] == [4, 4]
    assert [spec["shape"][0] for spec in data["outputs"]] == [4] * len(data["outputs"])
    assert {name: shape[0] for name, shape in data["verification"]["input_shapes"].items()} == {
        spec["name"]: 4 for spec in data["inputs"]}
    fixed = keras.Sequential([keras.Input((3,), batch_size=2, name="x"), keras.layers.Dense(1, name="y")])
    fixed.save(tmp_path / "fixed.h5")
    refused = run_cli("convert", tmp_path / "fixed.h5", "--batch-size", "4", "-o", tmp_path / "fixed.pb")
    assert_one_error_line(refused, 2, tmp_path / "fixed.h5", "--batch-size 4 differs from the batch 2 the model gives "
                          "input x: (2, 3). Drop --batch-size, or use 2.")


@pytest.mark.slow
def test_inspect_check_target_reports_what_the_runtime_cannot_run(lstm, tmp_path):
    graph = _convert(lstm, tmp_path / "session.pb").output
    clean = run_cli("inspect", graph, "--check")
    assert clean.exit_code == 0, describe(clean)
    listed = run_cli("inspect", graph, "--target", "openvino", "--json")
    assert listed.exit_code == 0, describe(listed)  # without --check: reported, not failed
    data = json.loads(listed.stdout)
    assert data["target"] == "openvino"
    assert [(f["kind"], f["nodes"]) for f in data["lint"] if ":" in f["kind"]] == [
        ("openvino:accumulating-loops", ["lstm_a/while", "lstm_b/while"])]
    checked = run_cli("inspect", graph, "--check", "--target", "tflite")
    assert checked.exit_code == 4, describe(checked)
    assert "  error: TensorFlow Lite cannot run recurrent loops that keep per-step tensor lists" in checked.stdout
    assert checked.stderr.startswith(f"freezekeras: error: {graph}: the check found 2 kinds of problem: ")
    assert "Freeze the model for inference" not in checked.stderr  # each finding says what to do
    assert run_cli("inspect", graph, "--check", "--target", "tf").exit_code == 0


def test_inspect_target_is_for_graphs(lstm):
    result = run_cli("inspect", lstm, "--target", "opencv")
    assert_one_error_line(result, 2, lstm, "--target checks frozen graphs, and this is a model. Convert it with "
                          "--target opencv, which checks the graph it writes, or inspect the .pb.")
