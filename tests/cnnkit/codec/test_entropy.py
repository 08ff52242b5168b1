"""The factorized prior is a proper density; its integer tables code latents losslessly near the ideal length."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnkit.codec.entropy import PRECISION, FactorizedPrior, decode_symbols, encode_symbols, integer_tables


@pytest.fixture(scope="module")
def prior():
    layer = FactorizedPrior()
    layer.build((None, None, None, 3))
    # Move the channels apart so that each table differs.
    layer.biases[-1].assign(np.array([-0.2, 0.0, 0.3], np.float32).reshape(3, 1, 1))
    return layer


@pytest.fixture(scope="module")
def tables(prior):
    return integer_tables(prior)


def test_bin_masses_sum_to_one_and_match_the_cdf(prior):
    values = np.arange(-400, 401, dtype=np.float32)
    grid = tf.constant(np.broadcast_to(values, (3, 1, values.size)))
    mass = prior.bin_mass(grid).numpy()[:, 0]
    np.testing.assert_allclose(mass.sum(axis=1), 1.0, atol=1e-4)
    cdf = tf.sigmoid(prior.logits_cumulative(grid + 0.5)).numpy()[:, 0]
    assert np.all(np.diff(cdf, axis=1) >= -1e-7)
    np.testing.assert_allclose(mass[:, 1:], np.diff(cdf, axis=1), atol=1e-6)


def test_likelihoods_have_the_latent_shape_and_follow_each_channel(prior):
    y = np.zeros((2, 3, 4, 3), np.float32)
    likelihoods = prior(y).numpy()
    assert likelihoods.shape == y.shape
    values = tf.zeros((3, 1, 1))
    expected = np.maximum(prior.bin_mass(values).numpy().ravel(), 1e-9)  # the rate term's lower bound
    np.testing.assert_allclose(likelihoods[0, 0, 0], expected, rtol=1e-5)


def test_integer_tables_are_valid_frequency_tables(tables):
    assert tables["pmf"].dtype == np.int32
    for row, length in zip(tables["pmf"], tables["length"]):
        assert row[: length + 1].sum() == 1 << PRECISION
        assert row[: length + 1].min() >= 1
        assert not row[length + 1 :].any()
    # A larger bias on the cumulative logits moves the mass to lower values, and the table with it.
    assert tables["offset"][2] < tables["offset"][1] < tables["offset"][0]


def test_code_length_is_close_to_the_ideal_length(prior, tables):
    rng = np.random.default_rng(0)
    y_hat = np.round(rng.logistic(0, 4, (16, 16, 3)) + np.array([-2, 0, 3])).astype(np.int32)
    ideal_bits = -np.log2(prior(y_hat[None].astype(np.float32)).numpy()).sum()
    payload = encode_symbols(y_hat, tables)
    assert 8 * len(payload) == pytest.approx(ideal_bits, rel=0.03, abs=64)
    np.testing.assert_array_equal(decode_symbols(payload, tables, (16, 16)), y_hat)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.int32, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=st.integers(-32768, 32767)))
def test_any_16_bit_latent_survives_the_round_trip_including_escapes(tables, values):
    y_hat = np.repeat(values[..., None], 3, axis=-1)
    y_hat[..., 1] = -y_hat[..., 1] - 1
    decoded = decode_symbols(encode_symbols(y_hat, tables), tables, values.shape)
    np.testing.assert_array_equal(decoded, y_hat)


def test_latents_beyond_16_bits_are_refused(tables):
    with pytest.raises(ValueError, match="coded range"):
        encode_symbols(np.full((1, 1, 3), 40000), tables)
