"""Codec architectures: shapes, the paper's tensors, the rate term, and a few training steps that lower the loss."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import scipy.special
import tensorflow as tf

from cnnkit.codec import models
from cnnkit.errors import InputError


@pytest.mark.parametrize("name", ["factorized", "lecture-ae"])
def test_forward_returns_the_paper_tensors_with_their_shapes(name):
    model = models.build(name, filters=4, latent=6, lmbda=0.01)
    x = tf.random.uniform((2, 32, 48, 3), seed=0)
    out = model(x, training=False)
    assert out["y"].shape == (2, 2, 3, 6)
    assert out["x_hat"].shape == x.shape
    np.testing.assert_array_equal(out["y_hat"].numpy(), np.round(out["y"].numpy()))
    assert out["likelihoods"].shape == out["y"].shape
    noisy = model(x, training=True)["y_hat"].numpy() - model(x, training=False)["y"].numpy()
    assert np.abs(noisy).max() <= 0.5 and np.abs(noisy).std() > 0.1


def test_lecture_ae_is_under_complete():
    model = models.build("lecture-ae", filters=8, latent=32, lmbda=0.01)
    assert model.latent_ratio() == pytest.approx(32 / (16 * 16 * 3))
    assert model.latent_ratio() < 1


def test_unknown_model_and_bad_sizes_are_input_errors():
    with pytest.raises(InputError, match="unknown; expected one of: factorized, hyperprior, lecture-ae"):
        models.build("jpeg2000", filters=4, latent=4, lmbda=0.01)
    with pytest.raises(InputError, match="positive"):
        models.build("factorized", filters=0, latent=4, lmbda=0.01)


def _evaluated(name: str, side: int):
    """A tiny fresh ``name`` codec's ``test_step`` logs and forward pass on one random ``side`` x ``side`` image."""
    model = models.build(name, filters=4, latent=4, lmbda=0.01)
    x = tf.random.uniform((1, side, side, 3), seed=1)
    model.compile(optimizer="adam")
    return x, model.test_step(x), model(x, training=False)


def test_rate_term_is_the_information_content_in_bits_per_pixel():
    x, logs, out = _evaluated("factorized", 32)
    bits = -np.log2(out["likelihoods"].numpy()).sum()
    assert float(logs["bpp"]) == pytest.approx(bits / (32 * 32), rel=1e-5)
    mse = np.mean((x.numpy() - np.clip(out["x_hat"].numpy(), 0, 1)) ** 2) * 255**2
    assert float(logs["loss"]) == pytest.approx(bits / 1024 + 0.01 * mse, rel=1e-5)


def test_a_few_training_steps_lower_the_loss():
    keras.utils.set_random_seed(0)
    model = models.build("factorized", filters=4, latent=4, lmbda=0.01)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    y, x = np.mgrid[0:32, 0:32] / 32.0
    batch = tf.constant(np.stack([np.stack([x, y, x * y], -1)] * 2).astype(np.float32))
    before = float(model.evaluate(batch, verbose=0, return_dict=True)["loss"])
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(15), epochs=1, verbose=0, shuffle=False)
    after = float(model.evaluate(batch, verbose=0, return_dict=True)["loss"])
    assert after < 0.8 * before


def test_hyperprior_returns_the_paper_tensors_with_their_shapes():
    model = models.build("hyperprior", filters=4, latent=6, lmbda=0.01)
    x = tf.random.uniform((1, 64, 128, 3), seed=0)
    out = model(x, training=False)
    assert out["y"].shape == out["y_hat"].shape == out["sigma"].shape == (1, 4, 8, 6)
    assert out["z"].shape == out["z_hat"].shape == (1, 1, 2, 4)
    assert out["likelihoods"]["y"].shape == out["y"].shape and out["likelihoods"]["z"].shape == out["z"].shape
    assert out["x_hat"].shape == x.shape
    np.testing.assert_array_equal(out["z_hat"].numpy(), np.round(out["z"].numpy()))
    assert out["sigma"].numpy().min() >= 0.11
    noisy = model(x, training=True)
    for name in ("y", "z"):
        noise = noisy[f"{name}_hat"].numpy() - out[name].numpy()
        assert np.abs(noise).max() <= 0.5 and np.abs(noise).std() > 0.1
    assert models.pad_multiple("hyperprior") == 64 and models.pad_multiple("factorized") == 16


def test_hyperprior_rate_is_the_bits_of_y_given_sigma_plus_the_bits_of_z():
    _, logs, out = _evaluated("hyperprior", 64)
    sigma = out["sigma"].numpy().astype(np.float64)
    y_hat = out["y_hat"].numpy().astype(np.float64)
    # p(y_hat | sigma) = Phi((y_hat + 1/2) / sigma) - Phi((y_hat - 1/2) / sigma), floored like the rate term.
    p_y = np.maximum(scipy.special.ndtr((y_hat + 0.5) / sigma) - scipy.special.ndtr((y_hat - 0.5) / sigma), 1e-9)
    bits = -np.log2(p_y).sum() - np.log2(out["likelihoods"]["z"].numpy()).sum()
    assert float(logs["bpp"]) == pytest.approx(bits / (64 * 64), rel=1e-4)
