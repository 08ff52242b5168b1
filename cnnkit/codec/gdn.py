"""Generalized divisive normalization (GDN) and its inverse (IGDN).

Ballé, Laparra & Simoncelli, "Density modeling of images using a generalized
normalization transformation", ICLR 2016, eq. (6) with the simplification of
"End-to-end optimized image compression", ICLR 2017, sec. 2:

    GDN:   z_i = x_i / sqrt(beta_i + sum_j gamma_ij * x_j^2)
    IGDN:  x_i = z_i * sqrt(beta_i + sum_j gamma_ij * z_j^2)

beta and gamma must stay positive (beta > 0 keeps the division finite, gamma >= 0
keeps the transform invertible). Following the authors' implementation they
are stored reparameterised as ``p`` with ``value = lower_bound(p, sqrt(min +
pedestal))^2 - pedestal``: the square makes gradients vanish smoothly near
zero instead of at a hard clip, and ``lower_bound`` (below) still lets the
optimiser push a parameter that sits on its bound back up.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

__all__ = ["GDN", "lower_bound"]


@tf.custom_gradient
def _lower_bound(x, bound):
    """max(x, bound) whose gradient also flows where it would move x up into the allowed range."""

    def grad(upstream):
        # A plain max() has zero gradient below the bound, so a parameter stuck
        # there could never come back; pass the gradient when descent raises x.
        pass_through = tf.logical_or(x >= bound, upstream < 0)
        return tf.where(pass_through, upstream, tf.zeros_like(upstream)), None

    return tf.maximum(x, bound), grad


def lower_bound(x: tf.Tensor, bound: float) -> tf.Tensor:
    """Elementwise ``max(x, bound)`` with the pass-through gradient of Ballé et al.

    Args:
        x: any float tensor.
        bound: scalar lower bound.

    Returns:
        Tensor shaped like ``x``.
    """
    # identity(): a variable read, so the custom gradient sees a tensor, not the variable.
    x = tf.identity(x)
    return _lower_bound(x, tf.constant(bound, dtype=x.dtype))


@keras.saving.register_keras_serializable(package="cnnkit.codec")
class GDN(keras.layers.Layer):
    """GDN (or IGDN with ``inverse=True``) over the channel axis of NHWC tensors.

    Args:
        inverse: compute IGDN (multiply by the norm) instead of GDN (divide).
        beta_min: lower bound of beta, keeps the norm away from zero.
        gamma_init: initial value of the diagonal of gamma (off-diagonals start at 0).
        reparam_offset: the pedestal of the reparameterisation is ``reparam_offset**2``.

    Input and output shape: ``(batch, height, width, channels)``.
    """

    def __init__(
        self,
        inverse: bool = False,
        beta_min: float = 1e-6,
        gamma_init: float = 0.1,
        reparam_offset: float = 2.0**-18,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.inverse = inverse
        self.beta_min = beta_min
        self.gamma_init = gamma_init
        self.reparam_offset = reparam_offset
        self._pedestal = reparam_offset**2

    def build(self, input_shape):
        channels = int(input_shape[-1])
        pedestal = self._pedestal
        self.beta = self.add_weight(
            name="beta",
            shape=(channels,),
            initializer=keras.initializers.Constant((1.0 + pedestal) ** 0.5),
        )
        gamma0 = self.gamma_init * np.eye(channels) + pedestal
        self.gamma = self.add_weight(
            name="gamma",
            shape=(channels, channels),
            initializer=keras.initializers.Constant(np.sqrt(gamma0)),
        )

    def _positive(self, p: tf.Tensor, minimum: float) -> tf.Tensor:
        bound = (minimum + self._pedestal) ** 0.5
        return tf.square(lower_bound(p, bound)) - self._pedestal

    def call(self, x):
        beta = self._positive(self.beta, self.beta_min)
        gamma = self._positive(self.gamma, 0.0)
        # sum_j gamma_ij x_j^2 is a 1x1 convolution of x^2 with the (in, out) kernel gamma^T.
        kernel = tf.transpose(gamma)[tf.newaxis, tf.newaxis]
        norm = tf.nn.conv2d(tf.square(x), kernel, strides=1, padding="VALID")
        norm = tf.sqrt(tf.nn.bias_add(norm, beta))
        return x * norm if self.inverse else x / norm

    def get_config(self):
        return {
            **super().get_config(),
            "inverse": self.inverse,
            "beta_min": self.beta_min,
            "gamma_init": self.gamma_init,
            "reparam_offset": self.reparam_offset,
        }
