"""Seeded, stratified train/validation/test splits for datasets that ship without them."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from cnnkit.errors import InputError


def stratified_indices(
    labels: np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    name: str = "dataset",
) -> dict[str, np.ndarray]:
    """Split example indices into ``train``/``val``/``test`` with each class in the same proportion.

    The same ``labels`` and ``seed`` always give the same split. Fractions are
    of the whole dataset; a fraction of 0 gives an empty part.

    Args:
        labels: ``(n,)`` integer class labels.
        val_fraction: share of the examples for validation, in [0, 1).
        test_fraction: share of the examples for testing, in [0, 1).
        seed: seed of the shuffle.
        name: names the dataset in error messages.

    Returns:
        ``{"train": idx, "val": idx, "test": idx}``, sorted index arrays.

    Raises:
        InputError: fractions outside [0, 1) or summing to 1 or more, or a class
            too small to appear in every non-empty part.
    """
    for option, value in (("--val-fraction", val_fraction), ("--test-fraction", test_fraction)):
        if not 0 <= value < 1:
            raise InputError(f"{option} {value}: expected a fraction in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise InputError(f"--val-fraction {val_fraction} + --test-fraction {test_fraction}: must leave examples to train on")
    rest = np.arange(len(labels))
    parts = {}
    try:
        # Test first, then validation as a share of what is left, so each
        # fraction is of the whole dataset.
        for part, fraction in (("test", test_fraction), ("val", val_fraction / (1 - test_fraction))):
            if fraction == 0:
                parts[part] = rest[:0]
                continue
            rest, parts[part] = train_test_split(rest, test_size=fraction, random_state=seed, stratify=labels[rest])
    except ValueError as error:
        raise InputError(f"{name}: cannot split by class ({error}); use more examples per class or smaller fractions") from None
    parts["train"] = rest
    return {k: np.sort(v) for k, v in parts.items()}
