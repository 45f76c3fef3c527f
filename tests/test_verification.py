"""The pieces of verification: random inputs and the comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

from freezekeras.errors import ConversionError
from freezekeras.results import TensorSpec
from freezekeras.tf.verification import BATCH_SIZE, FREE_DIM_SIZE, compare, random_inputs

SPECS = (
    TensorSpec("image", "float32", (None, None, 3)),
    TensorSpec("ids", "int32", (None, 4)),
    TensorSpec("mask", "bool", (2,)),
)


def test_random_inputs_are_deterministic_and_shaped():
    first = random_inputs(SPECS, seed=3, int_high=5)
    again = random_inputs(SPECS, seed=3, int_high=5)
    other = random_inputs(SPECS, seed=4, int_high=5)
    assert list(first) == ["image", "ids", "mask"]
    assert first["image"].shape == (BATCH_SIZE, FREE_DIM_SIZE, 3) and first["image"].dtype == np.float32
    assert first["ids"].dtype == np.int32 and 0 <= first["ids"].min() and first["ids"].max() < 5
    assert first["mask"].dtype == np.bool_ and first["mask"].shape == (2,)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["image"], other["image"])
    assert -1 <= first["image"].min() and first["image"].max() < 1


def test_string_inputs_cannot_be_verified():
    with pytest.raises(ConversionError, match="--no-verify"):
        random_inputs([TensorSpec("text", "string", (None,))])


def test_compare_reports_the_worst_output():
    result = compare(["a", "b"], [np.zeros(3), np.ones(2)], [np.full(3, 1e-6), np.array([1.0, 1.5])])
    assert result.per_output == pytest.approx({"a": 1e-6, "b": 0.5})
    assert result.max_abs_diff == pytest.approx(0.5) and not result.passed
    assert result.atol == pytest.approx(1e-4)


def test_default_tolerance_scales_with_the_outputs():
    big = np.array([1000.0, -2000.0])
    result = compare(["y"], [big], [big + 0.1])
    assert result.atol == pytest.approx(0.2) and result.passed
    assert not compare(["y"], [big], [big + 0.1], atol=0.05).passed


def test_nans_in_the_same_places_are_equal_but_new_nans_fail():
    want = np.array([np.nan, 1.0])
    assert compare(["y"], [want], [np.array([np.nan, 1.0])]).passed
    assert not compare(["y"], [want], [np.array([np.nan, np.nan])]).passed


def test_shape_mismatch_fails():
    result = compare(["y"], [np.zeros((2, 3))], [np.zeros((3, 2))])
    assert math.isinf(result.max_abs_diff) and not result.passed


def test_a_nan_in_any_output_fails():
    """Whatever the order of the outputs (max() alone skips a NaN that comes after a number)."""
    zeros = np.zeros(2)
    for actual in ([zeros, np.array([np.nan, 0.0])], [np.array([np.nan, 0.0]), zeros]):
        result = compare(["a", "b"], [zeros, zeros], actual)
        assert not result.passed and math.isnan(result.max_abs_diff)
        assert result.worst_output == ("b" if np.isnan(actual[1][0]) else "a")


def test_equal_infinities_are_equal():
    assert compare(["y"], [np.array([np.inf, 1.0])], [np.array([np.inf, 1.0])]).passed
    assert not compare(["y"], [np.array([np.inf])], [np.array([-np.inf])]).passed


def test_failure_messages_say_what_to_do():
    from pathlib import Path

    from freezekeras.api import _verification_error

    result = compare(["probs/Softmax"], [np.zeros(3)], [np.full(3, 0.5)])
    plain = str(_verification_error(Path("m.h5"), result, []))
    assert plain == ("m.h5: the frozen graph's outputs differ from Keras' by up to 0.5 (output probs/Softmax, "
                     "tolerance 0.0001); nothing was written. Rerun with --debug and report it, or pass --atol "
                     "or --no-verify to keep the graph anyway.")
    noisy = str(_verification_error(Path("m.h5"), result, ["random ops (Dropout?): 1 (noise/RandomUniform)"]))
    assert noisy.endswith("The graph draws random numbers at inference (random ops (Dropout?): 1 "
                          "(noise/RandomUniform)), so no two runs agree; pass --no-verify to keep it anyway.")
