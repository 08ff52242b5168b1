"""max_pool2d and avg_pool2d: forward equals tf.nn, gradients equal autodiff and finite differences, one winner on ties."""

import numpy as np
import pytest
import tensorflow as tf

from cnnkit.handgrad import avg_pool2d, max_pool2d
from cnnkit.handgrad.check import relative_error

OPS = {"max": (max_pool2d, tf.nn.max_pool2d), "avg": (avg_pool2d, tf.nn.avg_pool2d)}
# (height, width, window, strides, padding): overlapping windows, SAME with uneven
# padding (the average divides by the real inputs only), a stride larger than the window.
CASES = [
    (8, 8, 2, None, "valid"),
    (7, 9, 2, 2, "same"),
    (9, 8, 3, 2, "same"),
    (9, 8, 3, 2, "valid"),
    (10, 7, (2, 3), (1, 2), "same"),
    (7, 7, 3, 1, "same"),
    (8, 8, 2, 3, "same"),
]


def _distinct_input(height, width, seed=0):
    # Distinct values 0.01 apart: no ties, and a finite-difference step never changes a maximum.
    rng = np.random.default_rng(seed)
    return tf.constant((rng.permutation(2 * height * width * 3) * 0.01).reshape(2, height, width, 3), tf.float64)


@pytest.mark.parametrize("mode", OPS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}w{c[2]}s{c[3]}{c[4]}")
def test_forward_and_gradient_match_autodiff(mode, case):
    height, width, window, strides, padding = case
    ours_op, builtin_op = OPS[mode]
    x = tf.cast(_distinct_input(height, width), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = ours_op(x, window, strides, padding)
        reference = builtin_op(x, window, window if strides is None else strides, padding.upper())
        upstream = tf.random.stateless_normal(reference.shape, seed=[3, 4])
        ours_loss, reference_loss = tf.reduce_sum(ours * upstream), tf.reduce_sum(reference * upstream)
    assert relative_error(ours, reference) <= 1e-5
    assert relative_error(tape.gradient(ours_loss, x), tape.gradient(reference_loss, x)) <= 1e-4


@pytest.mark.parametrize("mode", OPS)
def test_jacobian_matches_finite_differences_in_float64(mode):
    x = _distinct_input(5, 6)[:1]
    theoretical, numerical = tf.test.compute_gradient(lambda x: OPS[mode][0](x, 3, 2, "same"), [x])
    assert relative_error(theoretical[0], numerical[0]) <= 1e-7


def _max_pool_input_grad(x, window, strides, padding="valid"):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = max_pool2d(x, window, strides, padding)
    return tape.gradient(y, x)[0, :, :, 0].numpy()


def test_max_pool_tie_routes_to_one_winner():
    # Every window is a tie: each sends its whole gradient (1) to ONE input, its first (top-left).
    dx = _max_pool_input_grad(tf.zeros([1, 4, 4, 1]), 2, 2)
    np.testing.assert_array_equal(dx, [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


def test_max_pool_overlapping_windows_accumulate():
    # 2x2 windows at stride 1 on a 3x3 tie: four windows, four different first taps.
    dx = _max_pool_input_grad(tf.ones([1, 3, 3, 1]), 2, 1)
    np.testing.assert_array_equal(dx, [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    # A single maximum shared by all four windows collects all four gradients.
    x = tf.constant([[0.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 0.0]])[None, :, :, None]
    np.testing.assert_array_equal(_max_pool_input_grad(x, 2, 1), [[0, 0, 0], [0, 4, 0], [0, 0, 0]])


def test_average_pool_same_divides_by_real_inputs():
    # 3x3 input, 2x2 windows, stride 2, SAME: windows hold 4, 2, 2 and 1 real inputs.
    x = tf.ones([1, 3, 3, 1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = avg_pool2d(x, 2, 2, "same")
    np.testing.assert_allclose(y[0, :, :, 0], np.ones((2, 2)))
    np.testing.assert_allclose(tape.gradient(y, x)[0, :, :, 0], [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1.0]])
