"""Write a trained Keras model for serving: TensorFlow SavedModel, TensorFlow Lite, or a ``.keras`` file.

* ``savedmodel``: ``keras.Model.export`` (format ``tf_saved_model``); the
  ``serve`` endpoint maps ``(batch, *input_shape)`` float32 to the model's output.
* ``tflite``: the SavedModel converted by ``tf.lite.TFLiteConverter`` (float32,
  no quantisation, so its outputs match the Keras model's to float rounding).
* ``keras``: the native Keras 3 zip (architecture, weights, no optimizer state).

Hand-written-gradient layers export like any other: serving only traces the
forward pass of their ``tf.custom_gradient`` functions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from cnnkit import runs
from cnnkit.errors import InputError

FORMATS = ("savedmodel", "tflite", "keras")
# File or folder name of each format inside the default export folder.
DEFAULT_NAMES = {"savedmodel": "saved_model", "tflite": "model.tflite", "keras": "model.keras"}


def export(model: keras.Model, fmt: str, out: str | os.PathLike) -> Path:
    """Write ``model`` in format ``fmt`` to ``out`` (a folder for savedmodel, a file otherwise).

    The result appears under its final name only once complete: it is
    written to a temporary name beside ``out`` and renamed.

    Raises:
        InputError: an unknown format, or an ``out`` that cannot be written.
    """
    if fmt not in FORMATS:
        raise InputError(f"--format '{fmt}': unknown; expected one of: {', '.join(FORMATS)}")
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "keras":
            tmp = runs.temporary_path(out if out.suffix == ".keras" else out.with_name(out.name + ".keras"))
            model.save(tmp, include_optimizer=False)
            os.replace(tmp, out)
            return out
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work:
            saved = Path(work) / "saved_model"
            model.export(saved, format="tf_saved_model", verbose=False)
            if fmt == "savedmodel":
                # A folder cannot be renamed over a non-empty one; the old export goes first.
                shutil.rmtree(out, ignore_errors=True)
                os.replace(saved, out)
            else:
                flat = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
                with runs.atomic_open(out, "wb") as f:
                    f.write(flat)
    except OSError as error:
        raise InputError(f"--out '{out}': cannot write there ({error.strerror or error})") from error
    return out
