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
    """A grid of up to ``limit`` misclassified images titled "true -> predicted".

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
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if not len(shown):
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for ax, i in zip(axes.flat, shown):
        picture = np.clip(images[i], 0, 1)
        ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{classes[y_true[i]]} -> {classes[y_pred[i]]}", fontsize=9)
    fig.suptitle(f"misclassified: {len(wrong)} of {len(y_true)} (true -> predicted)")
    _save(fig, path)
    return int(len(wrong))
