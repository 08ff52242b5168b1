"""JPEG 4:2:0 / WebP through Pillow, interpolation of their curves, and the Bjøntegaard delta rate."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from cnnkit.codec import baselines


@pytest.fixture(scope="module")
def photo():
    y, x = np.mgrid[0:48, 0:64]
    rng = np.random.default_rng(0)
    return np.clip(np.stack([x * 4, y * 5, (x + y) * 2], -1) + rng.normal(0, 8, (48, 64, 3)), 0, 255).astype(np.uint8)


def test_jpeg_uses_420_subsampling_and_webp_is_lossy(photo):
    data, decoded = baselines.compress(photo, "jpeg", 50)
    with Image.open(io.BytesIO(data)) as image:
        assert JpegImagePlugin.get_sampling(image) == 2  # 4:2:0
    assert decoded.shape == photo.shape
    data, decoded = baselines.compress(photo, "webp", 50)
    assert data[8:12] == b"WEBP" and decoded.shape == photo.shape and not np.array_equal(decoded, photo)


def test_sweep_rates_come_from_file_sizes_and_rise_with_quality(photo):
    curve = baselines.sweep([photo], "jpeg", qualities=(10, 90))
    size = len(baselines.compress(photo, "jpeg", 90)[0])
    assert curve[-1]["bpp"] == pytest.approx(8 * size / (48 * 64))
    assert curve[0]["psnr"] < curve[-1]["psnr"]


def test_interpolation_is_linear_in_log_rate_and_none_outside():
    curve = [{"bpp": 0.25, "psnr": 25.0}, {"bpp": 1.0, "psnr": 35.0}]
    assert baselines.interpolate_psnr(curve, 0.5) == pytest.approx(30.0)
    assert baselines.interpolate_psnr(curve, 2.0) is None


def _curve(scale):
    return [{"bpp": scale * r, "psnr": 20.0 + 6.0 * np.log2(r)} for r in (0.25, 0.5, 1.0, 2.0, 4.0)]


def test_bd_rate_of_a_curve_needing_half_the_bits_is_minus_fifty_percent():
    assert baselines.bd_rate(_curve(1.0), _curve(1.0)) == pytest.approx(0.0, abs=1e-9)
    assert baselines.bd_rate(_curve(1.0), _curve(0.5)) == pytest.approx(-50.0)
    # No common PSNR range, or a curve of one point: no BD-rate.
    assert baselines.bd_rate(_curve(1.0)[:2], _curve(1.0)[3:]) is None
    assert baselines.bd_rate(_curve(1.0), _curve(1.0)[:1]) is None
