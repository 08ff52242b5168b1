"""PNG plots of a run (training curves, the confusion matrix, misclassified examples) and of what a network sees.

Each function writes its PNG atomically (temporary file, then rename) and
uses matplotlib's non-interactive Agg backend, so it works without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402

from cnnkit import runs  # noqa: E402

# Misclassified examples a grid shows: enough to see the typical confusions.
MISCLASSIFIED_SHOWN = 36


def _save(fig, path: str | os.PathLike) -> None:
    with runs.atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def training_curves(history: Sequence[dict], path: str | os.PathLike, metrics: Sequence[str] = ("loss", "accuracy")) -> None:
    """Each of ``metrics`` per epoch, training and validation, from ``history.csv`` rows."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    epochs = [int(row["epoch"]) + 1 for row in history]
    for ax, metric in zip(axes[0], metrics):
        for prefix, style in (("", "-o"), ("val_", "--o")):
            values = [row.get(prefix + metric) for row in history]
            if values and all(isinstance(v, (int, float)) for v in values):
                ax.plot(epochs, values, style, label=(prefix or "train_").rstrip("_") + " " + metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    _save(fig, path)


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: str | os.PathLike) -> None:
    """The confusion matrix (rows: true class, columns: predicted), counts written in the cells when it is small."""
    matrix = np.asarray(matrix)
    n = len(classes)
    side = min(max(4.0, 0.5 * n + 2), 20.0)
    fig, ax = plt.subplots(figsize=(side, side))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = np.arange(n)
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=90 if n > 10 else 0)
    ax.set_yticks(ticks, [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8, color="white" if matrix[i, j] > threshold else "black")
    _save(fig, path)


def misclassified_grid(
    images: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike,
    *,
    misclassified: int,
    tested: int,
) -> None:
    """A grid of misclassified images captioned "true -> predicted".

    Args:
        images: ``(k, height, width, channels)`` float in [0, 1], the misclassified examples to show
            (at most a few dozen: ``MISCLASSIFIED_SHOWN``).
        y_true: ``(k,)`` their true labels.
        y_pred: ``(k,)`` their predicted labels.
        classes: class names.
        path: the PNG to write (written even when nothing is misclassified, saying so).
        misclassified: how many examples were misclassified in all, for the title.
        tested: how many examples were tested, for the title.
    """
    captions = [f"{classes[true]} -> {classes[pred]}" for true, pred in zip(y_true, y_pred)]
    picture_grid(
        _as_rgb(images),
        captions,
        path,
        title=f"misclassified: {misclassified} of {tested} (true -> predicted)",
        cols=6,
        empty="no misclassified images",
    )


def picture_grid(
    tiles: np.ndarray,
    captions: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str,
    cols: int,
    empty: str = "nothing to show",
    tile_inches: float = 1.6,
) -> None:
    """Captioned tiles in rows of ``cols``, pasted into one mosaic drawn with a single ``imshow``.

    A subplot per tile costs seconds of matplotlib time per plot; one mosaic
    with white gaps costs milliseconds.

    Args:
        tiles: ``(k, height, width, 3)`` RGB in [0, 1].
        captions: ``k`` captions, written above the tiles.
        path: the PNG to write (also when ``k == 0``, saying ``empty``).
        title: the figure's title.
        cols: tiles per row at most.
        empty: the text of a figure without tiles.
        tile_inches: the width of one tile in the figure.
    """
    count = len(tiles)
    cols = max(1, min(cols, count))
    rows = max(1, -(-count // cols))
    height, width = tiles.shape[1:3] if count else (1, 1)
    # Gaps wide enough for the captions also between wide, flat tiles (spectrograms).
    pad = max(1, max(height, width) // 6)
    mosaic = np.ones((rows * (height + pad) + pad, cols * (width + pad) + pad, 3))
    aspect = height / width
    fig, ax = plt.subplots(figsize=(tile_inches * cols + 0.4, (tile_inches * aspect + 0.2) * rows + 0.6))
    ax.axis("off")
    corners = [(pad + (k // cols) * (height + pad), pad + (k % cols) * (width + pad)) for k in range(count)]
    for (top, left), tile in zip(corners, tiles):
        mosaic[top : top + height, left : left + width] = np.clip(tile, 0, 1)
    ax.imshow(mosaic, interpolation="nearest")
    for (top, left), caption in zip(corners, captions):
        ax.text(left + width / 2, top - pad / 2, caption, ha="center", va="bottom", fontsize=8)
    if not count:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    _save(fig, path)


def _as_rgb(images: np.ndarray) -> np.ndarray:
    """``(k, h, w, 1 or 3+)`` in [0, 1] -> ``(k, h, w, 3)``: grey spread over RGB, extra channels dropped."""
    images = np.clip(images, 0, 1)
    return images[..., :3] if images.shape[-1] >= 3 else np.repeat(images[..., :1], 3, axis=-1)


# --- what a network sees (cnnkit.explain) ----------------------------------------


def kernel_grid(kernels: np.ndarray, path: str | os.PathLike, *, title: str, time_major: bool = False) -> None:
    """The first convolution's kernels as pictures, one tile per output channel.

    Grey inputs are drawn grey with 0 at mid-grey, each kernel scaled by its
    own largest magnitude, so an edge detector shows as a dark and a light side;
    RGB kernels are drawn in colour, min-max scaled per kernel (as Krizhevsky
    et al. 2012 show AlexNet's); other channel counts are averaged over inputs.

    Args:
        kernels: ``(kernel_height, kernel_width, in_channels, out_channels)``.
        path: the PNG to write.
        title: the figure's title.
        time_major: the kernels run over ``(frames, bins)`` of a spectrogram: drawn
            with time to the right and low frequencies at the bottom.
    """
    k = np.moveaxis(np.asarray(kernels, np.float64), -1, 0)  # (out, kh, kw, in)
    if time_major:
        k = np.flip(np.swapaxes(k, 1, 2), axis=1)
    if k.shape[-1] == 3:
        low, high = k.min(axis=(1, 2, 3), keepdims=True), k.max(axis=(1, 2, 3), keepdims=True)
        tiles = (k - low) / np.maximum(high - low, 1e-12)
    else:
        grey = k.mean(axis=-1, keepdims=True)
        tiles = np.repeat(0.5 + 0.5 * grey / np.maximum(np.abs(grey).max(axis=(1, 2, 3), keepdims=True), 1e-12), 3, axis=-1)
    picture_grid(tiles, [str(i) for i in range(len(tiles))], path, title=title, cols=16, tile_inches=0.6)


def feature_map_grid(
    maps: np.ndarray, channels: Sequence[int], path: str | os.PathLike, *, title: str, time_major: bool = False
) -> None:
    """Feature maps of one convolution block, in the order given, on one colour scale (so strength compares).

    Args:
        maps: ``(height, width, channels)`` activations of one input.
        channels: which channels to draw, in order (strongest first).
        path: the PNG to write.
        title: the figure's title.
        time_major: the maps are ``(frames, bins)`` of a spectrogram: drawn with
            time to the right and low frequencies at the bottom.
    """
    chosen = np.moveaxis(np.asarray(maps, np.float64)[..., list(channels)], -1, 0)
    if time_major:
        chosen = np.flip(np.swapaxes(chosen, 1, 2), axis=1)
    low, high = chosen.min(initial=0.0), chosen.max(initial=0.0)
    tiles = matplotlib.colormaps["viridis"]((chosen - low) / max(high - low, 1e-12))[..., :3]
    picture_grid(tiles, [f"ch {c}" for c in channels], path, title=title, cols=8, tile_inches=1.2)


def saliency(
    picture: np.ndarray,
    maps: Sequence[tuple[str, np.ndarray]],
    path: str | os.PathLike,
    *,
    times: np.ndarray | None = None,
    frequencies: np.ndarray | None = None,
) -> None:
    """The input, then each class-saliency map laid over it.

    Args:
        picture: an image ``(height, width, channels)`` in [0, 1], or with
            ``times`` a spectrogram ``(frames, bins)``.
        maps: ``(caption, map)`` pairs, each map shaped like the picture's first
            two axes, in [0, 1].
        path: the PNG to write.
        times: for a spectrogram, the centre of each frame in seconds (see :func:`spectrogram`).
        frequencies: for a spectrogram, the centre of each bin in Hz, or ``None`` for cepstral coefficients.
    """
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(3.6 * (1 + len(maps)), 3.4), squeeze=False)
    for ax, (caption, overlay) in zip(axes[0], [("input", None), *maps]):
        if times is not None:
            _draw_spectrogram(ax, picture, times, frequencies, overlay)
        else:
            grey = picture.shape[-1] == 1
            ax.imshow(picture[..., 0] if grey else picture[..., :3], cmap="gray" if grey else None, vmin=0, vmax=1)
            if overlay is not None:
                ax.imshow(overlay, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.axis("off")
        ax.set_title(caption, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def spectrogram(
    features: np.ndarray, times: np.ndarray, frequencies: np.ndarray | None, path: str | os.PathLike, *, title: str
) -> None:
    """A spectrogram with time (s) across and frequency (Hz) up.

    Args:
        features: ``(frames, bins)``.
        times: ``(frames,)`` centre of each frame, seconds.
        frequencies: ``(bins,)`` centre of each bin, Hz (mel bands are not
            evenly spaced: the ticks name the bands they sit on), or ``None``
            for MFCCs, whose axis is the cepstral coefficient.
        path: the PNG to write.
        title: the figure's title.
    """
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    _draw_spectrogram(ax, features, times, frequencies)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _draw_spectrogram(ax, features: np.ndarray, times: np.ndarray, frequencies: np.ndarray | None, overlay=None) -> None:
    frames, bins = features.shape[:2]
    step = (times[1] - times[0]) if frames > 1 else 0.01
    extent = (times[0] - step / 2, times[-1] + step / 2, -0.5, bins - 0.5)
    ax.imshow(np.asarray(features).reshape(frames, bins).T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    if overlay is not None:
        ax.imshow(np.asarray(overlay).T, origin="lower", aspect="auto", extent=extent, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    ax.set_xlabel("time (s)")
    ticks = np.unique(np.linspace(0, bins - 1, min(bins, 6)).round().astype(int))
    if frequencies is None:
        ax.set_ylabel("cepstral coefficient")
    else:
        ax.set_yticks(ticks, [f"{frequencies[t]:.0f}" for t in ticks])
        ax.set_ylabel("frequency (Hz)")
