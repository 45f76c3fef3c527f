"""Regenerate ``freezekeras/graphdef/descriptors.binpb`` from the installed TensorFlow.

``freezekeras inspect`` reads GraphDefs and SavedModels with protobuf alone (see
``freezekeras/graphdef/``). It needs the message descriptors of TensorFlow's
``graph.proto`` and ``saved_model.proto`` and the files they import (``node_def``,
``attr_value``, ``tensor``, ``tensor_shape``, ``types``, ``function``, ``op_def``,
``versions``, ``resource_handle``, ``full_type``, ``meta_graph``,
``saved_object_graph``, ``struct``, ...). Well-known protobuf types they
import (``google/protobuf/any.proto``, ...) are included unchanged, under their
own names and package, so the private pool can resolve them. The TensorFlow wheel
ships no ``.proto`` files, but its generated ``*_pb2`` modules hold the
descriptors; this script takes them from there, renames the proto package
``tensorflow`` to ``freezekeras_tf`` and the files to ``freezekeras_tf/...``
(the wire format depends only on field numbers and types, so both read the
same bytes, and nothing clashes with TensorFlow's own ``tensorflow.GraphDef``
in protobuf's default pool), drops the language options, and writes them as
one serialized ``FileDescriptorSet``, dependencies first.

Run it after upgrading TensorFlow, then run the tests:

    python tools/regenerate_graphdef.py
"""

from __future__ import annotations

import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "freezekeras" / "graphdef" / "descriptors.binpb"
PACKAGE = "tensorflow"
PRIVATE = "freezekeras_tf"


def file_protos() -> list:
    """The FileDescriptorProtos of graph.proto, saved_model.proto and what they import, dependencies first."""
    from google.protobuf import descriptor_pb2
    from tensorflow.core.framework import graph_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    ordered, seen = [], set()

    def visit(file_descriptor) -> None:
        if file_descriptor.name in seen:
            return
        seen.add(file_descriptor.name)
        for dependency in file_descriptor.dependencies:
            visit(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(proto)
        ordered.append(proto)

    visit(graph_pb2.DESCRIPTOR)
    visit(saved_model_pb2.DESCRIPTOR)
    return ordered


def privatize(proto) -> None:
    """Rename package, file names and type references; drop options (go_package, java_*).

    A well-known type (``google/protobuf/...``) is left as it is.
    """
    if _well_known(proto.name):
        return
    if proto.package != PACKAGE:
        raise SystemExit(f"{proto.name}: unexpected package {proto.package!r}; update this script")
    proto.package = PRIVATE
    proto.name = _file_name(proto.name)
    dependencies = [_file_name(name) for name in proto.dependency]
    del proto.dependency[:]
    proto.dependency.extend(dependencies)
    proto.ClearField("options")
    for message in proto.message_type:
        _privatize_message(message)
    for service in proto.service:
        raise SystemExit(f"{proto.name}: unexpected service {service.name}; update this script")


def _well_known(name: str) -> bool:
    return name.startswith("google/protobuf/")


def _file_name(name: str) -> str:
    return name if _well_known(name) else f"{PRIVATE}/{name}"


def _privatize_message(message) -> None:
    for field in message.field:
        if field.type_name.startswith(f".{PACKAGE}."):
            field.type_name = f".{PRIVATE}." + field.type_name[len(PACKAGE) + 2:]
    for nested in message.nested_type:
        _privatize_message(nested)


def main() -> None:
    import tensorflow as tf
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet()
    for proto in file_protos():
        privatize(proto)
        files.file.append(proto)
    TARGET.write_bytes(files.SerializeToString(deterministic=True))
    names = ", ".join(proto.name.rsplit("/", 1)[-1] for proto in files.file)
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes) from TensorFlow {tf.__version__}: {names}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
