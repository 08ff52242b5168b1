"""Commands on a finished run, whatever its task: evaluate, predict, export.

A run's ``config.json`` names its task; each task's pipeline module provides
``evaluate(run_dir, dataset, subset, **options)`` and ``predict(run_dir, files, top_k)``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from cnnkit import runs
from cnnkit.errors import InputError

# task in config.json -> the pipeline that made (and can read) such runs
PIPELINES = {"image": "pipelines.image_classification", "speech": "pipelines.speech_recognition"}


def pipeline_of(run: runs.Run) -> ModuleType:
    """The pipeline module of ``run``'s task.

    Raises:
        InputError: a task no pipeline handles.
    """
    if run.task not in PIPELINES:
        raise InputError(f"RUN_DIR '{run.dir}': task {run.task!r} has no evaluate/predict; expected one of: {', '.join(PIPELINES)}")
    return importlib.import_module(PIPELINES[run.task])


def evaluate(run_dir: str, dataset: str | None = None, subset: str = "all", **options) -> dict:
    """Evaluate ``run_dir``'s model on ``dataset`` (default: the run's own) through its task's pipeline."""
    run = runs.load(run_dir)
    return pipeline_of(run).evaluate(run_dir, dataset or run.config["dataset"], subset, **options)


def predict(run_dir: str, files: list[str], top_k: int = 5) -> list[dict]:
    """Top-``k`` predictions for each input file through the run's task's pipeline."""
    return pipeline_of(runs.load(run_dir)).predict(run_dir, files, top_k)


def export(run_dir: str, fmt: str, out: str | None = None) -> Path:
    """Export ``run_dir``'s model (default ``RUN_DIR/export/<saved_model|model.tflite|model.keras>``)."""
    from cnnkit import export as exporting

    run = runs.load(run_dir)
    if fmt not in exporting.FORMATS:
        raise InputError(f"--format '{fmt}': unknown; expected one of: {', '.join(exporting.FORMATS)}")
    pipeline_of(run)  # imported for the custom layers its models may hold
    return exporting.export(run.load_model(), fmt, out or run.dir / "export" / exporting.DEFAULT_NAMES[fmt])
