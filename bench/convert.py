"""freezekeras convert against the hand-written freeze and the TF2 recipe: Markdown tables, run by hand.

Each model is tf-keras' own (``weights=None``, nothing downloaded), built and
saved as .h5 once (``--models-dir`` keeps them between runs). Three commands
freeze it, each in a fresh process, taking turns run after run (the order
rotates), ``--runs`` times:

- ``freezekeras convert M.h5 -o OUT.pb`` (verification on, the default);
- ``python bench/freeze_script.py M.h5 OUT.pb``: the shortest correct hand-written
  TF1-compat freeze (learning phase 0, load_model(compile=False), devices cleared,
  convert_variables_to_constants, remove_training_nodes, extract_sub_graph; no verification);
- ``python bench/freeze_v2.py M.h5 OUT.pb``: the TF2 recipe, a concrete function and
  convert_variables_to_constants_v2.

The tables give medians of wall time and peak RSS (``bench/timing.py``) with
their ratios to the script; file sizes with and without ``--fp16``; nodes with
and without ``--optimize`` (those columns need the options, else a note says
they were skipped); and the median latency of one batch-1 call of each written
graph in a TensorFlow session. ``--jobs`` times one batch of 20 small models
with ``--jobs 1`` against ``--jobs 2``. ``--script-only`` leaves the TF2 recipe out
(and the graphs' table): freezekeras and the script alone, taking turns.

Run by hand, not in CI:
  python bench/convert.py [--runs 3] [--models MobileNetV2 ResNet50 InceptionV3 VGG16] [--script-only]
                         [--jobs-runs 3] [--jobs-models 20] [--jobs-size small|medium]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import alternating, run  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = ["MobileNetV2", "ResNet50", "InceptionV3", "VGG16"]
TOOLS = ("freezekeras", "script", "tf2 recipe")


def freezekeras_command() -> list[str]:
    script = Path(sys.executable).parent / "freezekeras"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "freezekeras"]


def commands(h5: Path, out: Path) -> dict[str, list[str]]:
    return {
        "freezekeras": [*freezekeras_command(), "convert", str(h5), "-o", str(out / "fk.pb")],
        "script": [sys.executable, str(HERE / "freeze_script.py"), str(h5), str(out / "script.pb")],
        "tf2 recipe": [sys.executable, str(HERE / "freeze_v2.py"), str(h5), str(out / "v2.pb")],
    }


def has_option(name: str) -> bool:
    done = subprocess.run([*freezekeras_command(), "convert", "--help"], capture_output=True, text=True)
    return name in done.stdout


def build(name: str, folder: Path) -> Path:
    """``folder/NAME.h5``, built in a child process unless it is there already."""
    h5 = folder / f"{name}.h5"
    if not h5.is_file():
        code = ("import os, sys; os.environ['TF_USE_LEGACY_KERAS'] = '1'; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
                "import tf_keras; getattr(tf_keras.applications, sys.argv[1])(weights=None).save(sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, name, str(h5)], check=True, stderr=subprocess.DEVNULL)
    return h5


def node_count(pb: Path) -> int:
    from freezekeras.graphdef.reading import read_graph_def

    return len(read_graph_def(pb).node)


def latency_ms(pb: Path, runs: int = 20) -> float:
    """Median milliseconds of one batch-1 call of the graph in ``pb`` (a session with default options)."""
    code = """
import os, sys, time, statistics
os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'
import numpy as np, tensorflow as tf
graph_def = tf.compat.v1.GraphDef.FromString(open(sys.argv[1], 'rb').read())
graph = tf.Graph()
with graph.as_default():
    tf.import_graph_def(graph_def, name='')
inputs = [op for op in graph.get_operations() if op.type == 'Placeholder']
consumed = {t.op.name for op in graph.get_operations() for t in op.inputs}
outputs = [op.outputs[0] for op in graph.get_operations() if op.name not in consumed and op.outputs]
feeds = {op.outputs[0]: np.random.default_rng(0).uniform(-1, 1, [1 if d is None else d
         for d in op.outputs[0].shape.as_list()]).astype(np.float32) for op in inputs}
with tf.compat.v1.Session(graph=graph) as session:
    session.run(outputs, feeds)
    times = []
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter(); session.run(outputs, feeds); times.append(time.perf_counter() - start)
print(statistics.median(times) * 1000)
"""
    done = subprocess.run([sys.executable, "-c", code, str(pb), str(runs)], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def compare(names: list[str], folder: Path, runs: int, tools: tuple[str, ...] = TOOLS) -> None:
    """The tables of ``names`` converted by ``tools`` (freezekeras and the script at least); the graphs'
    table only when all three ran."""
    fp16, optimize = has_option("--fp16"), has_option("--optimize")
    rows, extras = [], []
    for name in names:
        h5 = build(name, folder)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            measured = alternating({tool: command for tool, command in commands(h5, out).items() if tool in tools},
                                   runs, name)
            med = {tool: (statistics.median(s for s, _ in measured[tool]), statistics.median(mb for _, mb in measured[tool]))
                   for tool in tools}
            rows.append((name, med))
            if tools != TOOLS:
                continue
            extra = {"pb MB": (out / "fk.pb").stat().st_size / 1e6, "nodes": node_count(out / "fk.pb"),
                     "script nodes": node_count(out / "script.pb"), "v2 nodes": node_count(out / "v2.pb"),
                     "latency": {tool: latency_ms(out / pb) for tool, pb in
                                 (("freezekeras", "fk.pb"), ("script", "script.pb"), ("tf2 recipe", "v2.pb"))}}
            if fp16:
                run([*freezekeras_command(), "convert", str(h5), "-o", str(out / "fp16.pb"), "--fp16"])
                extra["fp16 MB"] = (out / "fp16.pb").stat().st_size / 1e6
            if optimize:
                run([*freezekeras_command(), "convert", str(h5), "-o", str(out / "opt.pb"), "--optimize"])
                extra["optimized nodes"] = node_count(out / "opt.pb")
                extra["latency"]["freezekeras --optimize"] = latency_ms(out / "opt.pb")
            extras.append((name, extra))
    print(f"\n### wall time and peak RSS (median of {runs}, alternating)\n")
    print("| model | freezekeras s | script s | TF2 recipe s | fk / script | freezekeras MB | script MB "
          "| TF2 recipe MB | fk / script |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, med in rows:
        fk, sc, v2 = med["freezekeras"], med["script"], med.get("tf2 recipe")
        print(f"| {name} | {fk[0]:.2f} | {sc[0]:.2f} | {f'{v2[0]:.2f}' if v2 else '-'} | {fk[0] / sc[0]:.2f}x | "
              f"{fk[1]:.0f} | {sc[1]:.0f} | {f'{v2[1]:.0f}' if v2 else '-'} | {fk[1] / sc[1]:.2f}x |")
    if not extras:
        print("\n(--script-only: the graphs' table was skipped.)")
        return
    print("\n### the graphs\n")
    print("| model | .pb MB | --fp16 MB | nodes (fk / script / TF2) | --optimize nodes | latency ms fk / script / "
          "TF2 / fk --optimize |")
    print("|---|---:|---:|---|---:|---|")
    for name, extra in extras:
        lat = extra["latency"]
        lats = " / ".join(f"{lat[key]:.1f}" for key in ("freezekeras", "script", "tf2 recipe",
                                                         "freezekeras --optimize") if key in lat)
        print(f"| {name} | {extra['pb MB']:.1f} | {extra.get('fp16 MB', float('nan')):.1f} | "
              f"{extra['nodes']} / {extra['script nodes']} / {extra['v2 nodes']} | "
              f"{extra.get('optimized nodes', '-')} | {lats} |")
    if not (fp16 and optimize):
        print("\n(--fp16 or --optimize is not an option of this freezekeras: those columns were skipped.)")


def build_medium_models(folder: Path, count: int) -> None:
    """``count`` MobileNetV2s (``weights=None``) of four widths and input sizes, 0.4 to 2.3 M weights, saved
    as .h5 in a child process: models that take about a second each to convert and verify."""
    code = ("import os, sys; os.environ['TF_USE_LEGACY_KERAS'] = '1'; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
            "import tf_keras\n"
            "for i in range(int(sys.argv[2])):\n"
            "    tf_keras.utils.set_random_seed(i)\n"
            "    alpha, size = ((0.35, 96), (0.5, 128), (0.75, 128), (1.0, 160))[i % 4]\n"
            "    tf_keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None,"
            " classes=10).save(f'{sys.argv[1]}/mobilenetv2_{i:02d}.h5')\n")
    subprocess.run([sys.executable, "-c", code, str(folder), str(count)], check=True, stderr=subprocess.DEVNULL)


def jobs(runs: int, count: int, size: str = "small") -> None:
    """``count`` models: one batch with --jobs 1 against --jobs 2, alternating; wall time and when the
    first and the last model were reported (the start-up and the steady state). ``size``: ``small``
    (Dense and Conv2D nets of ``bench/batch_speed.py``, a few hundredths of a second each) or
    ``medium`` (:func:`build_medium_models`)."""
    sys.path.insert(0, str(HERE))
    from batch_speed import build_models

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "models"
        folder.mkdir()
        if size == "medium":
            build_medium_models(folder, count)
        else:
            build_models(folder, count)
        times: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
        for index in range(runs):
            for n in ((1, 2) if index % 2 == 0 else (2, 1)):
                times[n].append(_timed_batch([*freezekeras_command(), "convert", str(folder), "-o",
                                              f"{tmp}/out{n}/", "--jobs", str(n)]))
                print(f"  --jobs {n} run {index + 1}: {times[n][-1]}", file=sys.stderr)
    print(f"\n### {count} {size} models, one batch (median of {runs}, alternating)\n")
    print("| command | wall s | first model reported s | last model reported s | models/s after the first |")
    print("|---|---:|---:|---:|---:|")
    med = {}
    for n in (1, 2):
        wall, first, last = (statistics.median(t[i] for t in times[n]) for i in range(3))
        med[n] = (wall, last - first)
        print(f"| `convert DIR -o OUT/ --jobs {n}` | {wall:.2f} | {first:.2f} | {last:.2f} | "
              f"{(count - 1) / (last - first):.1f} |")
    print(f"| speedup | {med[1][0] / med[2][0]:.2f}x | | | {med[1][1] / med[2][1]:.2f}x |")


def _timed_batch(command: list[str]) -> tuple[float, float, float]:
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reported = []
    for line in child.stderr:
        if " converted -> " in line:
            reported.append(time.perf_counter() - start)
    if child.wait() != 0:
        raise SystemExit(f"{' '.join(command)} exited with {child.returncode}")
    return time.perf_counter() - start, reported[0], reported[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--script-only", action="store_true",
                        help="Run freezekeras against the script alone: no TF2 recipe, no graphs' table.")
    parser.add_argument("--models-dir", type=Path, help="Keep the built .h5 files here (default: a temporary folder).")
    parser.add_argument("--jobs-runs", type=int, default=3, help="Runs of the --jobs table (0: skip it).")
    parser.add_argument("--jobs-models", type=int, default=20)
    parser.add_argument("--jobs-size", choices=["small", "medium"], default="small",
                        help="The --jobs table's models: small nets, or MobileNetV2s of about a second each.")
    args = parser.parse_args()
    tools = TOOLS[:2] if args.script_only else TOOLS
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=HERE).stdout
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.2f} at the start")
    print(f"command: python bench/convert.py {' '.join(sys.argv[1:])}")
    print(f"date: {datetime.date.today()}, commit {commit.strip()}{' with local changes' if dirty else ''}")
    if args.models:
        if args.models_dir:
            args.models_dir.mkdir(parents=True, exist_ok=True)
            compare(args.models, args.models_dir, args.runs, tools)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                compare(args.models, Path(tmp), args.runs, tools)
    if args.jobs_runs:
        jobs(args.jobs_runs, args.jobs_models, args.jobs_size)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
