"""PSNR against its definition; MS-SSIM against TensorFlow's, with the small-image fallback."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cnnkit.codec.metrics import MS_SSIM_WEIGHTS, bits_per_pixel, ms_ssim, psnr


def test_psnr_matches_its_definition():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 48  # MSE = 48^2 / 48 = 48
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 48))
    assert psnr(a, a) == float("inf")


def test_bits_per_pixel():
    assert bits_per_pixel(1000, 40, 50) == 4.0


def test_ms_ssim_uses_all_five_scales_from_176_px_and_equals_tensorflow():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (176, 180, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    value, scales = ms_ssim(a, b)
    assert scales == 5
    expected = tf.image.ssim_multiscale(a.astype(np.float32), b.astype(np.float32), 255.0, power_factors=MS_SSIM_WEIGHTS)
    assert value == pytest.approx(float(expected), rel=1e-4)
    assert ms_ssim(a, a)[0] == pytest.approx(1.0)


@pytest.mark.parametrize(("side", "scales"), [(175, 4), (44, 3), (11, 1), (10, 0)])
def test_small_images_use_fewer_scales_or_none(side, scales):
    a = np.random.default_rng(1).integers(0, 256, (side, side), dtype=np.uint8)
    value, used = ms_ssim(a, a)
    assert used == scales
    assert (value is None) == (scales == 0)
    if value is not None:
        assert value == pytest.approx(1.0)
