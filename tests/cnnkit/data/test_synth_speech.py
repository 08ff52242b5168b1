"""cnnkit.data.synth_speech: eSpeak NG digits, deterministic for a seed, cached, unseen test voices."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import espeakng_loader
import numpy as np
import pytest

from cnnkit.data import synth_speech

TINY = {"accents": ("en", "en-us"), "train_variants": ("m1", "f2"), "test_variants": ("m7",), "sample_rate": 8000}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cache = tmp_path_factory.mktemp("synth")
    return cache, synth_speech.load(cache, seed=3, **TINY)


def test_every_digit_by_every_voice(tiny):
    _, sets = tiny
    waves, labels, speakers = sets["train"]
    assert len(waves) == 2 * 2 * 10
    np.testing.assert_array_equal(np.bincount(labels), [4] * 10)
    assert sorted(set(speakers)) == ["en+f2", "en+m1", "en-us+f2", "en-us+m1"]
    for wave in waves:
        assert wave.dtype == np.float32 and len(wave) >= 8000
        # Speech stands out of the background noise: the loudest 50 ms is well above the quietest.
        frames = np.sqrt(np.mean(wave[: len(wave) // 400 * 400].reshape(-1, 400) ** 2, axis=1))
        assert frames.max() > 3 * np.sort(frames)[2]


def test_test_voices_are_disjoint_from_training_voices(tiny):
    _, sets = tiny
    assert sorted(set(sets["test"][2])) == ["en+m7", "en-us+m7"]
    assert not set(sets["test"][2]) & set(sets["train"][2])
    with pytest.raises(ValueError, match="also train"):
        synth_speech.load("unused", train_variants=("m1", "m7"), test_variants=("m7",))


def test_extended_voices_are_real_espeak_variants_and_none_is_a_test_voice():
    # eSpeak NG falls back to the plain accent for a variant it does not know, which
    # would silently repeat a training voice instead of adding one.
    installed = {p.name for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir()}
    extended = synth_speech.EXTENDED_TRAIN_VARIANTS
    assert set(extended) <= installed
    assert len(set(extended)) == len(extended) == 72
    assert set(synth_speech.TRAIN_VARIANTS) < set(extended)
    assert not set(extended) & set(synth_speech.TEST_VARIANTS)


def test_same_seed_same_samples_and_the_cache_is_reused(tiny, tmp_path, monkeypatch):
    cache, sets = tiny
    again = synth_speech.load(tmp_path, seed=3, **TINY)  # a fresh generation in another folder
    for split in ("train", "test"):
        for a, b in zip(sets[split][0], again[split][0]):
            np.testing.assert_array_equal(a, b)
    other = synth_speech.load(tmp_path, seed=4, **TINY)
    assert not np.array_equal(other["train"][0][0], sets["train"][0][0])
    assert len(list(cache.glob("*.npz"))) == 1

    def no_generation(*_args, **_kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(synth_speech.multiprocessing, "get_context", no_generation)
    cached = synth_speech.load(cache, seed=3, **TINY)
    np.testing.assert_array_equal(cached["test"][0][5], sets["test"][0][5])


def test_a_script_without_a_main_guard_gets_an_error_not_a_hang(tmp_path):
    # The generator runs in a spawned child, which re-imports the calling script:
    # unguarded, the child dies at start-up. multiprocessing.Pool waited forever on that.
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from cnnkit.data import synth_speech\n"
        f"synth_speech.load({str(tmp_path / 'cache')!r}, accents=('en',), train_variants=('m1',), test_variants=('m7',))\n"
    )
    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(repo)}
    )
    assert done.returncode != 0
    assert 'must run its code under `if __name__ == "__main__":`' in done.stderr.splitlines()[-1]
