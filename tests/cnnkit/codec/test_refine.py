"""Encoder-side latent refinement (SGA): the relaxation, a lower loss than the analysis transform's, and the same decoder."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cnnkit.codec import bitstream, codec, metrics, models, refine


def _smooth_image(height: int = 64, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    return np.round(np.stack([x, y, np.sin(6 * x * y) * 0.5 + 0.5], -1) * 255).astype(np.uint8)


def test_stochastic_soft_round_stays_between_floor_and_ceiling_and_sharpens_to_rounding():
    generator = tf.random.Generator.from_seed(0)
    latent = tf.constant(np.random.default_rng(0).uniform(-5, 5, 4000), tf.float32)
    soft = refine.stochastic_soft_round(latent, tf.constant(0.5), generator).numpy()
    floor = np.floor(latent.numpy())
    assert np.all(soft >= floor - 1e-6) and np.all(soft <= floor + 1 + 1e-6)
    # Cold: the annealed probabilities are almost one-hot, so samples sit at the nearest integer.
    cold = refine.stochastic_soft_round(latent, tf.constant(0.01), generator).numpy()
    assert np.mean(np.abs(cold - np.round(latent.numpy())) < 0.05) > 0.9
    with tf.GradientTape() as tape:
        tape.watch(latent)
        total = tf.reduce_sum(refine.stochastic_soft_round(latent, tf.constant(0.5), generator))
    assert np.all(np.isfinite(tape.gradient(total, latent).numpy()))


@pytest.mark.parametrize("architecture", ["factorized", "hyperprior"])
def test_refinement_lowers_the_rounded_loss_and_the_file_decodes_with_the_same_codec(architecture, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = models.build(architecture, filters=8, latent=8, lmbda=0.01)
    codec_ = codec.load(codec.save(model, 1, tmp_path / f"{architecture}-q1.npz"))
    pixels = _smooth_image()
    x = tf.constant(pixels[None], tf.float32) / 255.0
    start = codec_.model.encoder_latents(x)
    refined = refine.refine_latents(codec_.model, x, start, steps=30)
    assert set(refined) == set(start) and all(refined[k].shape == start[k].shape for k in start)
    assert refine._rounded_loss(codec_.model, x, refined) < refine._rounded_loss(codec_.model, x, start)
    plain, better = codec_.encode(pixels), codec_.encode(pixels, refine_steps=30)
    decoded = codec_.decode(better)
    assert decoded.shape == pixels.shape
    # The file's real rate and distortion move the way the loss says: lower R + lmbda * D.
    def file_loss(data, out):
        return metrics.bits_per_pixel(len(data), 64, 64) + 0.01 * np.mean((out.astype(float) - pixels) ** 2)

    assert file_loss(better, decoded) < file_loss(plain, codec_.decode(plain))
    assert bitstream.unpack(better)[0] == bitstream.unpack(plain)[0]


def test_refinement_keeps_the_analysis_latents_unless_it_lowers_their_loss(tiny_codec, monkeypatch):
    pixels = _smooth_image(32, 48)
    x = tf.constant(pixels[None], tf.float32) / 255.0
    start = tiny_codec.model.encoder_latents(x)
    assert refine.refine_latents(tiny_codec.model, x, start, steps=0) is start
    assert tiny_codec.encode(pixels, refine_steps=0) == tiny_codec.encode(pixels)
    # Whatever the steps found, a rounded loss no lower than the start's gives the start back.
    monkeypatch.setattr(refine, "_rounded_loss", lambda model, x, latents: 0.0)
    assert refine.refine_latents(tiny_codec.model, x, start, steps=2) is start
    monkeypatch.setattr(refine, "_rounded_loss", lambda model, x, latents: 1.0 if latents is start else 0.5)
    assert refine.refine_latents(tiny_codec.model, x, start, steps=2) is not start
