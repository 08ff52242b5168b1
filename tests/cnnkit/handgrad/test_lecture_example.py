"""examples/lecture_by_hand.py: the loss falls every iteration and the bias update is b - 0.5 * sum(dL/dA)."""

import importlib.util

import numpy as np
import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def lecture():
    spec = importlib.util.spec_from_file_location("lecture_by_hand", REPO_ROOT / "examples" / "lecture_by_hand.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numpy_step(params, image):
    """The lecture's forward and backward pass written out in NumPy, loop by loop."""
    k, b = params["kernel"][:, :, 0, 0], params["conv_bias"][0]
    padded = np.pad(image, 1)
    a = np.array([[np.sum(padded[i : i + 3, j : j + 3] * k) + b for j in range(4)] for i in range(4)])
    z = np.maximum(a, 0)
    pooled = z.reshape(2, 2, 2, 2).max(axis=(1, 3))
    logits = pooled.reshape(4) @ params["fc_weights"] + params["fc_bias"]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return p, a, z, pooled


def test_first_iteration_matches_numpy_by_hand(lecture):
    params = lecture.initial_parameters()
    p, a, z, pooled = _numpy_step(params, lecture.IMAGE)
    result = lecture.step(params)
    np.testing.assert_allclose(result["prediction"], p, rtol=1e-12)
    assert result["loss"] == pytest.approx(-np.log(p[lecture.TARGET]), rel=1e-12)
    # Backward by hand: softmax + cross-entropy, FC, max-pool routing, ReLU.
    d_logits = p - np.eye(4)[lecture.TARGET]
    d_pooled = (params["fc_weights"] @ d_logits).reshape(2, 2)
    d_z = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            window = z[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            r, c = np.unravel_index(np.argmax(window), (2, 2))
            d_z[2 * i + r, 2 * j + c] = d_pooled[i, j]
    d_a = d_z * (a > 0)
    np.testing.assert_allclose(result["dL/dA"], d_a, atol=1e-12)
    np.testing.assert_allclose(result["grads"]["fc_weights"], np.outer(pooled.reshape(4), d_logits), atol=1e-12)
    # dL/dk[p, q] = sum_ij x_pad[i + p, j + q] dL/dA[i, j]
    padded = np.pad(lecture.IMAGE, 1)
    d_k = np.array([[np.sum(padded[p : p + 4, q : q + 4] * d_a) for q in range(3)] for p in range(3)])
    np.testing.assert_allclose(result["grads"]["kernel"][:, :, 0, 0], d_k, atol=1e-12)


def test_loss_falls_every_iteration_and_bias_follows_the_lecture(lecture):
    history = lecture.train()
    assert len(history) == 7
    losses = [record["loss"] for record in history]
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])), losses
    for record in history:
        assert record["bias_after"] == pytest.approx(record["bias_before"] - 0.5 * record["sum_dL_dA"], abs=1e-12)
        assert record["prediction"].sum() == pytest.approx(1.0)
    assert np.argmax(history[-1]["prediction"]) == lecture.TARGET
