"""Stratified, seeded splits."""

import numpy as np
import pytest

from cnnkit.data.splits import stratified_indices
from cnnkit.errors import InputError


def test_fractions_strata_and_seed():
    labels = np.repeat(np.arange(4), 50)
    parts = stratified_indices(labels, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert {k: len(v) for k, v in parts.items()} == {"test": 40, "val": 20, "train": 140}
    assert sorted(np.concatenate(list(parts.values()))) == list(range(200))  # a partition
    for part, size in (("test", 10), ("val", 5)):
        np.testing.assert_array_equal(np.bincount(labels[parts[part]]), [size] * 4)
    again = stratified_indices(labels, val_fraction=0.1, test_fraction=0.2, seed=3)
    other = stratified_indices(labels, val_fraction=0.1, test_fraction=0.2, seed=4)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    assert not np.array_equal(parts["test"], other["test"])


def test_zero_fraction_gives_empty_part():
    parts = stratified_indices(np.repeat([0, 1], 5), val_fraction=0.0, test_fraction=0.2, seed=0)
    assert len(parts["val"]) == 0 and len(parts["test"]) == 2


@pytest.mark.parametrize(
    "val, test, message",
    [(0.5, 0.5, "must leave examples"), (-0.1, 0.2, "--val-fraction -0.1"), (0.1, 1.0, "--test-fraction 1.0")],
)
def test_bad_fractions(val, test, message):
    with pytest.raises(InputError, match=message):
        stratified_indices(np.repeat([0, 1], 10), val_fraction=val, test_fraction=test, seed=0)


def test_class_too_small():
    with pytest.raises(InputError, match="cannot split by class"):
        stratified_indices(np.array([0, 0, 0, 0, 1]), val_fraction=0.0, test_fraction=0.4, seed=0)
