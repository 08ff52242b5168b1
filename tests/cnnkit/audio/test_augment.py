"""cnnkit.audio.augment: crops, shifts, noise at a measured SNR, SpecAugment masks, speed change."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cnnkit.audio import augment

SEED = tf.constant([3, 4], tf.int64)


def test_fix_length_centres_for_evaluation():
    x = tf.range(1, 11, dtype=tf.float32)
    np.testing.assert_array_equal(augment.fix_length(x, 4), [4, 5, 6, 7])
    np.testing.assert_array_equal(augment.fix_length(x[:3], 7), [0, 0, 1, 2, 3, 0, 0])


def test_fix_length_random_crop_is_a_window_and_seeded():
    x = tf.range(100, dtype=tf.float32)
    crops = [augment.fix_length(x, 10, tf.constant([s, 0])).numpy() for s in range(20)]
    for crop in crops:
        np.testing.assert_array_equal(np.diff(crop), 1)  # a contiguous window of the clip
    assert len({c[0] for c in crops}) > 5  # positions vary with the seed
    np.testing.assert_array_equal(augment.fix_length(x, 10, SEED), augment.fix_length(x, 10, SEED))


def test_time_shift_moves_the_clip_and_fills_with_zeros():
    x = tf.range(1, 21, dtype=tf.float32)
    y = augment.time_shift(x, 5, SEED).numpy()
    shift = int(np.flatnonzero(y == 1)[0]) if 1 in y else -int(y[0] - 1)
    np.testing.assert_array_equal(y, np.roll(np.pad(x.numpy(), 5), shift)[5:-5])
    assert -5 <= shift <= 5


def test_noise_is_mixed_at_the_requested_snr():
    clean = tf.constant(np.sin(np.linspace(0, 400 * np.pi, 16000)), tf.float32)
    noisy = augment.add_noise(clean, (12.0, 12.0), SEED)
    noise = noisy - clean
    snr = 10 * np.log10(np.mean(clean.numpy() ** 2) / np.mean(noise.numpy() ** 2))
    assert snr == pytest.approx(12.0, abs=0.01)
    # Pink: the lower half of the spectrum holds most of the noise power.
    power = np.abs(np.fft.rfft(noise.numpy())) ** 2
    assert power[: len(power) // 2].sum() > 5 * power[len(power) // 2 :].sum()


def test_noise_probability_leaves_some_clips_clean():
    clean = tf.ones([1000])
    mixed = [not np.array_equal(augment.add_noise(clean, (10.0, 10.0), tf.constant([s, 2]), 0.5), clean) for s in range(40)]
    assert 10 < sum(mixed) < 30
    np.testing.assert_array_equal(augment.add_noise(clean, (10.0, 10.0), SEED, 0.0), clean)


def test_spec_augment_masks_bands_per_utterance_only():
    x = tf.ones([4, 50, 20])
    y = augment.spec_augment(x, SEED, time_masks=1, max_time=10, freq_masks=1, max_freq=5).numpy()
    assert set(np.unique(y)) <= {0.0, 1.0}
    for example in y:
        zero_rows = np.flatnonzero((example == 0).all(axis=1))
        zero_cols = np.flatnonzero((example == 0).all(axis=0))
        assert len(zero_rows) <= 10 and len(zero_cols) <= 5
        # Only whole rows and columns are masked.
        masked = (example == 0)
        expected = np.zeros_like(masked)
        expected[zero_rows] = True
        expected[:, zero_cols] = True
        np.testing.assert_array_equal(masked, expected)
    assert len({y[i].tobytes() for i in range(4)}) > 1  # each utterance its own masks


def test_speed_perturb_changes_length_by_the_factor():
    x = tf.sin(tf.linspace(0.0, 100.0, 10000))
    lengths = [int(augment.speed_perturb(x, 0.2, tf.constant([s, 1])).shape[0]) for s in range(10)]
    assert all(10000 / 1.2 - 1 <= n <= 10000 / 0.8 + 1 for n in lengths)
    assert len(set(lengths)) > 3


def test_warp_frequency_reads_each_bin_at_k_over_alpha():
    power = tf.random.stateless_uniform([3, 5, 8], seed=[0, 1])
    warped = augment.warp_frequency(power, 0.2, SEED).numpy()
    # the alphas the function draws: the same stateless draw
    alphas = tf.random.stateless_uniform([3], seed=SEED, minval=0.8, maxval=1.2).numpy()
    assert np.ptp(alphas) > 0.01
    for utterance, alpha in enumerate(alphas):
        source = np.minimum(np.arange(8) / alpha, 7)
        for frame in range(5):
            expected = np.interp(source, np.arange(8), power.numpy()[utterance, frame])
            np.testing.assert_allclose(warped[utterance, frame], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(augment.warp_frequency(power, 0.0, SEED), power, rtol=1e-6)


def test_stretch_time_reads_each_frame_about_the_middle_at_the_rate_and_pads_with_silence():
    power = tf.random.stateless_uniform([3, 9, 4], seed=[0, 3], minval=0.5, maxval=2.0)
    stretched = augment.stretch_time(power, 0.4, SEED).numpy()
    rates = tf.random.stateless_uniform([3], seed=SEED, minval=0.6, maxval=1.4).numpy()
    assert np.ptp(rates) > 0.01
    for utterance, rate in enumerate(rates):
        source = 4 + (np.arange(9) - 4) * rate
        for band in range(4):
            # zero power one frame beyond each end, as the function pads
            frames = np.concatenate([[0.0], power.numpy()[utterance, :, band], [0.0]])
            expected = np.interp(source, np.arange(-1, 10), frames, left=0.0, right=0.0)
            np.testing.assert_allclose(stretched[utterance, :, band], expected, rtol=1e-5, atol=1e-6)
    assert (stretched[rates > 1.26, 0] == 0).all()  # faster speech: silence at the edges
    np.testing.assert_allclose(augment.stretch_time(power, 0.0, SEED), power, rtol=1e-6)


def test_filter_augment_is_one_smooth_curve_per_utterance_within_the_bound():
    power = tf.random.stateless_uniform([4, 6, 257], seed=[0, 2], minval=0.5, maxval=2.0)
    gain_db = 10 * np.log10(augment.filter_augment(power, 6.0, SEED, sample_rate=16000).numpy() / power.numpy())
    assert np.abs(gain_db).max() <= 6.0 + 1e-3
    np.testing.assert_allclose(gain_db, np.broadcast_to(gain_db[:, :1], gain_db.shape), atol=1e-3)  # frames share it
    assert np.ptp(gain_db[:, 0, :], axis=1).min() > 0.5  # not a constant: a filter
    assert np.abs(np.diff(gain_db[:, 0, :], axis=1)).max() < 1.0  # smooth: no step of 12 dB between neighbouring bins
    assert not np.allclose(gain_db[0, 0], gain_db[1, 0])  # each utterance its own
    np.testing.assert_allclose(augment.filter_augment(power, 0.0, SEED, sample_rate=16000), power, rtol=1e-6)
