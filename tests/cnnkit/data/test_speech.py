"""cnnkit.data.speech: WAV reading in every format, bad files, FSDD and folder sources, splits, batches."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from cnnkit.audio import augment
from cnnkit.audio.features import FeatureSpec, normalise, tf_features_from_power, tf_power
from cnnkit.data import speech
from cnnkit.errors import InputError

RATE = 16000

# (sample rate, channels, soundfile subtype): every format the issue names.
FORMATS = {
    "8bit": (16000, 1, "PCM_U8"),
    "16bit": (16000, 1, "PCM_16"),
    "24bit": (16000, 1, "PCM_24"),
    "32bit": (16000, 1, "PCM_32"),
    "float": (16000, 1, "FLOAT"),
    "stereo": (16000, 2, "PCM_16"),
    "8khz": (8000, 1, "PCM_16"),
    "44khz": (44100, 1, "PCM_16"),
}


def _tone(rate: int, freq: float, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def _write(path, rate=RATE, channels=1, subtype="PCM_16", freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _tone(rate, freq, channels=channels), rate, subtype=subtype, format="WAV")
    return path


@pytest.mark.parametrize("name", FORMATS)
def test_read_wav_any_format_gives_mono_at_the_rate(tmp_path, name):
    rate, channels, subtype = FORMATS[name]
    wave = speech.read_wav(_write(tmp_path / f"{name}.wav", rate, channels, subtype), RATE)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == pytest.approx(RATE / 2, abs=2)
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) * RATE / len(wave) == pytest.approx(440.0, abs=3)
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.02)  # amplitude survives bit depth, downmix and resampling


def _bad_files(folder):
    """Each bad kind of .wav the issue lists, with the words its error message must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "text.wav").write_text("not audio at all")
    flac = folder / "flac.wav"
    sf.write(flac, _tone(RATE, 300), RATE, format="FLAC")
    truncated = folder / "truncated.wav"
    _write(truncated)
    truncated.write_bytes(truncated.read_bytes()[:20])
    sf.write(folder / "empty.wav", np.zeros(0), RATE, format="WAV")
    sf.write(folder / "silent.wav", np.zeros(RATE), RATE, format="WAV")
    # 601 s at 1 kHz, 8-bit: over the 10-minute limit in 600 kB.
    sf.write(folder / "long.wav", 0.1 * np.ones(601_000), 1000, subtype="PCM_U8", format="WAV")
    return {
        "text.wav": "not a readable WAV",
        "flac.wav": "FLAC file, not WAV",
        "truncated.wav": "not a readable WAV",
        "empty.wav": "no samples",
        "silent.wav": "pure silence",
        "long.wav": "601 s long",
    }


def test_bad_files_named_by_the_user_are_one_line_input_errors(tmp_path):
    for name, words in _bad_files(tmp_path).items():
        with pytest.raises(InputError, match=words) as error:
            speech.read_wav(tmp_path / name, RATE)
        assert name in str(error.value) and "\n" not in str(error.value)


def test_folder_source_reads_every_format_and_counts_bad_files(tmp_path):
    for label, freq in (("high", 1200.0), ("low", 300.0)):
        for name, (rate, channels, subtype) in FORMATS.items():
            _write(tmp_path / label / f"{name}.wav", rate, channels, subtype, freq)
    bad = _bad_files(tmp_path / "low" / "bad")
    data = speech.load(f"folder:{tmp_path}", split="random", seed=0)
    assert data.classes == ["high", "low"]
    assert data.train.size + data.val.size + data.test.size == 2 * len(FORMATS)
    assert sorted(p.split("/")[-1] for p, _ in data.skipped) == sorted(bad)
    assert data.test.speakers is None
    labels = [int(y) for _, y in data.test.dataset]
    assert sorted(set(labels)) == [0, 1]  # the stratified split keeps each label in test


def test_folder_label_with_fewer_than_two_files_is_an_error(tmp_path):
    _write(tmp_path / "yes" / "a.wav")
    _write(tmp_path / "yes" / "b.wav")
    _write(tmp_path / "no" / "a.wav")
    (tmp_path / "no" / "b.wav").write_text("junk")
    with pytest.raises(InputError, match="label folder 'no' has 1 readable WAV"):
        speech.load(f"folder:{tmp_path}")


def test_folder_with_two_files_per_label_splits(tmp_path):
    for label in ("yes", "no", "up"):
        for i in range(2):
            _write(tmp_path / label / f"{i}.wav", freq=200.0 + 100 * i)
    data = speech.load(f"folder:{tmp_path}")
    assert (data.train.size, data.test.size) == (3, 3)


@pytest.fixture
def fsdd_subset(fsdd_dir, tmp_path):
    """Links to 60 real FSDD files (3 speakers, digits 0-9, takes 3-6) plus one badly named file."""
    folder = tmp_path / "fsdd"
    folder.mkdir()
    for speaker in ("george", "jackson", "theo"):
        for digit in range(10):
            for take in (3, 4, 5, 6) if digit < 5 else (4, 5):
                name = f"{digit}_{speaker}_{take}.wav"
                (folder / name).symlink_to(fsdd_dir / name)
    (folder / "seven_bob.wav").symlink_to(fsdd_dir / "7_theo_1.wav")
    return folder


def test_fsdd_official_split_puts_takes_0_to_4_in_test(fsdd_subset):
    data = speech.load(f"fsdd:{fsdd_subset}", split="official", sample_rate=8000)
    assert data.classes[7] == "seven"
    assert data.test.size == 3 * (5 * 2 + 5 * 1)  # takes 3, 4 of digits 0-4; take 4 of digits 5-9
    assert data.train.size + data.val.size == 3 * (5 * 2 + 5 * 1)
    assert [(path, reason) for path, reason in data.skipped] == [
        (str(fsdd_subset / "seven_bob.wav"), f"'{fsdd_subset / 'seven_bob.wav'}': name does not parse as {{digit}}_{{speaker}}_{{take}}.wav")
    ]
    assert sorted(set(data.test.speakers)) == ["george", "jackson", "theo"]
    # 8 kHz in, 8 kHz out: the clips are the files' own samples.
    first, _ = next(iter(data.test.dataset))
    np.testing.assert_allclose(first.numpy(), sf.read(fsdd_subset / "0_george_3.wav", dtype="float32")[0])


def test_fsdd_speaker_split_holds_those_speakers_out(fsdd_subset):
    data = speech.load(f"fsdd:{fsdd_subset}", split="speaker:Theo,george")
    assert set(data.test.speakers) == {"theo", "george"} and data.test.size == 60
    assert data.train.size + data.val.size == 30
    with pytest.raises(InputError, match="unknown speaker bob; expected some of: george, jackson, theo"):
        speech.load(f"fsdd:{fsdd_subset}", split="speaker:bob")
    with pytest.raises(InputError, match="nothing is left to train on"):
        speech.load(f"fsdd:{fsdd_subset}", split="speaker:george,jackson,theo")


@pytest.mark.parametrize(("spec", "variants"), [("synth-digits", ("m1",)), ("synth-digits:extended", ("m1", "Alicia"))])
def test_synth_digits_extended_trains_on_more_voices_and_tests_on_the_same(monkeypatch, tmp_path, spec, variants):
    # A tiny stand-in for the 72-voice set: the spec must reach the generator as its training voices.
    tiny = functools.partial(speech.synth_speech.load, accents=("en",), train_variants=("m1",), test_variants=("m7",))
    monkeypatch.setattr(speech.synth_speech, "load", tiny)  # a train_variants= in the call overrides the partial's
    monkeypatch.setattr(speech.synth_speech, "EXTENDED_TRAIN_VARIANTS", ("m1", "Alicia"))
    data = speech.load(spec, split="official", sample_rate=8000, cache_dir=tmp_path)
    assert sorted(set(data.train.speakers + data.val.speakers)) == sorted(f"en+{v}" for v in variants)
    assert set(data.test.speakers) == {"en+m7"}


@pytest.mark.parametrize(
    ("spec", "split", "words"),
    [
        ("mp3:x", "auto", "expected one of: synth-digits"),
        ("fsdd:/no/such/dir", "auto", "no such directory"),
        ("folder:{tmp}", "official", "has no official split"),
        ("folder:{tmp}", "speaker:ann", "does not name speakers"),
        ("folder:{tmp}", "halves", "expected auto, official, random"),
    ],
)
def test_bad_specs_and_splits(tmp_path, spec, split, words):
    for label in ("a", "b"):
        for i in range(2):
            _write(tmp_path / label / f"{i}.wav")
    with pytest.raises(InputError, match=words):
        speech.load(spec.format(tmp=tmp_path), split=split)


def test_batches_pad_crop_and_featurise_in_order():
    clips = [np.full(n, 0.1 * (i + 1), np.float32) * np.sin(np.arange(n)) for i, n in enumerate((3000, 8000, 5000))]
    split = speech.from_waveforms(clips, np.array([2, 0, 1]), ["a", "b", "c"])
    spec = FeatureSpec(sample_rate=8000, n_mels=20)
    ds = speech.batches(split, spec, duration=0.5, batch_size=2)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    assert [x.shape for x in xs] == [(2, 47, 20, 1), (1, 47, 20, 1)]
    np.testing.assert_array_equal(np.concatenate(ys), [2, 0, 1])
    x = np.concatenate(xs)
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    reference = speech.batches(split, spec, duration=0.5, batch_size=3, frontend="librosa")
    np.testing.assert_allclose(next(iter(reference))[0].numpy(), x, atol=1e-2)
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in ds]), x)  # second pass, from the cache


def test_a_test_time_view_warps_the_power_spectrum_before_the_features():
    clips = [np.sin(0.05 * np.arange(6000) ** 1.1).astype(np.float32) * 0.3]
    split = speech.from_waveforms(clips, np.array([0]), ["a"])
    spec = FeatureSpec(sample_rate=8000, n_mels=20)
    view = speech.View(warp=1.1, tempo=0.9)
    seen = next(iter(speech.batches(split, spec, duration=0.5, batch_size=1, view=view)))[0]
    power = tf_power(tf.constant(clips[0][1000:5000][None]), spec)  # the centred 0.5 s
    warped = augment.scale_frequency(augment.scale_tempo(power, tf.constant([0.9])), tf.constant([1.1]))
    np.testing.assert_allclose(seen[..., 0], normalise(tf_features_from_power(warped, spec)), atol=1e-4)
    plain = next(iter(speech.batches(split, spec, duration=0.5, batch_size=1, view=speech.View())))[0]
    assert np.abs(plain - seen).max() > 0.1
    with pytest.raises(InputError, match="test-time views work on the power spectrum inside the tf front end"):
        speech.batches(split, spec, duration=0.5, batch_size=1, frontend="librosa", view=view)


def test_evaluation_batches_above_the_cache_budget_are_recomputed(monkeypatch):
    clips = [np.sin(np.arange(n) * 0.01).astype(np.float32) for n in (3000, 9000)]
    split = speech.from_waveforms(clips, np.array([0, 1]))
    spec = FeatureSpec(sample_rate=8000, n_mels=20)
    cached = speech.batches(split, spec, duration=0.5, batch_size=2)
    monkeypatch.setattr(speech, "EVAL_CACHE_BYTES", 0)
    recomputed = speech.batches(split, spec, duration=0.5, batch_size=2)
    assert "CacheDataset" in _stages(cached) and "CacheDataset" not in _stages(recomputed)
    np.testing.assert_array_equal([x.numpy() for x, _ in recomputed], [x.numpy() for x, _ in cached])


def _stages(ds) -> list[str]:
    """Class names of a tf.data pipeline's stages, last first."""
    names = []
    while ds is not None:
        names.append(type(ds).__name__)
        ds = getattr(ds, "_input_dataset", None)
    return names


def test_training_batches_are_augmented_and_seeded():
    clips = [np.sin(np.arange(6000) * 0.05 * (i + 1)).astype(np.float32) for i in range(8)]
    split = speech.from_waveforms(clips, np.arange(8) % 2)
    spec = FeatureSpec(sample_rate=8000, n_mels=20)
    aug = speech.Augmentation(time_shift=0.05, noise_snr=(10.0, 20.0), spec_augment=True, speed_perturb=0.1)

    def first_epoch(seed):
        return np.concatenate([x.numpy() for x, _ in speech.batches(split, spec, duration=0.5, batch_size=4, augmentation=aug, seed=seed)])

    a, b, c = first_epoch(0), first_epoch(0), first_epoch(1)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert (a == 0).any()  # SpecAugment masks
    with pytest.raises(InputError, match="--frontend 'sox'"):
        speech.batches(split, spec, duration=0.5, batch_size=4, frontend="sox")
