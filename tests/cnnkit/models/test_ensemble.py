"""cnnkit.models.average_ensemble: one model that averages its members' probabilities."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cnnkit import models
from cnnkit.errors import InputError


def test_the_output_is_the_mean_of_the_members_and_survives_save_and_load(tmp_path):
    members = [models.build("dscnn", (20, 12, 1), 4, conv=conv) for conv in ("keras", "handgrad")]
    ensemble = models.average_ensemble(members)
    x = np.random.default_rng(0).normal(size=(3, 20, 12, 1)).astype(np.float32)
    expected = (members[0].predict(x, verbose=0) + members[1].predict(x, verbose=0)) / 2
    np.testing.assert_allclose(ensemble.predict(x, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(ensemble.predict(x, verbose=0).sum(axis=1), 1.0, atol=1e-5)
    assert [layer.name for layer in ensemble.layers] == ["input", "member0", "member1", "predictions"]
    ensemble.save(tmp_path / "ensemble.keras")
    reloaded = keras.saving.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), ensemble.predict(x, verbose=0))


def test_members_must_agree_and_be_at_least_two():
    one = models.build("dscnn", (20, 12, 1), 4)
    with pytest.raises(InputError, match="at least 2 members, got 1"):
        models.average_ensemble([one])
    with pytest.raises(InputError, match=r"ensemble member 1: input \(20, 12, 1\) -> 5 classes, expected \(20, 12, 1\) -> 4"):
        models.average_ensemble([one, models.build("dscnn", (20, 12, 1), 5)])
