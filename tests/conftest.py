"""Shared test fixtures: quiet TensorFlow, seeded randomness, and the real datasets beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def shared_dataset(name: str) -> Path:
    """Path to ``../shared/datasets/<name>``; skips the test with the reason when it is absent."""
    path = SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(f"real dataset {path} is absent (it sits beside the repo in CI, not on a user's machine)")
    return path


@pytest.fixture
def fsdd_dir() -> Path:
    """The Free Spoken Digit Dataset recordings folder."""
    return shared_dataset("fsdd") / "recordings"


@pytest.fixture
def mnist10k_dir() -> Path:
    """The MNIST test set as IDX files (t10k-images/labels, gzip)."""
    return shared_dataset("mnist-10k")


@pytest.fixture
def photos_dir() -> Path:
    """49 natural photographs (PNG) for compression."""
    return shared_dataset("photos")


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    """A finished 1-epoch train-image run on digits, with label smoothing (evaluate, predict and export load its loss).

    Shared by every test that needs a trained image run: training it is the expensive part.
    """
    from click.testing import CliRunner

    import cli

    out = tmp_path_factory.mktemp("cli") / "run"
    args = ["train-image", "--epochs", "1", "--batch-size", "64", "--label-smoothing", "0.1", "--quiet", "--out", str(out)]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and str(out) in result.output
    return out


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same NumPy, Python and Keras seeds."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    yield
