"""The factorized prior and the Gaussian conditional are proper densities; their integer tables code latents losslessly near the ideal length."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cnnkit.codec.entropy import (
    PRECISION,
    SCALE_BOUND,
    FactorizedPrior,
    decode_indexed,
    decode_symbols,
    encode_indexed,
    encode_symbols,
    gaussian_likelihood,
    gaussian_tables,
    integer_tables,
    scale_indexes,
    scale_table,
)


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


# --- the Gaussian conditional of the hyperprior --------------------------------


@pytest.fixture(scope="module")
def scales():
    return scale_table()


@pytest.fixture(scope="module")
def gaussian(scales):
    return gaussian_tables(scales)


def test_gaussian_likelihood_is_the_normal_mass_of_the_unit_bin():
    y = np.array([-40.0, -3.0, -0.4, 0.0, 1.0, 2.6, 300.0], np.float32)
    sigma = np.array([0.01, 2.0, 0.5, 1.0, 3.0, 10.0, 100.0], np.float32)
    bounded = np.maximum(sigma, SCALE_BOUND).astype(np.float64)
    expected = scipy.special.ndtr((y + 0.5) / bounded) - scipy.special.ndtr((y - 0.5) / bounded)
    np.testing.assert_allclose(gaussian_likelihood(y, sigma).numpy(), np.maximum(expected, 1e-9), rtol=1e-4)


def test_scale_table_is_log_spaced_from_the_bound(scales):
    assert scales.shape == (64,) and scales[0] == pytest.approx(SCALE_BOUND) and scales[-1] == pytest.approx(256)
    np.testing.assert_allclose(np.diff(np.log(scales)), np.log(256 / SCALE_BOUND) / 63)


def test_gaussian_tables_are_valid_frequency_tables_that_widen_with_the_scale(gaussian, scales):
    assert gaussian["pmf"].dtype == np.int32 and len(gaussian["length"]) == len(scales)
    for row, length, offset in zip(gaussian["pmf"], gaussian["length"], gaussian["offset"]):
        assert row[: length + 1].sum() == 1 << PRECISION
        assert row[: length + 1].min() >= 1
        assert not row[length + 1 :].any()
        assert offset == -(length // 2)  # centred on zero
    assert np.all(np.diff(gaussian["length"]) >= 0) and gaussian["length"][-1] > 1000


def test_scale_index_is_the_smallest_table_scale_at_or_above_sigma(scales):
    sigma = np.array([0.0, SCALE_BOUND, scales[5], scales[5] * 1.001, 1e6, np.inf, np.nan])
    np.testing.assert_array_equal(scale_indexes(sigma, scales), [0, 0, 5, 6, 63, 63, 63])


def test_gaussian_code_length_is_close_to_the_ideal_length(gaussian, scales):
    rng = np.random.default_rng(0)
    sigma = np.exp(rng.uniform(np.log(0.2), np.log(50), (12, 12, 4)))
    y_hat = np.round(rng.normal(0, sigma)).astype(np.int32)
    indexes = scale_indexes(sigma, scales)
    # The ideal length under the table scales the coder uses (each sigma rounded up to the table).
    ideal_bits = -np.log2(gaussian_likelihood(y_hat.astype(np.float32), scales[indexes].astype(np.float32)).numpy()).sum()
    payload = encode_indexed(y_hat, indexes, gaussian)
    assert 8 * len(payload) == pytest.approx(ideal_bits, rel=0.03, abs=64)
    np.testing.assert_array_equal(decode_indexed(payload, indexes, gaussian), y_hat)


@settings(max_examples=30, deadline=None)
@given(
    hnp.arrays(np.int32, (3, 4), elements=st.integers(-32768, 32767)),
    hnp.arrays(np.int32, (3, 4), elements=st.integers(0, 63)),
)
def test_any_16_bit_latent_survives_the_gaussian_round_trip_including_escapes(gaussian, values, indexes):
    np.testing.assert_array_equal(decode_indexed(encode_indexed(values, indexes, gaussian), indexes, gaussian), values)


def test_a_payload_with_words_left_over_is_refused(tables):
    payload = encode_symbols(np.zeros((2, 2, 3), np.int32), tables)
    with pytest.raises(ValueError, match="more data"):
        decode_symbols(payload + payload, tables, (2, 2))
