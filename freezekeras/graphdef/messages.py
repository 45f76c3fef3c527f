"""TensorFlow's ``GraphDef`` message without TensorFlow: protobuf alone.

The message classes are built at run time from ``descriptors.binpb`` (beside this module),
a serialized ``FileDescriptorSet`` that ``tools/regenerate_graphdef.py`` takes
from TensorFlow's own generated modules. Building them at run time avoids
generated code that would tie us to one protoc and protobuf runtime. The
descriptors live in a private :class:`~google.protobuf.descriptor_pool.DescriptorPool`
under the proto package ``freezekeras_tf``, so they never clash with
TensorFlow's ``tensorflow.GraphDef`` in protobuf's default pool; the wire
format depends only on field numbers, so both read the same files, and the
field names are TensorFlow's, so code written for one works on the other.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

PACKAGE = "freezekeras_tf"
DESCRIPTORS = "descriptors.binpb"

#: TensorFlow's DataType enum values (types.proto) to numpy-style names, as TensorFlow names them.
DTYPE_NAMES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32",
    14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "float16",
    20: "resource", 21: "variant", 22: "uint32", 23: "uint64",
}
#: Names to TensorFlow's DataType enum values: ``DTYPE_CODES["float32"] == 1``.
DTYPE_CODES = {name: code for code, name in DTYPE_NAMES.items()}
#: Bytes per element of the fixed-size DataTypes (for the size of constants).
DTYPE_SIZES = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 8: 8, 9: 8, 10: 1, 11: 1, 12: 1, 13: 4,
               14: 2, 15: 2, 16: 2, 17: 2, 18: 16, 19: 2, 22: 4, 23: 8}


@functools.cache
def _pool() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool

    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString(resources.files(__package__).joinpath(DESCRIPTORS).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:  # dependencies come first
        pool.Add(file_proto)
    return pool


@functools.cache
def message_class(name: str) -> type:
    """The message class of TensorFlow's ``name`` (``"GraphDef"``, ``"NodeDef"``, ``"TensorProto"``...)."""
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"{PACKAGE}.{name}"))


def GraphDef() -> Any:  # named like the message it makes
    """A new, empty ``GraphDef`` message (fields as in TensorFlow's graph.proto)."""
    return message_class("GraphDef")()


def dtype_name(value: int) -> str:
    """``1`` -> ``"float32"``: TensorFlow's name of a DataType value; reference types (``101``...) as their base."""
    base = value - 100 if value > 100 else value
    return DTYPE_NAMES.get(base, "unknown")
