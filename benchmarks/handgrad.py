"""How fast are cnnkit.handgrad's hand-written gradients next to TensorFlow's own?

Prints JSON with two kinds of figures, each measured ALTERNATELY with its Keras
anchor in the same process (so a busy machine slows both alike) and reported as a
median and a ratio (``handgrad / keras``; below 1 means handgrad is faster):

* ``conv``: one forward + backward step (gradients for input, kernel and bias) of
  ``cnnkit.handgrad.Conv2D`` and ``keras.layers.Conv2D`` on the same weights and data,
  3x3 kernels, "same" padding, for the shapes of issue 2;
* ``lecture_epoch``: one training epoch of ``cnnkit.models.build("lecture", ...)``
  built with each conv flavour, on the MNIST test set beside the repository
  (``../shared/datasets/mnist-10k``, gzip IDX; skipped with a reason when absent).

Usage: ``python benchmarks/handgrad.py [--batch 32] [--repeats 15] [--epochs 2] [--jit-compile]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cnnkit import handgrad, models  # noqa: E402

MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist-10k"
# (height, width, in_channels, out_channels, stride), the shapes issue 2 asks for.
CONV_SHAPES = [(28, 28, 1, 32, 1), (28, 28, 32, 64, 1), (32, 32, 64, 64, 1), (32, 32, 64, 64, 2), (56, 56, 64, 128, 1)]


def conv_step(layer: keras.layers.Layer, jit_compile: bool):
    """A compiled forward + backward step: gradients of ``sum(y^2)/2`` for input, kernel and bias."""

    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = 0.5 * tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, *layer.trainable_weights])

    return step


def alternate(runs: dict, repeats: int) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, interleaved (order flipped every round), in seconds."""
    times = {name: [] for name in runs}
    for r in range(repeats):
        for name in runs if r % 2 == 0 else reversed(list(runs)):
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def summary(times: dict[str, list[float]]) -> dict:
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "handgrad_ms": round(1e3 * medians["handgrad"], 3),
        "keras_ms": round(1e3 * medians["keras"], 3),
        "ratio": round(medians["handgrad"] / medians["keras"], 3),
    }


def bench_conv(shape, batch: int, repeats: int, jit_compile: bool) -> dict:
    h, w, cin, cout, stride = shape
    x = tf.random.stateless_uniform((batch, h, w, cin), seed=[0, 1])
    layers = {
        name: cls(cout, 3, strides=stride, padding="same")
        for name, cls in {"handgrad": handgrad.Conv2D, "keras": keras.layers.Conv2D}.items()
    }
    for layer in layers.values():
        layer.build(x.shape)
    for variable, anchor in zip(layers["handgrad"].weights, layers["keras"].weights):
        variable.assign(anchor)
    steps = {name: conv_step(layer, jit_compile) for name, layer in layers.items()}
    runs = {name: (lambda step=step: [g.numpy() for g in step(x)]) for name, step in steps.items()}
    alternate(runs, 2)  # trace and warm up
    return {"shape": f"{h}x{w}x{cin}->{cout} stride {stride}", **summary(alternate(runs, repeats))}


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 MNIST test digits as ``(10000, 28, 28, 1)`` float32 in [0, 1] and uint8 labels."""
    with gzip.open(MNIST / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(MNIST / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images.astype("float32") / 255.0, labels


def bench_lecture_epoch(batch: int, epochs: int, jit_compile: bool) -> dict:
    if not MNIST.is_dir():
        return {"skipped": f"{MNIST} is absent"}
    x, y = load_mnist()
    trained = {}
    for conv in ("handgrad", "keras"):
        keras.utils.set_random_seed(0)
        model = models.build("lecture", (28, 28, 1), 10, conv=conv)
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=jit_compile
        )
        model.fit(x[:batch * 4], y[:batch * 4], batch_size=batch, epochs=1, verbose=0)  # trace outside the timing
        trained[conv] = model
    last = {}

    def epoch(conv):
        last[conv] = trained[conv].fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False).history

    times = alternate({conv: (lambda conv=conv: epoch(conv)) for conv in trained}, epochs * 2)
    return {
        "images": len(x),
        "batch": batch,
        **summary(times),
        "last_epoch_loss": {conv: round(h["loss"][-1], 4) for conv, h in last.items()},
        "last_epoch_accuracy": {conv: round(h["accuracy"][-1], 4) for conv, h in last.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="Batch size of the conv steps and the epoch.")
    parser.add_argument("--repeats", type=int, default=15, help="Timed conv steps per flavour.")
    parser.add_argument("--epochs", type=int, default=2, help="Timed lecture epochs per flavour (0 skips them).")
    parser.add_argument("--jit-compile", action="store_true", help="Compile with XLA (default: TensorFlow graphs with oneDNN).")
    args = parser.parse_args()

    start = time.perf_counter()
    report = {
        "tensorflow": tf.__version__,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "jit_compile": args.jit_compile,
        "conv": [bench_conv(shape, args.batch, args.repeats, args.jit_compile) for shape in CONV_SHAPES],
    }
    if args.epochs:
        report["lecture_epoch"] = bench_lecture_epoch(args.batch, args.epochs, args.jit_compile)
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
