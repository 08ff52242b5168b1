"""Distortion measures of decoded images: PSNR and MS-SSIM over 8-bit pixels."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["bits_per_pixel", "psnr", "ms_ssim", "MS_SSIM_WEIGHTS"]

# Wang, Simoncelli & Bovik, "Multi-scale structural similarity for image quality
# assessment", 2003, table 1: the weight of each of the 5 scales, finest first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# tf.image.ssim_multiscale's Gaussian window: the coarsest scale must be at least this wide.
_FILTER_SIZE = 11


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
    """``8 * bytes / pixels``: the rate of a file holding a ``height`` x ``width`` image."""
    return 8.0 * num_bytes / (height * width)


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(255^2 / MSE)``, over all pixels and channels.

    Args:
        reference, decoded: uint8 arrays of the same shape, ``(height, width[, channels])``.

    Returns:
        PSNR in dB (``inf`` for identical images).
    """
    mse = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> tuple[float | None, int]:
    """MS-SSIM with as many of the 5 standard scales as the image size allows.

    ``tf.image.ssim_multiscale`` halves the image between scales and needs the
    coarsest one to be at least 11 px (its Gaussian window): 176 px for all 5
    scales. Smaller images use the finest ``k`` scales with their weights
    renormalised to sum to 1; below 11 px there is no SSIM at all.

    Args:
        reference, decoded: uint8, ``(height, width)`` or ``(height, width, channels)``.

    Returns:
        ``(value, scales)``; ``(None, 0)`` when the image is smaller than 11 px.
    """
    side = min(reference.shape[:2])
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and side >= _FILTER_SIZE * 2**scales:
        scales += 1
    if scales == 0:
        return None, 0
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
    weights = tuple(float(w) for w in weights / weights.sum())
    a, b = (tf.constant(np.atleast_3d(img), tf.float32) for img in (reference, decoded))
    value = tf.image.ssim_multiscale(a, b, max_val=255.0, power_factors=weights, filter_size=_FILTER_SIZE)
    return float(value.numpy()), scales
