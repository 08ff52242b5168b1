"""Spoken-word recognition: WAV clips -> log-mel / MFCC / STFT spectrograms -> CNN -> test metrics.

Convolutional networks on spectrograms treat time x frequency as an image
(Abdel-Hamid et al. 2014, "Convolutional Neural Networks for Speech
Recognition"); the small keyword-spotting nets of the zoo (``dscnn``, Zhang et
al. 2017 "Hello Edge"; ``bcresnet``, Kim et al. 2021) were designed for them.

``run(cfg)`` writes the same run folder as train-image (see
:mod:`cnnkit.runs` and :mod:`cnnkit.training`), with ``"task": "speech"`` and
the feature settings in ``config.json`` so that ``evaluate`` and ``predict``
repeat them. When the dataset names speakers, ``metrics.json`` also reports
accuracy per test speaker and the worst one.

With ``ensemble=N`` the run trains N members, seeded ``seed`` to ``seed + N - 1``
on the same data and split, each a resumable run of its own in
``members/<i>/``; its ``model.keras`` averages their probabilities
(:func:`cnnkit.models.average_ensemble`) and ``metrics.json`` lists each
member's own test accuracy beside the ensemble's.

The default, ``synth-digits``, trains offline on eSpeak NG digits and tests
on voices never heard in training (:mod:`cnnkit.data.synth_speech`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnnkit import distribute, explain, metrics, models, plots, runs, training
from cnnkit import report as reporting
from cnnkit.audio.features import FeatureSpec
from cnnkit.data import speech
from cnnkit.errors import InputError
from pipelines import defaults

log = logging.getLogger(__name__)

TASK = "speech"
MEMBERS = "members"  # an ensemble run's folder of member runs, members/0, members/1, ...
MAX_ENSEMBLE = 16
# --epochs auto. The synthetic digits (about 28 steps an epoch) get 30 epochs,
# past the 12 that reached 99% on unseen voices; FSDD with the extended eSpeak
# voices (8,430 clips, 132 steps) gets 19, about the 20 its measured recipes used.
EPOCH_BUDGET = training.EpochBudget(steps=2500, min_epochs=12, max_epochs=30)
SUBSETS = ("all", "train", "val", "test")


@dataclass(frozen=True)
class Config(training.FitOptions):
    """Every option of ``train-speech``; the CLI options map one-to-one onto these fields.

    The training options shared with the other commands are in :class:`cnnkit.training.FitOptions`.
    """

    dataset: str = "synth-digits"  # synth-digits | fsdd:DIR | folder:DIR | tfds:speech_commands | tfds:spoken_digit
    split: str = "auto"  # auto | official | random | speaker:NAME[,NAME]
    data_dir: str = "data/tfds"  # tfds cache
    cache_dir: str = "data/cache"  # generated synthetic digits
    sample_rate: int = 16000  # every clip is resampled to this rate, Hz
    duration: float = 1.0  # seconds the model hears: clips are padded or cropped
    features: str = "logmel"  # stft | logmel | mfcc
    n_mels: int = 40  # mel bands (logmel, mfcc)
    n_mfcc: int = 13  # cepstral coefficients (mfcc)
    fmax: float | None = None  # highest mel band edge, Hz (logmel, mfcc); None: the Nyquist frequency
    frontend: str = "tf"  # tf (tf.signal in the tf.data graph) | librosa (reference, slower)
    time_shift: float = 0.1  # training: random shift up to this many seconds; 0: off
    noise: bool = True  # training: pink noise at a random SNR of 5-30 dB, on half of the clips
    spec_augment: bool = True  # training: 2 time + 2 frequency masks (SpecAugment)
    speed_perturb: float = 0.0  # training: random speed change up to this fraction (0.1: 0.9x-1.1x); 0: off
    vtlp: float | None = None  # training: random frequency warp up to this fraction (VTLP); 0: off; None: 0.15 on recordings, 0 on synth
    filter_augment: float | None = None  # training: random smooth equaliser up to +-this many dB (FilterAugment); 0: off; None: 3 on recordings, 0 on synth
    tempo_perturb: float = 0.0  # training: random tempo change at the same pitch up to this fraction (0.2: 0.8x-1.2x); 0: off
    tta_warp: float = 0.0  # testing: average the probabilities over frequency warps 1-x, 1, 1+x of each clip; 0: off
    tta_tempo: float = 0.0  # testing: ... and over tempos 1-x, 1, 1+x (with --tta-warp, every pair); 0: off
    extra_train: str = "auto"  # another --dataset spec whose every clip joins the training split; auto: the eSpeak voices for recorded digits; none
    model: str = "dscnn"  # any name of cnnkit.models.names(); speech: dscnn, bcresnet, lecture, resnet18
    epochs: int | str = training.AUTO  # auto: EPOCH_BUDGET (synth-digits: 30 epochs; FSDD + extended voices: 19)
    batch_size: int = 64  # per replica
    seed: int = 0  # synthetic data, split, initialisation, shuffling and augmentation
    ensemble: int = 1  # train this many models (seeds seed, seed+1, ...; same data and split) and average their probabilities


def feature_spec(settings: dict) -> FeatureSpec:
    """The :class:`FeatureSpec` of a Config (or its ``config.json`` record)."""
    return FeatureSpec(
        kind=settings["features"],
        sample_rate=settings["sample_rate"],
        n_mels=settings["n_mels"],
        n_mfcc=settings["n_mfcc"],
        # Runs recorded before --fmax existed used the Nyquist frequency.
        fmax=settings.get("fmax"),
    )


def run(cfg: Config) -> dict:
    """Train and test one speech classifier; returns the contents of ``metrics.json`` plus ``run_dir``.

    Raises:
        InputError: a bad option, dataset or ``--out`` (before anything is written).
    """
    cfg = replace(cfg, **defaults.speech_augmentation(cfg.dataset, cfg.frontend, cfg.vtlp, cfg.filter_augment))
    _check(cfg)
    log.info("training augmentation: %s", ", ".join(f"{k} {v}" for k, v in asdict(_augmentation(cfg)).items() if v) or "none")
    spec = feature_spec(asdict(cfg))
    strategy = distribute.setup_compute(cfg.device, cfg.strategy, cfg.mixed_precision, cfg.logical_cpus, jit=cfg.jit)
    keras.utils.set_random_seed(cfg.seed)
    data = speech.load(
        cfg.dataset, split=cfg.split, sample_rate=cfg.sample_rate, seed=cfg.seed, cache_dir=cfg.cache_dir, data_dir=cfg.data_dir
    )
    if data.train.size == 0:
        raise InputError(f"--split {cfg.split}: leaves no clips of --dataset '{cfg.dataset}' to train on")
    cfg = replace(cfg, extra_train=defaults.speech_extra_train(cfg.dataset, cfg.extra_train, data.classes))
    if cfg.extra_train:
        data = _with_extra_training(data, cfg)
    input_shape = spec.shape(_num_samples(cfg.duration, cfg.sample_rate))
    out = Path(cfg.out) if cfg.out else runs.default_out(cfg.dataset, cfg.model)
    batch = distribute.global_batch_size(cfg.batch_size, strategy)
    epochs = training.resolve_epochs(cfg.epochs, EPOCH_BUDGET, data.train.size, batch)
    record = {
        **asdict(cfg),
        **training.epochs_record(cfg.epochs, epochs, EPOCH_BUDGET),
        "out": str(out),
        "preprocessing": {"classes": data.classes, "input_shape": list(input_shape)},
    }
    augmentation = _augmentation(cfg)

    def batches(
        split: speech.Split, training_split: bool = False, seed: int = cfg.seed, view: speech.View = speech.View()
    ) -> tf.data.Dataset | None:
        if split.size == 0:
            return None
        ds = speech.batches(
            split,
            spec,
            duration=cfg.duration,
            batch_size=batch,
            frontend=cfg.frontend,
            augmentation=augmentation if training_split else None,
            seed=seed,
            view=view,
        )
        return distribute.shard_by_data(ds)

    def build_member(seed: int) -> keras.Model:
        # Seeds initialisation, shuffling and augmentation; the data and its split stay cfg.seed's.
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            model = models.build(cfg.model, input_shape, len(data.classes), conv=cfg.conv)
            _faster_batch_norm_averages(model)
            training.compile_classifier(
                model,
                optimizer=cfg.optimizer,
                lr=cfg.lr,
                epochs=epochs,
                steps_per_epoch=math.ceil(data.train.size / batch),
                warmup_epochs=cfg.warmup_epochs,
                label_smoothing=cfg.label_smoothing,
                jit=cfg.jit,
            )
        return model

    def fit_member(model: keras.Model, member_dir: Path, seed: int) -> training.FitResult:
        member_dir.mkdir(parents=True, exist_ok=True)
        return training.fit(
            model,
            batches(data.train, training_split=True, seed=seed),
            validation=batches(data.val),
            epochs=epochs,
            run_dir=member_dir,
            patience=cfg.patience or None,
            save_every=cfg.save_every,
            verbose=not cfg.quiet,
            examples_per_epoch=data.train.size,
        )

    with distribute.run_folder(out, strategy) as folder:
        first = build_member(cfg.seed)
        distribute.check_disk_space(folder, first, copies=cfg.ensemble)
        run_dir = runs.start(folder, TASK, record)
        log.info("run folder %s: train %d, val %d, test %s clips", run_dir, data.train.size, data.val.size, data.test.size)
        # Member i of an ensemble is a whole run of its own in members/i (resumable
        # alone), seeded cfg.seed + i; the run's model.keras averages their probabilities.
        member_dirs = [run_dir] if cfg.ensemble == 1 else [run_dir / MEMBERS / str(i) for i in range(cfg.ensemble)]
        trained = []
        for i, member_dir in enumerate(member_dirs):
            member = first if i == 0 else build_member(cfg.seed + i)
            trained.append((member, fit_member(member, member_dir, cfg.seed + i)))
        # Validation during training sees each clip as it is; the test score averages the views.
        test = [batches(data.test, view=view) for view in scoring_views(asdict(cfg))] if data.test.size else None
        if cfg.ensemble == 1:
            model = first
        else:
            # Not compiled: it is never trained, and scoring, evaluate and predict only predict.
            with strategy.scope():
                model = models.average_ensemble([m for m, _ in trained])
            runs.save_model(model, run_dir / runs.MODEL)
        scores = _score(model, test, data.test, data.classes)
        report = scores["report"]
        for member_dir, (_, fitted) in zip(member_dirs, trained):
            plots.training_curves(fitted.history, member_dir / "curves.png")
        plots.confusion_matrix(report["confusion_matrix"], data.classes, run_dir / "confusion_matrix.png")
        plots.misclassified_grid(
            _as_picture(scores["wrong_features"]),
            scores["wrong_true"],
            scores["wrong_pred"],
            data.classes,
            run_dir / "misclassified.png",
            misclassified=scores["misclassified"],
            tested=report["n"],
        )
        # An epoch of an ensemble is one epoch of every member.
        epoch_seconds = sum(float(np.median([row["train_seconds"] for row in f.history])) for _, f in trained if f.history)
        summary = {
            "task": TASK,
            **metrics.test_summary(report),
            **scores["speakers"],
            "classes": data.classes,
            "examples": {"train": data.train.size, "val": data.val.size, "test": report["n"]},
            "misclassified": scores["misclassified"],
            "epochs_run": sum(f.epochs_run for _, f in trained),
            "stopped_early": any(f.stopped_early for _, f in trained),
            "best_epoch": trained[0][1].best_epoch if cfg.ensemble == 1 else None,
            "train_seconds": sum(f.train_seconds for _, f in trained),
            "epoch_seconds": epoch_seconds or None,
            "clips_per_second": data.train.size / epoch_seconds if epoch_seconds else None,
            "parameters": model.count_params(),
            "skipped_files": len(data.skipped),
            "skipped": [{"file": f, "reason": r} for f, r in data.skipped],
            "misclassified_examples": _write_misclassified(run_dir, data.test, scores, data.classes, spec),
        }
        if cfg.ensemble > 1:
            summary["members"] = [
                {
                    "seed": cfg.seed + i,
                    "test_accuracy": _score(member, test, data.test, data.classes)["report"]["accuracy"] if test else None,
                    "epochs_run": fitted.epochs_run,
                    "best_epoch": fitted.best_epoch,
                }
                for i, (member, fitted) in enumerate(trained)
            ]
        runs.finish(run_dir, summary)
        reporting.write(run_dir)
    return {**summary, "run_dir": str(out)}


def _with_extra_training(data: speech.SpeechData, cfg: Config) -> speech.SpeechData:
    """``data`` with every clip of ``cfg.extra_train`` appended to its training split, relabelled to ``data.classes``.

    More voices for a dataset with few speakers: FSDD has 5 real speakers, the
    synthetic digits 8 eSpeak NG accents in many variants. Validation and test
    stay the main dataset's own.
    """
    extra = speech.load(
        cfg.extra_train, split="all", sample_rate=cfg.sample_rate, seed=cfg.seed, cache_dir=cfg.cache_dir, data_dir=cfg.data_dir
    )
    clips = _relabelled(extra.test, extra.classes, data.classes, cfg.extra_train)  # split "all" puts every clip in test
    log.info("--extra-train %s: %d more training clips", cfg.extra_train, clips.size)
    # Both through a map, which turns the in-memory sources' 1-D ragged elements into
    # plain tensors: concatenate() needs one element type, and a clip is a clip.
    main = data.train.dataset.map(lambda w, y: (w, y))
    train = speech.Split(main.concatenate(clips.dataset), data.train.size + clips.size)
    return speech.SpeechData(data.classes, train, data.val, data.test, skipped=data.skipped + extra.skipped)


def _relabelled(part: speech.Split, classes: Sequence[str], target_classes: Sequence[str], dataset: str) -> speech.Split:
    """``part`` with its labels (indices into ``classes``) turned into indices into ``target_classes``.

    Raises:
        InputError: a class of ``dataset`` missing from ``target_classes``.
    """
    relabel = tf.constant(metrics.class_index_map(classes, target_classes, dataset), tf.int32)
    return speech.Split(part.dataset.map(lambda w, y: (w, tf.gather(relabel, y))), part.size, part.speakers)


def evaluate(
    run_dir: str, dataset: str, subset: str = "all", data_dir: str = "data/tfds", cache_dir: str = "data/cache"
) -> dict:
    """Evaluate a finished run's model on ``dataset`` with the run's own features.

    Args:
        run_dir: a finished train-speech run.
        dataset: any ``--dataset`` spec; its class names must be among the
            run's (every digit source names its classes ``zero`` ... ``nine``).
        subset: ``all`` clips (e.g. a folder of speakers the run never saw),
            or the ``train``/``val``/``test`` part of the run's ``--split``.
        data_dir: the tfds cache.
        cache_dir: the synthetic-digit cache.

    Returns:
        ``{"dataset", "subset", "n", "accuracy", "loss", "per_class",
        "confusion_matrix", "per_speaker", "worst_speaker", "skipped_files",
        "skipped"}`` (the speaker entries when speakers are known).

    Raises:
        InputError: not a run, bad dataset or subset, or classes the run does not know.
    """
    run, model, cfg = _open(run_dir)
    if subset not in SUBSETS:
        raise InputError(f"--subset '{subset}': unknown; expected one of: {', '.join(SUBSETS)}")
    data = speech.load(
        dataset,
        split="all" if subset == "all" else cfg["split"],
        sample_rate=cfg["sample_rate"],
        seed=cfg["seed"],
        cache_dir=cache_dir,
        data_dir=data_dir,
    )
    part = {"all": data.test, "train": data.train, "val": data.val, "test": data.test}[subset]
    if part.size == 0:
        raise InputError(f"--subset '{subset}': no clips of {dataset} fall in it")
    part = _relabelled(part, data.classes, cfg["preprocessing"]["classes"], dataset)
    scores = _score(model, _scoring_batches(part, cfg), part, cfg["preprocessing"]["classes"])
    return {
        "dataset": dataset,
        "subset": subset,
        **scores["report"],
        **scores["speakers"],
        "skipped_files": len(data.skipped),
        "skipped": [{"file": f, "reason": r} for f, r in data.skipped],
    }


def predict(run_dir: str, files: Sequence[str], top_k: int = 5) -> list[dict]:
    """Top-``k`` words with probabilities for each WAV file, featurised like the run's inputs.

    Returns:
        One ``{"file", "top": [{"label", "probability"}, ...]}`` per file, in order.

    Raises:
        InputError: not a run, no files, a bad WAV file (named in the message), or ``top_k < 1``.
    """
    _run, model, cfg = _open(run_dir)
    if not files:
        raise InputError("FILE: give at least one WAV file")
    if top_k < 1:
        raise InputError(f"--top-k {top_k}: expected an integer >= 1")
    probs = np.mean([model.predict(ds.map(lambda x, _y: x), verbose=0) for ds in _file_batches(files, cfg)], axis=0)
    classes = cfg["preprocessing"]["classes"]
    return [{"file": str(f), "top": top} for f, top in zip(files, metrics.top_k(probs, classes, top_k))]


def explain_inputs(run: runs.Run, model: keras.Model, files: Sequence[str]) -> explain.Inputs:
    """The WAV files' spectrograms as the run's model hears them (the clip as it is), its answers (averaged over
    the run's test-time views, as ``predict`` gives them) and the axes, for :func:`cnnkit.explain.write_page`.

    Raises:
        InputError: a missing or unreadable WAV file.
    """
    views = _file_batches(files, run.config)
    features = np.concatenate([x.numpy() for x, _ in views[0]])
    probs = np.mean([model.predict(ds.map(lambda x, _y: x), verbose=0) for ds in views], axis=0)
    spec = feature_spec(run.config)
    axes = explain.SpectrogramAxes(spec.frame_times(features.shape[1]), spec.bin_frequencies())
    return explain.Inputs([explain.Example(Path(f).name, x) for f, x in zip(files, features)], probs, axes)


def _file_batches(files: Sequence[str], cfg: dict) -> list[tf.data.Dataset]:
    """WAV files featurised as a finished run's inputs, once per scoring view (labels are 0)."""
    waves = [speech.read_wav(f, cfg["sample_rate"]) for f in files]
    return _scoring_batches(speech.from_waveforms(waves, np.zeros(len(waves), np.int64)), cfg)


def _write_misclassified(run_dir: Path, test: speech.Split, scores: dict, classes: Sequence[str], spec: FeatureSpec) -> list[dict]:
    """The first misclassified test clips with their spectrograms (as the model saw them), for the report to play."""
    heard = scores["wrong_index"][: reporting.CLIPS_HEARD]
    if not len(heard):
        return []
    wanted = set(heard.tolist())
    waveforms = [w for i, (w, _) in enumerate(test.dataset.take(int(heard[-1]) + 1).as_numpy_iterator()) if i in wanted]
    clips = [
        reporting.Clip(
            index=int(index),
            true=classes[scores["wrong_true"][k]],
            predicted=classes[scores["wrong_pred"][k]],
            speaker=test.speakers[index] if test.speakers else None,
            waveform=waveform,
            features=scores["wrong_features"][k][..., 0],
        )
        for k, (index, waveform) in enumerate(zip(heard, waveforms))
    ]
    return reporting.write_clips(run_dir, clips, spec.sample_rate, spec.frame_times(clips[0].features.shape[0]), spec.bin_frequencies())


def _faster_batch_norm_averages(model: keras.Model) -> None:
    """Batch-norm moving averages with momentum 0.9 (PyTorch's default) instead of Keras' 0.99.

    A speech run is a few hundred steps. With 0.99, the moving variances keep
    ``0.99**steps`` of their initial 1.0, while the true variances deep in
    DS-CNN are ~1e-3: at inference every layer under-scales, the error
    compounds, and after 300 steps the model still answers one class for
    every clip (measured: 10% validation accuracy at 90% training accuracy).
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9


def scoring_views(settings: dict) -> list[speech.View]:
    """The views a run's test clips are scored through (``--tta-warp``, ``--tta-tempo``), the clip as it is first.

    Test-time augmentation (e.g. Krizhevsky et al. 2012 average ten crops):
    a model trained on warped voices answers for a clip seen with a
    slightly shorter and longer vocal tract, and slower and faster, and the
    answers are averaged. One view when both are 0 (runs from before these
    options have neither).
    """
    warp, tempo = settings.get("tta_warp") or 0.0, settings.get("tta_tempo") or 0.0
    warps = (1.0, 1.0 - warp, 1.0 + warp) if warp else (1.0,)
    tempos = (1.0, 1.0 - tempo, 1.0 + tempo) if tempo else (1.0,)
    return [speech.View(warp=w, tempo=t) for w in warps for t in tempos]


def _scoring_batches(clips: speech.Split, cfg: dict) -> list[tf.data.Dataset]:
    """``clips`` featurised as a finished run's inputs, once per view of :func:`scoring_views`."""
    return [
        speech.batches(clips, feature_spec(cfg), duration=cfg["duration"], batch_size=256, frontend=cfg["frontend"], view=view)
        for view in scoring_views(cfg)
    ]


def _score(model: keras.Model, views: Sequence[tf.data.Dataset], split: speech.Split, classes: Sequence[str]) -> dict:
    """Predict every batch of each view of the clips (in order), average the probabilities over the views, then the
    report, per-speaker accuracy and the first misclassified spectrograms (as the first view shows them)."""
    y_true, probs, wrong = [], [], []
    for batches in zip(*views):
        x, y = batches[0]
        p = np.mean([np.asarray(model.predict_on_batch(view_x)) for view_x, _ in batches], axis=0)
        y_true.append(y.numpy())
        probs.append(np.asarray(p))
        missed = np.flatnonzero(np.argmax(p, axis=1) != y.numpy())
        if sum(len(w) for w in wrong) < plots.MISCLASSIFIED_SHOWN:
            wrong.append(x.numpy()[missed])
    y_true = np.concatenate(y_true).astype(np.int64)
    probs = np.concatenate(probs)
    y_pred = probs.argmax(axis=1)
    missed = np.flatnonzero(y_pred != y_true)[: plots.MISCLASSIFIED_SHOWN]
    features = np.concatenate(wrong)[: plots.MISCLASSIFIED_SHOWN] if wrong else np.zeros((0, 1, 1, 1))
    return {
        "report": metrics.classification_report(y_true, probs, classes),
        "speakers": _per_speaker(split.speakers, y_true == y_pred),
        "misclassified": int(np.sum(y_pred != y_true)),
        "wrong_features": features,
        "wrong_index": missed,
        "wrong_true": y_true[missed],
        "wrong_pred": y_pred[missed],
    }


def _per_speaker(speakers: Sequence[str] | None, correct: np.ndarray) -> dict:
    """``{"per_speaker": {name: {"n", "accuracy"}}, "worst_speaker": name}``; empty when speakers are unknown."""
    if not speakers:
        return {}
    names = np.asarray(speakers)
    table = {
        str(name): {"n": int(np.sum(names == name)), "accuracy": float(np.mean(correct[names == name]))}
        for name in sorted(set(speakers))
    }
    return {"per_speaker": table, "worst_speaker": min(table, key=lambda name: table[name]["accuracy"])}


def _as_picture(features: np.ndarray) -> np.ndarray:
    """``(n, frames, bins, 1)`` normalised features -> ``(n, bins, frames, 1)`` in [0, 1], low frequencies at the bottom."""
    pictures = np.flip(np.transpose(features, (0, 2, 1, 3)), axis=1)
    low = pictures.min(axis=(1, 2, 3), keepdims=True)
    high = pictures.max(axis=(1, 2, 3), keepdims=True)
    return (pictures - low) / np.maximum(high - low, 1e-6)


def _open(run_dir: str) -> tuple[runs.Run, keras.Model, dict]:
    run = runs.load(run_dir)
    if run.task != TASK:
        raise InputError(f"RUN_DIR '{run_dir}': a {run.task!r} run, not a {TASK!r} run")
    return run, run.load_model(), run.config


def _augmentation(cfg: Config) -> speech.Augmentation:
    return speech.Augmentation(
        time_shift=cfg.time_shift,
        noise_snr=(5.0, 30.0) if cfg.noise else None,
        spec_augment=cfg.spec_augment,
        speed_perturb=cfg.speed_perturb,
        vtlp=cfg.vtlp,
        filter_db=cfg.filter_augment,
        tempo_perturb=cfg.tempo_perturb,
    )


def _num_samples(duration: float, sample_rate: int) -> int:
    return int(round(duration * sample_rate))


def _check(cfg: Config) -> None:
    """Reject bad options before any data is read or anything is written."""
    if cfg.model not in models.names():
        raise InputError(f"--model '{cfg.model}': unknown; expected one of: {', '.join(models.names())}")
    if not 1 <= cfg.ensemble <= MAX_ENSEMBLE:
        raise InputError(f"--ensemble {cfg.ensemble}: expected 1 to {MAX_ENSEMBLE} models")
    cfg.check_fit_options()
    speech.check_frontend(cfg.frontend, _augmentation(cfg))
    if cfg.sample_rate < 1:
        raise InputError(f"--sample-rate {cfg.sample_rate}: expected an integer >= 1")
    if not 0 < cfg.duration <= 60:
        raise InputError(f"--duration {cfg.duration}: expected 0 < seconds <= 60")
    if not 0 <= cfg.time_shift < cfg.duration:
        raise InputError(f"--time-shift {cfg.time_shift}: expected 0 <= seconds < --duration")
    if not 0 <= cfg.speed_perturb < 0.5:
        raise InputError(f"--speed-perturb {cfg.speed_perturb}: expected a fraction in [0, 0.5)")
    if not 0 <= cfg.vtlp < 0.5:
        raise InputError(f"--vtlp {cfg.vtlp}: expected a fraction in [0, 0.5)")
    if not 0 <= cfg.tempo_perturb < 0.5:
        raise InputError(f"--tempo-perturb {cfg.tempo_perturb}: expected a fraction in [0, 0.5)")
    for flag, value in (("--tta-warp", cfg.tta_warp), ("--tta-tempo", cfg.tta_tempo)):
        if not 0 <= value < 0.5:
            raise InputError(f"{flag} {value}: expected a fraction in [0, 0.5)")
        if value and cfg.frontend != "tf":
            raise InputError(f"{flag} {value}: works on the power spectrum inside the tf front end; use --frontend tf")
    if not 0 <= cfg.filter_augment <= 20:
        raise InputError(f"--filter-augment {cfg.filter_augment}: expected 0 to 20 dB")
    feature_spec(asdict(cfg)).frames(_num_samples(cfg.duration, cfg.sample_rate))

