"""compile + fit: warm-up/cosine schedule, resume after an interruption, best model, epoch log."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnkit import runs, training
from cnnkit.errors import InputError

STEPS = 4  # batches per epoch of the tiny dataset below


def tiny_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6, 6, 1), dtype=np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(n // STEPS)


def tiny_model(epochs, lr=0.01):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    training.compile_classifier(model, lr=lr, epochs=epochs, steps_per_epoch=STEPS, warmup_epochs=1)
    return model


class CrashAt(keras.callbacks.Callback):
    """Raise at the start of an epoch: an interruption after the previous epoch was committed."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError(f"killed in epoch {epoch}")


def test_schedule_warms_up_linearly_then_follows_the_cosine():
    lr, total, warm = 0.1, 20, 4
    schedule = training.learning_rate_schedule(lr, total, warm)
    for step in range(total):
        t = (step - warm) / (total - warm)
        expected = lr * step / warm if step < warm else lr * 0.5 * (1 + math.cos(math.pi * t))
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_unknown_optimizer():
    with pytest.raises(InputError, match="expected one of: adam, sgd"):
        training.make_optimizer("rmsprop", 0.1)


def test_label_smoothing_is_cross_entropy_against_the_smoothed_one_hot():
    eps, labels = 0.2, np.array([0, 2, 1])
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], np.float32)
    targets = (1 - eps) * np.eye(3)[labels] + eps / 3
    expected = -(targets * np.log(probabilities)).sum(axis=1).mean()
    loss = training.SmoothedSparseCrossentropy(eps)
    assert float(loss(labels, probabilities)) == pytest.approx(expected, rel=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    assert float(training.SmoothedSparseCrossentropy(0.0)(labels[:, None], probabilities)) == pytest.approx(float(plain), rel=1e-5)


def test_a_model_trained_with_label_smoothing_saves_and_loads_with_its_loss(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    training.compile_classifier(model, lr=0.01, epochs=1, steps_per_epoch=STEPS, label_smoothing=0.1)
    model.fit(tiny_data(), epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, training.SmoothedSparseCrossentropy) and loaded.loss.label_smoothing == 0.1
    x, _ = next(iter(tiny_data()))
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-6)


def test_resume_continues_at_the_interrupted_epoch(tmp_path):
    data = tiny_data()
    reference = training.fit(tiny_model(4), data, validation=data, epochs=4, run_dir=runs.start(tmp_path / "ref", "t", {}), verbose=False)

    run_dir = runs.start(tmp_path / "run", "t", {})
    with pytest.raises(RuntimeError, match="killed in epoch 2"):
        training.fit(tiny_model(4), data, validation=data, epochs=4, run_dir=run_dir, verbose=False, callbacks=[CrashAt(2)])
    first = runs.read_csv(run_dir / "history.csv")
    assert [r["epoch"] for r in first] == [0, 1]
    # A crash after history.csv was written but before the resume state was committed
    # leaves a row of an epoch that must run again; it must not be kept twice.
    runs.write_csv(run_dir / "history.csv", [*first, {**first[-1], "epoch": 2}])

    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    result = training.fit(tiny_model(4), data, validation=data, epochs=4, run_dir=run_dir, verbose=False, callbacks=[record])
    assert result.initial_epoch == 2 and seen == [2, 3]
    history = runs.read_csv(run_dir / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1, 2, 3] == [r["epoch"] for r in result.history]
    assert history[:2] == first
    # The optimizer state came back: the schedule resumes at step 2 * STEPS, not 0.
    assert [r["lr"] for r in history] == pytest.approx([r["lr"] for r in reference.history], rel=1e-6)
    assert [p.name for p in (run_dir / "backup").iterdir()] == ["epoch-00004-step-0000000.weights.h5"]


def test_best_model_holds_the_weights_of_the_lowest_val_loss(tmp_path):
    data = tiny_data()
    model = tiny_model(5, lr=0.5)  # large steps, so val_loss is not monotone
    result = training.fit(model, data, validation=data, epochs=5, run_dir=runs.start(tmp_path / "r", "t", {}), verbose=False, examples_per_epoch=64)
    best = min(r["val_loss"] for r in result.history)
    saved = keras.models.load_model(tmp_path / "r" / "model.keras")
    assert saved.evaluate(data, verbose=0)[0] == pytest.approx(best, rel=1e-4)
    assert model.evaluate(data, verbose=0)[0] == pytest.approx(best, rel=1e-4)  # fit restored the best weights
    assert result.epochs_run == 5 and not result.stopped_early
    assert result.train_seconds == pytest.approx(sum(r["train_seconds"] for r in result.history))
    assert result.examples_per_second == pytest.approx(64 * 5 / result.train_seconds)


def test_restore_skips_an_unreadable_newest_state(tmp_path):
    data = tiny_data()
    run_dir = runs.start(tmp_path / "r", "t", {})
    with pytest.raises(RuntimeError):
        training.fit(tiny_model(3), data, epochs=3, run_dir=run_dir, verbose=False, callbacks=[CrashAt(1)])
    (run_dir / "backup" / "epoch-00002-step-0000000.weights.h5").write_bytes(b"half a file")
    assert training.ResumeCheckpoint(run_dir / "backup").restore(tiny_model(3)) == 1


def test_save_every_commits_mid_epoch_states(tmp_path):
    data = tiny_data()
    found = []
    peek = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: found.extend(p.name for p in (tmp_path / "r" / "backup").iterdir()))
    training.fit(tiny_model(1), data, epochs=1, run_dir=runs.start(tmp_path / "r", "t", {}), save_every=3, verbose=False, callbacks=[peek])
    # peek runs before the epoch-end save, so it sees the state after step 3 of epoch 0.
    assert found == ["epoch-00000-step-0000003.weights.h5"]


def test_early_stopping_reports_it(tmp_path):
    data = tiny_data()
    result = training.fit(tiny_model(30, lr=1e-9), data, validation=data, epochs=30, patience=1, run_dir=runs.start(tmp_path / "r", "t", {}), verbose=False)
    assert result.stopped_early and result.epochs_run < 30


def test_auto_epochs_spends_a_step_budget_within_bounds():
    budget = training.EpochBudget(steps=4000, min_epochs=10, max_epochs=40)
    assert budget.epochs(1293, 32) == 40  # 41 steps an epoch: capped
    assert budget.epochs(7200, 32) == 18  # 225 steps: ceil(4000 / 225)
    assert budget.epochs(1_000_000, 32) == 10  # floor on huge splits
    assert training.resolve_epochs(7, budget, 7200, 32) == 7  # an explicit --epochs N wins
    assert training.resolve_epochs("auto", budget, 7200, 32) == 18
    assert training.epochs_record("auto", 18, budget) == {"epochs": 18, "epochs_rule": budget.describe()}


@pytest.mark.parametrize("epochs", [0, "3", "many"])
def test_bad_epochs_are_refused(epochs):
    with pytest.raises(InputError, match="--epochs"):
        training.FitOptions(epochs=epochs).check_fit_options()
