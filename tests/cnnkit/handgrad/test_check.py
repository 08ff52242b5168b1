"""check_gradients and `cli.py check-grad`: every op passes, and a wrong gradient is caught."""

import json

import numpy as np
from click.testing import CliRunner

import cli
from cnnkit.handgrad import check, conv


def test_every_op_passes_on_random_settings():
    rows = check.check_gradients(seed=1, trials=1)
    assert {row["op"] for row in rows} == {"conv2d", "max_pool2d", "avg_pool2d", "dense"}
    assert all(row["ok"] for row in rows), rows


def test_a_wrong_kernel_gradient_is_caught(monkeypatch):
    right = conv._kernel_grad
    monkeypatch.setattr(conv, "_kernel_grad", lambda *args: 1.01 * right(*args))
    row = check.measure(check.random_cases(np.random.default_rng(0), 1)[0])
    assert row["op"] == "conv2d" and row["forward"] <= check.TOLERANCES["forward"]
    assert row["autodiff"] > 1e-3 and row["finite_difference"] > 1e-3 and not row["ok"]


def test_cli_prints_json_and_fails_on_a_wrong_gradient(monkeypatch):
    result = CliRunner().invoke(cli.main, ["check-grad", "--trials", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert len(report["rows"]) == 4 and report["tolerances"] == check.TOLERANCES

    right, cases = conv._input_grad, check.random_cases
    monkeypatch.setattr(conv, "_input_grad", lambda *args: 2 * right(*args))
    monkeypatch.setattr(check, "random_cases", lambda rng, trials: [c for c in cases(rng, trials) if c.op == "conv2d"])
    result = CliRunner().invoke(cli.main, ["check-grad", "--trials", "1"])
    assert result.exit_code == 1
    assert [line.split()[0] for line in result.output.splitlines() if line.endswith(" NO")] == ["conv2d"]
