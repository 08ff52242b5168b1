"""Devices, numeric precision and tf.distribute strategies for every training command.

Call :func:`setup_compute` once, first thing in a training process, before any
other TensorFlow call: hiding GPUs and splitting the CPU into logical devices
are only possible before TensorFlow initialises its devices, and one process
should hold one multi-device strategy (a second MirroredStrategy's
all-reduce collided with the first one's in our benchmark runs). Then build and
compile the model inside ``strategy.scope()`` and feed ``model.fit`` a tf.data
pipeline batched with :func:`global_batch_size` and passed through
:func:`shard_by_data`::

    strategy = setup_compute(device="auto", strategy="auto", mixed_precision=True, jit=jit)
    with strategy.scope():
        model = models.build(...)
        model.compile(..., jit_compile=jit)
    train = shard_by_data(train.batch(global_batch_size(64, strategy)))
    model.fit(train, ...)

Keras splits every global batch into one slice per replica and averages the
gradients across replicas (synchronous data parallelism, Goyal et al. 2017,
"Accurate, Large Minibatch SGD"), so with N replicas a step sees N times the
examples of a one-device step with the same per-replica batch.

Mixed precision (Micikevicius et al. 2018, "Mixed Precision Training") keeps
variables in float32 and computes in float16 on GPU or bfloat16 on CPU. Under
the ``mixed_float16`` policy Keras 3's ``Model.compile`` wraps the optimizer in
a ``LossScaleOptimizer`` itself (dynamic loss scaling, so small float16
gradients do not flush to zero); bfloat16 has float32's exponent range and
needs no loss scaling. Model outputs stay float32 because every cnnkit
classifier ends in a float32 softmax.

Surviving crashes. :mod:`cnnkit.training` commits the resume state atomically
at every epoch end (and every ``save_every`` steps). This module adds what a
long run needs around it:

* :class:`StopOnSignal`: Ctrl-C (SIGINT) or SIGTERM (a scheduler preempting the
  job) finishes the current step, saves the resume state and stops, instead of
  losing the epoch in progress; rerunning the command resumes.
* :class:`StopOnNonFiniteLoss`: a NaN/Inf loss stops training with a message
  naming the epoch and step, before the bad weights are saved.
* :func:`check_disk_space`: a run whose checkpoints cannot fit on the disk of
  ``--out`` fails before training starts.
* :func:`run_folder`: under ``multiworker`` only the chief writes into
  ``--out``; every other worker runs the same code in a private folder that
  keeps its own resume state, so every worker can resume.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import tensorflow as tf

from cnnkit.errors import InputError

__all__ = [
    "DEVICES",
    "STRATEGIES",
    "setup_compute",
    "is_chief",
    "global_batch_size",
    "shard_by_data",
    "check_jit",
    "run_folder",
    "check_disk_space",
    "StopOnSignal",
    "StopOnNonFiniteLoss",
    "TrainingInterrupted",
]

DEVICES = ("auto", "cpu", "gpu")
STRATEGIES = ("auto", "one", "mirrored", "multiworker")

log = logging.getLogger(__name__)


def setup_compute(
    device: str = "auto",
    strategy: str = "auto",
    mixed_precision: bool = False,
    logical_cpus: int | None = None,
    jit: bool = False,
) -> tf.distribute.Strategy:
    """Pick the devices, the precision policy and the distribution strategy of a run.

    Args:
        device: ``"auto"`` uses the GPUs TensorFlow sees, else the CPU;
            ``"cpu"`` hides every GPU; ``"gpu"`` requires at least one.
        strategy: ``"one"`` trains on one device (the first GPU, else the
            CPU) with TensorFlow's default strategy, which adds no
            distribution machinery to Keras' training step;
            ``"mirrored"`` replicates the model over every visible GPU, or over
            the logical CPU devices when there is no GPU; ``"multiworker"``
            replicates over several processes or machines described by the
            ``TF_CONFIG`` environment variable; ``"auto"`` is ``"mirrored"``
            when there is more than one GPU (or, without GPUs, more than one
            logical CPU device) and ``"one"`` otherwise.
        mixed_precision: compute in ``mixed_float16`` on GPU or
            ``mixed_bfloat16`` on CPU, keeping variables in float32. ``False``
            resets the global Keras policy to ``float32``.
        logical_cpus: split the physical CPU into this many logical devices so
            that ``"mirrored"`` can run several replicas on a CPU-only machine
            (tests, CPU boxes). ``None`` leaves one CPU device.
        jit: the run will compile its train step with XLA
            (``model.compile(jit_compile=True)``); checked against the strategy.

    Returns:
        The strategy; build and compile the model inside ``strategy.scope()``.

    Raises:
        InputError: an unknown ``device``/``strategy``, ``device="gpu"`` without
            a GPU, ``logical_cpus < 1``, or a missing or malformed ``TF_CONFIG``
            for ``"multiworker"``, or ``jit`` where Keras cannot run XLA (several
            devices in one process, or ``"multiworker"`` on CPU).
        RuntimeError: TensorFlow already initialised its devices in this
            process, so GPUs can no longer be hidden or the CPU split; call
            ``setup_compute`` before any other TensorFlow op, or run in a
            fresh process.
    """
    _check_choice("--device", device, DEVICES)
    _check_choice("--strategy", strategy, STRATEGIES)
    if logical_cpus is not None and logical_cpus < 1:
        raise InputError(f"--logical-cpus {logical_cpus}: expected a positive number of logical CPU devices")
    cluster = _read_tf_config() if strategy == "multiworker" else None

    gpus = _select_gpus(device)
    if logical_cpus is not None:
        _split_cpu(logical_cpus)

    precision = "float32"
    if mixed_precision:
        precision = "mixed_float16" if gpus else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(precision)

    if strategy == "multiworker":
        chosen = tf.distribute.MultiWorkerMirroredStrategy()
        _patch_keras_for_multiworker()
    else:
        chosen = _local_strategy(strategy, gpus)
    if jit:
        check_jit(chosen)
    log.info(
        "compute: %d GPU(s) %s, %d logical CPU device(s); strategy %s with %d replica(s)%s; precision %s",
        len(gpus),
        [gpu.name for gpu in gpus],
        len(tf.config.list_logical_devices("CPU")),
        type(chosen).__name__.lstrip("_"),
        chosen.num_replicas_in_sync,
        f" (task {cluster['task']['type']}:{cluster['task']['index']})" if cluster else "",
        precision,
    )
    return chosen


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's artefacts.

    Single-process strategies always are. Under ``MultiWorkerMirroredStrategy``
    the chief is the ``chief`` task, or worker 0 when the cluster has no
    ``chief`` entry (TensorFlow's convention).
    """
    if not _is_multiworker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def global_batch_size(per_replica_batch: int, strategy: tf.distribute.Strategy) -> int:
    """The batch to give tf.data: ``per_replica_batch`` times the number of replicas.

    Keras splits each global batch evenly over the replicas, so every replica
    keeps the per-replica batch the user asked for (and the same memory use)
    whatever the number of devices.
    """
    return per_replica_batch * strategy.num_replicas_in_sync


def check_jit(strategy: tf.distribute.Strategy) -> None:
    """Refuse XLA (``--jit``) where Keras 3 cannot run it under ``strategy``.

    Raises:
        InputError: several devices in one process: Keras 3 XLA-compiles the
            whole multi-replica step as one program, and XLA cannot reach
            variables on another device (keras-team/keras#19005,
            tensorflow.org/xla/known_issues); or several workers on CPU: XLA
            has no collective operations on CPU.
    """
    if strategy.num_replicas_in_sync == 1:
        return
    devices = strategy.extended.worker_devices
    if len(devices) > 1:
        raise InputError(
            f"--jit with {len(devices)} devices in one process ({type(strategy).__name__}): Keras compiles all "
            "replicas into one XLA program, which cannot span devices; use --no-jit, or --strategy one"
        )
    if all("CPU" in device.upper() for device in devices):
        raise InputError(
            "--jit with --strategy multiworker on CPU: XLA has no collective operations on CPU "
            "(TensorFlow: 'Collectives are not yet implemented for CPU devices'); use --no-jit"
        )


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard a dataset across workers by element rather than by input file.

    tf.distribute's default ``AutoShardPolicy.AUTO`` tries to give each worker
    its own input files and, for in-memory data (``from_tensor_slices``, all of
    cnnkit's sources after decoding), falls back to element sharding with a
    warning. ``DATA`` states the intent: each worker reads the whole pipeline
    and keeps every N-th element. Workers must therefore see the same order,
    so shuffle with a fixed seed. On one machine the policy changes nothing.

    Args:
        dataset: the batched training or validation pipeline.

    Returns:
        The same pipeline with the ``DATA`` auto-shard policy set.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


@contextlib.contextmanager
def run_folder(out: str | os.PathLike, strategy: tf.distribute.Strategy) -> Iterator[Path]:
    """The folder this process writes its run into: ``out`` on the chief, a private one on other workers.

    Every worker of a multi-worker run must execute the same steps (saving the
    best model, evaluating, writing reports), because collective operations
    wait for all of them. Giving non-chief workers their own folder keeps that
    symmetry without two processes writing the same files. The private folder
    is named after ``out`` and the task, so a rerun of the same command finds
    the worker's resume state again; it is deleted when the run ends normally
    and kept when it fails, for the next attempt.

    Args:
        out: the run's ``--out``.
        strategy: from :func:`setup_compute`.

    Yields:
        ``Path(out)`` on the chief (and in every single-process run), else
        ``<tmp>/cnnkit-<task>-<hash of out>``.
    """
    if is_chief(strategy):
        yield Path(out)
        return
    resolver = strategy.cluster_resolver
    key = hashlib.sha1(os.path.abspath(out).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"cnnkit-{resolver.task_type}{resolver.task_id}-{key}"
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def check_disk_space(
    out: str | os.PathLike, model: keras.Model, *, copies: int = 1, margin_bytes: int = 64 * 2**20
) -> None:
    """Fail before training when the disk of ``out`` cannot hold the run's checkpoints.

    A run keeps, at its peak, two resume states (the new one is written before
    the old one is deleted) and two ``model.keras`` files (same reason). Each
    holds the float32 weights plus the optimizer's slots: two per weight for
    Adam, so about ``3 * 4 * params`` bytes. ``margin_bytes`` covers logs,
    TensorBoard events and plots.

    Args:
        out: the run folder (it or its nearest existing parent is measured).
        model: the built model.
        copies: models of this size the run trains one after another (an
            ensemble's members), each keeping its own checkpoints.
        margin_bytes: extra room for everything that is not a checkpoint.

    Raises:
        InputError: not enough free space.
    """
    path = Path(out).absolute()
    while not path.exists():
        path = path.parent
    need = copies * 4 * 3 * 4 * model.count_params() + margin_bytes
    free = shutil.disk_usage(path).free
    if free < need:
        raise InputError(
            f"--out '{out}': only {free / 2**20:.0f} MiB free on its disk; the run needs about "
            f"{need / 2**20:.0f} MiB for checkpoints of {model.count_params():,} parameters and logs"
        )


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving its resume state.

    A ``KeyboardInterrupt`` so that it unwinds like Ctrl-C always does (click
    prints "Aborted!"), past code that catches ``Exception``.
    """


class StopOnSignal(keras.callbacks.Callback):
    """Turn Ctrl-C (SIGINT) and SIGTERM into a clean stop that loses no work.

    The signal only sets a flag; the step in progress finishes. At the next
    step end ``save()`` commits the resume state, and training raises
    :class:`TrainingInterrupted`, so the partial epoch is neither logged nor
    counted as complete (``model.stop_training`` would run ``on_epoch_end``
    for it). At an epoch end the resume state is already committed, so place
    this callback after the one that commits it. A second Ctrl-C aborts at
    once, for a run stuck outside a training step.

    Under ``MultiWorkerMirroredStrategy`` the stop waits for the epoch end:
    workers that received the signal (a scheduler sends SIGTERM to all of
    them) may see it a step apart, and mid-epoch states saved a step apart
    would resume the replicas with different weights; every worker reaches
    the same epoch end and commits the same state there.

    Args:
        save: commits the resume state at the current step and returns where
            it went (e.g. the checkpoint path), for the message.
        signals: the signals to catch.
    """

    def __init__(self, save: Callable[[], object], signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
        super().__init__()
        self.save = save
        self.signals = signals
        self._previous: dict[int, object] = {}
        self._received: int | None = None
        self._epoch = 0
        self._epoch_ends_only = False

    def on_train_begin(self, logs=None):
        self._received = None
        self._epoch_ends_only = _is_multiworker(self.model.distribute_strategy)
        # Python delivers signals to the main thread only; elsewhere (a
        # notebook worker thread) Ctrl-C keeps its default behaviour.
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.signals}

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._received is not None and not self._epoch_ends_only:
            self._stop(f"epoch {self._epoch + 1}, step {batch + 1}", self.save())

    def on_epoch_end(self, epoch, logs=None):
        if self._received is not None:
            self._stop(f"the end of epoch {epoch + 1}", "the resume state")

    def on_train_end(self, logs=None):
        self.restore_handlers()

    def _handle(self, number, frame):
        if self._received is not None:
            self.restore_handlers()
            raise KeyboardInterrupt
        self._received = number
        when = "at the end of this epoch" if self._epoch_ends_only else "after the current step"
        log.warning("%s received: stopping %s (press Ctrl-C again to abort at once)", signal.Signals(number).name, when)

    def _stop(self, where: str, saved: object) -> None:
        self.restore_handlers()
        message = (
            f"{signal.Signals(self._received).name}: training stopped at {where}; saved {saved}; "
            "rerun the same command to resume"
        )
        log.warning(message)
        raise TrainingInterrupted(message)

    def restore_handlers(self) -> None:
        """Put back the signal handlers that were there before training began.

        Keras skips ``on_train_end`` when ``fit`` raises, so the training code
        also calls this in a ``finally``; calling it twice is harmless.
        """
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop at the first step whose loss is NaN or infinite, naming it.

    Unlike ``keras.callbacks.TerminateOnNaN``, which lets the broken epoch end
    (so its row is logged and its weights are saved as a completed epoch), this
    raises at once. Place it before the callback that saves the resume state,
    which then still holds the last finite weights.

    Raises:
        InputError: at the offending step, with the epoch, the step within it
            and the optimizer's global step.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        raise InputError(
            f"training diverged: the loss became {float(loss)} at epoch {self._epoch + 1}, step {batch + 1} "
            f"(optimizer step {iterations}); the resume state still holds the last finite weights. "
            "Lower --lr, or train without --mixed-precision"
        )


def _is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and bool(resolver.task_type)


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{option} {value!r}: unknown; expected one of: {', '.join(choices)}")


def _select_gpus(device: str) -> list:
    """Hide or require GPUs as ``device`` says; returns the GPUs the run will use."""
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise InputError(
            "--device gpu: TensorFlow sees no GPU; install the CUDA build with "
            "pip install -e '.[gpu]' and check nvidia-smi, or use --device cpu"
        )
    if device == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError as error:
            raise _already_initialised("--device cpu") from error
        return []
    for gpu in gpus:
        # Grow GPU memory on demand so that several runs (or a run and a
        # notebook) can share one card instead of the first grabbing it all.
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised: the earlier setting stands and is harmless
    return gpus


def _split_cpu(count: int) -> None:
    """Split the first physical CPU into ``count`` logical devices (idempotent)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise _already_initialised(f"--logical-cpus {count}") from error


def _already_initialised(option: str) -> RuntimeError:
    found = len(tf.config.list_logical_devices("CPU"))
    return RuntimeError(
        f"{option}: TensorFlow has already initialised its devices in this process "
        f"({found} logical CPU device(s)); call cnnkit.distribute.setup_compute before "
        "any other TensorFlow operation, or run in a fresh process"
    )


def _local_strategy(strategy: str, gpus: list) -> tf.distribute.Strategy:
    """One-device or mirrored strategy over the devices of this process."""
    if gpus:
        devices = [f"/gpu:{index}" for index in range(len(gpus))]
    else:
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    if strategy == "auto":
        strategy = "mirrored" if len(devices) > 1 else "one"
    if strategy == "one":
        # Not OneDeviceStrategy: the default strategy places ops on the first
        # GPU (else the CPU) just the same, while Keras then skips distributed
        # datasets and per-replica reductions, and nothing needs a scope.
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(devices)


def _patch_keras_for_multiworker() -> None:
    """Let Keras 3 ``fit``/``evaluate`` run under ``MultiWorkerMirroredStrategy``.

    Keras 3's TensorFlow trainer has two slips on the multi-worker path
    (keras-team/keras#20585, open), both in reducing values over replicas:

    * before the first step it builds the metrics from one batch obtained by
      ``strategy.reduce("MEAN", (x, y))``, which cannot reduce a structure
      across workers ("Attempt to convert a value (PerReplica...) to a
      Tensor"). Only the batch's shapes and dtypes matter there, so this
      process's own slice serves as well and needs no communication;
    * after each step it averages the replicas' scalar logs with
      ``strategy.reduce("MEAN", value, axis=0)``, and a scalar has no axis 0.
      The mean over replicas is ``axis=None``, as on one machine.
    """
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, it in iterator:
                local = self.distribute_strategy.experimental_local_results
                data_batch = tree.map_structure(lambda value: local(value)[0], next(it))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    keras_reduce_per_replica = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return keras_reduce_per_replica(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica


def _read_tf_config() -> dict:
    """Parse and check ``TF_CONFIG`` so that a typo fails with a message, not a hang."""
    example = (
        'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    )
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise InputError(f"--strategy multiworker: the TF_CONFIG environment variable is not set; expected JSON {example}")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError(f"--strategy multiworker: TF_CONFIG is not valid JSON ({error}); expected {example}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise InputError(f"--strategy multiworker: TF_CONFIG needs a 'cluster' and a 'task' object; expected {example}")
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise InputError(
                f"--strategy multiworker: TF_CONFIG cluster {role!r}: expected a list of 'host:port' strings, got {addresses!r}"
            )
    role, index = task.get("type"), task.get("index")
    if role not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[role]):
        raise InputError(
            f"--strategy multiworker: TF_CONFIG task {task!r} is not in the cluster "
            f"{ {name: len(addresses) for name, addresses in cluster.items()} }"
        )
    return config
