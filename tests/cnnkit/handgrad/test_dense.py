"""dense: forward equals x @ w + b, gradients equal autodiff and finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from cnnkit.handgrad import dense
from cnnkit.handgrad.check import relative_error


@pytest.mark.parametrize("leading", [(5,), (2, 3)], ids=["matrix", "sequence"])
def test_forward_and_gradients_match_autodiff(leading):
    rng = np.random.default_rng(0)
    x, w, b = (tf.constant(rng.standard_normal(shape), tf.float32) for shape in [(*leading, 4), (4, 3), (3,)])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, w, b])
        ours, reference = dense(x, w, b), tf.tensordot(x, w, axes=1) + b
        upstream = tf.random.stateless_normal(reference.shape, seed=[5, 6])
        ours_loss, reference_loss = tf.reduce_sum(ours * upstream), tf.reduce_sum(reference * upstream)
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) <= 1e-5
    for got, want in zip(tape.gradient(ours_loss, [x, w, b]), tape.gradient(reference_loss, [x, w, b])):
        assert relative_error(got, want) <= 1e-4


def test_textbook_formulas_and_finite_differences():
    rng = np.random.default_rng(1)
    x, w, b, g = (rng.standard_normal(shape) for shape in [(3, 4), (4, 2), (2,), (3, 2)])
    x64, w64, b64 = (tf.constant(v) for v in (x, w, b))
    with tf.GradientTape() as tape:
        tape.watch([x64, w64, b64])
        loss = tf.reduce_sum(dense(x64, w64, b64) * g)
    dx, dw, db = tape.gradient(loss, [x64, w64, b64])
    np.testing.assert_allclose(dx, g @ w.T)  # dL/dx = g W^T
    np.testing.assert_allclose(dw, x.T @ g)  # dL/dW = x^T g
    np.testing.assert_allclose(db, g.sum(axis=0))
    theoretical, numerical = tf.test.compute_gradient(dense, [x64, w64, b64])
    for got, want in zip(theoretical, numerical):
        assert relative_error(got, want) <= 1e-7
