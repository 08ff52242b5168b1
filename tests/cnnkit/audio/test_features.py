"""cnnkit.audio.features: the tf.signal front end against librosa, shapes, and per-utterance independence."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import soundfile as sf
import soxr
import tensorflow as tf

from cnnkit.audio.features import KINDS, FeatureSpec, librosa_features, mel_matrix, normalise, tf_features
from cnnkit.errors import InputError

# Log-mel and STFT are compared in dB, where the issue asks for 0.1 dB. MFCCs are
# orthonormal DCTs of the log-mel, so an error e per band moves a coefficient by at
# most e * sqrt(n_mels); 0.05 (cepstral units, dB scale) leaves a wide margin over
# the ~1e-4 measured, and would catch any scaling or DCT-type mismatch.
TOLERANCE = {"stft": 0.1, "logmel": 0.1, "mfcc": 0.05}


def _fsdd_clips(folder, count: int = 6) -> list[np.ndarray]:
    """A few real FSDD recordings resampled to 16 kHz and padded/cropped to 1 s, as the pipeline does."""
    clips = []
    for path in sorted(folder.glob("*.wav"))[:: 2500 // count][:count]:
        audio, rate = sf.read(path, dtype="float32")
        audio = soxr.resample(audio, rate, 16000).astype(np.float32)
        clips.append(np.pad(audio, (0, max(0, 16000 - len(audio))))[:16000])
    return clips


@pytest.mark.parametrize("kind", KINDS)
def test_tf_matches_librosa_on_real_clips(fsdd_dir, kind):
    spec = FeatureSpec(kind=kind)
    clips = _fsdd_clips(fsdd_dir)
    batch = tf_features(tf.constant(np.stack(clips)), spec).numpy()
    for clip, ours in zip(clips, batch):
        reference = librosa_features(clip, spec)
        assert ours.shape == reference.shape == (97, spec.bins)
        assert np.abs(ours - reference).max() < TOLERANCE[kind]


def test_mel_matrix_is_librosas_slaney_filterbank():
    spec = FeatureSpec(n_mels=64, fmin=0.0, fmax=7600.0)
    expected = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=0.0, fmax=7600.0, norm="slaney", htk=False)
    np.testing.assert_allclose(mel_matrix(spec), expected.T, rtol=1e-6)


def test_frames_and_shape_follow_window_and_hop():
    spec = FeatureSpec(kind="mfcc", sample_rate=8000, window_ms=32, hop_ms=16, n_mfcc=10)
    assert (spec.win_length, spec.n_fft, spec.hop_length) == (256, 256, 128)
    assert FeatureSpec().n_fft == 512 and FeatureSpec(kind="stft").bins == 257
    assert spec.shape(8000) == (1 + (8000 - 256) // 128, 10, 1)
    assert tf_features(tf.zeros([3, 8000]), spec).shape == (3, 61, 10)
    with pytest.raises(InputError, match="shorter than one"):
        spec.frames(100)


def test_features_do_not_depend_on_batch_mates():
    """Keras' MelSpectrogram clips top_db against the batch; ours uses each utterance's own peak."""
    rng = np.random.default_rng(0)
    quiet = (0.001 * rng.standard_normal(4000)).astype(np.float32)
    loud = np.sin(2 * np.pi * 440 * np.arange(4000) / 16000).astype(np.float32)
    spec = FeatureSpec(kind="logmel", top_db=40.0)
    alone = tf_features(tf.constant(quiet[None]), spec)
    together = tf_features(tf.constant(np.stack([quiet, loud])), spec)
    np.testing.assert_allclose(together[0], alone[0], atol=1e-4)
    np.testing.assert_allclose(normalise(together)[0], normalise(alone)[0], atol=1e-4)
    assert together[1].numpy().max() - together[1].numpy().min() == pytest.approx(40.0, abs=1e-3)


def test_normalise_gives_zero_mean_unit_variance_per_utterance():
    x = tf.constant(np.random.default_rng(1).normal(5.0, 3.0, size=(2, 20, 8)), tf.float32)
    y = normalise(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_bad_settings_are_input_errors():
    with pytest.raises(InputError, match="--features 'wavelet'"):
        FeatureSpec(kind="wavelet")
    with pytest.raises(InputError, match="--n-mels 2"):
        FeatureSpec(n_mels=2)
    with pytest.raises(InputError, match="--n-mfcc 50"):
        FeatureSpec(n_mels=40, n_mfcc=50)
    with pytest.raises(InputError, match=r"--fmax 9000: .*at most half the sample rate \(8000 Hz\)"):
        FeatureSpec(fmax=9000.0)
    with pytest.raises(InputError, match="--fmax 10: expected above fmin"):
        FeatureSpec(fmax=10.0)


def test_axes_name_the_time_of_each_frame_and_the_frequency_of_each_bin():
    spec = FeatureSpec(kind="logmel", sample_rate=16000, n_mels=40, fmax=7000.0)
    # Frame t covers samples [160 t, 160 t + 512): its centre is at (160 t + 256) / 16000 s.
    np.testing.assert_allclose(spec.frame_times(3), [0.016, 0.026, 0.036])
    # Each mel band's label is where its triangular filter peaks (to within one FFT bin).
    peaks = mel_matrix(spec).argmax(axis=0) * spec.sample_rate / spec.n_fft
    np.testing.assert_allclose(spec.bin_frequencies(), peaks, atol=spec.sample_rate / spec.n_fft)
    assert spec.bin_frequencies()[-1] < 7000.0 and spec.bin_frequencies()[0] > spec.fmin
    stft = FeatureSpec(kind="stft", sample_rate=8000)
    assert stft.bin_frequencies()[[0, 1, -1]].tolist() == [0.0, 8000 / 256, 4000.0]
    assert FeatureSpec(kind="mfcc").bin_frequencies() is None  # cepstral coefficients have no frequency
