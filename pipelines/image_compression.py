"""Image compression: train a learned codec, encode/decode ``.cnz`` files, measure rate-distortion.

Jobs (each with its frozen config, one field per CLI option of ``cli.py compress``):

* :func:`train` (:class:`TrainConfig`) -- fit a codec of :mod:`cnnkit.codec.models`
  on random crops of a folder of photos for ``rate + lmbda * MSE``, resumable,
  with validation on held-out photos, and export it as a shippable codec file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cnnkit import runs, training
from cnnkit.codec import models
from cnnkit.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


# --- photos -------------------------------------------------------------------


def list_images(folder: str | Path, option: str = "--images") -> list[Path]:
    """Image files (PNG/JPEG/BMP) directly in ``folder``, sorted by name.

    Raises:
        InputError: no such folder, or no image in it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{option} '{folder}': no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{option} '{folder}': no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def split_holdout(files: list[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """The last ``holdout`` files (by name) are held out for validation; the rest train.

    Raises:
        InputError: fewer than ``holdout + 1`` files.
    """
    if holdout < 1 or len(files) <= holdout:
        raise InputError(f"--holdout {holdout}: need 1 <= holdout < number of images ({len(files)})")
    return files[:-holdout], files[-holdout:]


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(height, width, 3)`` uint8 RGB (grey, palette and RGBA are converted).

    Raises:
        InputError: unreadable or not an image.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise InputError(f"'{path}': not a readable image ({error})") from error


# --- train --------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``compress train``."""

    images: str  # folder of photos; the last `holdout` (by name) are held out for validation
    out: str | None = None  # run folder; default runs/compress-<model>-<lmbda>-<time>; rerun to resume
    model: str = "factorized"  # architecture, see cnnkit.codec.models.names()
    lmbda: float = 0.01  # weight of the MSE (8-bit scale) in rate + lmbda * MSE
    steps: int = 4000  # optimizer steps in total
    patch: int = 256  # side of the random square training crops
    batch: int = 8  # crops per step
    filters: int = 64  # hidden channels N of the transforms (Ballé et al. use 128-192; 64 trains on 2 CPU cores)
    latent: int = 96  # latent channels M (more than N leaves room for the high rates)
    lr: float = 3e-4  # peak Adam learning rate (linear warm-up, then cosine decay)
    holdout: int = 5  # photos held out for validation
    epoch_steps: int = 250  # steps between validations and resume checkpoints
    init: str | None = None  # start from this run's model.keras (fine-tuning another lmbda)
    seed: int = 0  # crop sampling and initialisation


def _crops(images: list[np.ndarray], patch: int, batch: int, seed: int) -> tf.data.Dataset:
    """An endless dataset of ``(batch, patch, patch, 3)`` float32 random crops in [0, 1], randomly flipped."""
    rng = np.random.default_rng(seed)

    def generate():
        while True:
            out = np.empty((batch, patch, patch, 3), np.float32)
            for i in range(batch):
                image = images[rng.integers(len(images))]
                top = rng.integers(image.shape[0] - patch + 1)
                left = rng.integers(image.shape[1] - patch + 1)
                crop = image[top : top + patch, left : left + patch]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                if rng.random() < 0.5:
                    crop = crop[::-1]
                out[i] = crop / 255.0
            yield out

    signature = tf.TensorSpec((batch, patch, patch, 3), tf.float32)
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)


def _validation(images: list[np.ndarray], patch: int) -> tf.data.Dataset:
    """One batch of the centre ``patch`` x ``patch`` crops of the held-out photos."""
    crops = []
    for image in images:
        top, left = (image.shape[0] - patch) // 2, (image.shape[1] - patch) // 2
        crops.append(image[top : top + patch, left : left + patch] / np.float32(255.0))
    return tf.data.Dataset.from_tensors(np.stack(crops))


def train(cfg: TrainConfig) -> dict:
    """Train a codec and export it to ``<out>/codec.npz``.

    Returns:
        ``{"out", "steps", "history": last epoch's logs, "latent_ratio", "skipped_small_images"}``.

    Raises:
        InputError: bad folder, options, or a run folder holding a different run.
    """
    if cfg.patch < models.DOWNSAMPLING or cfg.patch % models.DOWNSAMPLING:
        raise InputError(f"--patch {cfg.patch}: expected a positive multiple of {models.DOWNSAMPLING}")
    if cfg.steps < 1 or cfg.batch < 1 or cfg.epoch_steps < 1:
        raise InputError("--steps, --batch and --epoch-steps must be positive")
    train_files, val_files = split_holdout(list_images(cfg.images), cfg.holdout)
    photos = [read_rgb(f) for f in train_files]
    usable = [p for p in photos if min(p.shape[:2]) >= cfg.patch]
    held_out = [p for p in (read_rgb(f) for f in val_files) if min(p.shape[:2]) >= cfg.patch]
    if not usable or not held_out:
        raise InputError(f"--images '{cfg.images}': no training or held-out photo is at least {cfg.patch} px on each side")

    out = cfg.out or runs.default_out("compress", cfg.model, f"{cfg.lmbda:g}")
    run_dir = runs.start(out, task="compress", config=asdict(cfg))
    keras.utils.set_random_seed(cfg.seed)
    model = models.build(cfg.model, filters=cfg.filters, latent=cfg.latent, lmbda=cfg.lmbda)
    if cfg.init:
        model.load_weights(Path(cfg.init) / runs.MODEL if Path(cfg.init).is_dir() else cfg.init)
    epochs = math.ceil(cfg.steps / cfg.epoch_steps)
    schedule = training.learning_rate_schedule(cfg.lr, epochs * cfg.epoch_steps, min(200, cfg.steps // 10))
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    result = training.fit(
        model,
        # Keras runs an epoch until the dataset ends; each epoch restarts the generator with fresh crops.
        _crops(usable, cfg.patch, cfg.batch, cfg.seed)
        .take(cfg.epoch_steps)
        .apply(tf.data.experimental.assert_cardinality(cfg.epoch_steps)),
        validation=_validation(held_out, cfg.patch),
        epochs=epochs,
        run_dir=run_dir,
        monitor="val_loss",
        verbose=False,
        examples_per_epoch=cfg.epoch_steps * cfg.batch,
    )
    metrics = {
        "out": str(run_dir),
        "steps": result.epochs_run * cfg.epoch_steps,
        "train_seconds": result.train_seconds,
        "history": result.history[-1] if result.history else {},
        "latent_ratio": model.latent_ratio(),
        "skipped_small_images": len(photos) - len(usable),
    }
    runs.finish(run_dir, metrics)
    return metrics
