"""Commands on a finished run, whatever its task: evaluate, predict, export, explain, report.

A run's ``config.json`` names its task; each task's pipeline module provides
``evaluate(run_dir, dataset, subset, **options)``, ``predict(run_dir, files, top_k)``
and ``explain_inputs(run, model, files)``.
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
    _check_task(run)
    return importlib.import_module(PIPELINES[run.task])


def _check_task(run: runs.Run) -> None:
    if run.task not in PIPELINES:
        raise InputError(f"RUN_DIR '{run.dir}': task {run.task!r} has no evaluate/predict; expected one of: {', '.join(PIPELINES)}")


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


def explain(run_dir: str, files: list[str], out: str | None = None, class_name: str | None = None, top_k: int = 3) -> dict:
    """Write ``out/index.html`` (default ``RUN_DIR/explain``): kernels, feature maps, Grad-CAM and top-k per file.

    Everything is checked (the run, the class, the folder, every file read)
    before anything is written; see :func:`cnnkit.explain.write_page`.

    Returns:
        ``{"out": folder, "page": index.html, **explain.json}``.

    Raises:
        InputError: not a finished image or speech run, an unknown ``class_name``,
            an unreadable file, ``top_k < 1``, or an ``out`` that holds other files.
    """
    run = runs.load(run_dir)
    _check_task(run)
    # The quick checks come before TensorFlow is imported: a typo fails at once.
    classes = [str(c) for c in run.config["preprocessing"]["classes"]]
    if class_name is not None and class_name not in classes:
        raise InputError(f"--class '{class_name}': not a class of this run; expected one of: {', '.join(classes)}")
    if not files:
        raise InputError("FILE: give at least one input file")
    if top_k < 1:
        raise InputError(f"--top-k {top_k}: expected an integer >= 1")
    for file in files:
        if not Path(file).is_file():
            raise InputError(f"FILE '{file}': no such file")
    from cnnkit import explain as explaining

    pipeline = pipeline_of(run)
    target = explaining.check_out(out or run.dir / "explain")
    model = run.load_model()
    inputs = pipeline.explain_inputs(run, model, files)
    title = f"What {run.config.get('model', model.name)} sees: {run.dir.name}"
    record = explaining.write_page(target, model, inputs, classes, title=title, top_k=top_k, other_class=class_name)
    return {"out": str(target), "page": str(target / explaining.PAGE), **record}


def report(run_dir: str) -> Path:
    """Rewrite ``RUN_DIR/report.html`` (see :mod:`cnnkit.report`); returns its path."""
    from cnnkit import report as reporting

    return reporting.write(run_dir)
