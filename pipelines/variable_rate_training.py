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

Every ``eval_steps`` the EMA weights are exported as a codec folder
(:mod:`cnnkit.codec.variable_rate`) and the held-out photos of the first folder
are really encoded and decoded at every quality level; ``evaluations.csv`` gets
one row per level (file-size bpp, PSNR) and the export whose PSNR at
:data:`TARGET_BPP` is highest so far is kept as ``best/``.

A run folder survives a stop; a machine may not. ``init`` names a codec folder
(e.g. the committed ``best/`` of an earlier machine) that a run without a
checkpoint starts from: its weights become the model and the EMA, its step the
step counter, and Adam, whose moments the folder does not keep, warms up again
over ``warmup_steps``.
"""

from __future__ import annotations

import json
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
from cnnkit.codec import gained, metrics, variable_rate

# The rates the codec is judged at (bpp from file sizes): PSNR is interpolated there in log(bpp).
TARGET_BPP = (0.25, 0.5, 1.0)


@dataclass(frozen=True)
class Config:
    """Options of the variable-rate training run."""

    images: tuple[str, ...]  # folders of photos; in each, the last `holdout` by name are held out
    out: str  # run folder; rerun with the same config to resume
    steps: int = 200_000  # planned optimizer steps (fixes the schedule)
    filters: int = 128  # hidden channels N
    latent: int = 192  # latent channels M
    # 4 crops of 192 px: the pixels of 8 crops of 128 at the same cost, with a 3x3 instead of a 2x2 z,
    # so fewer latents see the zero padding at a crop's border that whole photos barely have.
    patch: int = 192  # side of the square training crops (a multiple of 64)
    batch: int = 4  # crops per step
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
    eval_steps: int = 5000  # steps between exports and real encode/decode of the held-out photos
    init: str | None = None  # codec folder to start from when the run folder holds no checkpoint


def learning_rate(cfg: Config, step: int, optimizer_start: int = 0) -> float:
    """Warm-up from ``optimizer_start`` (0, or the step of ``init``), constant to ``decay_start * steps``, then cosine to ``final_lr_ratio * lr``."""
    if step - optimizer_start < cfg.warmup_steps:
        return cfg.lr * (step - optimizer_start + 1) / cfg.warmup_steps
    start = cfg.decay_start * cfg.steps
    if step < start:
        return cfg.lr
    t = min((step - start) / max(cfg.steps - start, 1), 1.0)
    return cfg.lr * (cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _photo_files(folder: str) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def training_photos(cfg: Config) -> list[np.ndarray]:
    """RGB uint8 arrays of every folder's photos but the last ``holdout`` (by name)."""
    return [_read_rgb(path) for folder in cfg.images for path in _photo_files(folder)[: -cfg.holdout]]


def held_out_photos(cfg: Config) -> list[np.ndarray]:
    """The last ``holdout`` photos (by name) of the first folder: what the run is judged on."""
    return [_read_rgb(path) for path in _photo_files(cfg.images[0])[-cfg.holdout :]]


def rd_points(codec: variable_rate.VariableRateCodec, photos: list[np.ndarray]) -> list[dict]:
    """``[{"quality", "bpp", "psnr"}]``: mean file-size bpp and PSNR of ``photos`` coded at every level."""
    points = []
    for quality in codec.qualities:
        rates, psnrs = [], []
        for pixels in photos:
            data = codec.encode(pixels, quality)
            rates.append(metrics.bits_per_pixel(len(data), *pixels.shape[:2]))
            psnrs.append(metrics.psnr(pixels, codec.decode(data)))
        points.append({"quality": quality, "bpp": float(np.mean(rates)), "psnr": float(np.mean(psnrs))})
    return points


def psnr_at(points: list[dict], bpp: float) -> float:
    """PSNR of an RD curve at ``bpp``, linear in log(bpp) between its points and beyond its ends."""
    rates = np.log([p["bpp"] for p in points])
    quality = np.array([p["psnr"] for p in points])
    order = np.argsort(rates)
    rates, quality = rates[order], quality[order]
    i = int(np.clip(np.searchsorted(rates, np.log(bpp)), 1, len(rates) - 1))
    slope = (quality[i] - quality[i - 1]) / max(rates[i] - rates[i - 1], 1e-9)
    return float(quality[i - 1] + slope * (np.log(bpp) - rates[i - 1]))


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


class _State:
    """Model, Adam, EMA and step counter of a run, saved as one ``tf.train.Checkpoint``."""

    def __init__(self, cfg: Config, out: Path):
        self.cfg = cfg
        self.model = _build(cfg)
        self.optimizer = keras.optimizers.Adam(cfg.lr, global_clipnorm=1.0)
        self.optimizer.build(self.model.trainable_variables)
        self.ema = [tf.Variable(v, trainable=False) for v in self.model.trainable_variables]
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, ema=self.ema, step=self.step)
        self.manager = tf.train.CheckpointManager(checkpoint, str(out / "checkpoints"), max_to_keep=2)
        self.meta_path = out / "optimizer.json"
        if self.manager.latest_checkpoint:
            checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
        elif cfg.init:
            self._start_from(variable_rate.load(cfg.init))
        self.optimizer_start = json.loads(self.meta_path.read_text())["start"] if self.meta_path.exists() else 0

    def _start_from(self, codec: variable_rate.VariableRateCodec) -> None:
        """Weights and EMA from a codec folder, the step from its manifest; Adam starts afresh there."""
        values = {v.path: v.numpy() for v in codec.model.weights}
        for variable in self.model.weights:
            variable.assign(values[variable.path])
        for average, variable in zip(self.ema, self.model.trainable_variables):
            average.assign(variable)
        self.step.assign(codec.step or 0)
        runs.write_json(self.meta_path, {"start": int(codec.step or 0), "init": self.cfg.init})

    def save(self) -> None:
        self.manager.save(checkpoint_number=int(self.step.numpy()))

    def ema_model(self) -> gained.GainedHyperprior:
        """A float32 model holding the EMA weights."""
        model = gained.build(self.cfg.filters, self.cfg.latent)
        averages = {v.path: a for v, a in zip(self.model.trainable_variables, self.ema)}
        for variable, original in zip(model.weights, self.model.weights):
            variable.assign(averages.get(original.path, original))
        return model


def _train_step(state: _State):
    cfg, model, optimizer, ema, step = state.cfg, state.model, state.optimizer, state.ema, state.step

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

    return train_step


def evaluate(state: _State, out: Path, calibration: list[np.ndarray], held_out: list[np.ndarray]) -> dict:
    """Export the EMA weights, code the held-out photos at every level, keep the best export.

    Returns:
        ``{"step", "points": [{"quality", "bpp", "psnr"}], "score"}``; ``score`` is the mean PSNR at :data:`TARGET_BPP`.
    """
    now = int(state.step.numpy())
    folder = variable_rate.export(state.ema_model(), out / "latest", calibration, step=now)
    points = rd_points(variable_rate.load(folder), held_out)
    score = float(np.mean([psnr_at(points, bpp) for bpp in TARGET_BPP]))
    rows = runs.read_csv(out / "evaluations.csv")
    best = max((r["score"] for r in rows), default=-math.inf)
    rows += [{"step": now, **p, "score": score} for p in points]
    runs.write_csv(out / "evaluations.csv", rows)
    if score > best:
        with runs.atomic_folder(out / "best") as tmp:
            for path in folder.iterdir():
                (tmp / path.name).write_bytes(path.read_bytes())
    return {"step": now, "points": points, "score": score}


def run(cfg: Config, max_steps: int | None = None) -> dict:
    """Train (or resume) until ``cfg.steps``, or ``max_steps`` more steps, or a signal.

    Returns:
        ``{"step", "last_row"}``: the step reached and the last history row.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    runs.write_json(out / "train_config.json", asdict(cfg))
    state = _State(cfg, out)
    train_step = _train_step(state)
    photos, held_out = training_photos(cfg), held_out_photos(cfg)
    rng = np.random.default_rng([cfg.seed, int(state.step.numpy())])
    stop = {"now": False}
    previous = {s: signal.signal(s, lambda *_: stop.update(now=True)) for s in (signal.SIGINT, signal.SIGTERM)}
    history_path = out / "history.csv"
    rows = [r for r in runs.read_csv(history_path) if int(r["step"]) <= int(state.step.numpy())]
    end = cfg.steps if max_steps is None else min(cfg.steps, int(state.step.numpy()) + max_steps)
    sums, last_save, started = _zero_sums(), time.monotonic(), time.monotonic()
    try:
        while int(state.step.numpy()) < end and not stop["now"]:
            now = int(state.step.numpy())
            x = tf.constant(random_crops(photos, cfg, rng))
            level = tf.constant(rng.integers(state.model.levels, size=cfg.batch), tf.int32)
            result = train_step(x, level, tf.constant(learning_rate(cfg, now, state.optimizer_start), tf.float32))
            _accumulate(sums, result, now)
            now += 1
            if now % cfg.log_steps == 0 or now == end:
                rows.append(_history_row(sums, now, learning_rate(cfg, now, state.optimizer_start), started))
                runs.write_csv(history_path, rows)
                sums, started = _zero_sums(), time.monotonic()
            if time.monotonic() - last_save > 60 * cfg.save_minutes:
                state.save()
                last_save = time.monotonic()
            if now % cfg.eval_steps == 0:
                state.save()
                evaluate(state, out, photos, held_out)
    finally:
        state.save()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return {"step": int(state.step.numpy()), "last_row": rows[-1] if rows else None}


def _zero_sums() -> dict:
    return {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}


def _accumulate(sums: dict, result: dict, step: int) -> None:
    loss = float(result["loss"])
    if not math.isfinite(loss):
        raise FloatingPointError(f"loss {loss} at step {step}: resume from the last checkpoint with a lower lr")
    sums["loss"] += loss
    sums["bpp"] += float(tf.reduce_mean(result["bpp"]))
    sums["mse"] += float(tf.reduce_mean(result["mse"]))
    sums["n"] += 1


def _history_row(sums: dict, step: int, lr: float, started: float) -> dict:
    n = max(sums["n"], 1)
    means = {key: sums[key] / n for key in ("loss", "bpp", "mse")}
    return {"step": step, **means, "lr": lr, "seconds_per_step": (time.monotonic() - started) / n}


def ema_model(cfg: Config) -> gained.GainedHyperprior:
    """The run's model with the EMA weights, float32 everywhere (for export and evaluation)."""
    state = _State(cfg, Path(cfg.out))
    return state.ema_model()
