"""2-D max and average pooling whose backward pass is written by hand.

Forward (NHWC, window ``(kh, kw)``, stride ``s``, TensorFlow's padding):

    max:      A[n, i, j, c] = max_{p, q} x_pad[n, i*s + p, j*s + q, c]     (padding never wins)
    average:  A[n, i, j, c] = (1 / count[i, j]) sum_{p, q} x_pad[n, i*s + p, j*s + q, c]

where ``count[i, j]`` is the number of REAL (unpadded) inputs in the window, as
TensorFlow and Keras divide by it for SAME padding.

Backward, given ``G = dL/dA``: each window hands its gradient back to the inputs it read
(Goodfellow, Bengio & Courville, *Deep Learning*, sec. 9.3; CS231n notes on pooling):

    max:      dL/dx_pad[n, i*s + p, j*s + q, c] += G[n, i, j, c]  for ONE (p, q), the window's
              maximum (the first in row-major order on ties, so the gradient is not duplicated)
    average:  dL/dx_pad[n, i*s + p, j*s + q, c] += G[n, i, j, c] / count[i, j]  for every (p, q)

Overlapping windows (stride < window) add their contributions.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from cnnkit.handgrad._geometry import output_size, pair, padding_mode, same_padding, static_spatial


def max_pool2d(x, pool_size=2, strides=None, padding="valid") -> tf.Tensor:
    """Max pooling with a hand-written gradient.

    Args:
        x: ``(batch, height, width, channels)``.
        pool_size: int or ``(kh, kw)``.
        strides: int or ``(sh, sw)``; ``None`` means ``pool_size`` (as in Keras).
        padding: ``"same"`` or ``"valid"``.

    Returns:
        ``(batch, out_height, out_width, channels)``.
    """
    window, strides, padding = _arguments(pool_size, strides, padding)
    return _pool_op("max", window, strides, padding)(tf.convert_to_tensor(x))


def avg_pool2d(x, pool_size=2, strides=None, padding="valid") -> tf.Tensor:
    """Average pooling with a hand-written gradient; arguments as :func:`max_pool2d`."""
    window, strides, padding = _arguments(pool_size, strides, padding)
    return _pool_op("average", window, strides, padding)(tf.convert_to_tensor(x))


def _arguments(pool_size, strides, padding):
    window = pair(pool_size, "pool_size")
    return window, window if strides is None else pair(strides, "strides"), padding_mode(padding)


def _pool_op(mode, window, strides, padding):
    """The custom-gradient op for one mode and static geometry."""

    @tf.custom_gradient
    def op(x):
        if mode == "max":
            a = tf.nn.max_pool2d(x, window, strides, padding)
        else:
            a = tf.nn.avg_pool2d(x, window, strides, padding)

        def grad(g):
            return _backward(mode, window, strides, padding)(x, a, g)

        return a, grad

    return op


@functools.lru_cache(maxsize=None)
def _backward(mode, window, strides, padding):
    """``dL/dx`` from ``(x, A, G)`` for one mode and geometry, compiled with XLA.

    The backward is a dozen cheap element-wise, slice and pad ops per window tap;
    run one by one they cost about 7x TensorFlow's fused MaxPoolGrad, while XLA
    fuses them into a few loops (about 1.5x). Cached so that every call with the
    same geometry reuses one compiled function.
    """

    @tf.function(jit_compile=True, autograph=False)
    def backward(x, a, g):
        geo = _WindowGeometry(x, window, strides, padding)
        if mode == "max":
            taps = _max_routes(x, a, g, geo)
        else:
            share = g / tf.constant(geo.count(), g.dtype)
            taps = {tap: share for tap in geo.taps()}
        return geo.scatter(taps)

    return backward


def _max_routes(x, a, g, geo):
    """``{(p, q): G masked to the windows whose winner is tap (p, q)}``.

    The winner of a window is the first tap, in row-major order, that equals the
    window's maximum ``A``; ``taken`` keeps a later tie from winning too. Padding
    is ``-inf``, so it never equals a real maximum.
    """
    x_pad = geo.pad(x, -np.inf)
    taken = tf.zeros_like(a, dtype=tf.bool)
    routes = {}
    for tap in geo.taps():
        wins = tf.logical_and(tf.equal(geo.read(x_pad, tap), a), tf.logical_not(taken))
        taken = tf.logical_or(taken, wins)
        routes[tap] = tf.where(wins, g, tf.zeros_like(g))
    return routes


class _WindowGeometry:
    """Where each window tap of a pooling op reads, and the adjoint that writes gradients back.

    The padded input is covered by a grid of ``rows x cols`` stride cells; tap
    ``(p, q)`` of output ``(i, j)`` sits in cell ``(i + p // sh, j + q // sw)`` at
    phase ``(p % sh, q % sw)`` inside the cell.
    """

    def __init__(self, x, window, strides, padding):
        self.window, self.strides, self.padding = window, strides, padding
        self.in_size = static_spatial(x, "input")
        self.out_size = tuple(output_size(n, k, s, padding) for n, k, s in zip(self.in_size, window, strides))
        self.pads = tuple(same_padding(n, k, s, padding) for n, k, s in zip(self.in_size, window, strides))
        # Enough cells for every tap and for the whole (padded-before) input.
        self.cells = tuple(
            max(o + (k - 1) // s, -(-(before + n) // s))
            for o, k, s, (before, _), n in zip(self.out_size, window, strides, self.pads, self.in_size)
        )

    def taps(self):
        """Window taps ``(p, q)`` in row-major order."""
        return [(p, q) for p in range(self.window[0]) for q in range(self.window[1])]

    def count(self) -> np.ndarray:
        """Real (unpadded) inputs per window, ``(1, out_height, out_width, 1)``, for the average's divisor."""
        per_axis = []
        for o, k, s, (before, _), n in zip(self.out_size, self.window, self.strides, self.pads, self.in_size):
            start = np.arange(o) * s - before
            per_axis.append(np.minimum(start + k, n) - np.maximum(start, 0))
        return np.outer(*per_axis)[None, :, :, None]

    def pad(self, x, value):
        """``x`` padded as the forward pass pads it, and out to whole stride cells, with ``value``."""
        paddings = [[0, 0]]
        for (before, _), n, cells, s in zip(self.pads, self.in_size, self.cells, self.strides):
            paddings.append([before, cells * s - before - n])
        return tf.pad(x, paddings + [[0, 0]], constant_values=value)

    def read(self, x_pad, tap):
        """The input under tap ``(p, q)`` of every window, ``(batch, out_height, out_width, channels)``."""
        (p, q), (sh, sw), (oh, ow) = tap, self.strides, self.out_size
        return x_pad[:, p : p + (oh - 1) * sh + 1 : sh, q : q + (ow - 1) * sw + 1 : sw, :]

    def scatter(self, taps):
        """Adjoint of :meth:`read` summed over taps, cropped to the real input: ``dL/dx``.

        Taps of one phase land in the same cell position, so each phase is a sum of
        shifted (zero-padded) tap gradients; the phases are then interleaved into
        cells by one reshape (the inverse of space-to-depth), with no scatter op.
        """
        (sh, sw), (rows, cols), (oh, ow) = self.strides, self.cells, self.out_size
        placed = {}
        for (p, q), grad in taps.items():
            (r, a), (c, b) = divmod(p, sh), divmod(q, sw)
            shifted = tf.pad(grad, [[0, 0], [r, rows - oh - r], [c, cols - ow - c], [0, 0]])
            placed[a, b] = placed[a, b] + shifted if (a, b) in placed else shifted
        # A stride larger than the window leaves some phases unread: their gradient is zero.
        zeros = tf.zeros_like(shifted)
        cells = tf.stack([tf.stack([placed.get((a, b), zeros) for b in range(sw)], axis=3) for a in range(sh)], axis=2)
        dx_pad = tf.reshape(cells, [-1, rows * sh, cols * sw, shifted.shape[-1]])  # (batch, rows, sh, cols, sw, ch) -> cells
        (top, _), (left, _) = self.pads
        h, w = self.in_size
        return dx_pad[:, top : top + h, left : left + w, :]
