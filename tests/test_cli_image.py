"""train-image, evaluate, predict and export through the CLI: one tiny digits run shared by the module, and every bad input."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cli
from cnnkit.data import idx


def invoke(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


@pytest.fixture
def run_dir(image_run):
    return image_run


def test_train_image_writes_every_artefact(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "model.keras", "history.csv", "metrics.json", "curves.png", "confusion_matrix.png", "misclassified.png", "logs", "report.html"} <= names
    assert list((run_dir / "logs").rglob("events.out.tfevents.*")), "no TensorBoard event files"
    assert "backup" not in names and not [n for n in names if n.startswith(".")]  # finished, no temporaries
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == "image" and config["dataset"] == "digits" and config["epochs"] == 1 and config["epochs_rule"] == "given"
    assert config["label_smoothing"] == 0.1
    assert config["preprocessing"] == {"classes": list("0123456789"), "image_size": [16, 16], "channels": 1, "max_value": 16.0}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["examples"] == {"train": 1257, "val": 180, "test": 360}
    assert metrics["epochs_run"] == 1 and metrics["images_per_second"] > 0 and metrics["train_seconds"] > 0
    assert sum(map(sum, metrics["confusion_matrix"])) == 360
    correct = sum(metrics["confusion_matrix"][i][i] for i in range(10))
    assert metrics["test_accuracy"] == pytest.approx(correct / 360)
    assert set(metrics["per_class"]["3"]) == {"precision", "recall", "f1", "support"}
    assert metrics["skipped_files"] == 0
    for png in ("curves.png", "confusion_matrix.png", "misclassified.png"):
        assert (run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_json_on_the_runs_test_split_matches_metrics(run_dir):
    result = invoke("evaluate", run_dir, "--dataset", "digits", "--subset", "test", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert report["n"] == 360 and report["accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert report["confusion_matrix"] == metrics["confusion_matrix"]
    assert report["loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)


def test_evaluate_on_a_dataset_the_run_never_saw(run_dir, tmp_path):
    # The digits as an IDX pair at 0..255: another source, same labels.
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx.write(tmp_path / "t10k-images-idx3-ubyte.gz", np.round(digits.images * 255 / 16).astype(np.uint8))
    idx.write(tmp_path / "t10k-labels-idx1-ubyte.gz", digits.target.astype(np.uint8))
    result = invoke("evaluate", run_dir, "--dataset", f"idx:{tmp_path}", "--json")
    assert result.exit_code == 0, result.output
    on_idx = json.loads(result.output)
    on_digits = json.loads(invoke("evaluate", run_dir, "--json").output)  # the run's own dataset, all of it
    assert on_idx["n"] == on_digits["n"] == 1797
    assert on_idx["accuracy"] == pytest.approx(on_digits["accuracy"], abs=0.01)
    table = invoke("evaluate", run_dir, "--dataset", f"idx:{tmp_path}")
    assert "accuracy" in table.output and "precision" in table.output


def test_predict_files(run_dir, tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(np.round(digits.images[i] * 255 / 16).astype(np.uint8), "L").save(files[-1])
    result = invoke("predict", run_dir, *files, "--top-k", 4, "--json")
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.output)
    assert [p["file"] for p in predictions] == [str(f) for f in files]
    for p in predictions:
        probs = [t["probability"] for t in p["top"]]
        assert len(probs) == 4 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    text = invoke("predict", run_dir, files[0])
    assert text.exit_code == 0 and text.output.startswith(f"{files[0]}: ")


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "keras"])
def test_export_gives_the_keras_top1(run_dir, tmp_path, fmt):
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter  # tf.lite.Interpreter is deprecated in its favour

    out = tmp_path / {"savedmodel": "sm", "tflite": "m.tflite", "keras": "m.keras"}[fmt]
    result = invoke("export", run_dir, "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(0).random((5, 16, 16, 1), dtype=np.float32)
    expected = keras.models.load_model(run_dir / "model.keras").predict(x, verbose=0)
    if fmt == "savedmodel":
        loaded = tf.saved_model.load(str(out))  # kept alive: serve() needs its variables
        got = loaded.serve(x).numpy()
    elif fmt == "tflite":
        interpreter = Interpreter(model_path=str(out))
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    else:
        got = keras.models.load_model(out).predict(x, verbose=0)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_export_default_location(run_dir):
    result = invoke("export", run_dir, "--format", "keras")
    assert result.exit_code == 0 and (run_dir / "export" / "model.keras").is_file()


WRONG_MAGIC = bytes([0x41, 0x42, 0x08, 0x03])


def bad_idx(folder, images_shape, labels, magic=None):
    folder.mkdir()
    idx.write(folder / "images-idx3-ubyte", np.zeros(images_shape, np.uint8))
    idx.write(folder / "labels-idx1-ubyte", np.asarray(labels, np.uint8))
    if magic:
        data = (folder / "images-idx3-ubyte").read_bytes()
        (folder / "images-idx3-ubyte").write_bytes(magic + data[4:])
    return folder


def one_class(folder):
    (folder / "a").mkdir(parents=True)
    Image.new("L", (4, 4)).save(folder / "a" / "x.png")
    return folder


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t: ["train-image", "--dataset", f"idx:{t / 'nope'}"], "no such folder"),
        (lambda t: ["train-image", "--dataset", f"folder:{t}"], "found 0 class subfolder"),
        (lambda t: ["train-image", "--dataset", f"folder:{one_class(t / 'f')}"], "found 1 class subfolder"),
        (lambda t: ["train-image", "--dataset", f"idx:{bad_idx(t / 'i', (3, 2, 2), [1, 2, 3], WRONG_MAGIC)}"], "wrong magic number"),
        (lambda t: ["train-image", "--dataset", f"idx:{bad_idx(t / 'i', (3, 2, 2), [1, 2])}"], "3 images but 2 labels"),
        (lambda t: ["train-image", "--dataset", "imagenet"], "expected one of: digits, idx:DIR, folder:DIR, tfds:NAME"),
        (lambda t: ["train-image", "--model", "lenet9"], "--model 'lenet9': unknown; expected one of: .*lecture"),
        (lambda t: ["train-image", "--augment", "heavy"], "expected one of: none, basic"),
        (lambda t: ["train-image", "--label-smoothing", "1"], r"--label-smoothing 1.0: expected a fraction in \[0, 1\)"),
        (lambda t: ["evaluate", t], "not a run"),
        (lambda t: ["predict", t / "nope", "x.png"], "no such folder"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, make_args, message):
    args = make_args(tmp_path)
    result = invoke(*args, *(["--out", tmp_path / "out"] if args[0] == "train-image" else []))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_unknown_export_format_and_bad_predict_file(run_dir, tmp_path):
    result = invoke("export", run_dir, "--format", "onnx")
    assert result.exit_code == 2 and "expected one of: savedmodel, tflite, keras" in result.stderr
    (tmp_path / "x.png").write_text("not an image")
    result = invoke("predict", run_dir, tmp_path / "x.png")
    assert result.exit_code == 2 and "not a readable image" in result.stderr
