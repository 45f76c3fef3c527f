"""Convert tf-keras' own application models and print each step's time: a table, run by hand.

Each model is built with ``weights=None`` (nothing downloaded), saved as .h5 in
a temporary folder and converted by :func:`freezekeras.convert` in a fresh
child process, which reports the steps' seconds (``on_step``), the graph's
size and the verification's largest difference; the table adds the child's
peak memory. A model that fails is listed with its error.

Run by hand, not in CI:  python bench/applications.py [--models VGG16 ResNet50 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_MODELS = ["MobileNetV2", "ResNet50", "VGG16", "InceptionV3", "Xception", "DenseNet121", "NASNetMobile",
                  "EfficientNetB0", "EfficientNetV2B0", "MobileNetV3Small", "ConvNeXtTiny", "InceptionResNetV2",
                  "RegNetX002", "ResNet50V2"]

#: Run in the child: build, save, convert; print one JSON line.
CHILD = """
import json, os, sys, time
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
name, folder = sys.argv[1], sys.argv[2]
import tf_keras
h5 = os.path.join(folder, name + ".h5")
getattr(tf_keras.applications, name)(weights=None).save(h5)
tf_keras.backend.clear_session()
import freezekeras
steps = {}
try:
    result = freezekeras.convert(h5, freezekeras.ConvertOptions(output=os.path.join(folder, name + ".pb")),
                                 on_step=lambda step, seconds: steps.__setitem__(step, seconds))
    row = {"steps": steps, "mb": result.size_bytes / 1e6, "nodes": result.node_count,
           "diff": result.verification.max_abs_diff}
except freezekeras.FreezeKerasError as exc:
    row = {"error": str(exc)}
print(json.dumps(row))
"""


def measure(name: str, folder: Path) -> tuple[dict, float]:
    """One model's row from a fresh child process, and the child's peak RSS in MB."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, name, str(folder)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    stdout = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return {"error": f"the child exited with {os.waitstatus_to_exitcode(status)}"}, usage.ru_maxrss / 1024
    for path in folder.iterdir():
        path.unlink()
    return json.loads(stdout.splitlines()[-1]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, metavar="NAME",
                        help="tf_keras.applications model names")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          "one run each; the steps of freezekeras.convert (the model is built and saved before)")
    print()
    print("| model | load s | freeze s | write s | verify s | .pb MB | nodes | max diff | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            row, rss = measure(name, Path(tmp))
            if "error" in row:
                print(f"| {name} | {row['error']} | | | | | | | {rss:.0f} |", flush=True)
                continue
            steps = row["steps"]
            print(f"| {name} | {steps['load']:.1f} | {steps['freeze']:.1f} | {steps['write']:.1f} | "
                  f"{steps['verify']:.1f} | {row['mb']:.1f} | {row['nodes']} | {row['diff']:.2g} | {rss:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
