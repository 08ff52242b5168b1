"""Compile and fit a classifier with resume, best-weights saving and an epoch log.

Shared by every training command. The caller builds the model (inside
``strategy.scope()`` when distributing), then::

    training.compile_classifier(model, optimizer="adam", lr=1e-3, epochs=10,
                                steps_per_epoch=ceil(n_train / batch), jit=False)
    result = training.fit(model, train_ds, validation=val_ds, epochs=10, run_dir=run_dir)
    # model now holds the best weights; result.history has one row per epoch
    runs.finish(run_dir, metrics)   # metrics.json, then the resume state is dropped

What ``fit`` writes into ``run_dir`` (see :mod:`cnnkit.runs`):

* ``model.keras``: the whole model at the best ``monitor`` value so far;
* ``history.csv``: one row per completed epoch, rewritten atomically each epoch
  (``epoch``, Keras' logs such as ``loss``/``accuracy``/``val_loss``, ``lr``,
  ``train_seconds`` = time in training steps, ``epoch_seconds`` = with validation);
* ``backup/``: the resume state (weights + optimizer, after N completed epochs);
* ``logs/``: TensorBoard.

Resume. Keras' ``BackupAndRestore`` writes the weights and the epoch number in
two separate, non-atomic writes, so a SIGKILL between (or during) them can
repeat an epoch or leave an unreadable file. :class:`ResumeCheckpoint` keeps
the same idea but commits the state as one file whose name carries the epoch,
written under a temporary name and renamed. At each epoch end the callbacks run
in this order: ``model.keras`` (if improved), ``history.csv``, then the resume
state. A crash anywhere therefore resumes at the last epoch whose state was
committed; history rows at or beyond it are dropped and that epoch is run again
once, so ``history.csv`` holds each epoch exactly once.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnnkit import distribute, runs
from cnnkit.errors import InputError

OPTIMIZERS = ("adam", "sgd")
AUTO = "auto"  # --epochs auto: sized by an EpochBudget

log = logging.getLogger(__name__)


def check_save_every(save_every: int | None) -> None:
    """Raise InputError unless ``--save-every`` is ``None`` (epoch ends only) or a positive number of steps."""
    if save_every is not None and save_every < 1:
        raise InputError(f"--save-every {save_every}: expected a positive number of steps")


@dataclass(frozen=True)
class FitOptions:
    """The options every classifier-training command shares; each pipeline's Config extends it.

    A pipeline's ``Config`` subclasses this, adds its data and model fields and
    may restate a default (e.g. ``epochs``) that suits its default dataset.
    """

    conv: str = "keras"  # keras | handgrad convolutions
    epochs: int | str = AUTO  # training epochs; "auto": from the training split's size (:func:`auto_epochs`)
    batch_size: int = 32  # per replica
    lr: float = 3e-3  # peak learning rate after warm-up; cosine decay to 0
    warmup_epochs: float = 1.0  # linear warm-up length
    optimizer: str = "adam"  # adam | sgd (Nesterov momentum 0.9)
    patience: int = 0  # early-stopping patience in epochs on val_loss; 0: off
    label_smoothing: float = 0.0  # train against (1 - eps) * one-hot + eps / classes; 0: plain cross-entropy
    mixed_precision: bool = False  # bfloat16 on CPU, float16 on GPU
    jit: bool = False  # XLA-compile the train step
    device: str = "auto"  # auto | cpu | gpu
    strategy: str = "auto"  # auto | one | mirrored | multiworker
    logical_cpus: int | None = None  # split the CPU into N logical devices (for mirrored on CPU)
    save_every: int | None = None  # also save the resume state every N steps; None: epoch ends only
    seed: int = 0  # data split, initialisation, shuffling and augmentation
    quiet: bool = False  # no progress bars
    out: str | None = None  # run folder; None: runs/<dataset>-<model>-<timestamp>

    def check_fit_options(self) -> None:
        """Reject bad shared options before any data is read or anything is written.

        Raises:
            InputError: naming the option and what was expected.
        """
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"--optimizer '{self.optimizer}': unknown; expected one of: {', '.join(OPTIMIZERS)}")
        if self.epochs != AUTO and not (isinstance(self.epochs, int) and self.epochs >= 1):
            raise InputError(f"--epochs {self.epochs}: expected 'auto' or an integer >= 1")
        if self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size}: expected an integer >= 1")
        if not self.lr > 0:
            raise InputError(f"--lr {self.lr}: expected a positive learning rate")
        if not 0 <= self.label_smoothing < 1:
            raise InputError(f"--label-smoothing {self.label_smoothing}: expected a fraction in [0, 1)")
        check_save_every(self.save_every)


@dataclass(frozen=True)
class EpochBudget:
    """The ``--epochs auto`` rule: a budget of optimizer steps, bounded in epochs.

    ``epochs = clip(ceil(steps / ceil(n_train / global_batch)), min_epochs, max_epochs)``.
    A small training split is seen ``max_epochs`` times (many passes, few steps);
    a large one at least ``min_epochs`` times, else about ``steps`` updates, so
    training time grows with the data only once the budget is spent. The warm-up/cosine schedule is then
    sized to the chosen epochs, so it always decays to 0 at the end.
    """

    steps: int  # optimizer steps to aim for
    min_epochs: int  # however large the split
    max_epochs: int  # however small the split

    def epochs(self, train_examples: int, global_batch: int) -> int:
        """The number of epochs for ``train_examples`` in batches of ``global_batch``."""
        steps_per_epoch = max(math.ceil(train_examples / global_batch), 1)
        return min(max(math.ceil(self.steps / steps_per_epoch), self.min_epochs), self.max_epochs)

    def describe(self) -> str:
        """The rule in words, for ``--help`` and the log."""
        return f"auto: about {self.steps} optimizer steps, within {self.min_epochs}-{self.max_epochs} epochs"


def resolve_epochs(epochs: int | str, budget: EpochBudget, train_examples: int, global_batch: int) -> int:
    """``epochs`` itself when it is a number (an explicit ``--epochs N`` wins), else the budget's choice; logged."""
    if epochs != AUTO:
        return int(epochs)
    chosen = budget.epochs(train_examples, global_batch)
    log.info("--epochs auto: %d epochs of %d training examples in batches of %d (%s)", chosen, train_examples, global_batch, budget.describe())
    return chosen


def epochs_record(option: int | str, epochs: int, budget: EpochBudget) -> dict:
    """What config.json records of the training length: the epochs run and, for ``auto``, the rule that chose them."""
    return {"epochs": epochs, "epochs_rule": budget.describe() if option == AUTO else "given"}


def learning_rate_schedule(lr: float, total_steps: int, warmup_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up from 0 to ``lr`` over ``warmup_steps``, then cosine decay to 0.

    Warm-up (Goyal et al. 2017, "Accurate, Large Minibatch SGD") keeps the first
    steps of Adam/large-batch SGD from blowing up freshly initialised weights;
    cosine decay (Loshchilov & Hutter 2017, SGDR, without restarts):
    ``lr_t = lr * 0.5 * (1 + cos(pi * t / T))`` for the ``T`` steps after warm-up.
    """
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else lr,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=lr if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def make_optimizer(name: str, learning_rate) -> keras.optimizers.Optimizer:
    """``adam`` (Kingma & Ba 2015) or ``sgd`` with Nesterov momentum 0.9.

    Raises:
        InputError: unknown name.
    """
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    raise InputError(f"--optimizer '{name}': unknown; expected one of: {', '.join(OPTIMIZERS)}")


@keras.saving.register_keras_serializable(package="cnnkit")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of probabilities against smoothed integer labels.

    Label smoothing (Szegedy et al. 2016, "Rethinking the Inception
    Architecture", section 7): the target of an example of class ``y`` among
    ``K`` classes is ``q = (1 - eps) * one_hot(y) + eps / K``, so the loss
    ``-sum_k q_k log p_k`` stops rewarding ever larger confidence. Keras'
    sparse cross-entropy has no smoothing, and one-hot labels would change
    every dataset, so the labels stay integers and are expanded here.

    Args:
        label_smoothing: ``eps`` in [0, 1).

    Call shapes: ``y_true`` ``(batch,)`` or ``(batch, 1)`` integers,
    ``y_pred`` ``(batch, K)`` probabilities; returns ``(batch,)``.
    """

    def __init__(self, label_smoothing: float = 0.1, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, [-1]), "int32"), classes, dtype=y_pred.dtype)
        # Keras' categorical cross-entropy applies the same (1 - eps) * y + eps / K.
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def compile_classifier(
    model: keras.Model,
    *,
    optimizer: str = "adam",
    lr: float = 1e-3,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 1.0,
    label_smoothing: float = 0.0,
    jit: bool = False,
) -> None:
    """Compile a model that outputs class probabilities ``(batch, classes)`` for integer labels ``(batch,)``.

    Loss: sparse categorical cross-entropy on probabilities (every cnnkit
    classifier ends in a float32 softmax), with label smoothing when
    ``label_smoothing > 0`` (:class:`SmoothedSparseCrossentropy`). Call inside
    ``strategy.scope()`` when distributing.

    Args:
        model: the classifier.
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: peak learning rate, reached after the warm-up.
        epochs: planned epochs (the cosine reaches 0 at the end of the last).
        steps_per_epoch: optimizer steps per epoch (``ceil(n_train / global_batch)``).
        warmup_epochs: length of the linear warm-up, in epochs (may be fractional).
        label_smoothing: ``eps`` of the smoothed targets; 0 is plain cross-entropy.
        jit: compile the train step with XLA.

    Raises:
        InputError: ``jit`` under a strategy where Keras cannot run XLA
            (see :func:`cnnkit.distribute.check_jit`).
    """
    if jit:
        distribute.check_jit(model.distribute_strategy)
    total = max(epochs * steps_per_epoch, 1)
    schedule = learning_rate_schedule(lr, total, round(warmup_epochs * steps_per_epoch))
    model.compile(
        optimizer=make_optimizer(optimizer, schedule),
        loss=SmoothedSparseCrossentropy(label_smoothing) if label_smoothing else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit,
    )


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` reports.

    Attributes:
        history: one dict per completed epoch, over every attempt of a resumed run.
        initial_epoch: the epoch this call started at (0 unless resumed).
        epochs_run: ``len(history)``.
        train_seconds: seconds spent in training steps, summed over ``history``.
        examples_per_second: ``examples_per_epoch * epochs_run / train_seconds``
            (``None`` when ``examples_per_epoch`` was not given).
        stopped_early: early stopping ended training before ``epochs``.
    """

    history: list[dict]
    initial_epoch: int
    epochs_run: int
    train_seconds: float
    examples_per_second: float | None
    stopped_early: bool

    @property
    def best_epoch(self) -> int | None:
        """The epoch with the lowest ``val_loss`` (``loss`` without validation): the one ``model.keras`` holds."""
        if not self.history:
            return None
        key = "val_loss" if "val_loss" in self.history[0] else "loss"
        return int(min(self.history, key=lambda row: row[key])["epoch"])


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    *,
    epochs: int,
    run_dir: str | os.PathLike,
    validation: tf.data.Dataset | None = None,
    monitor: str | None = None,
    patience: int | None = None,
    save_every: int | None = None,
    verbose: bool = True,
    write: bool = True,
    backup_dir: str | os.PathLike | None = None,
    examples_per_epoch: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> FitResult:
    """Train a compiled model, resuming from ``run_dir/backup`` when an earlier attempt was interrupted.

    On return the model holds the best weights (those saved in ``model.keras``).

    Args:
        model: a compiled model (:func:`compile_classifier`).
        train: batches ``(x, y)``; ``x`` e.g. ``(batch, height, width, channels)``, ``y`` ``(batch,)``.
        epochs: total epochs of the run (a resumed run runs only the rest).
        run_dir: the run folder made by :func:`cnnkit.runs.start`.
        validation: batches like ``train``, evaluated after each epoch.
        monitor: the log entry that picks the best weights and drives early
            stopping; ``"val_loss"`` with validation data, else ``"loss"``.
        patience: stop after this many epochs without improvement; ``None`` never stops early.
        save_every: also save the resume state every N training steps (an
            interrupted epoch then restarts from its first batch with the
            weights of the last save); ``None`` saves at epoch ends only.
        verbose: Keras progress bars.
        write: ``False`` on non-chief workers: nothing is written to
            ``run_dir`` except their own resume state in ``backup_dir``.
        backup_dir: where the resume state lives (default ``run_dir/backup``;
            non-chief workers of a multi-worker run each need their own).
        examples_per_epoch: training examples per epoch, for ``examples_per_second``.
        callbacks: extra Keras callbacks, run before the resume state is saved.

    Raises:
        InputError: the loss became NaN or infinite (the resume state keeps the last finite weights).
        cnnkit.distribute.TrainingInterrupted: SIGINT/SIGTERM; the resume state was saved first.

    Returns:
        A :class:`FitResult`.
    """
    run_dir = Path(run_dir)
    monitor = monitor or ("val_loss" if validation is not None else "loss")
    mode = "max" if "acc" in monitor else "min"
    checkpoint = ResumeCheckpoint(backup_dir or run_dir / runs.BACKUP, save_every=save_every)
    initial_epoch = checkpoint.restore(model)
    # Rows of epochs whose resume state was never committed are dropped: they run again.
    history = [r for r in runs.read_csv(run_dir / runs.HISTORY) if r["epoch"] < initial_epoch] if initial_epoch else []
    log = EpochLog(run_dir / runs.HISTORY, history, write=write)
    best = BestModel(run_dir / runs.MODEL, monitor, mode, history=history, write=write)
    stop = [keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience)] if patience else []
    board = _tensorboard(run_dir / runs.LOGS) if write else []
    signal_stop = distribute.StopOnSignal(save=checkpoint.save_current)
    try:
        model.fit(
            train,
            validation_data=validation,
            epochs=epochs,
            initial_epoch=initial_epoch,
            shuffle=False,  # a tf.data pipeline shuffles itself
            verbose=1 if verbose else 0,
            # Order matters: a non-finite loss stops before anything is saved; model.keras and
            # history.csv are committed before the resume state; a signal stops after it.
            callbacks=[
                distribute.StopOnNonFiniteLoss(),
                best,
                log,
                *stop,
                *board,
                *callbacks,
                checkpoint,
                signal_stop,
            ],
        )
    finally:
        # Keras skips on_train_end when fit raises: never leave our Ctrl-C handler installed.
        signal_stop.restore_handlers()
    if (run_dir / runs.MODEL).is_file():
        model.load_weights(run_dir / runs.MODEL)
    seconds = float(sum(r["train_seconds"] for r in log.rows))
    return FitResult(
        history=log.rows,
        initial_epoch=initial_epoch,
        epochs_run=len(log.rows),
        train_seconds=seconds,
        examples_per_second=examples_per_epoch * len(log.rows) / seconds if examples_per_epoch and seconds else None,
        stopped_early=len(log.rows) < epochs,
    )


def _tensorboard(log_dir: Path) -> list[keras.callbacks.Callback]:
    """A TensorBoard callback writing to ``log_dir`` (the ``tensorboard`` package is a declared dependency)."""
    return [keras.callbacks.TensorBoard(log_dir, profile_batch=0, write_graph=False)]


class ResumeCheckpoint(keras.callbacks.Callback):
    """Back up weights and optimizer state so an interrupted ``fit`` resumes where it stopped.

    The same idea as ``keras.callbacks.BackupAndRestore``, but each save is one
    atomic commit: the state after ``E`` completed epochs (plus ``S`` steps of
    the next, with ``save_every``) is written as
    ``epoch-EEEEE-step-SSSSSSS.weights.h5`` under a temporary name and renamed;
    older states are deleted only afterwards. The newest readable state wins.

    Args:
        directory: the backup folder.
        save_every: also save every N training steps; ``None``: epoch ends only.
    """

    _NAME = re.compile(r"epoch-(\d+)-step-(\d+)\.weights\.h5$")

    def __init__(self, directory: str | os.PathLike, save_every: int | None = None):
        super().__init__()
        self.directory = Path(directory)
        self.save_every = save_every
        self._epoch = 0
        self._step = 0

    def restore(self, model: keras.Model) -> int:
        """Load the newest state into ``model`` (compiled) and return the epoch to start at (0: none)."""
        for epoch, _step, path in sorted(self._states(), reverse=True):
            # The optimizer's slots must be created (and loaded) as mirrored
            # variables under the strategy the model was built in.
            with model.distribute_strategy.scope():
                if not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                try:
                    model.load_weights(path)
                except (OSError, ValueError):
                    continue  # unreadable (e.g. a disk error): fall back to the previous state
            return epoch
        return 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._step = epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.save_every and self._step % self.save_every == 0:
            self._save(self._epoch, self._step)

    def on_epoch_end(self, epoch, logs=None):
        self._save(epoch + 1, 0)

    def save_current(self) -> Path:
        """Save the state at the current step now (e.g. on Ctrl-C) and return its path."""
        return self._save(self._epoch, self._step)

    def _save(self, epoch: int, step: int) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"epoch-{epoch:05d}-step-{step:07d}.weights.h5"
        tmp = runs.temporary_path(path)
        self.model.save_weights(tmp)
        os.replace(tmp, path)
        for *_, old in self._states():
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def _states(self) -> list[tuple[int, int, Path]]:
        if not self.directory.is_dir():
            return []
        found = (self._NAME.match(p.name) for p in self.directory.iterdir())
        return [(int(m[1]), int(m[2]), self.directory / m[0]) for m in found if m]


class EpochLog(keras.callbacks.Callback):
    """Append one row per epoch to ``rows`` and rewrite ``path`` (CSV) atomically.

    Unlike ``keras.callbacks.CSVLogger`` (which appends), the whole file is
    rewritten from ``rows``, so rows of an interrupted attempt never linger.
    Each row also records the learning rate and the seconds spent in training
    steps (``train_seconds``) and in the whole epoch (``epoch_seconds``).
    """

    def __init__(self, path: str | os.PathLike, rows: list[dict], write: bool = True):
        super().__init__()
        self.path = Path(path)
        self.rows = list(rows)
        self.write = write

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last_step = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last_step = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}}
        row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["train_seconds"] = self._last_step - self._start
        row["epoch_seconds"] = time.perf_counter() - self._start
        self.rows.append(row)
        if self.write:
            runs.write_csv(self.path, self.rows)


class BestModel(keras.callbacks.Callback):
    """Save the whole model to ``path`` (``.keras``) whenever ``monitor`` improves, atomically.

    ``keras.callbacks.ModelCheckpoint(save_best_only=True)`` writes in place and
    forgets the best value on resume; this one writes a temporary file and
    renames it, and starts from the best value in the resumed ``history``.
    """

    def __init__(self, path: str | os.PathLike, monitor: str, mode: str, history: Sequence[dict] = (), write: bool = True):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.sign = 1.0 if mode == "min" else -1.0
        seen = [self.sign * r[monitor] for r in history if isinstance(r.get(monitor), (int, float)) and math.isfinite(r[monitor])]
        self.best = min(seen, default=math.inf)
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or self.sign * float(value) >= self.best:
            return
        self.best = self.sign * float(value)
        if self.write:
            runs.save_model(self.model, self.path)
