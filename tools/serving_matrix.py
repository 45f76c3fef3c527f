"""Regenerate the serving matrix in docs/serving.md from the tests' tables and what the tests measured.

    python tools/serving_matrix.py                 # run the matrix (tests/test_serving.py), then write the table
    python tools/serving_matrix.py --results F     # write it from the JSON lines a run left in F
    python tools/serving_matrix.py --check         # write nothing; exit 1 when the claims differ from the tables

The claims (which cells work, with which options; which are impossible and why) come from CHOICES,
IMPOSSIBLE and PENDING in tests/test_serving.py; the numbers are the largest differences from Keras
the cells measured (the tests write them when FREEZEKERAS_SERVING_RESULTS names a file).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import runtimes  # noqa: E402
import test_serving as matrix  # noqa: E402

#: The packages whose versions the table was measured with.
VERSIONS = ("tensorflow", "tf-keras", "keras", "opencv-python-headless", "tf2onnx", "onnxruntime", "openvino",
            "ai-edge-litert")


def measure() -> list[dict]:
    """Run every cell of tests/test_serving.py and return what they recorded."""
    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder) / "cells.jsonl"
        env = {**os.environ, matrix.RESULTS_ENV: str(results)}
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--basetemp",
                        str(Path(folder) / "tmp"), "tests/test_serving.py", "-k", "test_serving_cell"],
                       cwd=REPO, env=env, check=False)
        return read(results)


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def render(cells: list[dict]) -> str:
    """The generated block: the table, a legend, the versions."""
    measured = {(cell["runtime"], cell["model"]): cell for cell in cells if cell.get("status") == "pass"}
    header = "| model | " + " | ".join(runtimes.TITLES[r] for r in runtimes.RUNTIMES) + " |"
    lines = [matrix.BEGIN, "", header, "|---" * (len(runtimes.RUNTIMES) + 1) + "|"]
    for model in matrix.MODELS:
        row = [f"`{model}` {matrix.MODELS[model]}"]
        for runtime in runtimes.RUNTIMES:
            cell = measured.get((runtime, model))
            diff = "?" if cell is None else ("0" if cell["max_diff"] == 0 else f"{cell['max_diff']:.1e}")
            row.append(matrix.claim(runtime, model).replace("{diff}", diff))
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "✓: the runtime's outputs match Keras' predictions; the number is the largest absolute difference "
        "measured (`?`: not measured in the last run), then the options `--target` picked for that runtime "
        "(none: the defaults); each cell converts with `--target` (`tf`, `tf`, `opencv`, `onnx`, `openvino`, "
        "`tflite`). ✗: the runtime cannot run the model; the test asserts that `--target` refuses the graph "
        "and that the runtime refuses it. …: fails "
        "today for want of a freezekeras option still being built; the test expects the runtime's error.",
        "",
        "Measured with " + ", ".join(f"{p} {_version(p)}" for p in VERSIONS) + ".",
        "",
        matrix.END,
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="JSON lines of a test run (FREEZEKERAS_SERVING_RESULTS)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the claims are stale")
    args = parser.parse_args()
    text = matrix.SERVING_DOC.read_text(encoding="utf-8")
    if args.check:
        documented = matrix.documented_cells(text)
        stale = [(runtime, model) for model in matrix.MODELS for runtime in runtimes.RUNTIMES
                 if documented.get((runtime, model)) != matrix.claim(runtime, model)]
        print("docs/serving.md: stale cells " + ", ".join(map(str, stale)) if stale else "docs/serving.md: current")
        return 1 if stale else 0
    cells = read(args.results) if args.results else measure()
    before, rest = text.split(matrix.BEGIN, 1)
    after = rest.split(matrix.END, 1)[1]
    matrix.SERVING_DOC.write_text(before + render(cells) + after, encoding="utf-8")
    print(f"wrote {matrix.SERVING_DOC.relative_to(REPO)} ({sum(c.get('status') == 'pass' for c in cells)} cells measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
