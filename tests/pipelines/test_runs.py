"""Dispatch of evaluate/predict/export on a run's task."""

import pytest

from cnnkit import runs
from cnnkit.errors import InputError
from pipelines import image_classification, runs as run_commands


def finished_run(folder, task):
    run_dir = runs.start(folder, task, {"dataset": "digits"})
    (run_dir / "model.keras").write_bytes(b"")
    runs.finish(run_dir, {})
    return run_dir


def test_task_picks_the_pipeline(tmp_path):
    assert run_commands.pipeline_of(runs.load(finished_run(tmp_path / "i", "image"))) is image_classification


def test_unknown_task(tmp_path):
    run_dir = finished_run(tmp_path / "v", "video")
    with pytest.raises(InputError, match="task 'video' has no evaluate/predict; expected one of: image, speech"):
        run_commands.evaluate(str(run_dir))
    with pytest.raises(InputError, match="task 'video'"):
        run_commands.export(str(run_dir), "keras")


def test_unknown_format_before_loading(tmp_path):
    run_dir = finished_run(tmp_path / "i", "image")
    with pytest.raises(InputError, match="--format 'onnx': unknown; expected one of: savedmodel, tflite, keras"):
        run_commands.export(str(run_dir), "onnx")
