"""Waveform and spectrogram steps for tf.data: fixed-length crops and training-time augmentation.

Every function is a pure TensorFlow op with its randomness drawn from a
stateless seed, so a tf.data map with ``tf.data.Dataset.random`` seeds gives
the same augmented epoch for the same ``--seed``.

* :func:`fix_length`: pad or crop a clip to the model's duration (centred for
  evaluation, random position for training).
* :func:`time_shift`: move the clip by up to +-``max_shift`` samples, zero fill.
* :func:`speed_perturb`: resample by a factor in [1 - r, 1 + r] with linear
  interpolation (Ko et al. 2015, "Audio augmentation for speech recognition").
* :func:`add_noise`: pink (1/f) noise at a random signal-to-noise ratio.
* :func:`warp_frequency`: vocal tract length perturbation, the frequency axis
  of the power spectrum scaled per utterance (Jaitly & Hinton 2013, "Vocal
  Tract Length Perturbation (VTLP) improves speech recognition").
* :func:`stretch_time`: faster or slower speech at the same pitch, the frame
  axis of the power spectrum resampled per utterance (the tempo half of
  Ko et al. 2015's speed perturbation, without its pitch shift).
* :func:`scale_frequency` and :func:`scale_tempo`: the fixed warps under the
  two above, also the views of test-time augmentation.
* :func:`filter_augment`: a random smooth equaliser on the power spectrum,
  another microphone or room per utterance (Nam et al. 2022, "FilterAugment").
* :func:`spec_augment`: time and frequency masks on the features
  (Park et al. 2019, "SpecAugment").
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["fix_length", "time_shift", "speed_perturb", "add_noise", "warp_frequency", "scale_frequency", "stretch_time", "scale_tempo", "filter_augment", "spec_augment"]


def _uniform(seed: tf.Tensor, minval, maxval, dtype=tf.float32, shape=()) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval, dtype=dtype)


def fix_length(waveform: tf.Tensor, num_samples: int, seed: tf.Tensor | None = None) -> tf.Tensor:
    """Pad with zeros or crop ``waveform`` to exactly ``num_samples``.

    Args:
        waveform: ``(samples,)`` float32, any length.
        num_samples: output length.
        seed: ``(2,)`` int stateless seed for a random crop/pad position
            (training); ``None`` centres the clip (evaluation).

    Returns:
        ``(num_samples,)`` float32.
    """
    length = tf.shape(waveform)[0]
    slack = tf.abs(length - num_samples)
    if seed is None:
        offset = slack // 2
    else:
        offset = _uniform(seed, 0, slack + 1, dtype=tf.int32)
    # Pad (a no-op for a long clip), then crop (a no-op for a short one): no tf.cond,
    # which made this per-clip step 1.5x slower in a tf.data map.
    short = length < num_samples
    left = tf.where(short, offset, 0)
    padded = tf.pad(waveform, [[left, tf.where(short, slack - offset, 0)]])
    start = tf.where(short, 0, offset)
    return tf.ensure_shape(padded[start : start + num_samples], [num_samples])


def time_shift(waveform: tf.Tensor, max_shift: int, seed: tf.Tensor) -> tf.Tensor:
    """Shift ``(samples,)`` by a uniform integer in [-max_shift, max_shift], filling with zeros."""
    n = tf.shape(waveform)[0]
    shift = _uniform(seed, -max_shift, max_shift + 1, dtype=tf.int32)
    padded = tf.pad(waveform, [[max_shift, max_shift]])
    return tf.ensure_shape(padded[max_shift - shift : max_shift - shift + n], waveform.shape)


def speed_perturb(waveform: tf.Tensor, max_rate: float, seed: tf.Tensor) -> tf.Tensor:
    """Play ``(samples,)`` faster or slower by a factor in [1 - max_rate, 1 + max_rate].

    Changes tempo and pitch together, like Kaldi's speed perturbation. The
    output has ``round(samples / factor)`` samples; :func:`fix_length` restores
    the model's length afterwards.
    """
    factor = _uniform(seed, 1.0 - max_rate, 1.0 + max_rate)
    n = tf.cast(tf.shape(waveform)[0], tf.float32)
    new_n = tf.maximum(tf.cast(tf.round(n / factor), tf.int32), 1)
    image = tf.reshape(waveform, [1, -1, 1])
    return tf.reshape(tf.image.resize(image, [1, new_n], method="bilinear"), [-1])


def add_noise(waveform: tf.Tensor, snr_db: tuple[float, float], seed: tf.Tensor, probability: float = 1.0) -> tf.Tensor:
    """Mix pink noise into ``(samples,)`` at an SNR uniform in ``snr_db`` (dB, against the clip's power).

    Pink noise (power ~ 1/f) sounds like room and street background far more
    than white noise does; it is shaped in the frequency domain from white
    Gaussian noise. With ``probability`` < 1 some clips stay clean, so a model
    still sees the digital silence of zero padding that clean test clips have.
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    n = tf.shape(waveform)[0]
    white = tf.random.stateless_normal([n], seed=seeds[0])
    spectrum = tf.signal.rfft(white)
    freqs = tf.cast(tf.range(tf.shape(spectrum)[0]), tf.float32)
    pink = tf.signal.irfft(spectrum * tf.cast(tf.math.rsqrt(tf.maximum(freqs, 1.0)), tf.complex64), [n])
    snr = _uniform(seeds[1], snr_db[0], snr_db[1])
    signal_power = tf.reduce_mean(tf.square(waveform)) + 1e-12
    noise_power = tf.reduce_mean(tf.square(pink)) + 1e-12
    scale = tf.sqrt(signal_power / (noise_power * tf.pow(10.0, snr / 10.0)))
    mixed = tf.cast(_uniform(seeds[2], 0.0, 1.0) < probability, tf.float32)
    return waveform + mixed * scale * pink


def warp_frequency(power: tf.Tensor, max_warp: float, seed: tf.Tensor) -> tf.Tensor:
    """Scale the frequency axis of each utterance by a factor in [1 - max_warp, 1 + max_warp] (VTLP).

    A longer vocal tract puts every formant lower: Jaitly & Hinton (2013)
    simulate other speakers by warping frequency f to alpha * f, with
    :func:`scale_frequency`.

    Args:
        power: ``(batch, frames, bins)`` linear power spectrogram.
        max_warp: largest relative change of alpha, e.g. 0.1.
        seed: ``(2,)`` int stateless seed; each utterance draws its own alpha.

    Returns:
        ``(batch, frames, bins)``.
    """
    alpha = _uniform(seed, 1.0 - max_warp, 1.0 + max_warp, shape=[tf.shape(power)[0]])
    return scale_frequency(power, alpha)


def scale_frequency(power: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Move every frequency f of each utterance to ``alpha * f``.

    Bin ``k`` of the output takes the power at bin ``k / alpha`` of the input,
    linearly interpolated; bins that would read above the Nyquist frequency
    (alpha < 1) repeat the top bin.

    Args:
        power: ``(batch, frames, bins)`` linear power spectrogram.
        alpha: ``(batch,)`` warp factors (> 0).

    Returns:
        ``(batch, frames, bins)``.
    """
    bins = power.shape[-1]
    source = tf.minimum(tf.range(bins, dtype=tf.float32)[None, :] / alpha[:, None], bins - 1.0)  # (batch, bins)
    below = tf.floor(source)
    weight = (source - below)[:, None, :]
    lower = tf.cast(below, tf.int32)
    upper = tf.minimum(lower + 1, bins - 1)
    # gather along the last axis, one index row per utterance, shared by its frames
    take = lambda index: tf.gather(power, tf.broadcast_to(index[:, None, :], tf.shape(power)), batch_dims=2)
    return (1.0 - weight) * take(lower) + weight * take(upper)


def stretch_time(power: tf.Tensor, max_rate: float, seed: tf.Tensor) -> tf.Tensor:
    """Play each utterance faster or slower by a rate in [1 - max_rate, 1 + max_rate], pitch unchanged.

    Speakers differ in tempo as much as in pitch: in FSDD one speaker says a
    digit in 0.35 s on average, another in 0.57 s. Waveform speed
    perturbation (:func:`speed_perturb`) changes both; resampling the frame
    axis of the power spectrum (:func:`scale_tempo`) changes the tempo alone.

    Args:
        power: ``(batch, frames, bins)`` linear power spectrogram.
        max_rate: largest relative change of the rate, e.g. 0.2.
        seed: ``(2,)`` int stateless seed; each utterance draws its own rate.

    Returns:
        ``(batch, frames, bins)``.
    """
    rate = _uniform(seed, 1.0 - max_rate, 1.0 + max_rate, shape=[tf.shape(power)[0]])
    return scale_tempo(power, rate)


def scale_tempo(power: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
    """Play each utterance ``rate`` times as fast, about its middle frame.

    Output frame ``t`` takes the power at input frame ``c + (t - c) * rate``
    (``c`` the middle frame), linearly interpolated; frames read from outside
    the clip are silent (zero power), as the zero padding of a short clip is.

    Args:
        power: ``(batch, frames, bins)`` linear power spectrogram.
        rate: ``(batch,)`` tempo factors (> 0; 1.2 is 20% faster).

    Returns:
        ``(batch, frames, bins)``.
    """
    frames = power.shape[-2]
    middle = (frames - 1) / 2.0
    source = middle + (tf.range(frames, dtype=tf.float32)[None, :] - middle) * rate[:, None]  # (batch, frames)
    below = tf.floor(source)
    weight = (source - below)[:, :, None]
    # One zero frame on each side stands for the silence outside the clip.
    padded = tf.pad(power, [[0, 0], [1, 1], [0, 0]])
    index = lambda at: tf.cast(tf.clip_by_value(at + 1.0, 0.0, frames + 1.0), tf.int32)
    take = lambda at: tf.gather(padded, index(at), batch_dims=1)  # (batch, frames, bins)
    return (1.0 - weight) * take(below) + weight * take(below + 1.0)


def filter_augment(power: tf.Tensor, max_db: float, seed: tf.Tensor, *, sample_rate: int, knots: int = 5) -> tf.Tensor:
    """Multiply each utterance's power spectrum by a random smooth gain curve, up to +-``max_db``.

    A microphone or a room colours the spectrum with a smooth filter that a
    per-utterance normalisation does not remove (FSDD's speakers differ by
    their microphones as much as by their voices). FilterAugment (Nam et al.
    2022) trains through random such filters: here ``knots`` gains drawn
    uniformly in [-max_db, max_db] dB, evenly spaced on the mel scale and
    linearly interpolated between them, one curve per utterance shared by its
    frames.

    Args:
        power: ``(batch, frames, bins)`` linear power spectrogram, bins
            evenly spaced from 0 Hz to the Nyquist frequency.
        max_db: largest gain or cut, dB.
        seed: ``(2,)`` int stateless seed.
        sample_rate: of the audio, Hz, to place the bins on the mel scale.
        knots: control points of the curve (2: a tilt).

    Returns:
        ``(batch, frames, bins)``.
    """
    batch, bins = tf.shape(power)[0], power.shape[-1]
    hertz = tf.linspace(0.0, sample_rate / 2.0, bins)
    mel = tf.math.log1p(hertz / 700.0)  # the HTK mel scale up to a constant factor
    position = mel / mel[-1] * (knots - 1)  # (bins,) in [0, knots - 1]
    below = tf.minimum(tf.floor(position), knots - 2.0)
    weight = position - below
    gains = _uniform(seed, -max_db, max_db, shape=[batch, knots])
    take = lambda index: tf.gather(gains, tf.cast(index, tf.int32), axis=1)  # (batch, bins)
    gain_db = (1.0 - weight) * take(below) + weight * take(below + 1.0)
    return power * tf.pow(10.0, gain_db / 10.0)[:, None, :]


def spec_augment(
    features: tf.Tensor, seed: tf.Tensor, *, time_masks: int = 2, max_time: int = 10, freq_masks: int = 2, max_freq: int = 5
) -> tf.Tensor:
    """Zero ``time_masks`` bands of up to ``max_time`` frames and ``freq_masks`` of up to ``max_freq`` bins, per utterance.

    Args:
        features: ``(batch, frames, bins)``, already normalised per utterance
            (so zero is the utterance mean, as the paper masks with the mean).
        seed: ``(2,)`` int stateless seed; each utterance gets its own masks.

    Returns:
        ``(batch, frames, bins)``.
    """
    batch, frames, bins = tf.shape(features)[0], features.shape[-2], features.shape[-1]
    seeds = tf.random.experimental.stateless_split(seed, 2 * (time_masks + freq_masks))
    keep = tf.ones_like(features, dtype=tf.bool)
    masks = [(1, frames, max_time)] * time_masks + [(2, bins, max_freq)] * freq_masks
    for i, (axis, size, max_width) in enumerate(masks):
        # Floats in [0, 1) scaled per utterance: integer stateless draws take only scalar bounds.
        width = tf.floor(_uniform(seeds[2 * i], 0.0, 1.0, shape=[batch]) * (min(max_width, size) + 1))
        start = tf.floor(_uniform(seeds[2 * i + 1], 0.0, 1.0, shape=[batch]) * (size - width + 1))
        index = tf.range(size, dtype=tf.float32)[None, :]
        inside = (index >= start[:, None]) & (index < (start + width)[:, None])  # (batch, size)
        keep &= ~(inside[:, :, None] if axis == 1 else inside[:, None, :])
    return tf.where(keep, features, tf.zeros_like(features))
