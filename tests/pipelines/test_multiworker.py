"""MultiWorkerMirroredStrategy with two worker processes on 127.0.0.1: both train, only the chief writes the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cnnkit import runs
from tests.conftest import REPO_ROOT

TIMEOUT_SECONDS = 180


def _free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out (a tiny race remains until the workers bind them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_two_workers_train_two_epochs_and_only_the_chief_writes(tmp_path):
    out = tmp_path / "run"
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    try:
        for index in range(2):
            tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.pipelines.multiworker_worker", str(out)],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        outputs = [p.communicate(timeout=TIMEOUT_SECONDS) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, stderr) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    chief, worker = (json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs)

    assert (chief["chief"], worker["chief"]) == (True, False)
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["epochs"] == worker["epochs"] == [0, 1]
    # Synchronous training: both workers end with the same weights.
    assert chief["weights_checksum"] == pytest.approx(worker["weights_checksum"], rel=1e-6)

    assert Path(chief["run_dir"]) == out
    run = runs.load(out)
    assert run.metrics["epochs_run"] == 2
    assert run.metrics["val_accuracy"] == pytest.approx(chief["val_accuracy"])
    assert [row["epoch"] for row in runs.read_csv(out / runs.HISTORY)] == [0, 1]
    assert not (out / runs.BACKUP).exists()  # finished: the resume state is gone
    # The worker wrote into its own folder, outside --out, and removed it at the end.
    assert not Path(worker["run_dir"]).is_relative_to(out)
    assert not Path(worker["run_dir"]).exists()
    assert sorted(p.name for p in out.iterdir() if p.name != runs.LOGS) == sorted(
        [runs.CONFIG, runs.HISTORY, runs.METRICS, runs.MODEL]
    )
