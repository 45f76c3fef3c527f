"""Damaged files, made by a seeded mutator, are refused with one line, never an internal error.

Random bytes of a Keras ``.h5``, a frozen ``.pb`` and a Keras 3 ``.keras`` (as
Keras stores it, and with its members compressed) are
changed, or their tail is cut, and each result goes through ``inspect`` (many
cases: it reads with h5py, protobuf and zipfile only) and ``convert`` (a few:
it builds the model in TensorFlow). Each must exit 0 (the damage did not
matter) or 1 (ModelFileError: one ``freezekeras: error: FILE: ...`` line on
stderr, nothing on stdout) - never 70 or a traceback. The seeds are fixed, so
a failure reproduces: rerun with the printed seed and case.
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import PREFIX, describe, run_cli, user_env

#: Damaged files per source format given to ``inspect``, and to ``convert``.
INSPECT_CASES = 300
CONVERT_CASES = {".h5": 16, ".keras": 4, ".pb": 2}
SEED = 20240801


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` damaged: its tail cut (3 times in 10), else 1 to 16 bytes set to random values."""
    if rng.random() < 0.3:
        return data[:rng.randrange(1, len(data))]
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    return bytes(damaged)


KERAS3_SOURCE = textwrap.dedent("""
    import sys, keras
    keras.utils.set_random_seed(11)
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)]).save(sys.argv[1])
""")


def _stable_archive(archive: Path, *, compress: int) -> bytes:
    """``archive`` with what changes from one save to the next made constant: the zip's timestamps,
    the saving date, and the ``shared_object_id`` values (``id()`` of Python objects)."""
    out = io.BytesIO()
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(out, "w", compress) as target:
        for member in sorted(source.namelist()):
            data = source.read(member)
            if member == "metadata.json":
                data = re.sub(rb'"date_saved": "[^"]*"', b'"date_saved": "2024-08-01@00:00:00"', data)
            if member == "config.json":
                data = re.sub(rb'"shared_object_id": \d+', b'"shared_object_id": 1', data)
            target.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=compress)
    return out.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, bytes]:
    """A tiny tf_keras model as .h5, its frozen graph as .pb, and a tiny Keras 3 .keras archive (stored and
    compressed): the same bytes in every run, so that a seed reproduces a case."""
    import tf_keras

    folder = tmp_path_factory.mktemp("fuzz-sources")
    tf_keras.utils.set_random_seed(11)
    model = tf_keras.Sequential([tf_keras.layers.Dense(4, activation="relu", input_shape=(3,), name="hidden"),
                                 tf_keras.layers.Dense(2, name="out")])
    model.save(folder / "m.h5")
    result = run_cli("convert", folder / "m.h5", "-o", folder / "m.pb")
    assert result.exit_code == 0, describe(result)
    env = {**user_env(), "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", KERAS3_SOURCE, str(folder / "k3.keras")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return {".h5": (folder / "m.h5").read_bytes(), ".pb": (folder / "m.pb").read_bytes(),
            ".keras": _stable_archive(folder / "k3.keras", compress=zipfile.ZIP_STORED),
            ".deflated.keras": _stable_archive(folder / "k3.keras", compress=zipfile.ZIP_DEFLATED)}


def _check(result, path: Path, case: str) -> None:
    where = f"{case}\n{describe(result)}"
    assert result.exit_code in (0, 1), where
    assert isinstance(result.exception, (SystemExit, type(None))), where
    assert "Traceback" not in result.stderr, where
    if result.exit_code:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{PREFIX}{path}:"), where
        assert result.stdout == "", where


@pytest.mark.parametrize("suffix", [".h5", ".pb", ".keras", ".deflated.keras"])
def test_inspect_damaged_files(sources, tmp_path: Path, suffix: str) -> None:
    rng = random.Random(f"{SEED}-inspect{suffix}")
    refused = 0
    for number in range(INSPECT_CASES):
        path = tmp_path / f"damaged{number}{suffix}"
        path.write_bytes(mutate(sources[suffix], rng))
        before = path.read_bytes()
        result = run_cli("inspect", path, "--json")
        _check(result, path, f"seed {SEED}, inspect{suffix} case {number}")
        assert path.read_bytes() == before  # the input untouched
        refused += result.exit_code == 1
    assert refused >= INSPECT_CASES // 2  # the mutator does damage: most files are refused


@pytest.mark.parametrize("suffix", list(CONVERT_CASES))
def test_convert_damaged_files(sources, tmp_path: Path, suffix: str) -> None:
    rng = random.Random(f"{SEED}-convert{suffix}")
    for number in range(CONVERT_CASES[suffix]):
        path = tmp_path / f"damaged{number}{suffix}"
        path.write_bytes(mutate(sources[suffix], rng))
        output = tmp_path / f"out{number}.pb"
        result = run_cli("convert", path, "-o", output, "--json")
        _check(result, path, f"seed {SEED}, convert{suffix} case {number}")
        if result.exit_code:
            assert not output.exists()  # no partial output
        leftovers = [entry.name for entry in tmp_path.iterdir() if entry.name.endswith(".tmp")]
        assert leftovers == []
