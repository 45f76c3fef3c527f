"""The TF2 recipe for freezing a Keras model: a concrete function and ``convert_variables_to_constants_v2``.

As the tutorials give it: the model loaded eagerly (``compile=False``), wrapped
in a ``tf.function`` traced for its input specs, its variables turned into
constants, the function's graph written with ``tf.io.write_graph``; no verification.

Run by hand:  python bench/freeze_v2.py MODEL.h5 OUT.pb
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2  # noqa: E402

model = tf_keras.models.load_model(sys.argv[1], compile=False)
specs = [tf.TensorSpec(tensor.shape, tensor.dtype) for tensor in model.inputs]
function = tf.function(lambda *inputs: model(list(inputs) if len(inputs) > 1 else inputs[0], training=False))
frozen = convert_variables_to_constants_v2(function.get_concrete_function(*specs))
folder, name = os.path.split(os.path.abspath(sys.argv[2]))
tf.io.write_graph(frozen.graph.as_graph_def(), folder, name, as_text=False)
