"""conv2d: forward equals tf.nn.conv2d, gradients equal autodiff and finite differences, no built-in gradient ops."""

import numpy as np
import pytest
import tensorflow as tf

from cnnkit.handgrad import conv2d
from cnnkit.handgrad.check import relative_error

# (height, width, in, out, kernel, strides, padding, dilation, batch): strides 1/2/3,
# same/valid, odd and even kernels, dilation, non-square inputs, kernels and strides;
# the last three have few input channels, which takes the im2col path for dL/dw.
CASES = [
    (7, 6, 3, 4, (3, 3), 1, "same", 1, 2),
    (7, 6, 3, 4, (3, 3), 1, "valid", 1, 2),
    (8, 9, 2, 5, (2, 2), 2, "same", 1, 3),
    (8, 8, 2, 3, (4, 4), 2, "same", 1, 2),
    (10, 8, 2, 3, (3, 3), 2, "valid", 1, 2),
    (9, 7, 3, 2, (4, 4), 3, "valid", 1, 2),
    (11, 10, 3, 3, (3, 3), 3, "same", 1, 2),
    (9, 8, 2, 3, (3, 3), 1, "same", 2, 2),
    (10, 7, 2, 2, (2, 3), 1, "valid", (3, 2), 2),
    (9, 11, 3, 2, (2, 4), (3, 2), "valid", 1, 2),
    (5, 13, 4, 3, (5, 5), (1, 2), "same", 1, 2),
    (6, 6, 1, 1, (1, 1), 2, "same", 1, 1),
    (9, 8, 1, 16, (3, 3), 2, "same", 1, 2),
    (9, 9, 1, 12, (2, 2), 1, "same", 2, 2),
]


def _inputs(case, dtype=tf.float32, seed=0):
    h, w, cin, cout, kernel, *_, batch = case
    rng = np.random.default_rng(seed)
    return (
        tf.constant(rng.standard_normal((batch, h, w, cin)), dtype),
        tf.constant(rng.standard_normal((*kernel, cin, cout)), dtype),
        tf.constant(rng.standard_normal(cout), dtype),
    )


def _reference(x, w, b, strides, padding, dilation):
    # tf.nn.convolution, unlike conv2d's gradient kernels on CPU, differentiates dilated convolutions.
    return tf.nn.convolution(x, w, strides, padding.upper(), dilations=dilation) + b


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}x{c[1]}k{c[4]}s{c[5]}{c[6]}d{c[7]}")
def test_forward_and_gradients_match_autodiff(case):
    *_, strides, padding, dilation, _ = case
    x, w, b = _inputs(case)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, w, b])
        ours = conv2d(x, w, b, strides, padding, dilation)
        reference = _reference(x, w, b, strides, padding, dilation)
        upstream = tf.random.stateless_normal(reference.shape, seed=[1, 2])
        ours_loss, reference_loss = tf.reduce_sum(ours * upstream), tf.reduce_sum(reference * upstream)
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) <= 1e-5
    for name, got, want in zip("xwb", tape.gradient(ours_loss, [x, w, b]), tape.gradient(reference_loss, [x, w, b])):
        assert relative_error(got, want) <= 1e-4, name


# Small enough for a full Jacobian: one column per input element.
FINITE_DIFFERENCE_CASES = [
    (5, 6, 2, 2, (2, 2), 2, "same", 1, 1),
    (7, 5, 1, 2, (3, 3), 3, "same", 1, 1),
    (6, 5, 1, 2, (2, 3), 1, "valid", (2, 1), 1),
]


@pytest.mark.parametrize("case", FINITE_DIFFERENCE_CASES, ids=["even-stride2-same", "stride3-same", "dilated"])
def test_jacobians_match_finite_differences_in_float64(case):
    *_, strides, padding, dilation, _ = case
    inputs = _inputs(case, tf.float64)

    theoretical, numerical = tf.test.compute_gradient(lambda x, w, b: conv2d(x, w, b, strides, padding, dilation), inputs)
    for got, want in zip(theoretical, numerical):
        assert relative_error(got, want) <= 1e-7


def test_bias_is_optional():
    x, w, _ = _inputs(CASES[0])
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        loss = tf.reduce_sum(conv2d(x, w) ** 2)
    dx, dw = tape.gradient(loss, [x, w])
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        loss = tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME") ** 2)
    assert relative_error(dx, tape.gradient(loss, x)) <= 1e-4
    assert dw.shape == w.shape


def test_backward_graph_uses_no_builtin_convolution_gradient():
    x, w, b = _inputs(CASES[3])

    @tf.function
    def grads(x, w, b):
        with tf.GradientTape() as tape:
            tape.watch([x, w, b])
            loss = tf.reduce_sum(conv2d(x, w, b, 2, "same") ** 2)
        return tape.gradient(loss, [x, w, b])

    op_types = {op.type for op in grads.get_concrete_function(x, w, b).graph.get_operations()}
    assert not op_types & {"Conv2DBackpropInput", "Conv2DBackpropFilter", "Conv2DBackpropInputV2", "Conv2DBackpropFilterV2"}
    assert "Conv2D" in op_types


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"padding": "full"}, "Expected padding 'same' or 'valid'. Received: padding='full'"),
        ({"strides": 0}, "strides"),
        ({"strides": 2, "dilation_rate": 2}, "Expected strides 1 when dilation_rate > 1"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    x, w, _ = _inputs(CASES[0])
    with pytest.raises(ValueError, match=message):
        conv2d(x, w, **kwargs)
