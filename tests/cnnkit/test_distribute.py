"""Tests for cnnkit.distribute: option checks, sharding, clean stops, and strategies that must match one device.

Logical CPU devices can only be configured before TensorFlow initialises its
devices, which the test process has long done; the strategy comparisons
therefore run in a fresh interpreter (``_run_script``) and report JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnkit import distribute
from cnnkit.errors import InputError
from tests.conftest import REPO_ROOT


def _run_script(source: str, timeout: float = 120) -> dict:
    """Run ``source`` in a fresh Python process and parse the JSON it prints last."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tiny_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return model


def _tiny_data(batches: int = 4, batch: int = 2) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batches * batch, 4)).astype("float32")
    y = rng.integers(0, 3, size=batches * batch)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"device": "tpu"}, "--device 'tpu': unknown; expected one of: auto, cpu, gpu"),
        ({"strategy": "ring"}, "--strategy 'ring': unknown; expected one of: auto, one, mirrored, multiworker"),
        ({"logical_cpus": 0}, "--logical-cpus 0: expected a positive number"),
    ],
)
def test_setup_compute_rejects_bad_options(kwargs, message):
    with pytest.raises(InputError, match="^" + message.replace("(", r"\(")):
        distribute.setup_compute(**kwargs)


def test_setup_compute_gpu_without_gpu_names_the_cure():
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match=r"--device gpu: TensorFlow sees no GPU; install .*\[gpu\]"):
        distribute.setup_compute(device="gpu")


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "TF_CONFIG environment variable is not set"),
        ("{cluster", "TF_CONFIG is not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster' and a 'task'"),
        ('{"cluster": {"worker": ["nohostport"]}, "task": {"type": "worker", "index": 0}}', "list of 'host:port'"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "is not in the cluster"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "is not in the cluster"),
    ],
)
def test_multiworker_needs_a_valid_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(InputError, match=f"^--strategy multiworker: .*{message}"):
        distribute.setup_compute(strategy="multiworker")


def test_single_process_is_chief_and_keeps_the_batch(tmp_path):
    strategy = tf.distribute.get_strategy()
    assert distribute.is_chief(strategy)
    assert distribute.global_batch_size(32, strategy) == 32
    distribute.check_jit(strategy)  # one replica: XLA is fine
    with distribute.run_folder(tmp_path / "run", strategy) as folder:
        assert folder == tmp_path / "run"


def test_shard_by_data_sets_the_data_policy_and_keeps_the_elements():
    dataset = tf.data.Dataset.range(10).batch(4)
    sharded = distribute.shard_by_data(dataset)
    assert sharded.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    assert [b.tolist() for b in sharded.as_numpy_iterator()] == [b.tolist() for b in dataset.as_numpy_iterator()]


def test_check_disk_space(tmp_path):
    model = _tiny_model()
    distribute.check_disk_space(tmp_path / "not" / "yet", model)
    with pytest.raises(InputError, match=r"^--out '.*': only \d+ MiB free on its disk; the run needs about \d+ MiB"):
        distribute.check_disk_space(tmp_path, model, margin_bytes=2**62)


class _EpochEnds(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


class _SignalAt(keras.callbacks.Callback):
    """Send ``number`` to this process at the end of step ``step`` of epoch ``epoch`` (0-based)."""

    def __init__(self, number, epoch, step):
        super().__init__()
        self.number, self.epoch, self.step = number, epoch, step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self._epoch, batch) == (self.epoch, self.step):
            os.kill(os.getpid(), self.number)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_stop_on_signal_saves_at_the_step_and_never_ends_the_partial_epoch(number):
    model = _tiny_model()
    saves = []
    ends = _EpochEnds()
    before = signal.getsignal(number)
    stop = distribute.StopOnSignal(lambda: saves.append(int(model.optimizer.iterations)) or "state")
    with pytest.raises(distribute.TrainingInterrupted, match=r"training stopped at epoch 2, step 2; saved state"):
        model.fit(_tiny_data(), epochs=3, verbose=0, shuffle=False, callbacks=[_SignalAt(number, 1, 1), ends, stop])
    assert saves == [4 + 2]  # one save, after the second step of the second epoch
    assert ends.epochs == [0]  # the interrupted epoch was not reported as finished
    assert signal.getsignal(number) is before


def test_stop_on_signal_under_multiworker_waits_for_the_epoch_end(monkeypatch):
    monkeypatch.setattr(distribute, "_is_multiworker", lambda strategy: True)
    model = _tiny_model()
    saves = []
    ends = _EpochEnds()
    stop = distribute.StopOnSignal(lambda: saves.append("step"))
    with pytest.raises(distribute.TrainingInterrupted, match=r"training stopped at the end of epoch 2; saved the resume state"):
        model.fit(_tiny_data(), epochs=3, verbose=0, shuffle=False, callbacks=[_SignalAt(signal.SIGTERM, 1, 1), ends, stop])
    assert saves == []  # no mid-epoch state: the epoch-end one is every worker's common point
    assert ends.epochs == [0, 1]
    assert int(model.optimizer.iterations) == 8


def test_stop_on_non_finite_loss_names_the_step():
    x = np.ones((8, 4), "float32")
    x[5] = np.nan  # in the third batch of two
    model = _tiny_model()
    ends = _EpochEnds()
    data = tf.data.Dataset.from_tensor_slices((x, np.zeros(8, "int64"))).batch(2)
    with pytest.raises(InputError, match=r"^training diverged: the loss became nan at epoch 1, step 3 \(optimizer step 3\)"):
        model.fit(data, epochs=2, verbose=0, shuffle=False, callbacks=[distribute.StopOnNonFiniteLoss(), ends])
    assert ends.epochs == []


_MIRRORED_VS_ONE = """
import json

import keras
import numpy as np
import tensorflow as tf

from cnnkit import distribute, models

mirrored = distribute.setup_compute(device="cpu", strategy="mirrored", logical_cpus=2)
one = tf.distribute.get_strategy()  # what --strategy one gives
rng = np.random.default_rng(0)
x = rng.random((32, 8, 8, 1), dtype=np.float32)
y = rng.integers(0, 3, size=32)


class StepLosses(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(float(logs["loss"]))


def train(strategy, conv, initial):
    with strategy.scope():
        model = models.build("lecture", (8, 8, 1), 3, conv=conv, filters=(4, 8), dense_units=16, dropout=0.0)
        model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    # The same global batch of 8 for both: 2 replicas of 4, or 1 device of 8.
    data = distribute.shard_by_data(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    losses = StepLosses()
    model.fit(data, epochs=2, verbose=0, shuffle=False, callbacks=[losses])
    return losses.losses, [w.tolist() for w in model.get_weights()]


report = {"replicas": mirrored.num_replicas_in_sync}
for conv in ("keras", "handgrad"):
    try:
        keras.utils.set_random_seed(0)
        initial = models.build("lecture", (8, 8, 1), 3, conv=conv, filters=(4, 8), dense_units=16, dropout=0.0).get_weights()
        report[conv] = {"one": train(one, conv, initial), "mirrored": train(mirrored, conv, initial)}
    except Exception as error:
        report[conv] = {"error": repr(error)}


def resume_mirrored(run_dir):
    # Two epochs, then a third in a new fit call that must resume from the backup.
    from cnnkit import training

    attempts = []
    for epochs in (2, 3):
        with mirrored.scope():
            model = models.build("lecture", (8, 8, 1), 3, filters=(4,), dense_units=0, dropout=0.0)
            training.compile_classifier(model, epochs=3, steps_per_epoch=4)
        data = distribute.shard_by_data(tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
        result = training.fit(model, data, epochs=epochs, run_dir=run_dir, verbose=False)
        attempts.append([result.initial_epoch, [row["epoch"] for row in result.history], int(model.optimizer.iterations.numpy())])
    return attempts


try:
    distribute.setup_compute(device="cpu", strategy="mirrored", logical_cpus=2, jit=True)
    report["jit"] = "accepted"
except Exception as error:
    report["jit"] = f"{type(error).__name__}: {error}"

try:
    import tempfile

    report["resume"] = resume_mirrored(tempfile.mkdtemp())
except Exception as error:
    report["resume"] = {"error": repr(error)}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def mirrored_vs_one() -> dict:
    return _run_script(_MIRRORED_VS_ONE)


@pytest.mark.slow
def test_jit_with_two_replicas_is_refused_with_the_reason(mirrored_vs_one):
    assert mirrored_vs_one["jit"].startswith(
        "InputError: --jit with 2 devices in one process (MirroredStrategy): Keras compiles all replicas into one XLA program"
    )


@pytest.mark.slow
def test_mirrored_training_resumes_from_its_backup(mirrored_vs_one):
    resume = mirrored_vs_one["resume"]
    assert "error" not in resume, resume
    # [initial epoch, epochs in the history, optimizer steps]: 4 steps per epoch.
    assert resume == [[0, [0, 1], 8], [2, [0, 1, 2], 12]]


@pytest.mark.slow
@pytest.mark.parametrize("conv", ["keras", "handgrad"])
def test_mirrored_over_two_logical_cpus_matches_one_device(mirrored_vs_one, conv):
    assert mirrored_vs_one["replicas"] == 2
    result = mirrored_vs_one[conv]
    assert "error" not in result, result.get("error")
    (losses_one, weights_one), (losses_mirrored, weights_mirrored) = result["one"], result["mirrored"]
    assert len(losses_one) == len(losses_mirrored) == 8
    assert losses_one[0] != losses_one[-1]  # training moved, so the comparison means something
    np.testing.assert_allclose(losses_mirrored, losses_one, rtol=1e-5, atol=1e-6)
    for mirrored_w, one_w in zip(weights_mirrored, weights_one, strict=True):
        np.testing.assert_allclose(mirrored_w, one_w, rtol=1e-4, atol=1e-6)


def _lecture_losses(conv: str, *, jit: bool) -> tuple[keras.Model, list[float]]:
    """Per-step losses of 4 SGD steps of a small lecture CNN under the current precision policy."""
    from cnnkit import models

    keras.utils.set_random_seed(0)
    model = models.build("lecture", (8, 8, 1), 3, conv=conv, filters=(4, 8), dense_units=16, dropout=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", jit_compile=jit)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, size=16)
    losses = []
    for start in range(0, 16, 4):
        losses.append(float(model.train_on_batch(x[start : start + 4], y[start : start + 4])))
    return model, losses


@pytest.fixture
def float32_afterwards():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_handgrad_model_under_xla_and_mixed_bfloat16_tracks_float32(float32_afterwards):
    _, reference = _lecture_losses("handgrad", jit=False)
    _, xla = _lecture_losses("handgrad", jit=True)
    np.testing.assert_allclose(xla, reference, rtol=1e-5)

    distribute.setup_compute(device="cpu", strategy="one", mixed_precision=True)
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    for jit in (False, True):
        model, mixed = _lecture_losses("handgrad", jit=jit)
        conv = model.get_layer("block1_conv")
        assert (conv.compute_dtype, conv.kernel.dtype) == ("bfloat16", "float32")
        assert model.output.dtype == "float32"
        # bfloat16 keeps 8 bits of mantissa: a relative error of about 2^-8 per op.
        np.testing.assert_allclose(mixed, reference, rtol=3e-2)
