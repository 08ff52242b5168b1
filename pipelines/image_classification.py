"""Image classification: dataset -> tf.data -> CNN from the zoo -> fit -> test metrics and plots.

``run(cfg)`` trains one model and writes the run folder (see :mod:`cnnkit.runs`
and :mod:`cnnkit.training`): ``config.json`` (every option, plus the
preprocessing a later ``evaluate``/``predict`` must repeat), ``model.keras``,
``history.csv``, TensorBoard ``logs/``, ``metrics.json`` and three PNG plots.
Rerunning the same command with the same ``--out`` resumes an interrupted run.

The default (``digits``, the ``lecture`` CNN) trains offline on scikit-learn's
1,797 8x8 digits, upscaled to 16x16 so the lecture CNN keeps both of its pools
(at 8x8 the small-input rule drops one), with basic augmentation, Adam at a peak
learning rate of 3e-3 and 40 epochs: 99.4% test accuracy on the seed-0 split
(360 test images), within a minute on 2 CPU cores. Without augmentation the
same budget stays near 97.5% (see ``benchmarks/image_classification.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnnkit import distribute, explain, metrics, models, plots, runs, training
from cnnkit import report as reporting
from cnnkit.data import images
from cnnkit.data.splits import stratified_indices
from cnnkit.errors import InputError

log = logging.getLogger(__name__)

TASK = "image"
AUGMENTS = ("none", "basic")
# --image-size when none is given: digits are upscaled (see the module docstring);
# every other source keeps its native size (folders: see cnnkit.data.images.load).
DEFAULT_IMAGE_SIZE = {"digits": 16}
# --epochs auto. On the digits (1,293 training images, 41 steps an epoch) it
# gives the 40 epochs measured there (30: 98.1%, 40: 99.4%); a 10,000-image set
# gets about 4,000 steps, which the lecture CNN takes in a few minutes on 2 cores.
EPOCH_BUDGET = training.EpochBudget(steps=4000, min_epochs=10, max_epochs=40)


@dataclass(frozen=True)
class Config(training.FitOptions):
    """Every option of ``train-image``; the CLI options map one-to-one onto these fields.

    The training options shared with the other commands are in :class:`cnnkit.training.FitOptions`.
    """

    dataset: str = "digits"  # digits | idx:DIR | folder:DIR | tfds:NAME
    data_dir: str = "data/tfds"  # tfds cache
    image_size: int | None = None  # square side in pixels; None: per dataset (digits 16, else native)
    val_fraction: float = 0.1  # of datasets without their own split; validation also comes from a given train split
    test_fraction: float = 0.2  # of datasets without their own test split
    augment: str = "basic"  # none | basic (shift, rotation, zoom; flips where the dataset allows)
    model: str = "lecture"  # any name of cnnkit.models.names()
    epochs: int | str = training.AUTO  # auto: EPOCH_BUDGET (digits: 40 epochs, 99.4%; MNIST-10k: 18)
    batch_size: int = 32  # per replica
    lr: float = 3e-3  # peak learning rate after warm-up; cosine decay to 0 (digits: better than 1e-3)


def run(cfg: Config) -> dict:
    """Train and test one image classifier; returns the contents of ``metrics.json`` plus ``run_dir``.

    Raises:
        InputError: a bad option, dataset or ``--out`` (before anything is written).
    """
    _check(cfg)
    strategy = distribute.setup_compute(cfg.device, cfg.strategy, cfg.mixed_precision, cfg.logical_cpus, jit=cfg.jit)
    keras.utils.set_random_seed(cfg.seed)
    size = _size(cfg)
    source = images.load(cfg.dataset, image_size=size, data_dir=cfg.data_dir)
    size = size or source.image_shape[:2]
    channels = source.image_shape[2]
    parts = split(source, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed)
    if not len(parts["test"]):
        raise InputError(f"--test-fraction {cfg.test_fraction}: --dataset '{cfg.dataset}' has no test split of its own; expected a fraction > 0")
    out = Path(cfg.out) if cfg.out else runs.default_out(cfg.dataset, cfg.model)
    batch = distribute.global_batch_size(cfg.batch_size, strategy)
    epochs = training.resolve_epochs(cfg.epochs, EPOCH_BUDGET, len(parts["train"]), batch)
    record = {
        **asdict(cfg),
        **training.epochs_record(cfg.epochs, epochs, EPOCH_BUDGET),
        "out": str(out),
        "preprocessing": {"classes": list(source.classes), "image_size": list(size), "channels": channels, "max_value": source.max_value},
    }
    with distribute.run_folder(out, strategy) as folder:
        with strategy.scope():
            model = models.build(cfg.model, (*size, channels), len(source.classes), conv=cfg.conv)
            training.compile_classifier(
                model,
                optimizer=cfg.optimizer,
                lr=cfg.lr,
                epochs=epochs,
                steps_per_epoch=math.ceil(len(parts["train"]) / batch),
                warmup_epochs=cfg.warmup_epochs,
                label_smoothing=cfg.label_smoothing,
                jit=cfg.jit,
            )
        distribute.check_disk_space(folder, model)
        run_dir = runs.start(folder, TASK, record)
        log.info("run folder %s: %s", run_dir, ", ".join(f"{k} {len(v)}" for k, v in parts.items()))

        def batches(part: str, shuffle: bool) -> tf.data.Dataset | None:
            if not len(parts[part]):
                return None
            augment = images.augmenter(flips=source.flips, seed=cfg.seed) if shuffle and cfg.augment == "basic" else None
            ds = images.pipeline(
                parts[part],
                max_value=source.max_value,
                size=size,
                channels=channels,
                batch_size=batch,
                shuffle_seed=cfg.seed if shuffle else None,
                augment=augment,
            )
            return distribute.shard_by_data(ds)

        result = training.fit(
            model,
            batches("train", shuffle=True),
            validation=batches("val", shuffle=False),
            epochs=epochs,
            run_dir=run_dir,
            patience=cfg.patience or None,
            save_every=cfg.save_every,
            verbose=not cfg.quiet,
            examples_per_epoch=len(parts["train"]),
        )
        test = parts["test"]
        probs = model.predict(batches("test", shuffle=False), verbose=0)
        report = metrics.classification_report(test.y, probs, source.classes)
        predicted = probs.argmax(axis=1)
        plots.training_curves(result.history, run_dir / "curves.png")
        plots.confusion_matrix(report["confusion_matrix"], source.classes, run_dir / "confusion_matrix.png")
        wrong = np.flatnonzero(predicted != test.y)
        shown = wrong[: plots.MISCLASSIFIED_SHOWN]
        plots.misclassified_grid(
            images.preprocess(test.x[shown], max_value=source.max_value, size=size, channels=channels).numpy(),
            test.y[shown],
            predicted[shown],
            source.classes,
            run_dir / "misclassified.png",
            misclassified=len(wrong),
            tested=len(test),
        )
        summary = {
            "task": TASK,
            **metrics.test_summary(report),
            "classes": list(source.classes),
            "examples": {part: len(s) for part, s in parts.items()},
            "misclassified": len(wrong),
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "best_epoch": result.best_epoch,
            "train_seconds": result.train_seconds,
            "images_per_second": result.examples_per_second,
            "skipped_files": len(source.skipped),
            "skipped": source.skipped,
        }
        runs.finish(run_dir, summary)
        reporting.write(run_dir)
    return {**summary, "run_dir": str(out)}


def split(source: images.Source, *, val_fraction: float, test_fraction: float, seed: int) -> dict[str, images.ImageSet]:
    """``train``/``val``/``test`` parts: the dataset's own train/test where it has them, else a stratified seeded split.

    Validation always comes out of the training examples (``val_fraction`` of
    them when the dataset has its own test split).
    """
    if "test" in source.parts:
        train = source.parts["train"]
        fractions = {"val_fraction": val_fraction, "test_fraction": 0.0}
        idx = stratified_indices(train.y, **fractions, seed=seed, name=f"--dataset '{source.spec}'")
        return {"train": train.take(idx["train"]), "val": train.take(idx["val"]), "test": source.parts["test"]}
    everything = source.parts["all"]
    idx = stratified_indices(everything.y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, name=f"--dataset '{source.spec}'")
    return {part: everything.take(i) for part, i in idx.items()}


def evaluate(run_dir: str, dataset: str, subset: str = "all", data_dir: str = "data/tfds") -> dict:
    """Evaluate a finished run's model on ``dataset`` with the run's own preprocessing.

    Args:
        run_dir: a finished train-image run.
        dataset: any dataset spec; its class names must be among the run's.
        subset: ``all`` examples, or the ``train``/``val``/``test`` part the
            run's split settings (seed, fractions) give on this dataset.
        data_dir: the tfds cache.

    Returns:
        ``{"dataset", "subset", "n", "accuracy", "loss", "per_class", "confusion_matrix"}``.

    Raises:
        InputError: not a run, bad dataset or subset, or classes the run does not know.
    """
    run, model, prep = _open(run_dir)
    if subset not in ("all", "train", "val", "test"):
        raise InputError(f"--subset '{subset}': unknown; expected one of: all, train, val, test")
    size = tuple(prep["image_size"])
    source = images.load(dataset, image_size=size, data_dir=data_dir)
    relabel = metrics.class_index_map(source.classes, prep["classes"], dataset)
    if subset == "all":
        examples = source.everything()
    else:
        cfg = run.config
        examples = split(source, val_fraction=cfg["val_fraction"], test_fraction=cfg["test_fraction"], seed=cfg["seed"])[subset]
    if not len(examples):
        raise InputError(f"--subset '{subset}': no examples of {dataset} fall in it")
    ds = images.pipeline(examples, max_value=source.max_value, size=size, channels=prep["channels"], batch_size=256)
    probs = model.predict(ds, verbose=0)
    return {"dataset": dataset, "subset": subset, **metrics.classification_report(relabel[examples.y], probs, prep["classes"])}


def predict(run_dir: str, files: Sequence[str], top_k: int = 5) -> list[dict]:
    """Top-``k`` classes with probabilities for each image file, preprocessed like the run's inputs.

    Returns:
        One ``{"file", "top": [{"label", "probability"}, ...]}`` per file, in order.

    Raises:
        InputError: not a run, no files, an unreadable file, or ``top_k < 1``.
    """
    run, model, prep = _open(run_dir)
    if not files:
        raise InputError("FILE: give at least one image file")
    if top_k < 1:
        raise InputError(f"--top-k {top_k}: expected an integer >= 1")
    probs = model.predict(_inputs(files, prep), verbose=0)
    return [{"file": str(f), "top": top} for f, top in zip(files, metrics.top_k(probs, prep["classes"], top_k))]


def explain_inputs(run: runs.Run, model: keras.Model, files: Sequence[str]) -> explain.Inputs:
    """The image files as the run's model sees them, and its answers, for :func:`cnnkit.explain.write_page`.

    Raises:
        InputError: a missing or unreadable image file.
    """
    x = _inputs(files, run.config["preprocessing"]).numpy()
    examples = [explain.Example(Path(f).name, pixels) for f, pixels in zip(files, x)]
    return explain.Inputs(examples, model.predict(x, verbose=0))


def _inputs(files: Sequence[str], prep: dict) -> tf.Tensor:
    """Image files as the run's model inputs ``(n, height, width, channels)`` float32 in [0, 1]."""
    size, channels = tuple(prep["image_size"]), prep["channels"]
    pixels = np.stack([images.read_image(f, size, channels) for f in files])
    return images.preprocess(pixels, max_value=255.0, size=size, channels=channels)


def _open(run_dir: str) -> tuple[runs.Run, keras.Model, dict]:
    run = runs.load(run_dir)
    if run.task != TASK:
        raise InputError(f"RUN_DIR '{run_dir}': a {run.task!r} run, not an {TASK!r} run")
    return run, run.load_model(), run.config["preprocessing"]


def _check(cfg: Config) -> None:
    """Reject bad options before any data is read or anything is written."""
    if cfg.model not in models.names():
        raise InputError(f"--model '{cfg.model}': unknown; expected one of: {', '.join(models.names())}")
    if cfg.augment not in AUGMENTS:
        raise InputError(f"--augment '{cfg.augment}': unknown; expected one of: {', '.join(AUGMENTS)}")
    cfg.check_fit_options()
    if cfg.image_size is not None and cfg.image_size < 1:
        raise InputError(f"--image-size {cfg.image_size}: expected a side in pixels >= 1")


def _size(cfg: Config) -> tuple[int, int] | None:
    side = cfg.image_size or DEFAULT_IMAGE_SIZE.get(cfg.dataset)
    return (side, side) if side else None

