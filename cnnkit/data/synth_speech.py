"""Synthetic spoken digits "zero" to "nine" from eSpeak NG: the offline default of train-speech.

eSpeak NG (a formant synthesiser) ships with its voices in the
``espeakng-loader`` wheel; we drive its C API through ctypes in synchronous
mode with a synth callback that collects the 16-bit samples.

Variety comes from 8 English accents x many voice variants (``en-us+m3``,
``en-gb-scotland+f2``, ``en+klatt`` ...), a random speaking rate and pitch per
clip, then random gain, position inside the clip and background noise at a
random SNR. The test voices use variants that no training voice uses, so the
test accuracy is a score on unseen speakers.

Determinism: eSpeak NG keeps hidden state between calls (its random seed and
the waveform generator's phase), which survives ``espeak_Terminate``. The
whole set is therefore generated in a fresh, spawned child process, in a fixed
order, after ``espeak_ng_SetRandSeed(seed)``: the same seed gives the same
samples bit for bit. The result is cached as one ``.npz`` under ``cache_dir``
keyed by every generation parameter.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
import os
import tempfile
import threading
from pathlib import Path

import espeakng_loader
import numpy as np
import soxr

__all__ = ["DIGITS", "ACCENTS", "TRAIN_VARIANTS", "EXTENDED_TRAIN_VARIANTS", "TEST_VARIANTS", "load"]

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en", "en-us", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us-nyc")
TRAIN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "klatt", "klatt2", "klatt3",
    "Alex", "Annie", "boris", "david", "ed", "linda", "max", "paul", "rob", "steph",
)  # fmt: skip
TEST_VARIANTS = ("m7", "m8", "f4", "f5", "klatt4", "Andy", "john", "michel")
# Every other eSpeak NG variant that sounds like a person (robots, whispers and
# effects left out): 72 training voices per accent instead of 22. As extra
# training speakers for FSDD they lifted its hardest unseen speaker most of any
# change we measured (README, "Speech"); the default keeps 22 so the offline
# main job stays a few minutes long.
EXTENDED_TRAIN_VARIANTS = TRAIN_VARIANTS + (
    "Alicia", "Andrea", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee",
    "Marco", "Mario", "Michael", "Mike", "Nguyen", "Reed", "adam", "anika", "antonio", "aunty",
    "belinda", "benjamin", "caleb", "edward", "edward2", "grandma", "grandpa", "gustave", "ian", "iven",
    "iven2", "iven3", "iven4", "klatt5", "klatt6", "marcelo", "miguel", "mike2", "norbert", "pablo",
    "pedro", "quincy", "robert", "sandro", "shelby", "steph2", "steph3", "travis", "victor", "zac",
)  # fmt: skip
CACHE_VERSION = 2  # bump when the generation recipe changes, so old caches are not reused

_ESPEAK_RATE = 22050  # eSpeak NG's fixed output rate
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_RATE, _PITCH = 1, 3  # espeak_PARAMETER enum values
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# One generation at a time per process: the parent waits for its child.
_LOCK = threading.Lock()


class _Espeak:
    """The eSpeak NG library, initialised for synchronous synthesis into Python."""

    def __init__(self, seed: int):
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate != _ESPEAK_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}; expected sample rate {_ESPEAK_RATE}")
        self._chunks: list[np.ndarray] = []
        # Kept on self: ctypes does not hold a reference, and a collected callback crashes the library.
        self._callback = _SYNTH_CALLBACK(self._collect)
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_ng_SetRandSeed(seed)

    def _collect(self, wav, num_samples, _events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # 0 = keep synthesising

    def say(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        """``text`` spoken by ``voice`` at ``rate`` words/min and ``pitch`` (0-100): ``(samples,)`` int16 at 22.05 kHz."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice '{voice}'")
        self.lib.espeak_SetParameter(_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PITCH, pitch, 0)
        self._chunks = []
        data = text.encode() + b"\0"
        status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, 0, None, None)
        if status != 0 or not self._chunks:
            raise RuntimeError(f"espeak_Synth('{text}', voice '{voice}') failed with status {status}")
        return np.concatenate(self._chunks)


def _coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White noise blended with brown (integrated) noise in a random proportion, unit RMS."""
    white = rng.standard_normal(n)
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.linspace(brown[0], brown[-1], n)  # remove the random-walk drift
    mix = rng.uniform(0.0, 1.0)
    noise = mix * white / white.std() + (1.0 - mix) * brown / (brown.std() + 1e-12)
    return noise / (noise.std() + 1e-12)


def _generate(params: dict) -> dict[str, np.ndarray]:
    """Run in a fresh child process: every clip of the set, in a fixed order.

    Returns:
        Flat arrays: ``{split}_audio`` (all clips concatenated, int16),
        ``{split}_lengths``, ``{split}_labels``, ``{split}_speakers``, for
        split in train, test.
    """
    rng = np.random.default_rng(params["seed"])
    espeak = _Espeak(params["seed"])
    clip_len = int(round(params["clip_seconds"] * params["sample_rate"]))
    out = {}
    for split, variants, takes in (
        ("train", params["train_variants"], params["takes"]),
        ("test", params["test_variants"], 1),
    ):
        clips, labels, speakers = [], [], []
        for accent in params["accents"]:
            for variant in variants:
                voice = f"{accent}+{variant}"
                for label, word in enumerate(DIGITS):
                    for _ in range(takes):
                        rate = int(rng.integers(120, 230))
                        pitch = int(rng.integers(20, 81))
                        speech = espeak.say(word, voice, rate, pitch).astype(np.float32) / 32768.0
                        speech = soxr.resample(speech, _ESPEAK_RATE, params["sample_rate"], quality="HQ")
                        speech *= 10 ** (rng.uniform(-24.0, -1.0) / 20) / (np.abs(speech).max() + 1e-12)
                        n = max(clip_len, len(speech))
                        clip = np.zeros(n, np.float32)
                        start = int(rng.integers(0, n - len(speech) + 1))
                        clip[start : start + len(speech)] = speech
                        snr_db = rng.uniform(5.0, 40.0)
                        noise_rms = np.sqrt(np.mean(speech**2)) * 10 ** (-snr_db / 20)
                        clip += (noise_rms * _coloured_noise(rng, n)).astype(np.float32)
                        clips.append(np.clip(clip, -1.0, 1.0))
                        labels.append(label)
                        speakers.append(voice)
        # 16-bit, like a WAV file: half the cache of float32 and far below the noise floor.
        out[f"{split}_audio"] = np.round(np.concatenate(clips) * 32767).astype(np.int16)
        out[f"{split}_lengths"] = np.array([len(c) for c in clips], np.int64)
        out[f"{split}_labels"] = np.array(labels, np.int64)
        out[f"{split}_speakers"] = np.array(speakers)
    return out


def _in_fresh_process(params: dict) -> dict[str, np.ndarray]:
    """:func:`_generate` in a spawned child; a child that dies is an error, not a hang.

    (``multiprocessing.Pool`` silently replaces a dead worker and waits forever;
    a spawned child dies at start-up when the calling script lacks an
    ``if __name__ == "__main__":`` guard, since the child re-imports it.)
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(_generate, params).result()
        except BrokenProcessPool as error:
            raise RuntimeError(
                "the eSpeak NG generator process died; a script that generates synthetic digits "
                'must run its code under `if __name__ == "__main__":` (the spawned child re-imports it)'
            ) from error


def _cache_path(cache_dir: Path, params: dict) -> Path:
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir) / f"synth_digits_v{CACHE_VERSION}_{key}.npz"


def load(
    cache_dir: str | Path,
    *,
    seed: int = 0,
    sample_rate: int = 16000,
    takes: int = 1,
    clip_seconds: float = 1.0,
    accents: tuple[str, ...] = ACCENTS,
    train_variants: tuple[str, ...] = TRAIN_VARIANTS,
    test_variants: tuple[str, ...] = TEST_VARIANTS,
) -> dict[str, tuple[list[np.ndarray], np.ndarray, list[str]]]:
    """The synthetic spoken-digit set, generated on first use and cached.

    Args:
        cache_dir: folder for the ``.npz`` cache (created if missing).
        seed: fixes every random choice and eSpeak NG's own generator.
        sample_rate: output rate, Hz (eSpeak's 22.05 kHz is resampled with soxr).
        takes: training clips per voice and digit (each with its own rate, pitch, gain, noise).
        clip_seconds: clip length; longer words keep their full length.
        accents: eSpeak NG English language voices.
        train_variants, test_variants: voice variants; must not overlap.

    Returns:
        ``{"train": (waveforms, labels, speakers), "test": (...)}`` with
        ``waveforms`` a list of ``(samples,)`` float32, ``labels`` ``(n,)``
        int64 indices into :data:`DIGITS` and ``speakers`` the voice names.
    """
    overlap = set(train_variants) & set(test_variants)
    if overlap:
        raise ValueError(f"test voice variants {sorted(overlap)} also train")
    params = {
        "seed": seed, "sample_rate": sample_rate, "takes": takes, "clip_seconds": clip_seconds,
        "accents": list(accents), "train_variants": list(train_variants), "test_variants": list(test_variants),
    }  # fmt: skip
    path = _cache_path(Path(cache_dir), params)
    with _LOCK:
        if not path.exists():
            arrays = _in_fresh_process(params)
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
                np.savez(tmp, **arrays)
            os.replace(tmp.name, path)
        with np.load(path) as arrays:
            return {
                split: (
                    np.split(arrays[f"{split}_audio"] / np.float32(32767), np.cumsum(arrays[f"{split}_lengths"])[:-1]),
                    arrays[f"{split}_labels"],
                    arrays[f"{split}_speakers"].tolist(),
                )
                for split in ("train", "test")
            }
