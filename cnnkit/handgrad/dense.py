"""Fully connected layer op whose backward pass is written by hand.

Forward, for ``x`` of shape ``(..., in)`` flattened to ``X`` of shape ``(m, in)``:

    A = X W + b

Backward, given ``G = dL/dA`` of shape ``(m, out)`` (the matrix-calculus rules of any
textbook, e.g. Goodfellow, Bengio & Courville, *Deep Learning*, sec. 6.5):

    dL/dX = G W^T        dL/dW = X^T G        dL/db = sum over rows of G
"""

from __future__ import annotations

import tensorflow as tf


def dense(x, w, b=None) -> tf.Tensor:
    """``x @ w + b`` over the last axis of ``x``, with a hand-written gradient.

    Args:
        x: ``(..., in_features)``.
        w: ``(in_features, out_features)``.
        b: optional ``(out_features,)``.

    Returns:
        ``(..., out_features)`` in the dtype of ``x``.
    """
    x = tf.convert_to_tensor(x)
    inputs = [x, tf.convert_to_tensor(w, dtype=x.dtype)]
    if b is not None:
        inputs.append(tf.convert_to_tensor(b, dtype=x.dtype))
    return _dense(*inputs)


@tf.custom_gradient
def _dense(x, w, *b):
    # Leading axes (batch, time, ...) are rows of one matrix product.
    rows = tf.reshape(x, [-1, w.shape[0]])
    a = tf.matmul(rows, w)
    if b:
        a = tf.nn.bias_add(a, b[0])
    a = tf.reshape(a, tf.concat([tf.shape(x)[:-1], [w.shape[1]]], axis=0))
    a.set_shape(x.shape[:-1].concatenate([w.shape[1]]))

    def grad(g):
        g = tf.reshape(g, [-1, w.shape[1]])
        dx = tf.reshape(tf.matmul(g, w, transpose_b=True), tf.shape(x))  # G W^T
        dw = tf.matmul(rows, g, transpose_a=True)  # X^T G
        return (dx, dw) + ((tf.reduce_sum(g, axis=0),) if b else ())

    return a, grad
