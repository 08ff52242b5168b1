"""Classification metrics from predicted probabilities: accuracy, loss, per-class P/R/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from cnnkit.errors import InputError


def class_index_map(names: Sequence[str], run_classes: Sequence[str], dataset: str) -> np.ndarray:
    """Index array ``(len(names),)`` from a dataset's class indices to a trained run's.

    Lets a run be evaluated on another source of the same labels, listed in
    another order.

    Raises:
        InputError: a class of the dataset that the run never learned.
    """
    unknown = [n for n in names if n not in run_classes]
    if unknown:
        raise InputError(f"--dataset '{dataset}': classes {unknown[:10]} are not among the run's classes {list(run_classes)[:20]}")
    return np.asarray([list(run_classes).index(n) for n in names], np.int64)


def classification_report(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict:
    """Summarise a classifier's predictions.

    Args:
        y_true: ``(n,)`` integer labels in ``[0, len(classes))``.
        probs: ``(n, len(classes))`` predicted class probabilities (softmax outputs).
        classes: class names.

    Returns:
        ``{"n", "accuracy", "loss", "per_class": {name: {"precision", "recall",
        "f1", "support"}}, "confusion_matrix"}``. ``loss`` is the mean
        cross-entropy ``-log p(y_true)`` (probabilities clipped at 1e-7, as
        Keras does); ``confusion_matrix[i][j]`` counts examples of class ``i``
        predicted as ``j``. Precision of a class never predicted is 0.
    """
    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float64)
    y_pred = probs.argmax(axis=1)
    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    picked = np.clip(probs[np.arange(len(y_true)), y_true], 1e-7, 1.0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
        "loss": float(-np.mean(np.log(picked))) if len(y_true) else float("nan"),
        "per_class": {
            str(name): {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def test_summary(report: dict) -> dict:
    """The ``metrics.json`` entries of a run's test split, from :func:`classification_report`'s ``report``."""
    return {
        "test_accuracy": report["accuracy"],
        "test_loss": report["loss"],
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
    }


def top_k(probs: np.ndarray, classes: Sequence[str], k: int) -> list[list[dict]]:
    """The ``k`` most probable classes of each row of ``probs`` ``(n, classes)``, best first.

    Returns:
        One list per row of ``{"label": name, "probability": p}``.
    """
    order = np.argsort(-np.asarray(probs), axis=1, kind="stable")[:, :k]
    return [[{"label": str(classes[j]), "probability": float(row[j])} for j in idx] for row, idx in zip(probs, order)]
