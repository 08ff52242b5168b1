"""Is the lecture CNN's default configuration good enough, and better than the lecture's single block?

Trains ``cnnkit.models.build("lecture", ...)`` for 15 epochs (Adam 3e-3 with cosine
decay to 0, batch 32)
and prints JSON with the held-out accuracy of several configurations side by side,
the anchor being the lecture's literal block (one conv of 8 filters, ReLU, max pool,
fully connected softmax) trained in the same run:

* ``digits``: scikit-learn's 1,797 8x8 digits (scaled to [0, 1]), stratified 80/20
  split with seed 0. Target for the default: >= 98.5%.
* ``mnist``: the MNIST test set beside the repository (``../shared/datasets/mnist-10k``),
  the first 8,000 images for training and the last 2,000 for testing (the full
  60,000-image training set is not shipped offline). Target: >= 99% (with 60k
  training images; 8k is a harder setting).

Usage: ``python benchmarks/models_lecture.py [--epochs 15] [--datasets digits,mnist] [--seeds 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cnnkit import models  # noqa: E402
from cnnkit.data import idx  # noqa: E402

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist-10k"

# Peak Adam learning rate, the train-image pipeline's default (better than 1e-3 on digits).
LEARNING_RATE = 3e-3

# Name -> lecture options; "default" is the builder's defaults, "lecture_block" the anchor.
CONFIGS = {
    "default": {},
    "wide_64_128_256": {"filters": (64, 128, 256)},
    "two_blocks": {"filters": (32, 64)},
    "lecture_block": {"filters": (8,), "dense_units": 0, "dropout": 0.0},
}


def digits() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    return tuple(train_test_split(x, data.target, test_size=0.2, stratify=data.target, random_state=0))


def mnist() -> tuple[np.ndarray, ...]:
    x = (idx.read(MNIST_DIR / "t10k-images-idx3-ubyte.gz") / 255.0).astype("float32")[..., None]
    y = idx.read(MNIST_DIR / "t10k-labels-idx1-ubyte.gz").astype("int64")
    return x[:8000], x[8000:], y[:8000], y[8000:]


def train(options: dict, data: tuple[np.ndarray, ...], epochs: int, seed: int) -> dict:
    x_train, x_test, y_train, y_test = data
    keras.utils.set_random_seed(seed)
    model = models.build("lecture", x_train.shape[1:], 10, **options)
    # Cosine decay to 0, as the training pipelines schedule it: the last epoch is not a noisy one.
    steps = epochs * -(-len(x_train) // 32)
    lr = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps)
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    params = model.count_params()
    keras.backend.clear_session()
    return {"params": params, "test_accuracy": round(accuracy, 4), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--datasets", default="digits,mnist")
    parser.add_argument("--seeds", type=int, default=3, help="runs per configuration (seeds 0..N-1), averaged")
    args = parser.parse_args()
    loaders = {"digits": digits, "mnist": mnist}
    report: dict = {"epochs": args.epochs}
    for name in args.datasets.split(","):
        if name == "mnist" and not MNIST_DIR.is_dir():
            report[name] = {"skipped": f"{MNIST_DIR} is absent"}
            continue
        data = loaders[name]()
        results = {}
        for config, options in CONFIGS.items():
            runs = [train(options, data, args.epochs, seed) for seed in range(args.seeds)]
            results[config] = {
                "params": runs[0]["params"],
                "test_accuracy_mean": round(float(np.mean([r["test_accuracy"] for r in runs])), 4),
                "test_accuracy_per_seed": [r["test_accuracy"] for r in runs],
                "seconds_per_run": round(float(np.mean([r["seconds"] for r in runs])), 1),
            }
        anchor = results["lecture_block"]["test_accuracy_mean"]
        for result in results.values():
            error_ratio = (1 - result["test_accuracy_mean"]) / max(1 - anchor, 1e-9)
            result["error_ratio_vs_lecture_block"] = round(error_ratio, 3)
        report[name] = results
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
