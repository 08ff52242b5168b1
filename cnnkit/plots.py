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

# Misclassified examples a grid shows: enough to see the typical confusions.
MISCLASSIFIED_SHOWN = 36


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
    *,
    misclassified: int,
    tested: int,
) -> None:
    """A grid of misclassified images captioned "true -> predicted".

    The tiles are pasted into one mosaic drawn with a single ``imshow``: a
    subplot per image costs seconds of matplotlib time per plot.

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
    count = len(images)
    cols = max(1, min(6, count))
    rows = max(1, -(-count // cols))
    height, width, channels = images.shape[1:] if count else (1, 1, 1)
    pad = max(1, height // 8)
    # White gaps between tiles; grey tiles are spread over RGB.
    mosaic = np.ones((rows * (height + pad) + pad, cols * (width + pad) + pad, 3))
    fig, ax = plt.subplots(figsize=(1.6 * cols + 0.4, 1.8 * rows + 0.6))
    ax.axis("off")
    corners = [(pad + (k // cols) * (height + pad), pad + (k % cols) * (width + pad)) for k in range(count)]
    for (top, left), image in zip(corners, images):
        mosaic[top : top + height, left : left + width] = np.clip(image, 0, 1)[..., :3] if channels >= 3 else np.clip(image[..., :1], 0, 1)
    ax.imshow(mosaic, interpolation="nearest")
    for (top, left), true, pred in zip(corners, y_true, y_pred):
        ax.text(left + width / 2, top - pad / 2, f"{classes[true]} -> {classes[pred]}", ha="center", va="bottom", fontsize=8)
    if not count:
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"misclassified: {misclassified} of {tested} (true -> predicted)", fontsize=10)
    _save(fig, path)
