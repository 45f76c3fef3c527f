"""How peak memory grows with the weights: freezekeras convert against the hand-written freeze, at three sizes.

Each model is a three-layer MLP (Dense 1024 -> n -> n -> 10) with ``n`` chosen for the float32
weight size asked for (``--sizes``, MB), built and saved as .h5 in a child process. Three commands
run in fresh processes, taking turns, ``--runs`` times: ``import tensorflow, tf_keras`` alone (the
baseline), ``freezekeras convert`` (verification on) and ``bench/freeze_script.py``. The table gives
the median peak RSS of each and, for the two freezers, how many bytes of memory above the
baseline they held per byte of weights.

Run by hand, not in CI:
  python bench/memory.py [--runs 3] [--sizes 64 256 1024]
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import freezekeras_command  # noqa: E402
from timing import alternating  # noqa: E402

HERE = Path(__file__).resolve().parent
BASELINE = "import os; os.environ['TF_USE_LEGACY_KERAS'] = '1'; import tensorflow, tf_keras"


def width(megabytes: float) -> int:
    """The ``n`` of Dense 1024 -> n -> n -> 10 with about ``megabytes`` of float32 weights."""
    params = megabytes * 1e6 / 4
    return int((-1035 + math.sqrt(1035 ** 2 + 4 * params)) / 2)


def build(megabytes: float, folder: Path) -> tuple[Path, float]:
    n = width(megabytes)
    path = folder / f"mlp_{int(megabytes)}mb.h5"
    code = ("import os, sys; os.environ['TF_USE_LEGACY_KERAS'] = '1'; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
            "import tf_keras; n = int(sys.argv[1])\n"
            "tf_keras.Sequential([tf_keras.Input((1024,)), tf_keras.layers.Dense(n, activation='relu'),"
            " tf_keras.layers.Dense(n, activation='relu'), tf_keras.layers.Dense(10)]).save(sys.argv[2])\n")
    subprocess.run([sys.executable, "-c", code, str(n), str(path)], check=True, stderr=subprocess.DEVNULL)
    weights = (1024 * n + n + n * n + n + n * 10 + 10) * 4 / 1e6
    return path, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", type=float, nargs="+", default=[64, 256, 1024])
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    print(f"command: python bench/memory.py {' '.join(sys.argv[1:])}")
    print(f"date: {datetime.date.today()}, commit {commit.strip()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            h5, weights = build(size, folder)
            todo = {
                "baseline": [sys.executable, "-c", BASELINE],
                "freezekeras": [*freezekeras_command(), "convert", str(h5), "-o", str(folder / "fk.pb")],
                "script": [sys.executable, str(HERE / "freeze_script.py"), str(h5), str(folder / "script.pb")],
            }
            measured = alternating(todo, args.runs, f"{size:.0f} MB")
            rows.append((weights, {tool: statistics.median(mb for _, mb in runs) for tool, runs in measured.items()}))
            h5.unlink()
    print("\n| weights MB | baseline MB | freezekeras MB | script MB | fk / script | fk above baseline / weights "
          "| script above baseline / weights |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for weights, med in rows:
        base, fk, script = med["baseline"], med["freezekeras"], med["script"]
        print(f"| {weights:.0f} | {base:.0f} | {fk:.0f} | {script:.0f} | {fk / script:.2f}x | "
              f"{(fk - base) / weights:.2f} | {(script - base) / weights:.2f} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
