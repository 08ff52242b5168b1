"""cnnkit.report: the page of each kind of folder, from files written by hand; bad folders are refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from cnnkit import plots, report, runs
from cnnkit.errors import InputError


def finished_run(folder, task, config, metrics):
    folder.mkdir()
    runs.write_json(folder / runs.CONFIG, {"task": task, **config})
    (folder / runs.MODEL).write_bytes(b"not read by the report")
    runs.write_json(folder / runs.METRICS, metrics)
    return folder


def pictures(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_an_image_run_page_shows_its_metrics_plots_and_config(tmp_path):
    classes = ["cat", "<dog>"]
    metrics = {
        "task": "image",
        "test_accuracy": 0.75,
        "test_loss": 0.5,
        "classes": classes,
        "per_class": {c: {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 2} for c in classes},
        "confusion_matrix": [[2, 0], [1, 1]],
        "examples": {"train": 10, "val": 2, "test": 4},
        "misclassified": 1,
        "epochs_run": 3,
        "skipped_files": 1,
        "skipped": ["bad & broken.png"],
    }
    run = finished_run(tmp_path / "run", "image", {"model": "lecture", "dataset": "folder:x", "preprocessing": {"classes": classes}}, metrics)
    plots.training_curves([{"epoch": 0, "loss": 1.0, "accuracy": 0.5}], run / "curves.png")
    plots.confusion_matrix(metrics["confusion_matrix"], classes, run / "confusion_matrix.png")
    path = report.write(run)
    assert path == run / "report.html"
    page = path.read_text()
    assert pictures(page) == ["curves.png", "confusion_matrix.png"]
    assert "(misclassified.png is missing from this folder.)" in page  # named, never a broken picture
    assert "&lt;dog&gt;" in page and "<dog>" not in page and "bad &amp; broken.png" in page
    assert "0.75" in page and "folder:x" in page and "<script" not in page
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []


def test_a_speech_run_page_plays_its_misclassified_clips_and_marks_the_worst_speaker(tmp_path):
    run = finished_run(
        tmp_path / "run",
        "speech",
        {"model": "dscnn", "dataset": "fsdd:x"},
        {"test_accuracy": 0.5, "per_speaker": {"ann": {"n": 2, "accuracy": 1.0}, "bob": {"n": 2, "accuracy": 0.0}}, "worst_speaker": "bob"},
    )
    clip = report.Clip(index=3, true="one", predicted="two", speaker="bob", waveform=np.sin(np.arange(800) / 5.0) / 2, features=np.random.rand(7, 5))
    written = report.write_clips(run, [clip], 8000, np.arange(7) * 0.01 + 0.03, np.linspace(100, 3000, 5))
    assert written == [{"index": 3, "true": "one", "predicted": "two", "speaker": "bob", "audio": "misclassified/00.wav", "spectrogram": "misclassified/00.png"}]
    audio, rate = sf.read(run / written[0]["audio"])
    assert rate == 8000 and np.abs(audio - clip.waveform).max() < 2**-14  # 16-bit PCM
    metrics = json.loads((run / runs.METRICS).read_text())
    runs.write_json(run / runs.METRICS, {**metrics, "misclassified_examples": written})
    page = report.write(run).read_text()
    assert '<audio controls preload="none" src="misclassified/00.wav">' in page
    assert "misclassified/00.png" in pictures(page) and "one heard as two (speaker bob)" in page
    assert '<tr class="worst"><td>bob</td>' in page


def test_an_ensemble_page_shows_each_members_curves(tmp_path):
    run = finished_run(tmp_path / "run", "speech", {}, {"members": [{"seed": 0, "test_accuracy": 0.9}, {"seed": 1, "test_accuracy": 0.8}]})
    for i in range(2):
        (run / "members" / str(i)).mkdir(parents=True)
        plots.training_curves([{"epoch": 0, "loss": 1.0}], run / "members" / str(i) / "curves.png")
    page = report.write(run).read_text()
    assert [p for p in pictures(page) if "curves" in p] == ["members/0/curves.png", "members/1/curves.png"]
    assert "Ensemble members" in page


def test_a_compress_job_folder_and_a_codec_training_run(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    point = {"bpp": 0.5, "psnr": 28.0, "ms_ssim": 0.95}
    photo = {"width": 8, "height": 8, "bytes": 4, **point, "jpeg_psnr_at_same_bpp": 27.0, "webp_psnr_at_same_bpp": 30.0}
    rd = {"codec": [{"quality": 3, **point, "psnr_unquantised": 29.0}], "bd_rate": {"jpeg": -10.0, "webp": 50.0}}
    runs.write_json(job / report.COMPRESS_REPORT, {"out": str(job), "model": "factorized", "quality": 3, "photos": {"a#1": photo}, "mean": point, "rd": rd})
    (job / "a#1.cnz").write_bytes(b"x")
    page = report.write(job).read_text()
    assert 'href="a%231.cnz"' in page and "BD-rate vs WEBP" in page and "(rd.png is missing" in page
    run = finished_run(tmp_path / "codec", "compress", {"model": "factorized", "lmbda": 0.01}, {"steps": 8, "validation": {"images": ["p.png"], **point}})
    plots.training_curves([{"epoch": 0, "loss": 1.0, "bpp": 0.5, "psnr": 20.0}], run / "curves.png", ("loss", "bpp", "psnr"))
    page = report.write(run).read_text()
    assert pictures(page) == ["curves.png"] and "p.png" in page and "28" in page


def test_folders_that_are_not_runs_are_refused(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        report.write(tmp_path / "nope")
    with pytest.raises(InputError, match="not a run"):
        report.write(tmp_path)
    finished_run(tmp_path / "other", "other", {}, {})
    with pytest.raises(InputError, match="task 'other' has no report page"):
        report.write(tmp_path / "other")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / report.COMPRESS_REPORT).write_text("[]")
    with pytest.raises(InputError, match="not a compress report"):
        report.write(tmp_path / "bad")
    assert not list(tmp_path.rglob("report.html"))
