"""GDN/IGDN against the formula of Ballé et al. 2016, and the pass-through gradient of lower_bound."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cnnkit.codec.gdn import GDN, lower_bound


def _reference(x, beta, gamma, inverse):
    # z_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2), written out with explicit indices.
    norm = np.sqrt(beta + np.einsum("ij,...j->...i", gamma, x**2))
    return x * norm if inverse else x / norm


def test_gdn_and_igdn_match_the_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    beta = rng.uniform(0.5, 2.0, 4)
    gamma = rng.uniform(0.0, 0.3, (4, 4))
    for inverse in (False, True):
        layer = GDN(inverse=inverse)
        layer.build(x.shape)
        # Set the reparameterised variables so that the effective beta/gamma are the ones above.
        pedestal = layer.reparam_offset**2
        layer.beta.assign(np.sqrt(beta + pedestal))
        layer.gamma.assign(np.sqrt(gamma + pedestal))
        np.testing.assert_allclose(layer(x).numpy(), _reference(x, beta, gamma, inverse), rtol=1e-5, atol=1e-6)


def test_gdn_starts_as_a_near_identity_scaled_by_the_initial_beta():
    x = np.full((1, 1, 1, 3), 0.5, np.float32)
    out = GDN()(x).numpy()
    np.testing.assert_allclose(out, 0.5 / np.sqrt(1.0 + 0.1 * 0.25), rtol=1e-5)


def test_lower_bound_passes_gradients_that_raise_the_value():
    x = tf.Variable([0.0, 2.0, 0.0])
    with tf.GradientTape() as tape:
        # Loss slopes: -1 (descent raises x[0], which is below the bound), +1, +1 (descent lowers x[2]).
        y = lower_bound(x, 1.0)
        loss = tf.reduce_sum(y * tf.constant([-1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(y.numpy(), [1.0, 2.0, 1.0])
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), [-1.0, 1.0, 0.0])


def test_gdn_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(1, 2, 2, 3)), tf.float64)
    layer = GDN(dtype="float64")
    layer.build(x.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) ** 2)
    grad = tape.gradient(loss, x).numpy().ravel()
    eps = 1e-6
    flat = x.numpy().ravel()
    for i in range(flat.size):
        up, down = flat.copy(), flat.copy()
        up[i] += eps
        down[i] -= eps
        numeric = (
            tf.reduce_sum(layer(up.reshape(x.shape)) ** 2) - tf.reduce_sum(layer(down.reshape(x.shape)) ** 2)
        ).numpy() / (2 * eps)
        np.testing.assert_allclose(grad[i], numeric, rtol=1e-5, atol=1e-8)
