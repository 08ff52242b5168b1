"""PNG plots of a run: training curves, the confusion matrix, and a grid of misclassified examples.

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


def _save(fig, path: str | os.PathLike) -> None:
    with runs.atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def training_curves(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Loss and accuracy per epoch, training and validation, from ``history.csv`` rows."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [int(row["epoch"]) + 1 for row in history]
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--o")):
            values = [row.get(prefix + metric) for row in history]
            if values and all(isinstance(v, (int, float)) for v in values):
                ax.plot(epochs, values, style, label=(prefix or "train_").rstrip("_") + " " + metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
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
    limit: int = 36,
) -> int:
    """A grid of up to ``limit`` misclassified images captioned "true -> predicted".

    The tiles are pasted into one mosaic drawn with a single ``imshow``: a
    subplot per image costs seconds of matplotlib time per plot.

    Args:
        images: ``(n, height, width, channels)`` float in [0, 1].
        y_true: ``(n,)`` true labels.
        y_pred: ``(n,)`` predicted labels.
        classes: class names.
        path: the PNG to write (written even when nothing is misclassified, saying so).
        limit: most images shown.

    Returns:
        The number of misclassified images (shown or not).
    """
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    shown = wrong[:limit]
    cols = max(1, min(6, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    height, width, channels = images.shape[1:] if len(images) else (1, 1, 1)
    pad = max(1, height // 8)
    mosaic = np.ones((rows * (height + pad) + pad, cols * (width + pad) + pad, 3))
    fig, ax = plt.subplots(figsize=(1.6 * cols + 0.4, 1.8 * rows + 0.6))
    ax.axis("off")
    for k, i in enumerate(shown):
        top, left = pad + (k // cols) * (height + pad), pad + (k % cols) * (width + pad)
        mosaic[top : top + height, left : left + width] = np.clip(images[i], 0, 1)[..., :3] if channels >= 3 else np.clip(images[i][..., :1], 0, 1)
    ax.imshow(mosaic, interpolation="nearest")
    for k, i in enumerate(shown):
        top, left = pad + (k // cols) * (height + pad), pad + (k % cols) * (width + pad)
        ax.text(left + width / 2, top - pad / 2, f"{classes[y_true[i]]} -> {classes[y_pred[i]]}", ha="center", va="bottom", fontsize=8)
    if not len(shown):
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"misclassified: {len(wrong)} of {len(y_true)} (true -> predicted)", fontsize=10)
    _save(fig, path)
    return int(len(wrong))
