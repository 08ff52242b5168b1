"""The variable-rate gained mean-scale hyperprior: shapes, per-sample levels, rate ordering, training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnkit.codec import gained


@pytest.fixture(scope="module")
def model():
    tf.random.set_seed(0)
    return gained.build(filters=8, latent=12, lmbdas=(0.002, 0.02, 0.2))


def _image(seed=0, size=64):
    rng = np.random.default_rng(seed)
    smooth = tf.image.resize(rng.random((1, 8, 8, 3)).astype(np.float32), (size, size))
    return tf.clip_by_value(smooth + 0.05 * rng.standard_normal((1, size, size, 3)).astype(np.float32), 0.0, 1.0)


def test_shapes_and_likelihoods_in_range(model):
    x = tf.concat([_image(0), _image(1)], axis=0)
    out = model(x, level=tf.constant([0, 2]), training=True)
    assert out["x_hat"].shape == x.shape
    assert out["likelihoods"]["y"].shape == (2, 4, 4, 12)
    assert out["likelihoods"]["z"].shape == (2, 1, 1, 8)
    for p in out["likelihoods"].values():
        assert np.all(p.numpy() > 0) and np.all(p.numpy() <= 1)


def test_each_sample_is_coded_at_its_own_level(model):
    """A batch of mixed levels gives each sample what it gets alone at its level (rounded path)."""
    x = tf.concat([_image(0), _image(1)], axis=0)
    together = model.rate_distortion(x, tf.constant([0, 2]), training=False)
    for i, level in enumerate((0, 2)):
        alone = model.rate_distortion(x[i : i + 1], tf.constant([level]), training=False)
        np.testing.assert_allclose(together["bpp"][i], alone["bpp"][0], rtol=1e-4)
        np.testing.assert_allclose(together["mse"][i], alone["mse"][0], rtol=1e-4)


def test_gains_start_at_the_high_rate_quantiser_step(model):
    """g_q starts at sqrt(lambda_q / geometric mean of the extreme lambdas), its inverse at the reciprocal."""
    gains = model.gains(tf.constant([0, 1, 2]))
    expected = np.sqrt(np.array([0.002, 0.02, 0.2]) / np.sqrt(0.002 * 0.2))
    np.testing.assert_allclose(gains["y"].numpy()[:, 0, 0, 0], expected, rtol=1e-5)
    np.testing.assert_allclose((gains["y"] * gains["y_inverse"]).numpy(), 1.0, rtol=1e-5)


def test_higher_level_spends_more_bits(model):
    x = _image(2)
    bpp = [float(model.rate_distortion(x, tf.constant([q]), training=False)["bpp"][0]) for q in range(3)]
    assert bpp[0] < bpp[1] < bpp[2]


def test_training_steps_lower_the_loss():
    tf.random.set_seed(1)
    model = gained.build(filters=8, latent=12, lmbdas=(0.01, 0.1))
    optimizer = keras.optimizers.Adam(1e-2)
    x = tf.concat([_image(3), _image(4)], axis=0)
    level = tf.constant([0, 1])

    def loss():
        return float(model.rate_distortion(x, level, training=False)["loss"])

    before = loss()
    for _ in range(30):
        with tf.GradientTape() as tape:
            value = model.rate_distortion(x, level, training=True)["loss"]
        grads = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    assert loss() < 0.8 * before
