"""cnnkit.data.speech tfds sources, through tfds.testing.mock_data (nothing is downloaded)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from cnnkit.data import speech
from cnnkit.errors import InputError

USE_CODE = tfds.testing.MockPolicy.USE_CODE


def test_speech_commands_keeps_its_official_splits_and_12_classes(tmp_path):
    with tfds.testing.mock_data(num_examples=6, policy=USE_CODE):
        data = speech.load("tfds:speech_commands", data_dir=str(tmp_path))
        assert data.classes[-2:] == ["_silence_", "_unknown_"] and len(data.classes) == 12
        for part in (data.train, data.val, data.test):
            examples = list(part.dataset)
            assert len(examples) == part.size == 6 and part.speakers is None
            for waveform, label in examples:
                assert waveform.dtype == tf.float32 and np.abs(waveform.numpy()).max() <= 1.0
                assert 0 <= int(label) < 12
        with pytest.raises(InputError, match="only its official"):
            speech.load("tfds:speech_commands", split="random", data_dir=str(tmp_path))


def test_speech_commands_resamples_in_the_graph(tmp_path):
    with tfds.testing.mock_data(num_examples=2, policy=USE_CODE):
        native = [w.numpy() for w, _ in speech.load("tfds:speech_commands", data_dir=str(tmp_path)).test.dataset]
        half = [w.numpy() for w, _ in speech.load("tfds:speech_commands", sample_rate=8000, data_dir=str(tmp_path)).test.dataset]
    assert [len(h) for h in half] == [round(len(n) / 2) for n in native]


def _spoken_digit(self, *args, **kwargs):
    """FSDD-named examples: digits 0-9, speakers ann/bob, takes 0-6, 8 kHz int audio; plus one bad name."""
    rng = np.random.default_rng(0)
    names = [f"{d}_{s}_{t}.wav" for d in range(10) for s in ("ann", "bob") for t in range(7)] + ["junk.wav"]

    def examples():
        for name in names:
            audio = (8000 * np.sin(np.arange(4000) * rng.uniform(0.05, 0.5))).astype(np.int64)
            yield {"audio": audio, "label": int(name[0]) if name[0].isdigit() else 0, "audio/filename": name}

    return tf.data.Dataset.from_generator(
        examples,
        output_signature={
            "audio": tf.TensorSpec([None], tf.int64),
            "label": tf.TensorSpec([], tf.int64),
            "audio/filename": tf.TensorSpec([], tf.string),
        },
    )


def test_spoken_digit_is_split_like_fsdd(tmp_path):
    with tfds.testing.mock_data(as_dataset_fn=_spoken_digit, policy=USE_CODE):
        official = speech.load("tfds:spoken_digit", data_dir=str(tmp_path))
        by_speaker = speech.load("tfds:spoken_digit", split="speaker:bob", data_dir=str(tmp_path))
    assert official.test.size == 10 * 2 * 5  # takes 0-4
    assert official.train.size + official.val.size == 10 * 2 * 2
    assert [p for p, _ in official.skipped] == ["junk.wav"]
    assert set(by_speaker.test.speakers) == {"bob"} and by_speaker.test.size == 70
    # 8 kHz audio resampled to 16 kHz, scaled from the int16 range.
    waveform, label = next(iter(official.test.dataset))
    assert len(waveform) == 8000 and int(label) == 0
    assert 0.2 < np.abs(waveform.numpy()).max() <= 0.3
