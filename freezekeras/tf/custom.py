"""Loading the user's custom layers and functions from a Python file (an explicit opt-in)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from freezekeras.errors import ConversionError, UsageError, error_summary
from freezekeras.paths import check_input_path


def load_custom_objects(path: Path) -> dict[str, Any]:
    """Run the Python file ``path`` and return the objects Keras may look up.

    A module-level ``CUSTOM_OBJECTS`` dict is used as it is (its keys may be
    any string, e.g. ``"<lambda>"``, which some tf.keras versions saved as an
    activation's name); otherwise every public class and function of the file,
    by its name. Import TensorFlow (:func:`freezekeras.tf.imports.import_tensorflow`)
    first, so the file gets tf-keras when it imports ``tf.keras``.

    Args:
        path: A ``.py`` file.

    Returns:
        Names to objects, for Keras' ``custom_objects``.

    Raises:
        UsageError: The file is missing, unreadable or a folder, or
            ``CUSTOM_OBJECTS`` is not a dict.
        ConversionError: Running the file raised an exception or called ``sys.exit``.
    """
    check_input_path(path, option="--custom-objects", expected="a Python file (.py)")
    name = f"freezekeras_custom_objects_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot be imported as Python; --custom-objects takes a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # whatever the user's code raises, sys.exit() included
        sys.modules.pop(name, None)
        raise ConversionError(
            f"{path}: running the --custom-objects file failed ({type(exc).__name__}: "
            f"{error_summary(exc)}). Fix it and try again."
        ) from exc
    declared = getattr(module, "CUSTOM_OBJECTS", None)
    if declared is not None:
        if not isinstance(declared, dict):
            raise UsageError(f"{path}: CUSTOM_OBJECTS must be a dict of names to objects.")
        return dict(declared)
    return {
        key: value
        for key, value in vars(module).items()
        if not key.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
