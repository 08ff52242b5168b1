"""Crash-proof training: SIGKILL through the real CLI, Ctrl-C, and an ``--out`` that cannot take the run.

The killed run is a separate ``python cli.py train-image`` process, killed
while a known epoch is in progress: the test waits until a resume state of that
epoch appears in ``OUT/backup``, whose file names carry the epoch and step
(see ``cnnkit.training.ResumeCheckpoint``). Ctrl-C is sent by the test process
to itself, in the middle of ``cnnkit.training.fit``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import cli
from cnnkit import runs
from tests.conftest import REPO_ROOT

TIMEOUT_SECONDS = 150
# Batches of 8 give 158 steps per epoch on the digits, so an epoch lasts long
# enough (about a second) for the test to signal the process inside it.
TRAIN = ["train-image", "--epochs", "3", "--batch-size", "8", "--save-every", "20", "--seed", "0", "--quiet"]
STATE = re.compile(r"epoch-(\d+)-step-(\d+)\.weights\.h5$")


def _states(out: Path) -> list[tuple[int, int]]:
    """(completed epochs, steps into the next) of the resume states in ``out/backup``."""
    backup = out / runs.BACKUP
    found = (STATE.match(p.name) for p in backup.iterdir()) if backup.is_dir() else ()
    return [(int(m[1]), int(m[2])) for m in found if m]


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen(
        [sys.executable, "cli.py", *TRAIN, "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _signal_during(process: subprocess.Popen, out: Path, epoch: int, number: int) -> tuple[str, str]:
    """Send ``number`` once a mid-epoch state of ``epoch`` (1-based) exists; return the process's output."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not any(done == epoch - 1 and step > 0 for done, step in _states(out)):
        assert process.poll() is None, f"the run ended before epoch {epoch}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"no resume state of epoch {epoch} within {TIMEOUT_SECONDS} s"
        time.sleep(0.02)
    process.send_signal(number)
    return process.communicate(timeout=TIMEOUT_SECONDS)


def _epochs(out: Path) -> list[dict]:
    return runs.read_csv(out / runs.HISTORY)


@pytest.mark.slow
def test_sigkill_in_epoch_2_then_rerun_counts_every_epoch_once(tmp_path):
    out = tmp_path / "run"
    processes = []
    try:
        processes.append(_start(out))
        _signal_during(processes[-1], out, epoch=2, number=signal.SIGKILL)
        assert processes[-1].returncode == -signal.SIGKILL
        before = _epochs(out)
        assert [row["epoch"] for row in before] == [0]
        assert [done for done, _ in _states(out)] == [1]  # a mid-epoch-2 state survived

        processes.append(_start(out))
        _, stderr = processes[-1].communicate(timeout=TIMEOUT_SECONDS)
        assert processes[-1].returncode == 0, stderr[-2000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    history = _epochs(out)
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert history[:1] == before  # epoch 1 was not run again
    assert runs.load(out).metrics["epochs_run"] == 3
    assert not (out / runs.BACKUP).exists()


class _CtrlCAt(keras.callbacks.Callback):
    """Press Ctrl-C (SIGINT to this process) after step ``step`` of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int, step: int):
        super().__init__()
        self.epoch, self.step = epoch, step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self._epoch, batch) == (self.epoch, self.step):
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_the_step_and_the_rerun_finishes(tmp_path):
    from cnnkit import distribute, training

    rng = np.random.default_rng(0)
    data = tf.data.Dataset.from_tensor_slices((rng.random((32, 4), dtype=np.float32), rng.integers(0, 3, size=32))).batch(4)

    def attempt(callbacks=()):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        training.compile_classifier(model, lr=0.1, epochs=3, steps_per_epoch=8)
        return model, training.fit(model, data, epochs=3, run_dir=tmp_path, verbose=False, callbacks=callbacks)

    # Whatever it was: a background job started from a non-interactive shell has SIGINT ignored.
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(distribute.TrainingInterrupted, match=r"^SIGINT: training stopped at epoch 2, step 3; saved .*epoch-00001-step-0000003\.weights\.h5"):
        attempt([_CtrlCAt(epoch=1, step=2)])
    assert [row["epoch"] for row in runs.read_csv(tmp_path / runs.HISTORY)] == [0]
    assert _states(tmp_path) == [(1, 3)]
    assert signal.getsignal(signal.SIGINT) is handler_before

    model, result = attempt()
    assert (result.initial_epoch, [row["epoch"] for row in result.history]) == (1, [0, 1, 2])
    # 8 steps per epoch: 3 before Ctrl-C, then epoch 2 again from its first step, then epoch 3.
    assert int(model.optimizer.iterations) == 8 + 3 + 8 + 8


def test_out_under_a_file_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli.main, [*TRAIN, "--out", str(blocker / "run")])
    assert result.exit_code == 2
    assert re.fullmatch(r"Error: --out '.*/file/run': cannot write there \(.*\)\n", result.stderr)


def test_full_disk_fails_before_anything_is_written(tmp_path, monkeypatch):
    from cnnkit import distribute

    full = distribute.shutil.disk_usage(tmp_path)._replace(free=2**20)
    monkeypatch.setattr(distribute.shutil, "disk_usage", lambda path: full)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.main, [*TRAIN, "--out", str(out)])
    assert result.exit_code == 2
    assert re.fullmatch(r"Error: --out '.*/run': only 1 MiB free on its disk; the run needs about \d+ MiB .*\n", result.stderr)
    assert not out.exists()
