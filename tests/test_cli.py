"""The click front: help, version, and the one-line error contract."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

import cli
from tests.conftest import REPO_ROOT


def test_help_lists_every_command():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0
    for command in ["train-image", "train-speech", "compress", "evaluate", "predict", "export", "check-grad"]:
        assert command in result.output


def test_version():
    result = CliRunner().invoke(cli.main, ["--version"])
    assert result.exit_code == 0
    assert "0.1.0" in result.output


def test_help_does_not_import_tensorflow():
    # A fresh interpreter: --help must not pull TensorFlow in (it costs seconds).
    code = "import sys, runpy; sys.argv=['cli.py','--help']\ntry:\n runpy.run_path('cli.py', run_name='__main__')\nexcept SystemExit: pass\nprint('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


@pytest.mark.parametrize(("command", "pipeline"), [("train-image", "image_classification"), ("train-speech", "speech_recognition")])
def test_help_states_the_epochs_auto_rule_the_pipeline_uses(command, pipeline):
    import importlib

    budget = importlib.import_module(f"pipelines.{pipeline}").EPOCH_BUDGET
    result = CliRunner().invoke(cli.main, [command, "--help"])
    assert result.exit_code == 0
    assert budget.describe().removeprefix("auto: ") in " ".join(result.output.split())


def test_epochs_must_be_auto_or_a_number():
    result = CliRunner().invoke(cli.main, ["train-image", "--epochs", "many"])
    assert result.exit_code == 2 and "'many': expected 'auto' or an integer >= 1" in result.output
