"""benchmarks/speech.py ``--runs``: a finished fold is read back, never retrained, and never mistaken for another recipe's."""

from __future__ import annotations

import argparse
from dataclasses import asdict

import pytest

from cnnkit import runs
from tests.conftest import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/speech.py")


def _args(**changes) -> argparse.Namespace:
    recipe = dict(
        model="dscnn", epochs=20, vtlp=0.15, filter_augment=3.0, sample_rate=16000, speed_perturb=0.0, tempo_perturb=0.0,
        tta_warp=0.0, tta_tempo=0.0, extra_train="synth-digits:extended", label_smoothing=0.0, seed=0, ensemble=3,
    )  # fmt: skip
    return argparse.Namespace(**{**recipe, **changes})


def _finish_fold(bench, folder, args) -> dict:
    """A finished run folder as train-speech leaves it: config.json via runs.start, a model, metrics.json last."""
    cfg = bench.fold_config("speaker:nicolas", args, folder)
    runs.start(folder, "speech", {**asdict(cfg), "out": str(folder), "preprocessing": {"classes": list("0123456789")}})
    (folder / runs.MODEL).write_bytes(b"")
    metrics = {"test_accuracy": 0.9, "epoch_seconds": 60.0, "clips_per_second": 30.0, "epochs_run": 20, "parameters": 72606}
    runs.finish(folder, metrics)
    return metrics


def test_a_finished_fold_with_the_same_recipe_is_read_back(bench, tmp_path):
    folder = tmp_path / "nicolas"
    assert bench.finished_run(folder, bench.fold_config("speaker:nicolas", _args(), folder)) is None  # nothing there yet
    metrics = _finish_fold(bench, folder, _args())
    assert bench.finished_run(folder, bench.fold_config("speaker:nicolas", _args(), folder)) == metrics


def test_a_finished_fold_of_another_recipe_is_refused_with_the_options_named(bench, tmp_path, capsys):
    folder = tmp_path / "nicolas"
    _finish_fold(bench, folder, _args())
    with pytest.raises(SystemExit) as exit_info:
        bench.finished_run(folder, bench.fold_config("speaker:nicolas", _args(epochs=2, ensemble=2), folder))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("holds a finished run with other options (ensemble, epochs); choose another --runs")
