"""The image-classification pipeline end to end on tiny data: resume, folder datasets, splits, handgrad."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from cnnkit import runs, training
from cnnkit.data import images
from pipelines import image_classification as ic
from tests.cnnkit.test_training import CrashAt

TINY = dict(epochs=3, batch_size=128, quiet=True, augment="none")


@pytest.mark.slow
def test_interrupted_run_resumes_at_the_interrupted_epoch(tmp_path, monkeypatch):
    cfg = ic.Config(**TINY, out=str(tmp_path / "run"))
    real_fit = training.fit
    started = []

    def fit_then_crash(*args, callbacks=(), **kwargs):
        record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: started.append(epoch))
        return real_fit(*args, callbacks=[*callbacks, record, CrashAt(1)], **kwargs)

    monkeypatch.setattr(training, "fit", fit_then_crash)
    with pytest.raises(RuntimeError, match="killed in epoch 1"):
        ic.run(cfg)
    first = runs.read_csv(tmp_path / "run" / "history.csv")
    assert started == [0, 1] and [r["epoch"] for r in first] == [0]
    assert not (tmp_path / "run" / "metrics.json").exists()

    def fit_recording(*args, callbacks=(), **kwargs):
        record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: started.append(epoch))
        return real_fit(*args, callbacks=[*callbacks, record], **kwargs)

    monkeypatch.setattr(training, "fit", fit_recording)
    started.clear()
    result = ic.run(cfg)  # the same command again
    assert started == [1, 2]  # the second epoch (index 1) runs again, the first does not
    history = runs.read_csv(tmp_path / "run" / "history.csv")
    assert [r["epoch"] for r in history] == [0, 1, 2] and history[0] == first[0]
    assert result["epochs_run"] == 3
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_run"] == 3
    assert not (tmp_path / "run" / "backup").exists()


def test_split_uses_the_datasets_own_test_part():
    rng = np.random.default_rng(0)
    train = images.ImageSet(rng.random((40, 2, 2, 1)), np.repeat(np.arange(2), 20))
    test = images.ImageSet(rng.random((6, 2, 2, 1)), np.array([0, 1, 0, 1, 0, 1]))
    source = images.Source("idx:x", ("a", "b"), {"train": train, "test": test}, 255.0, False)
    parts = ic.split(source, val_fraction=0.25, test_fraction=0.5, seed=0)
    assert parts["test"] is test  # --test-fraction does not apply
    assert (len(parts["train"]), len(parts["val"])) == (30, 10)
    assert np.bincount(parts["val"].y).tolist() == [5, 5]


def test_folder_run_counts_skipped_files(tmp_path):
    rng = np.random.default_rng(0)
    for name, level in (("dark", 40), ("light", 215)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(rng.normal(level, 20, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    (tmp_path / "data" / "dark" / "broken.png").write_bytes(b"\x89PNG broken")
    result = ic.run(ic.Config(dataset=f"folder:{tmp_path / 'data'}", **{**TINY, "epochs": 2}, lr=0.01, out=str(tmp_path / "run")))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["skipped_files"] == 1 and list(metrics["skipped"])[0].endswith("broken.png")
    assert metrics["examples"] == {"train": 14, "val": 2, "test": 4}
    assert result["classes"] == ["dark", "light"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["preprocessing"]["image_size"] == [12, 12] and config["preprocessing"]["channels"] == 3


@pytest.mark.slow
def test_handgrad_run_and_its_export(tmp_path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated in its favour

    from pipelines import runs as run_commands

    result = ic.run(ic.Config(conv="handgrad", **{**TINY, "epochs": 1}, out=str(tmp_path / "run")))
    assert result["test_accuracy"] > 0.2  # one epoch of the lecture CNN is well above chance (0.1)
    model = runs.load(tmp_path / "run").load_model()
    assert any(type(layer).__module__.startswith("cnnkit.handgrad") for layer in model.layers)
    saved = run_commands.export(str(tmp_path / "run"), "savedmodel")
    x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    expected = model.predict(x, verbose=0)
    loaded = tf.saved_model.load(str(saved))
    np.testing.assert_allclose(loaded.serve(x).numpy(), expected, atol=1e-5)
    interpreter = Interpreter(model_path=str(run_commands.export(str(tmp_path / "run"), "tflite")))
    interpreter.allocate_tensors()  # the batch dimension defaults to 1
    for row, want in zip(x, expected):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], row[None])
        interpreter.invoke()
        np.testing.assert_allclose(interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0], want, atol=1e-5)
