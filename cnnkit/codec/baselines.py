"""Classic codecs to measure against: JPEG (4:2:0) and WebP through Pillow, and the BD-rate.

Each baseline is swept over its quality setting; the resulting rate-distortion
curve is interpolated at the learned codec's bit rates, and the Bjøntegaard
delta rate (G. Bjøntegaard, "Calculation of average PSNR differences between
RD-curves", VCEG-M33, 2001) summarises the gap over the overlapping PSNR range.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cnnkit.codec.metrics import bits_per_pixel, psnr

__all__ = ["CODECS", "QUALITIES", "compress", "sweep", "interpolate_psnr", "bd_rate"]

CODECS = ("jpeg", "webp")
# Quality settings of the sweeps: dense at the low end, where the learned codec competes.
QUALITIES = (1, 3, 5, 8, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 85, 90, 95)


def compress(pixels: np.ndarray, codec: str, quality: int) -> tuple[bytes, np.ndarray]:
    """Encode with Pillow and decode again.

    Args:
        pixels: ``(height, width)`` or ``(height, width, 3)`` uint8.
        codec: ``"jpeg"`` (chroma subsampling 4:2:0) or ``"webp"`` (lossy).
        quality: Pillow's quality, 1..100.

    Returns:
        ``(file bytes, decoded pixels shaped like the input)``.
    """
    image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    if codec == "jpeg":
        image.save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    elif codec == "webp":
        image.save(buffer, format="WEBP", quality=quality)
    else:
        raise ValueError(f"unknown baseline codec {codec!r}; expected one of {CODECS}")
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        return data, np.asarray(decoded.convert(image.mode))


def sweep(images: list[np.ndarray], codec: str, qualities=QUALITIES) -> list[dict]:
    """Mean bpp (from the file sizes) and mean PSNR over ``images`` at each quality setting.

    Returns:
        ``[{"quality", "bpp", "psnr"}]`` sorted by bpp.
    """
    points = []
    for quality in qualities:
        rates, psnrs = [], []
        for pixels in images:
            data, decoded = compress(pixels, codec, quality)
            rates.append(bits_per_pixel(len(data), *pixels.shape[:2]))
            psnrs.append(psnr(pixels, decoded))
        points.append({"quality": quality, "bpp": float(np.mean(rates)), "psnr": float(np.mean(psnrs))})
    return sorted(points, key=lambda p: p["bpp"])


def interpolate_psnr(curve: list[dict], bpp: float) -> float | None:
    """PSNR of a swept curve at ``bpp``, linear in log(bpp); ``None`` outside the swept range."""
    rates = np.log([p["bpp"] for p in curve])
    if not rates[0] <= np.log(bpp) <= rates[-1]:
        return None
    return float(np.interp(np.log(bpp), rates, [p["psnr"] for p in curve]))


def bd_rate(anchor: list[dict], test: list[dict]) -> float | None:
    """Bjøntegaard delta rate of ``test`` against ``anchor``, in percent (negative: fewer bits).

    Each curve's log-rate is interpolated as a function of PSNR and averaged over
    the common PSNR interval; the BD-rate is ``exp(mean difference) - 1``. The
    interpolation is piecewise cubic Hermite (PCHIP) rather than Bjøntegaard's
    single cubic polynomial, as in today's JVET common test conditions: a
    baseline swept over 17 settings spans a range a single cubic fits poorly.

    Args:
        anchor, test: ``[{"bpp", "psnr"}]``, at least 2 points each.

    Returns:
        Percent, or ``None`` when the curves have no common PSNR range or too few points.
    """
    from scipy.interpolate import PchipInterpolator

    fits, ranges = [], []
    for curve in (anchor, test):
        points = sorted((p["psnr"], np.log(p["bpp"])) for p in curve)
        quality = np.array([q for q, _ in points])
        if len(points) < 2 or np.any(np.diff(quality) <= 0):
            return None
        fits.append(PchipInterpolator(quality, [r for _, r in points]))
        ranges.append((quality[0], quality[-1]))
    low, high = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if high <= low:
        return None
    mean_diff = [fit.integrate(low, high) / (high - low) for fit in fits]
    return float((np.exp(mean_diff[1] - mean_diff[0]) - 1.0) * 100.0)
