"""The shortest correct hand-written TF1-compat freeze of a Keras .h5 model, for bench/convert.py to compare with.

Learning phase 0, ``load_model(compile=False)``, devices cleared,
``convert_variables_to_constants``, ``remove_training_nodes``,
``extract_sub_graph``, the bytes written; no verification.

Run by hand:  python bench/freeze_script.py MODEL.h5 OUT.pb
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

tf.compat.v1.disable_eager_execution()
tf_keras.backend.set_learning_phase(0)
model = tf_keras.models.load_model(sys.argv[1], compile=False)
session = tf.compat.v1.keras.backend.get_session()
outputs = [tensor.op.name for tensor in model.outputs]
graph_def = session.graph.as_graph_def()
for node in graph_def.node:
    node.device = ""
graph_util = tf.compat.v1.graph_util
frozen = graph_util.convert_variables_to_constants(session, graph_def, outputs)
frozen = graph_util.extract_sub_graph(graph_util.remove_training_nodes(frozen), outputs)
with open(sys.argv[2], "wb") as stream:
    stream.write(frozen.SerializeToString())
