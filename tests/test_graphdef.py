"""freezekeras.graphdef without TensorFlow: GraphDefs built node by node with the descriptor classes.

The graphs are written here with :func:`freezekeras.graphdef.messages.GraphDef`
(protobuf alone), so every expected finding, input, output, count and size is
worked out by hand from the nodes below. test_kerasfile.py runs this file in an
interpreter where importing TensorFlow fails.
"""

from __future__ import annotations

import pytest
from google.protobuf import text_format

from freezekeras.errors import ModelFileError
from freezekeras.graphdef.lint import lint, output_nodes
from freezekeras.graphdef.messages import GraphDef, dtype_name, message_class
from freezekeras.graphdef.reading import graph_details, graph_inputs_outputs, read_graph_def
from freezekeras.results import TensorSpec

FLOAT, INT32, BOOL = 1, 3, 10  # TensorFlow's DataType values (types.proto)


def add_node(graph, name: str, op: str, *inputs: str, device: str = "", **attrs):
    """Append a NodeDef; attrs: ``dtype``/``T`` (DataType), ``shape`` (dims, -1 unknown), ``data_format``,
    ``num_split``, ``value`` ((DataType, dims)), ``output_shapes`` (a list of dims)."""
    node = graph.node.add(name=name, op=op, device=device)
    node.input.extend(inputs)
    for key in ("dtype", "T"):
        if key in attrs:
            node.attr[key].type = attrs[key]
    if "shape" in attrs:
        for size in attrs["shape"]:
            node.attr["shape"].shape.dim.add(size=size)
    if "data_format" in attrs:
        node.attr["data_format"].s = attrs["data_format"]
    if "num_split" in attrs:
        node.attr["num_split"].i = attrs["num_split"]
    if "value" in attrs:
        dtype, dims = attrs["value"]
        tensor = node.attr["value"].tensor
        tensor.dtype = dtype
        for size in dims:
            tensor.tensor_shape.dim.add(size=size)
    for dims in attrs.get("output_shapes", []):
        shape = node.attr["_output_shapes"].list.shape.add()
        for size in dims:
            shape.dim.add(size=size)
    return node


def dense_graph():
    """x (?, 4) @ w (4, 3) + b (3,) -> y; and an int32 constant nothing reads."""
    graph = GraphDef()
    add_node(graph, "x", "Placeholder", dtype=FLOAT, shape=[-1, 4])
    add_node(graph, "w", "Const", dtype=FLOAT, value=(FLOAT, [4, 3]))
    add_node(graph, "b", "Const", dtype=FLOAT, value=(FLOAT, [3]))
    add_node(graph, "idx", "Const", dtype=INT32, value=(INT32, [2]))
    add_node(graph, "matmul", "MatMul", "x", "w", T=FLOAT)
    add_node(graph, "y", "BiasAdd", "matmul", "b", T=FLOAT, data_format=b"NHWC", output_shapes=[[-1, 3]])
    return graph


def test_inputs_are_placeholders_and_outputs_what_nothing_consumes():
    inputs, outputs = graph_inputs_outputs(dense_graph())

    assert inputs == (TensorSpec("x", "float32", (None, 4)),)
    assert outputs == (TensorSpec("y", "float32", (None, 3)),)  # idx is a Const: never an output


def test_every_output_of_an_unconsumed_multi_output_node_is_listed():
    graph = dense_graph()
    add_node(graph, "parts", "Split", "idx", "y", T=FLOAT, num_split=3)

    inputs, outputs = graph_inputs_outputs(graph)

    assert [s.name for s in inputs] == ["x"]
    # y is consumed by parts now; parts has no _output_shapes: its shapes are unknown
    assert [(s.name, s.dtype, s.shape) for s in outputs] == [
        ("parts", "float32", None), ("parts:1", "float32", None), ("parts:2", "float32", None)]
    add_node(graph, "first", "Identity", "parts:2", T=FLOAT)  # reading one output consumes the node
    assert [s.name for s in graph_inputs_outputs(graph)[1]] == ["first"]


def test_graph_details_count_constants_and_ops():
    details = graph_details(dense_graph())

    assert details["node_count"] == 6
    assert details["op_histogram"] == {"Const": 3, "Placeholder": 1, "MatMul": 1, "BiasAdd": 1}
    assert details["param_count"] == 4 * 3 + 3  # float constants only; idx is int32
    assert details["const_bytes"] == (4 * 3 + 3) * 4 + 2 * 4
    assert details["functions"] == []
    assert details["lint"] == []


def test_constants_inside_functions_count_too():
    graph = dense_graph()
    function = graph.library.function.add()
    function.signature.name = "body"
    node = function.node_def.add(name="k", op="Const")
    node.attr["value"].tensor.dtype = FLOAT
    node.attr["value"].tensor.tensor_shape.dim.add(size=5)

    details = graph_details(graph)

    assert details["param_count"] == 15 + 5
    assert details["functions"] == [{"name": "body", "node_count": 1}]


def leftover_graph():
    """One node of each kind lint reports, in a graph a naive freeze could give."""
    graph = GraphDef()
    add_node(graph, "x", "Placeholder", dtype=FLOAT, shape=[-1, 2])
    add_node(graph, "forgotten", "Placeholder", dtype=FLOAT, shape=[-1, 3])
    add_node(graph, "keras_learning_phase", "PlaceholderWithDefault", "phase_default", dtype=BOOL)
    add_node(graph, "phase_default", "Const", dtype=BOOL, value=(BOOL, []))
    add_node(graph, "dropout/cond/Switch", "Switch", "x", "keras_learning_phase", T=FLOAT)
    add_node(graph, "v", "VarHandleOp", dtype=FLOAT)
    add_node(graph, "read", "ReadVariableOp", "v", dtype=FLOAT)
    add_node(graph, "noise", "RandomUniform", "x", dtype=FLOAT)
    add_node(graph, "relu", "Relu", "dropout/cond/Switch:1", device="/device:GPU:0", T=FLOAT)
    add_node(graph, "conv", "Conv2D", "relu", "read", T=FLOAT, data_format=b"NCHW")
    add_node(graph, "bias", "BiasAdd", "conv", "read", T=FLOAT, data_format=b"NCHW")  # CPUs run it: no finding
    add_node(graph, "y", "Add", "bias", "noise", T=FLOAT)
    add_node(graph, "second", "Identity", "x", T=FLOAT)
    function = graph.library.function.add()
    function.signature.name = "body"
    function.node_def.add(name="jitter", op="RandomStandardNormal")
    return graph


def test_each_kind_of_leftover_is_found_in_kind_order():
    found = {finding.kind: (finding.severity, finding.nodes) for finding in lint(leftover_graph())}

    assert list(found) == ["variables", "random-ops", "learning-phase", "training-switches", "device-strings",
                           "unused-placeholders", "several-outputs", "channels-first"]
    assert found == {
        "variables": ("error", ("v", "read")),
        "random-ops": ("error", ("noise", "body/jitter")),  # function bodies as function/node
        "learning-phase": ("error", ("keras_learning_phase",)),
        "training-switches": ("error", ("dropout/cond/Switch",)),  # fed by keras_learning_phase
        "device-strings": ("error", ("relu",)),
        "unused-placeholders": ("error", ("forgotten",)),
        "several-outputs": ("info", ("y", "second")),
        "channels-first": ("info", ("conv",)),
    }


def test_a_finding_is_one_line_naming_three_nodes_at_most():
    graph = GraphDef()
    for index in range(5):
        add_node(graph, f"p{index}", "Placeholder", dtype=FLOAT)
    add_node(graph, "c", "Const", dtype=FLOAT, value=(FLOAT, []))
    add_node(graph, "out", "Identity", "c", T=FLOAT)

    [finding] = lint(graph)

    assert finding.line == "unused placeholders: 5 (p0, p1, p2, ...)"
    assert finding.to_json() == {"kind": "unused-placeholders", "severity": "error", "count": 5,
                                 "nodes": ["p0", "p1", "p2", "p3", "p4"], "message": finding.line}


def test_a_clean_graph_has_no_findings_and_one_output():
    assert lint(dense_graph()) == []
    assert output_nodes(dense_graph()) == ["y"]


def test_control_inputs_and_output_indices_count_as_consumed():
    graph = GraphDef()
    add_node(graph, "x", "Placeholder", dtype=FLOAT)
    add_node(graph, "a", "Identity", "x", T=FLOAT)
    add_node(graph, "b", "Identity", "x", "^a", T=FLOAT)  # a control input
    add_node(graph, "c", "Unpack", "b", T=FLOAT)
    add_node(graph, "d", "Identity", "c:1", T=FLOAT)

    assert output_nodes(graph) == ["d"]


def test_binary_and_text_files_are_read_and_other_files_refused(tmp_path):
    graph = dense_graph()
    binary, text = tmp_path / "g.pb", tmp_path / "g.pbtxt"
    binary.write_bytes(graph.SerializeToString())
    text.write_text(text_format.MessageToString(graph))

    assert read_graph_def(binary) == graph
    assert read_graph_def(text) == graph
    assert type(read_graph_def(binary)).DESCRIPTOR.full_name == "freezekeras_tf.GraphDef"
    (tmp_path / "empty.pb").write_bytes(b"")
    with pytest.raises(ModelFileError, match="the file is empty"):
        read_graph_def(tmp_path / "empty.pb")
    (tmp_path / "junk.pb").write_text("hello, this is not a graph\n")
    with pytest.raises(ModelFileError, match="is not a TensorFlow GraphDef"):
        read_graph_def(tmp_path / "junk.pb")


def test_message_classes_have_tensorflows_field_names():
    node = message_class("NodeDef")(name="n", op="Const")
    node.attr["value"].tensor.float_val.append(1.5)

    graph = GraphDef()
    graph.node.append(node)
    graph.versions.producer = 1

    assert [n.name for n in graph.node] == ["n"]
    assert message_class("NodeDef").DESCRIPTOR.full_name == "freezekeras_tf.NodeDef"
    # a round trip through bytes keeps every field
    again = GraphDef()
    again.ParseFromString(graph.SerializeToString())
    assert again == graph and again.node[0].attr["value"].tensor.float_val == [1.5]


@pytest.mark.parametrize(("value", "name"), [(1, "float32"), (3, "int32"), (7, "string"), (19, "float16"),
                                             (101, "float32"), (120, "resource"), (99, "unknown")])
def test_dtype_names(value, name):
    """101 is float32_ref: reference types are named as their base."""
    assert dtype_name(value) == name
