"""Speech datasets for train-speech: WAV reading and the ``--dataset`` / ``--split`` sources.

Sources (``--dataset``):

* ``synth-digits``: eSpeak NG spoken digits (:mod:`cnnkit.data.synth_speech`);
  the official split tests on voices the training set never uses.
  ``synth-digits:extended`` trains on 72 voice variants instead of 22 (the
  same test voices): more extra speakers for ``--extra-train``.
* ``fsdd:DIR``: the Free Spoken Digit Dataset, ``{digit}_{speaker}_{take}.wav``;
  its official split puts takes 0-4 in test.
* ``folder:DIR``: one subfolder of WAV files per label, like Keras'
  ``audio_dataset_from_directory`` but at any rate, bit depth and channel count.
* ``tfds:speech_commands`` (12 classes with silence and unknown, official
  train/validation/test) and ``tfds:spoken_digit`` (FSDD through tfds).

Splits (``--split``): ``auto`` (official where the source has one, else
random), ``official``, ``random`` (stratified 80/10/10, seeded),
``speaker:NAME[,NAME]`` (those speakers are the test set), and ``all`` (every
clip in test: evaluating a finished run on a new folder). Validation is a
seeded, stratified 10% of the training part unless the source has its own.

Every clip is mono float32 in [-1, 1] at the requested sample rate. A bad file
the user names raises :class:`InputError`; a bad file inside a dataset folder
is skipped, counted and listed in :attr:`SpeechData.skipped`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import tensorflow as tf
from threadpoolctl import threadpool_limits

from cnnkit.audio import augment
from cnnkit.audio.features import FeatureSpec, librosa_features, normalise, tf_features, tf_features_from_power, tf_power
from cnnkit.data import synth_speech
from cnnkit.errors import InputError

__all__ = [
    "MAX_SECONDS",
    "FRONTENDS",
    "check_frontend",
    "read_wav",
    "parse_fsdd_name",
    "Split",
    "from_waveforms",
    "SpeechData",
    "load",
    "Augmentation",
    "View",
    "batches",
]

MAX_SECONDS = 600.0  # longer files are almost surely not one spoken word
_WAV_FORMATS = ("WAV", "WAVEX", "RF64")
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9-]+)_(\d+)\.wav$", re.IGNORECASE)
_FSDD_TEST_TAKES = 5  # the dataset's own convention: takes 0-4 are the test set
_VAL_FRACTION = 0.1
_TEST_FRACTION = 0.1
FRONTENDS = ("tf", "librosa")
EVAL_CACHE_BYTES = 512 * 2**20  # fixed-length evaluation clips kept in memory up to this size
DATASET_KINDS = ("synth-digits", "synth-digits:extended", "fsdd:DIR", "folder:DIR", "tfds:speech_commands", "tfds:spoken_digit")


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a WAV file as mono float32 at ``sample_rate``.

    Any bit depth (8/16/24/32-bit integer, 32/64-bit float) and channel count
    is accepted: channels are averaged, and the rate is converted with soxr's
    high-quality resampler.

    Args:
        path: the file.
        sample_rate: output rate, Hz.

    Returns:
        ``(samples,)`` float32 in [-1, 1].

    Raises:
        InputError: the file is not a readable WAV (wrong format, truncated
            header), has no samples, is pure digital silence, or is longer
            than :data:`MAX_SECONDS`.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        reason = str(error).split(":")[-1].strip() or type(error).__name__
        raise InputError(f"'{path}': not a readable WAV file ({reason})") from None
    if info.format not in _WAV_FORMATS:
        raise InputError(f"'{path}': a {info.format} file, not WAV")
    if info.frames == 0:
        raise InputError(f"'{path}': WAV file with no samples")
    if info.frames / info.samplerate > MAX_SECONDS:
        raise InputError(f"'{path}': {info.frames / info.samplerate:.0f} s long; expected at most {MAX_SECONDS:.0f} s")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise InputError(f"'{path}': unreadable WAV data ({error})") from None
    mono = data.mean(axis=1)
    # Below one 16-bit step: nothing a microphone recorded, only digital zeros.
    if mono.size == 0 or np.abs(mono).max() < 2.0**-15:
        raise InputError(f"'{path}': pure silence")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ")
    return mono.astype(np.float32)


def parse_fsdd_name(name: str) -> tuple[int, str, int] | None:
    """``"7_jackson_32.wav"`` -> ``(7, "jackson", 32)``; ``None`` when the name does not parse."""
    match = _FSDD_NAME.match(name)
    return None if match is None else (int(match[1]), match[2].lower(), int(match[3]))


@dataclass(frozen=True)
class Split:
    """One subset of a speech dataset.

    Attributes:
        dataset: elements ``(waveform (samples,) float32, label () int32)``,
            clips of any length, in a fixed order.
        size: number of clips.
        speakers: speaker of each clip in dataset order, or ``None``.
    """

    dataset: tf.data.Dataset
    size: int
    speakers: list[str] | None = None


@dataclass(frozen=True)
class SpeechData:
    """A dataset split three ways, with its class names and what was skipped.

    Attributes:
        classes: label names; a label is an index into this list.
        train, val, test: the splits.
        skipped: ``(file, reason)`` for every file left out.
    """

    classes: list[str]
    train: Split
    val: Split
    test: Split
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Pool:
    """Every clip of an in-memory source, before splitting."""

    waveforms: list[np.ndarray]
    labels: np.ndarray
    speakers: list[str] | None
    official_test: np.ndarray | None  # bool per clip, or None when the source has no official split

    def take(self, index: np.ndarray) -> Split:
        index = np.asarray(index, dtype=np.int64)
        speakers = None if self.speakers is None else [self.speakers[i] for i in index]
        return from_waveforms([self.waveforms[i] for i in index], self.labels[index], speakers)


def from_waveforms(waveforms: Sequence[np.ndarray], labels: np.ndarray, speakers: list[str] | None = None) -> Split:
    """An in-memory :class:`Split` from clips of any lengths.

    Args:
        waveforms: ``(samples,)`` float32 each.
        labels: ``(n,)`` integer labels.
        speakers: ``n`` speaker names, or ``None``.
    """
    values = np.concatenate(waveforms).astype(np.float32) if len(waveforms) else np.zeros(0, np.float32)
    ragged = tf.RaggedTensor.from_row_lengths(values, np.array([len(w) for w in waveforms], np.int64))
    dataset = tf.data.Dataset.from_tensor_slices((ragged, np.asarray(labels, np.int32)))
    return Split(dataset, len(waveforms), speakers)


def _stratified(labels: np.ndarray, index: np.ndarray, fraction: float, rng, *, keep_one: bool) -> np.ndarray:
    """A seeded, per-label ``fraction`` of ``index``; ``keep_one`` takes at least one clip of each label and leaves one behind.

    Unlike :func:`cnnkit.data.splits.stratified_indices` (scikit-learn's
    stratified split, which needs as many test examples as classes), a label
    folder with only 2 recordings still gets one in train and one in test.
    """
    chosen = []
    for label in np.unique(labels[index]):
        members = rng.permutation(index[labels[index] == label])
        n = int(round(fraction * len(members)))
        if keep_one:
            n = max(1, min(n, len(members) - 1))
        chosen.extend(members[:n])
    return np.sort(np.array(chosen, dtype=np.int64))


def _split_pool(pool: _Pool, split: str, seed: int, source: str) -> tuple[Split, Split, Split]:
    rng = np.random.default_rng(seed)
    everything = np.arange(len(pool.labels))
    if split == "all":
        return pool.take([]), pool.take([]), pool.take(everything)
    if split == "auto":
        split = "random" if pool.official_test is None else "official"
    if split == "official":
        if pool.official_test is None:
            raise InputError(f"--split official: {source} has no official split; use random or speaker:NAME")
        test = everything[pool.official_test]
    elif split == "random":
        test = _stratified(pool.labels, everything, _TEST_FRACTION, rng, keep_one=True)
    elif split.startswith("speaker:"):
        if pool.speakers is None:
            raise InputError(f"--split {split}: {source} does not name speakers")
        held_out = [name.strip().lower() for name in split[len("speaker:") :].split(",") if name.strip()]
        speakers = np.array([name.lower() for name in pool.speakers])
        known = sorted(set(speakers))
        unknown = [name for name in held_out if name not in known]
        if unknown or not held_out:
            raise InputError(
                f"--split {split}: unknown speaker {', '.join(unknown) or '(none given)'}; "
                f"expected some of: {', '.join(known)}"
            )
        test = everything[np.isin(speakers, held_out)]
        if len(test) == len(everything):
            raise InputError(f"--split {split}: holds out every speaker; nothing is left to train on")
    else:
        raise InputError(f"--split '{split}': expected auto, official, random, speaker:NAME[,NAME] or all")
    rest = np.setdiff1d(everything, test)
    val = _stratified(pool.labels, rest, _VAL_FRACTION, rng, keep_one=False)
    return pool.take(np.setdiff1d(rest, val)), pool.take(val), pool.take(test)


def _directory(spec: str, path: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InputError(f"--dataset '{spec}': no such directory")
    return folder


def _read_many(files, sample_rate: int, skipped: list) -> list[np.ndarray | None]:
    """Read each file; a bad one becomes ``None`` and a ``(file, reason)`` entry in ``skipped``."""
    waves = []
    for path in files:
        try:
            waves.append(read_wav(path, sample_rate))
        except InputError as error:
            skipped.append((str(path), str(error)))
            waves.append(None)
    return waves


def _digit_pool(names, waves, skipped: list) -> _Pool:
    """An FSDD-named pool: label, speaker and official split from each ``{digit}_{speaker}_{take}.wav``."""
    kept, labels, speakers, takes = [], [], [], []
    for name, wave in zip(names, waves):
        parsed = parse_fsdd_name(Path(name).name)
        if parsed is None:
            skipped.append((name, f"'{name}': name does not parse as {{digit}}_{{speaker}}_{{take}}.wav"))
        elif wave is not None:
            kept.append(wave)
            labels.append(parsed[0])
            speakers.append(parsed[1])
            takes.append(parsed[2])
    return _Pool(kept, np.array(labels, np.int64), speakers, np.array(takes) < _FSDD_TEST_TAKES)


def _fsdd(spec: str, path: str, sample_rate: int, skipped: list) -> _Pool:
    folder = _directory(spec, path)
    if not any(folder.glob("*.wav")) and (folder / "recordings").is_dir():
        folder = folder / "recordings"  # the repository root of FSDD was given
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav")
    if not files:
        raise InputError(f"--dataset '{spec}': no .wav files in {folder}")
    named = [p for p in files if parse_fsdd_name(p.name) is not None]
    waves = dict(zip(named, _read_many(named, sample_rate, skipped)))
    return _digit_pool([str(p) for p in files], [waves.get(p) for p in files], skipped)


def _folder(spec: str, path: str, sample_rate: int, skipped: list) -> tuple[list[str], _Pool]:
    root = _directory(spec, path)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise InputError(f"--dataset '{spec}': expected one subfolder per label, at least 2; found {len(classes)}")
    waveforms, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
        good = [w for w in _read_many(files, sample_rate, skipped) if w is not None]
        if len(good) < 2:
            raise InputError(
                f"--dataset '{spec}': label folder '{name}' has {len(good)} readable WAV file(s); "
                "each label needs at least 2 (one to train on, one to test)"
            )
        waveforms.extend(good)
        labels.extend([label] * len(good))
    return classes, _Pool(waveforms, np.array(labels, np.int64), None, None)


def _synth(cache_dir: Path, sample_rate: int, seed: int, extended: bool) -> _Pool:
    voices = {"train_variants": synth_speech.EXTENDED_TRAIN_VARIANTS} if extended else {}  # else load's own default
    sets = synth_speech.load(cache_dir, seed=seed, sample_rate=sample_rate, **voices)
    train, test = sets["train"], sets["test"]
    return _Pool(
        train[0] + test[0],
        np.concatenate([train[1], test[1]]),
        train[2] + test[2],
        np.arange(len(train[1]) + len(test[1])) >= len(train[1]),
    )


def _tfds_spoken_digit(data_dir: str | None, sample_rate: int, skipped: list) -> _Pool:
    import tensorflow_datasets as tfds

    names, waves = [], []
    for example in tfds.load("spoken_digit", split="train", data_dir=data_dir).as_numpy_iterator():
        names.append(example["audio/filename"].decode())
        audio = example["audio"].astype(np.float32) / 32768.0  # int16 range stored as int64
        waves.append(soxr.resample(audio, 8000, sample_rate, quality="HQ").astype(np.float32))
    return _digit_pool(names, waves, skipped)


def _tfds_speech_commands(data_dir: str | None, sample_rate: int, split: str) -> tuple[list[str], tuple]:
    import tensorflow_datasets as tfds

    if split not in ("auto", "official", "all"):
        raise InputError(f"--split {split}: tfds:speech_commands has only its official train/validation/test split")
    builder = tfds.builder("speech_commands", data_dir=data_dir)
    classes = builder.info.features["label"].names

    def convert(example):
        waveform = tf.cast(example["audio"], tf.float32) / 32768.0
        if sample_rate != 16000:
            waveform = tf.numpy_function(
                lambda x: soxr.resample(x, 16000, sample_rate, quality="HQ").astype(np.float32),
                [waveform],
                tf.float32,
                stateful=False,
            )
        return tf.ensure_shape(waveform, [None]), tf.cast(example["label"], tf.int32)

    def subset(name: str) -> Split:
        ds = tfds.load("speech_commands", split=name, data_dir=data_dir, shuffle_files=False)
        return Split(ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE), _count(ds))

    if split == "all":
        everything = tfds.load("speech_commands", split="train+validation+test", data_dir=data_dir)
        empty = _Pool([], np.zeros(0, np.int64), None, None).take([])
        return classes, (empty, empty, Split(everything.map(convert), _count(everything)))
    return classes, (subset("train"), subset("validation"), subset("test"))


def _count(ds: tf.data.Dataset) -> int:
    """Examples in ``ds``: its cardinality when tfds recorded it, else counted once."""
    known = int(ds.cardinality())
    return known if known >= 0 else int(ds.reduce(0, lambda count, _: count + 1))


def load(
    spec: str,
    *,
    split: str = "auto",
    sample_rate: int = 16000,
    seed: int = 0,
    cache_dir: str | Path = "data/cache",
    data_dir: str | None = None,
) -> SpeechData:
    """Load a ``--dataset`` spec and split it.

    Args:
        spec: ``synth-digits``, ``synth-digits:extended``, ``fsdd:DIR``, ``folder:DIR``,
            ``tfds:speech_commands`` or ``tfds:spoken_digit``.
        split: ``auto``, ``official``, ``random``, ``speaker:NAME[,NAME]`` or ``all``.
        sample_rate: every clip is resampled to this rate, Hz.
        seed: for the synthetic set and the random splits.
        cache_dir: where the synthetic set is cached.
        data_dir: tensorflow-datasets folder (``None``: tfds' default).

    Returns:
        The dataset, split; digit sources share the class names
        ``zero`` ... ``nine``, so a model trained on one evaluates on another.

    Raises:
        InputError: unknown spec or split, missing folder, a label folder
            with fewer than 2 readable files, an unknown speaker.
    """
    kind, _, path = spec.partition(":")
    skipped: list[tuple[str, str]] = []
    classes = list(synth_speech.DIGITS)
    if spec in ("synth-digits", "synth-digits:extended"):
        pool = _synth(Path(cache_dir), sample_rate, seed, extended=bool(path))
    elif kind == "fsdd" and path:
        pool = _fsdd(spec, path, sample_rate, skipped)
    elif kind == "folder" and path:
        classes, pool = _folder(spec, path, sample_rate, skipped)
    elif spec == "tfds:spoken_digit":
        pool = _tfds_spoken_digit(data_dir, sample_rate, skipped)
    elif spec == "tfds:speech_commands":
        classes, splits = _tfds_speech_commands(data_dir, sample_rate, split)
        return SpeechData(classes, *splits)
    else:
        raise InputError(f"--dataset '{spec}': expected one of: {', '.join(DATASET_KINDS)}")
    if len(pool.labels) == 0:
        raise InputError(f"--dataset '{spec}': no usable clips ({len(skipped)} skipped)")
    return SpeechData(classes, *_split_pool(pool, split, seed, spec), skipped=skipped)


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation; each piece is off at 0 / ``None`` / ``False``.

    Attributes:
        time_shift: largest shift, seconds.
        noise_snr: ``(low, high)`` dB range of the pink-noise SNR, or ``None``.
        noise_probability: share of the training clips that get noise.
        spec_augment: two time and two frequency masks per utterance.
        speed_perturb: largest relative speed change (0.1: 0.9x to 1.1x).
        vtlp: largest relative frequency warp (0.1: formants 0.9x to 1.1x),
            on the power spectrum of the ``tf`` front end.
        filter_db: largest gain of a random smooth equaliser (FilterAugment),
            dB, on the power spectrum of the ``tf`` front end.
        tempo_perturb: largest relative tempo change at the same pitch
            (0.2: 0.8x to 1.2x), on the power spectrum of the ``tf`` front end.
    """

    time_shift: float = 0.1
    noise_snr: tuple[float, float] | None = (5.0, 30.0)
    noise_probability: float = 0.5
    spec_augment: bool = True
    speed_perturb: float = 0.0
    vtlp: float = 0.0
    filter_db: float = 0.0
    tempo_perturb: float = 0.0

    @property
    def on_power(self) -> bool:
        """Whether a step works on the power spectrum, which only the ``tf`` front end exposes."""
        return bool(self.vtlp or self.filter_db or self.tempo_perturb)


@dataclass(frozen=True)
class View:
    """One fixed test-time view of a clip: its frequencies scaled by ``warp``, its tempo by ``tempo``.

    The deterministic counterpart of the training-time VTLP and tempo
    perturbation: a model trained on warped voices can be asked about the
    test clip as a slightly longer or shorter vocal tract and a slower or
    faster speaker, and its probabilities averaged over the views
    (test-time augmentation). ``View()`` is the clip as it is.
    """

    warp: float = 1.0
    tempo: float = 1.0

    @property
    def identity(self) -> bool:
        return self.warp == 1.0 and self.tempo == 1.0


def check_frontend(frontend: str, augmentation: Augmentation | None = None) -> None:
    """Raise InputError unless ``frontend`` is known and can apply ``augmentation``'s power-spectrum steps (only ``tf`` can)."""
    if frontend not in FRONTENDS:
        raise InputError(f"--frontend '{frontend}': unknown; expected one of: {', '.join(FRONTENDS)}")
    if augmentation is not None and augmentation.on_power and frontend != "tf":
        steps = {"--vtlp": augmentation.vtlp, "--filter-augment": augmentation.filter_db, "--tempo-perturb": augmentation.tempo_perturb}
        flag = next(f"{name} {value}" for name, value in steps.items() if value)
        raise InputError(f"{flag}: works on the power spectrum inside the tf front end; use --frontend tf")


def batches(
    split: Split,
    spec: FeatureSpec,
    *,
    duration: float,
    batch_size: int,
    frontend: str = "tf",
    augmentation: Augmentation | None = None,
    seed: int = 0,
    view: View = View(),
) -> tf.data.Dataset:
    """Clips -> fixed-length waveforms -> normalised features, batched.

    With ``augmentation`` (the training split only) the clips are shuffled and
    randomly cropped and augmented; without it they keep their order and are
    centre-cropped, so predictions line up with :attr:`Split.speakers`.

    Args:
        split: the clips.
        spec: the features.
        duration: clip length the model sees, seconds.
        batch_size: examples per batch.
        frontend: ``tf`` (in-graph ``tf.signal``) or ``librosa`` (the
            reference, through ``tf.numpy_function``).
        augmentation: training-time augmentation, or ``None``.
        seed: shuffling and augmentation seed.
        view: a fixed warp of every clip (evaluation; the ``tf`` front end).

    Returns:
        Batches ``(features (batch, frames, bins, 1) float32, labels (batch,) int32)``.
    """
    check_frontend(frontend, augmentation)
    if not view.identity and frontend != "tf":
        raise InputError(f"test-time views work on the power spectrum inside the tf front end, not --frontend {frontend}")
    on_power = augmentation is not None and augmentation.on_power
    num_samples = int(round(duration * spec.sample_rate))
    shape = spec.shape(num_samples)
    ds = split.dataset
    if augmentation is None:
        ds = ds.map(lambda w, y: (augment.fix_length(w, num_samples), y), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        # At most 10k clips in the buffer: Speech Commands' 85k would hold 5 GB of audio.
        ds = ds.shuffle(min(split.size, 10_000), seed=seed, reshuffle_each_iteration=True)
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(4)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda example, s: (_augment_waveform(example[0], s, num_samples, spec.sample_rate, augmentation), example[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    ds = ds.batch(batch_size)
    if augmentation is None and split.size * num_samples * 4 <= EVAL_CACHE_BYTES:
        # The centred, batched clips are the same every pass (validation runs each
        # epoch): kept in memory, the per-clip crop and batching, 40% of this
        # pipeline's time, are paid once.
        ds = ds.cache()

    def features(waveforms, labels, seed=None):
        if on_power:
            x = tf_features_from_power(_augment_power(tf_power(waveforms, spec), seed, spec.sample_rate, augmentation), spec)
        elif not view.identity:
            x = tf_features_from_power(_view_power(tf_power(waveforms, spec), view), spec)
        elif frontend == "tf":
            x = tf_features(waveforms, spec)
        else:
            x = tf.numpy_function(lambda w: _librosa_batch(w, spec), [waveforms], tf.float32, stateful=False)
        x = normalise(tf.ensure_shape(x, [None, *shape[:2]]))
        return x[..., None], labels

    if on_power:
        power_seeds = tf.data.Dataset.random(seed=seed + 2, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, power_seeds).map(lambda example, s: features(*example, s), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(features, num_parallel_calls=tf.data.AUTOTUNE)
    if augmentation is not None and augmentation.spec_augment:
        masks = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, masks).map(
            lambda example, s: (augment.spec_augment(example[0][..., 0], s)[..., None], example[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(tf.data.AUTOTUNE)


def _librosa_batch(waveforms: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """``(batch, samples)`` -> ``(batch, frames, bins)`` with the librosa reference, one clip at a time.

    BLAS is held to one thread: its matrices here are tiny, and OpenBLAS'
    worker threads spinning against tf.data's own threads made each clip
    several hundred times slower on a busy 2-core machine.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return np.stack([librosa_features(clip, spec) for clip in waveforms])


def _view_power(power, view: View):
    """``(batch, frames, bins)`` power as seen through ``view``."""
    batch = tf.shape(power)[0]
    if view.tempo != 1.0:
        power = augment.scale_tempo(power, tf.fill([batch], view.tempo))
    if view.warp != 1.0:
        power = augment.scale_frequency(power, tf.fill([batch], view.warp))
    return power


def _augment_power(power, seed, sample_rate: int, aug: Augmentation):
    """VTLP, FilterAugment and tempo on ``(batch, frames, bins)`` power; ``seed`` is ``(2,)`` int64."""
    if aug.tempo_perturb:
        power = augment.stretch_time(power, aug.tempo_perturb, seed + 2)
    if aug.vtlp:
        power = augment.warp_frequency(power, aug.vtlp, seed)
    if aug.filter_db:
        power = augment.filter_augment(power, aug.filter_db, seed + 1, sample_rate=sample_rate)
    return power


def _augment_waveform(waveform, seeds, num_samples: int, sample_rate: int, aug: Augmentation):
    """Speed, random crop/position, shift and noise for one ``(samples,)`` clip; ``seeds`` is ``(4,)`` int64."""
    seed = tf.reshape(seeds, [2, 2])
    if aug.speed_perturb:
        waveform = augment.speed_perturb(waveform, aug.speed_perturb, seed[0] + 1)
    waveform = augment.fix_length(waveform, num_samples, seed[0])
    if aug.time_shift:
        waveform = augment.time_shift(waveform, int(round(aug.time_shift * sample_rate)), seed[1])
    if aug.noise_snr:
        waveform = augment.add_noise(waveform, aug.noise_snr, seed[1] + 1, aug.noise_probability)
    return waveform
