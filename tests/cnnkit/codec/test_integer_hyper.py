"""The integer hyper-synthesis: the same convolutions as Keras, close to the float network, exact across BLAS threads."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from threadpoolctl import threadpool_limits

from cnnkit.codec import entropy, gained, integer_hyper


@pytest.fixture(params=["one product", "row blocks"])
def product_bytes(request, monkeypatch):
    """Both the whole-image matrix product and the memory-bounded blocks of rows."""
    if request.param == "row blocks":
        monkeypatch.setattr(integer_hyper, "_PRODUCT_BYTES", 1)


def test_transposed_conv_matches_keras_exactly_on_integers(product_bytes):
    rng = np.random.default_rng(0)
    layer = keras.layers.Conv2DTranspose(5, 5, strides=2, padding="same", use_bias=False, dtype="float64")
    x = rng.integers(-50, 50, (1, 3, 4, 6)).astype(np.float64)
    layer.build(x.shape)
    kernel = rng.integers(-9, 9, layer.kernel.shape).astype(np.float64)
    layer.kernel.assign(kernel)
    np.testing.assert_array_equal(integer_hyper._transposed_conv(x[0], kernel), layer(x).numpy()[0])


def test_same_conv_matches_keras_exactly_on_integers(product_bytes):
    rng = np.random.default_rng(1)
    layer = keras.layers.Conv2D(7, 3, padding="same", use_bias=False, dtype="float64")
    x = rng.integers(-50, 50, (1, 5, 4, 6)).astype(np.float64)
    layer.build(x.shape)
    kernel = rng.integers(-9, 9, layer.kernel.shape).astype(np.float64)
    layer.kernel.assign(kernel)
    np.testing.assert_array_equal(integer_hyper._conv_same(x[0], kernel), layer(x).numpy()[0])


@pytest.fixture(scope="module")
def quantised():
    tf.random.set_seed(0)
    model = gained.build(filters=8, latent=12, lmbdas=(0.002, 0.02, 0.2))
    rng = np.random.default_rng(2)
    calibration = [rng.normal(0, 3, (4, 6, 8)) for _ in range(8)]
    scales = entropy.scale_table()
    return model, integer_hyper.quantise(model, calibration, scales), scales


def test_integer_network_follows_the_float_one(quantised):
    model, integer, scales = quantised
    rng = np.random.default_rng(3)
    for level in range(3):
        z_hat = np.round(rng.normal(0, 3, (2, 3, 8)))
        gains = model.gains(tf.constant([level]))
        mu, sigma = model.mean_scale(tf.constant(z_hat[None], tf.float32) * gains["z_inverse"])
        mu_g = (mu * gains["y"]).numpy()[0]
        sigma_g = (sigma * gains["y"]).numpy()[0]
        indexes, mean = integer.decode_parameters(z_hat, level)
        np.testing.assert_allclose(mean, mu_g, atol=1e-3 * (1 + np.abs(mu_g).max()))
        expected = entropy.scale_indexes(sigma_g, scales)
        # Quantisation may move a scale lying near a table boundary by one table, never further.
        assert np.abs(indexes - expected).max() <= 1
        assert np.mean(indexes == expected) > 0.9


def test_indexes_are_identical_with_one_and_two_blas_threads(quantised):
    _, integer, _ = quantised
    z_hat = np.round(np.random.default_rng(4).normal(0, 5, (4, 5, 8)))
    with threadpool_limits(1):
        one = integer.decode_parameters(z_hat, 2)
    with threadpool_limits(2):
        two = integer.decode_parameters(z_hat, 2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_round_trip_through_its_arrays(quantised):
    _, integer, _ = quantised
    again = integer_hyper.IntegerHyperSynthesis.from_arrays(integer.arrays())
    z_hat = np.round(np.random.default_rng(5).normal(0, 3, (2, 2, 8)))
    np.testing.assert_array_equal(again.outputs(z_hat, 1), integer.outputs(z_hat, 1))
