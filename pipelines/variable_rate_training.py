"""The long, resumable training run of the variable-rate codec (:mod:`cnnkit.codec.gained`).

One run folder holds a ``tf.train.Checkpoint`` of the model, the Adam state, the
step counter and an exponential moving average (EMA) of the weights, saved every
``save_minutes`` and on SIGINT/SIGTERM; rerunning the same config resumes where
the last save left off. The schedule is fixed by the planned ``steps``: linear
warm-up once, a constant learning rate to ``decay_start`` of the steps, then a
cosine decay to ``final_lr_ratio`` of the peak. Crops come from random scales of
the training photos (of several folders, e.g. ``photos`` and ``photos-full``),
with flips and 90-degree rotations; every sample draws its quality level.
``history.csv`` gets one row per ``log_steps``.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cnnkit import runs
from cnnkit.codec import gained


@dataclass(frozen=True)
class Config:
    """Options of the variable-rate training run."""

    images: tuple[str, ...]  # folders of photos; in each, the last `holdout` by name are held out
    out: str  # run folder; rerun with the same config to resume
    steps: int = 200_000  # planned optimizer steps (fixes the schedule)
    filters: int = 128  # hidden channels N
    latent: int = 192  # latent channels M
    patch: int = 128  # side of the square training crops (a multiple of 64)
    batch: int = 8  # crops per step
    lr: float = 2e-4  # peak Adam learning rate
    warmup_steps: int = 2000  # linear warm-up, once
    decay_start: float = 0.85  # fraction of the steps trained at the peak rate
    final_lr_ratio: float = 0.05  # the cosine decay ends at this fraction of the peak
    ema_decay: float = 0.999  # EMA of the weights, the ones exported
    min_scale: float = 0.5  # crops are taken at a random scale in [min_scale, 1] of each photo
    holdout: int = 5  # photos held out of every folder
    bfloat16: bool = True  # transforms compute in bfloat16 (entropy model and outputs stay float32)
    save_minutes: float = 10.0  # checkpoint interval
    log_steps: int = 500  # steps per history row
    seed: int = 0


def learning_rate(cfg: Config, step: int) -> float:
    """Warm-up, constant to ``decay_start * steps``, then cosine to ``final_lr_ratio * lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = cfg.decay_start * cfg.steps
    if step < start:
        return cfg.lr
    t = min((step - start) / max(cfg.steps - start, 1), 1.0)
    return cfg.lr * (cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def training_photos(cfg: Config) -> list[np.ndarray]:
    """RGB uint8 arrays of every folder's photos but the last ``holdout`` (by name)."""
    photos = []
    for folder in cfg.images:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        for path in files[: -cfg.holdout]:
            with Image.open(path) as image:
                photos.append(np.asarray(image.convert("RGB")))
    return photos


def random_crops(photos: list[np.ndarray], cfg: Config, rng: np.random.Generator) -> np.ndarray:
    """``(batch, patch, patch, 3)`` float32 in [0, 1]: random photo, scale, place, flip and rotation."""
    out = np.empty((cfg.batch, cfg.patch, cfg.patch, 3), np.float32)
    for i in range(cfg.batch):
        photo = photos[rng.integers(len(photos))]
        largest = min(1.0, min(photo.shape[:2]) / cfg.patch)
        scale = math.exp(rng.uniform(math.log(min(cfg.min_scale, largest)), math.log(largest))) if largest >= cfg.min_scale else largest
        side = min(int(round(cfg.patch / scale)), *photo.shape[:2])
        top, left = rng.integers(photo.shape[0] - side + 1), rng.integers(photo.shape[1] - side + 1)
        crop = photo[top : top + side, left : left + side]
        if side != cfg.patch:
            crop = np.asarray(Image.fromarray(crop).resize((cfg.patch, cfg.patch), Image.Resampling.LANCZOS))
        crop = np.rot90(crop[:, ::-1] if rng.random() < 0.5 else crop, rng.integers(4))
        out[i] = crop / 255.0
    return out


def _build(cfg: Config) -> gained.GainedHyperprior:
    model = gained.build(cfg.filters, cfg.latent)
    if cfg.bfloat16:
        # Variables stay float32; the hidden layers compute in bfloat16, each transform's last layer in float32.
        policy = keras.mixed_precision.Policy("mixed_bfloat16")
        for transform in (model.analysis, model.synthesis, model.hyper_analysis, model.hyper_synthesis):
            for layer in transform.layers[:-1]:
                layer.dtype_policy = policy
    return model


def run(cfg: Config, max_steps: int | None = None) -> dict:
    """Train (or resume) until ``cfg.steps``, or ``max_steps`` more steps, or a signal.

    Returns:
        ``{"step", "last_row"}``: the step reached and the last history row.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    runs.write_json(out / "train_config.json", asdict(cfg))
    model = _build(cfg)
    optimizer = keras.optimizers.Adam(cfg.lr, global_clipnorm=1.0)
    optimizer.build(model.trainable_variables)
    ema = [tf.Variable(v, trainable=False) for v in model.trainable_variables]
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, ema=ema, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(out / "checkpoints"), max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()

    @tf.function
    def train_step(x, level, lr):
        with tf.GradientTape() as tape:
            result = model.rate_distortion(x, level, training=True)
        grads = tape.gradient(result["loss"], model.trainable_variables)
        optimizer.learning_rate.assign(lr)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        decay = tf.minimum(cfg.ema_decay, tf.cast(step + 1, tf.float32) / tf.cast(step + 10, tf.float32))
        for average, value in zip(ema, model.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * value)
        step.assign_add(1)
        return result

    photos = training_photos(cfg)
    rng = np.random.default_rng([cfg.seed, int(step.numpy())])
    stop = {"now": False}
    previous = {s: signal.signal(s, lambda *_: stop.update(now=True)) for s in (signal.SIGINT, signal.SIGTERM)}
    history_path = out / "history.csv"
    rows = runs.read_csv(history_path) if history_path.exists() else []
    rows = [r for r in rows if int(r["step"]) <= int(step.numpy())]
    end = cfg.steps if max_steps is None else min(cfg.steps, int(step.numpy()) + max_steps)
    sums, last_save, started = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}, time.monotonic(), time.monotonic()
    try:
        while int(step.numpy()) < end and not stop["now"]:
            x = tf.constant(random_crops(photos, cfg, rng))
            level = tf.constant(rng.integers(model.levels, size=cfg.batch), tf.int32)
            result = train_step(x, level, tf.constant(learning_rate(cfg, int(step.numpy())), tf.float32))
            loss = float(result["loss"])
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss {loss} at step {int(step.numpy())}: resume from the last checkpoint with a lower lr")
            sums["loss"] += loss
            sums["bpp"] += float(tf.reduce_mean(result["bpp"]))
            sums["mse"] += float(tf.reduce_mean(result["mse"]))
            sums["n"] += 1
            now = int(step.numpy())
            if now % cfg.log_steps == 0 or now == end:
                n = sums.pop("n")
                rows.append({"step": now, **{k: v / n for k, v in sums.items()}, "lr": learning_rate(cfg, now),
                             "seconds_per_step": (time.monotonic() - started) / n})
                runs.write_csv(history_path, rows)
                sums, started = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}, time.monotonic()
            if time.monotonic() - last_save > 60 * cfg.save_minutes:
                manager.save(checkpoint_number=now)
                last_save = time.monotonic()
    finally:
        manager.save(checkpoint_number=int(step.numpy()))
        for number, handler in previous.items():
            signal.signal(number, handler)
    return {"step": int(step.numpy()), "last_row": rows[-1] if rows else None}


def ema_model(cfg: Config) -> gained.GainedHyperprior:
    """The run's model with the EMA weights, float32 everywhere (for export and evaluation)."""
    model = gained.build(cfg.filters, cfg.latent)
    optimizer = keras.optimizers.Adam(cfg.lr)
    optimizer.build(model.trainable_variables)
    ema = [tf.Variable(v, trainable=False) for v in model.trainable_variables]
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, ema=ema, step=step)
    latest = tf.train.latest_checkpoint(str(Path(cfg.out) / "checkpoints"))
    checkpoint.restore(latest).expect_partial()
    for variable, average in zip(model.trainable_variables, ema):
        variable.assign(average)
    return model
