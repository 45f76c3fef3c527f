"""Batch conversion: several models, folders and glob patterns in one call.

Good models must be converted and verified exactly as alone; each bad one gives
its own one-line error (the line it gives alone) and no output file, and never
stops the others; the exit code is the most serious of the models'.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import (
    CUSTOM_CODE,
    FREEZEKERAS,
    build_custom_layer,
    build_lambda,
    build_weights_only,
    copy,
    describe,
    files_under,
    keras_predict,
    needs_script,
    noise_function,
    own_inputs,
    run_cli,
    run_frozen,
    user_env,
)

import freezekeras
from freezekeras.cli.commands import main
from freezekeras.errors import (
    EXIT_INTERNAL_ERROR,
    EXIT_MODEL_ERROR,
    EXIT_OK,
    EXIT_USAGE_ERROR,
    EXIT_VERIFICATION_FAILED,
    SEVERITY,
    most_serious,
)
from freezekeras.graphdef.reading import read_graph_def

STATUS = re.compile(r"^freezekeras: (?P<model>\S+): converted -> (?P<output>\S+) "
                    r"\((?P<nodes>\d+) nodes, verified, max diff (?P<diff>[-+.e0-9]+)\)$")


# --------------------------------------------------------------------------- helpers


def alone(model: Path, *options: str) -> str:
    """The one stderr line ``freezekeras convert MODEL`` gives when MODEL fails on its own."""
    result = run_cli("convert", model, *options)
    assert result.exit_code != EXIT_OK and result.stdout == "", describe(result)
    [line] = result.stderr.splitlines()
    return line


def assert_matches_keras(h5: Path, pb: Path, report: dict) -> None:
    """The written graph, loaded with plain TensorFlow, computes what Keras computes."""
    specs = [freezekeras.TensorSpec(s["name"], s["dtype"], tuple(s["shape"])) for s in report["inputs"]]
    inputs = own_inputs(specs, seed=11, int_high=4)
    frozen = run_frozen(pb, {s.name: v for s, v in zip(specs, inputs)}, [s["name"] for s in report["outputs"]])
    expected = keras_predict(h5, inputs)
    assert len(frozen) == len(expected)
    for want, got in zip(expected, frozen):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


@pytest.fixture
def mixed(model_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """Two good models and four bad inputs, in the order they are given."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.h5").write_text("not a model\n")
    return {
        "dense": copy(model_dir / "dense.h5", src / "dense.h5"),
        "notes": src / "notes.h5",
        "multi_io": copy(model_dir / "multi_io.h5", src / "multi_io.h5"),
        "weights": build_weights_only(src / "weights.h5"),
        "lambda": build_lambda(src / "lambda.h5", name="twice"),
        "missing": src / "missing.h5",
    }


# --------------------------------------------------------------------------- a mix of good and bad files


def test_a_mixed_batch_converts_the_good_and_reports_each_bad(mixed: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    errors = {name: alone(mixed[name]) for name in ("notes", "weights", "lambda", "missing")}

    result = run_cli("convert", *mixed.values(), "-o", f"{out}/", "--json")

    assert result.exit_code == EXIT_USAGE_ERROR, describe(result)  # missing.h5: 2 outranks 1
    lines = result.stderr.splitlines()
    assert len(lines) == 7 and "Traceback" not in result.stderr, describe(result)
    for name, line in zip(mixed, lines):
        if name in errors:
            assert line == errors[name]
        else:
            status = STATUS.match(line)
            assert status, line
            assert status["model"] == str(mixed[name]) and status["output"] == str(out / f"{name}.pb")
            assert int(status["nodes"]) == len(read_graph_def(out / f"{name}.pb").node)
            assert float(status["diff"]) <= 1e-5
    assert lines[-1] == "freezekeras: 6 models: 2 converted, 4 failed"
    assert files_under(out) == ["dense.pb", "multi_io.pb"]  # no temporary file, nothing for the bad ones

    reports = json.loads(result.stdout)
    assert [r["model"] for r in reports] == [str(path) for path in mixed.values()]
    for name, report in zip(mixed, reports):
        if name in errors:
            code = {"missing": EXIT_USAGE_ERROR}.get(name, EXIT_MODEL_ERROR)
            assert report == {"model": str(mixed[name]), "output": None, "status": "failed", "exit_code": code,
                              "error": errors[name].removeprefix("freezekeras: error: "), "verification": None}
        else:
            assert report["status"] == "converted" and report["exit_code"] == 0 and report["error"] is None
            assert report["output"] == str(out / f"{name}.pb") and report["verification"]["passed"] is True
            assert_matches_keras(mixed[name], out / f"{name}.pb", report)


def test_text_output_is_each_report_in_turn(mixed: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("convert", mixed["dense"], mixed["notes"], mixed["multi_io"], "-o", tmp_path)

    assert result.exit_code == EXIT_MODEL_ERROR, describe(result)
    blocks = result.stdout.split("\n\n")
    wrote = [line for line in result.stdout.splitlines() if line.startswith("wrote ")]
    assert [line.split(" (")[0] for line in wrote] == [f"wrote {tmp_path / 'dense.pb'}", f"wrote {tmp_path / 'multi_io.pb'}"]
    assert len(blocks) == 8 and blocks[4].startswith(f"wrote {tmp_path / 'multi_io.pb'} (")
    assert "  features  float32  (None, 6)" in blocks[5] and "classes/Softmax" in blocks[6]
    assert result.stderr.splitlines()[1] == alone(mixed["notes"])
    assert result.stderr.splitlines()[-1] == "freezekeras: 3 models: 2 converted, 1 failed"


def test_the_api_returns_one_item_per_model_and_reports_each_at_once(mixed: dict[str, Path], tmp_path: Path) -> None:
    seen = []

    items = freezekeras.convert_many([mixed["notes"], mixed["dense"]], freezekeras.ConvertOptions(output=tmp_path),
                                     on_result=seen.append)

    assert seen == items and [item.model for item in items] == [mixed["notes"], mixed["dense"]]
    assert not items[0].ok and items[0].exit_code == EXIT_MODEL_ERROR and items[0].result is None
    assert items[0].error.startswith(f"{mixed['notes']}: is not an HDF5 file.")
    assert items[1].ok and items[1].error is None and items[1].result.output == tmp_path / "dense.pb"


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(("codes", "expected"), [
    ([], EXIT_OK),
    ([EXIT_OK, EXIT_OK], EXIT_OK),
    ([EXIT_OK, EXIT_VERIFICATION_FAILED], EXIT_VERIFICATION_FAILED),
    ([EXIT_VERIFICATION_FAILED, EXIT_MODEL_ERROR, EXIT_OK], EXIT_MODEL_ERROR),
    ([EXIT_MODEL_ERROR, EXIT_USAGE_ERROR, EXIT_VERIFICATION_FAILED], EXIT_USAGE_ERROR),
    ([EXIT_USAGE_ERROR, EXIT_INTERNAL_ERROR, EXIT_MODEL_ERROR], EXIT_INTERNAL_ERROR),
    ([EXIT_OK, 99, EXIT_USAGE_ERROR], 99),
])
def test_most_serious_follows_the_documented_order(codes: list[int], expected: int) -> None:
    assert SEVERITY == (70, 2, 1, 3, 0)
    assert most_serious(codes) == expected


@pytest.mark.parametrize(("names", "expected"), [
    (["dense", "multi_io"], EXIT_OK),
    (["dense", "noisy"], EXIT_VERIFICATION_FAILED),
    (["noisy", "notes", "dense"], EXIT_MODEL_ERROR),
    (["noisy", "missing", "notes"], EXIT_USAGE_ERROR),
])
def test_the_batch_exits_with_the_most_serious_code(names: list[str], expected: int, mixed: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """noisy.h5 adds fresh random noise: its verification fails (3); notes.h5 is no model (1); missing.h5 (2)."""
    models = {**mixed, "noisy": build_lambda(tmp_path / "src" / "noisy.h5", noise_function(), name="twice")}

    result = run_cli("convert", *(models[name] for name in names), "--allow-lambda", "-o", f"{tmp_path / 'out'}/")

    assert result.exit_code == expected, describe(result)
    good = sum(name in {"dense", "multi_io"} for name in names)
    assert result.stderr.splitlines()[-1] == (
        f"freezekeras: {len(names)} models: {good} converted, {len(names) - good} failed")
    assert files_under(tmp_path / "out") == sorted(f"{name}.pb" for name in names if name in {"dense", "multi_io"})


# --------------------------------------------------------------------------- folders and patterns


@pytest.fixture
def tree(model_dir: Path, tmp_path: Path) -> Path:
    """models/{a.h5, b.HDF5, notes.txt, .hidden.h5, sub/c.h5}"""
    folder = tmp_path / "models"
    copy(model_dir / "dense.h5", folder / "a.h5")
    copy(model_dir / "nested.h5", folder / "b.HDF5")
    copy(model_dir / "dense.h5", folder / ".hidden.h5")
    copy(model_dir / "dense.h5", folder / "sub" / "c.h5")
    (folder / "notes.txt").write_text("not a model\n")
    return folder


@pytest.mark.parametrize(("given", "expected"), [
    ("{tree}", ["a.pb", "b.pb"]),
    ("{tree}/*.h5", ["a.pb"]),
    ("{tree}/**/*.h5", ["a.pb", "sub/c.pb"]),
    ("{tree}/[ab].*", ["a.pb", "b.pb"]),
], ids=["folder", "glob", "recursive-glob", "glob-class"])
def test_a_folder_or_pattern_converts_its_models_beside_them(given: str, expected: list[str], tree: Path) -> None:
    before = files_under(tree)

    result = run_cli("convert", given.format(tree=tree), "--json")

    assert result.exit_code == EXIT_OK, describe(result)
    assert files_under(tree) == sorted(before + expected)
    reports = json.loads(result.stdout)
    assert [r["output"] for r in reports] == [str(tree / name) for name in expected]
    assert all(r["status"] == "converted" and r["verification"]["passed"] for r in reports)
    assert result.stderr.splitlines()[-1] == (
        f"freezekeras: {len(expected)} model{'s' if len(expected) > 1 else ''}: {len(expected)} converted, 0 failed")


def test_a_literal_path_that_looks_like_a_pattern_is_one_model(model_dir: Path, tmp_path: Path) -> None:
    model = copy(model_dir / "dense.h5", tmp_path / "model[1].h5")

    result = run_cli("convert", model, "--no-verify")

    assert result.exit_code == EXIT_OK, describe(result)
    assert result.stdout.startswith(f"wrote {tmp_path / 'model[1].pb'} (")  # the one-model report, as ever
    assert result.stderr == ""


# --------------------------------------------------------------------------- refused up front


def _collide_suffixes(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "m" / "a.h5")
    b = copy(model_dir / "dense.h5", tmp / "m" / "a.hdf5")
    return [tmp / "m"], b, f"would be written to {tmp / 'm' / 'a.pb'}, as {a} would; nothing was converted."


def _collide_twice(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "a.h5")
    return [a, tmp / "." / "a.h5"], tmp / "." / "a.h5", "would be written to"


def _collide_in_output(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "x" / "a.h5")
    b = copy(model_dir / "dense.h5", tmp / "y" / "a.h5")
    (tmp / "out").mkdir()
    return [a, b, "-o", tmp / "out"], b, f"would be written to {tmp / 'out' / 'a.pb'}, as {a} would;"


def _empty_folder(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "a.h5")
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.txt").write_text("not a model\n")
    return [a, tmp / "empty"], tmp / "empty", "is a directory with no .h5, .hdf5 or .keras file in it."


def _empty_glob(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "a.h5")
    return [a, f"{tmp}/*.hdf5"], f"{tmp}/*.hdf5", "no file matches it as a pattern"


def _output_node(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "a.h5")
    b = copy(model_dir / "dense.h5", tmp / "b.h5")
    return [a, b, "--output-node", "hidden/Relu"], "--output-node", "applies to one model, and 2 were given"


def _architecture(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "a.h5")
    (tmp / "arch.json").write_text("{}")
    return [a, a, "--architecture", tmp / "arch.json"], "--architecture", "applies to one model, and 2 were given"


def _reference(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "a.h5")
    b = copy(model_dir / "dense.h5", tmp / "b.h5")
    np.savez(tmp / "ref.npz", x0=np.zeros((1, 8), "float32"), y0=np.zeros((1, 3), "float32"))
    return [a, b, "--reference", tmp / "ref.npz"], "--reference", "applies to one model, and 2 were given"


def _output_is_a_file(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "a.h5")
    b = copy(model_dir / "dense.h5", tmp / "b.h5")
    (tmp / "out.pb").write_text("old\n")
    return [a, b, "-o", tmp / "out.pb"], tmp / "out.pb", "is not a folder; -o for a batch of models is a folder."


def _output_folder_missing(tmp: Path, model_dir: Path) -> tuple[list, Path, str]:
    a = copy(model_dir / "dense.h5", tmp / "a.h5")
    return [a, a, "-o", tmp / "new"], tmp / "new", "no such folder; -o for a batch of models is a folder."


REFUSED = {
    "same-output-from-two-suffixes": _collide_suffixes,
    "same-model-twice": _collide_twice,
    "same-name-into-one-folder": _collide_in_output,
    "empty-folder": _empty_folder,
    "empty-glob": _empty_glob,
    "output-node-with-two-models": _output_node,
    "architecture-with-two-models": _architecture,
    "reference-with-two-models": _reference,
    "output-is-a-file": _output_is_a_file,
    "output-folder-missing-without-slash": _output_folder_missing,
}


@pytest.mark.parametrize("make", REFUSED.values(), ids=REFUSED.keys())
def test_a_batch_that_cannot_work_is_refused_before_anything_is_converted(make, model_dir: Path,
                                                                          tmp_path: Path) -> None:
    args, named, phrase = make(tmp_path, model_dir)
    before = files_under(tmp_path)

    result = run_cli("convert", *args)

    assert result.exit_code == EXIT_USAGE_ERROR, describe(result)
    assert result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith(f"freezekeras: error: {named}") and phrase in line, line
    assert files_under(tmp_path) == before


def test_a_new_output_folder_ending_in_slash_is_created(model_dir: Path, tmp_path: Path) -> None:
    model = copy(model_dir / "dense.h5", tmp_path / "a.h5")

    one = run_cli("convert", model, "-o", f"{tmp_path / 'one' / 'deep'}/", "--no-verify")
    many = run_cli("convert", model, model_dir / "nested.h5", "-o", f"{tmp_path / 'many'}/", "--no-verify")

    assert one.exit_code == EXIT_OK and many.exit_code == EXIT_OK, describe(one) + describe(many)
    assert one.stdout.startswith(f"wrote {tmp_path / 'one' / 'deep' / 'a.pb'} (") and one.stderr == ""
    assert files_under(tmp_path / "many") == ["a.pb", "nested.pb"]


# --------------------------------------------------------------------------- nothing leaks between models


def test_models_in_one_batch_do_not_see_each_other(model_dir: Path, tmp_path: Path) -> None:
    """The same model thrice, others between: each graph is the one converted alone.

    Same layer names in one process get no ``_1`` suffixes, no graph or session
    is shared, and the caller's own Keras state (layer name counters, learning
    phase) is where it was. Graphs without functions are equal messages (not
    always the same bytes: protobuf writes attribute maps in no fixed order); the
    LSTM's While-loop functions carry a counter TensorFlow keeps per process in
    their names, so for it the nodes are compared.
    """
    import tf_keras

    sources = {"first": "dense", "other": "nested", "second": "dense", "lstm": "stacked_lstm", "third": "dense"}
    models = [copy(model_dir / f"{src}.h5", tmp_path / "in" / f"{name}.h5") for name, src in sources.items()]
    for src in set(sources.values()):
        freezekeras.convert(model_dir / f"{src}.h5", freezekeras.ConvertOptions(output=tmp_path / f"alone_{src}.pb"))
    layer_before = tf_keras.layers.Dense(1).name
    phase_before = tf_keras.backend.learning_phase()

    items = freezekeras.convert_many(models, freezekeras.ConvertOptions(output=tmp_path / "out"), create_output=True)

    assert all(item.ok for item in items), [item.error for item in items]
    for name, src in sources.items():
        batch, single = tmp_path / "out" / f"{name}.pb", tmp_path / f"alone_{src}.pb"
        if src == "stacked_lstm":
            assert _nodes(batch) == _nodes(single)
        else:
            assert read_graph_def(batch) == read_graph_def(single), name
    assert tf_keras.layers.Dense(1).name == _next_name(layer_before)
    assert tf_keras.backend.learning_phase() == phase_before


def _nodes(pb: Path) -> list[tuple[str, str, list[str]]]:
    return [(node.name, node.op, list(node.input)) for node in read_graph_def(pb).node]


def _next_name(name: str) -> str:
    """The name Keras gives the next layer of a class: dense -> dense_1 -> dense_2."""
    stem, _, number = name.rpartition("_")
    return f"{stem}_{int(number) + 1}" if number.isdigit() else f"{name}_1"


def test_custom_objects_and_lambda_permission_apply_to_each_model(model_dir: Path, tmp_path: Path) -> None:
    objects = tmp_path / "my_layers.py"
    objects.write_text(CUSTOM_CODE)
    custom = build_custom_layer(tmp_path / "custom.h5")
    lam = build_lambda(tmp_path / "lam.h5", name="twice")
    dense = copy(model_dir / "dense.h5", tmp_path / "dense.h5")

    without = run_cli("convert", custom, dense, lam, "-o", f"{tmp_path / 'without'}/")
    given = run_cli("convert", custom, dense, lam, "-o", f"{tmp_path / 'with'}/",
                    "--custom-objects", objects, "--allow-lambda")

    assert without.exit_code == EXIT_MODEL_ERROR, describe(without)
    assert without.stderr.splitlines()[0] == alone(custom)
    assert without.stderr.splitlines()[2] == alone(lam)
    assert files_under(tmp_path / "without") == ["dense.pb"]
    assert given.exit_code == EXIT_OK, describe(given)
    assert files_under(tmp_path / "with") == ["custom.pb", "dense.pb", "lam.pb"]


def test_an_unexpected_exception_fails_that_model_only(model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A bug in one conversion (here: a RuntimeError injected for b.h5) is reported, and the batch goes on."""
    import freezekeras.batch

    real = freezekeras.batch.convert

    def convert(path, options, **kwargs):
        if Path(path).name == "b.h5":
            raise RuntimeError("something nobody foresaw\nsecond line")
        return real(path, options, **kwargs)

    monkeypatch.setattr(freezekeras.batch, "convert", convert)
    a = copy(model_dir / "dense.h5", tmp_path / "a.h5")
    b = copy(model_dir / "dense.h5", tmp_path / "b.h5")

    result = run_cli("convert", b, a, "--no-verify")
    debug = run_cli("convert", b, a, "--no-verify", "--debug")

    assert result.exit_code == EXIT_INTERNAL_ERROR, describe(result)
    assert result.stderr.splitlines() == [
        f"freezekeras: error: {b}: unexpected RuntimeError: something nobody foresaw. This is a freezekeras bug: "
        "rerun with --debug and report it with the traceback.",
        f"freezekeras: {a}: converted -> {tmp_path / 'a.pb'} ({len(read_graph_def(tmp_path / 'a.pb').node)} nodes, "
        "not verified)",
        "freezekeras: 2 models: 1 converted, 1 failed",
    ]
    assert not (tmp_path / "b.pb").exists()
    assert debug.exit_code == EXIT_INTERNAL_ERROR and "Traceback" in debug.stderr
    assert "RuntimeError: something nobody foresaw" in debug.stderr


# --------------------------------------------------------------------------- the installed command


@pytest.mark.subprocess
@pytest.mark.slow
@needs_script
def test_the_installed_command_converts_a_batch(mixed: dict[str, Path], tmp_path: Path) -> None:
    done = subprocess.run([str(FREEZEKERAS), "convert", str(mixed["dense"]), str(mixed["notes"]),
                           str(mixed["multi_io"]), "-o", "out/", "--json"],
                          capture_output=True, text=True, env=user_env(), cwd=tmp_path, timeout=300)

    assert done.returncode == EXIT_MODEL_ERROR, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 4 and STATUS.match(lines[0]) and STATUS.match(lines[2]), done.stderr  # no TensorFlow noise
    assert lines[1] == alone(mixed["notes"]) and lines[3] == "freezekeras: 3 models: 2 converted, 1 failed"
    reports = json.loads(done.stdout)
    assert [(r["status"], r["output"]) for r in reports] == [
        ("converted", "out/dense.pb"), ("failed", None), ("converted", "out/multi_io.pb")]
    assert files_under(tmp_path / "out") == ["dense.pb", "multi_io.pb"]


@pytest.mark.subprocess
@pytest.mark.slow
@needs_script
def test_a_stopped_batch_keeps_finished_models_and_leaves_no_temporary_file(model_dir: Path, tmp_path: Path) -> None:
    models = [copy(model_dir / "dense.h5", tmp_path / "in" / "a.h5")]
    models += [copy(model_dir / "stacked_lstm.h5", tmp_path / "in" / f"{name}.h5") for name in ("b", "c", "d")]
    out = tmp_path / "out"
    child = subprocess.Popen([str(FREEZEKERAS), "convert", *map(str, models), "-o", f"{out}/"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env())
    deadline = time.monotonic() + 120
    while not list(out.glob(".b.pb.*.tmp")) and time.monotonic() < deadline:  # b's conversion has begun
        time.sleep(0.05)
    assert list(out.glob(".b.pb.*.tmp")), "no temporary file appeared"
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)

    assert child.returncode == 128 + signal.SIGINT, stderr
    kept = files_under(out)  # a.pb, and b.pb should b have finished before the signal came
    assert kept in (["a.pb"], ["a.pb", "b.pb"])
    lines = stderr.splitlines()
    assert len(lines) == len(kept) + 1 and all(STATUS.match(line) for line in lines[:-1]), stderr
    assert lines[-1] == ("freezekeras: stopped by SIGINT; the 1 model converted before is kept, nothing else was written"
                         if len(kept) == 1 else
                         "freezekeras: stopped by SIGINT; the 2 models converted before are kept, nothing else was written")


@pytest.mark.subprocess
@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _freezekeras_completion freezekeras"),
    ("zsh", "compdef _freezekeras_completion freezekeras"),
    ("fish", "complete --no-files --command freezekeras"),
])
@needs_script
def test_shell_completion_scripts_come_from_click(shell: str, marker: str) -> None:
    done = subprocess.run([str(FREEZEKERAS)], capture_output=True, text=True, timeout=60,
                          env={**user_env(), "_FREEZEKERAS_COMPLETE": f"{shell}_source"})

    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert marker in done.stdout


@pytest.mark.subprocess
@needs_script
def test_completion_offers_the_commands_and_convert_options() -> None:
    env = {**user_env(), "_FREEZEKERAS_COMPLETE": "bash_complete", "COMP_WORDS": "freezekeras convert --al",
           "COMP_CWORD": "2"}
    done = subprocess.run([str(FREEZEKERAS)], capture_output=True, text=True, timeout=60, env=env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["plain,--allow-lambda"]


@pytest.mark.slow
def test_a_model_in_a_batch_is_written_as_it_is_alone(model_dir: Path, tmp_path: Path) -> None:
    """TensorFlow's function names carry a process-wide counter; the written ones do not, so a
    recurrent model converted after another one writes the same bytes as converted on its own."""
    models = [copy(model_dir / "stacked_lstm.h5", tmp_path / "in" / name) for name in ("a.h5", "b.h5")]

    batch = CliRunner().invoke(main, ["convert", *map(str, models), "-o", f"{tmp_path / 'batch'}/"])
    alone = CliRunner().invoke(main, ["convert", str(models[1]), "-o", str(tmp_path / "alone.pb")])

    assert (batch.exit_code, alone.exit_code) == (EXIT_OK, EXIT_OK), batch.stderr + alone.stderr
    assert (tmp_path / "batch" / "b.pb").read_bytes() == (tmp_path / "alone.pb").read_bytes()
    functions = [f.signature.name for f in read_graph_def(tmp_path / "alone.pb").library.function]
    assert functions and all(re.fullmatch(r"\w+_frozen_\d+", name) for name in functions), functions
