"""Training throughput on this CPU: precision, XLA and logical devices, against the machine's FLOP peak.

For ``lecture`` and ``resnet18`` on 32x32x3 inputs (10 classes) it measures
training images/s for every combination of

* precision: ``float32`` vs ``mixed_bfloat16`` (``--mixed-precision`` on CPU),
* XLA: ``jit`` off vs on (``--jit``),
* devices: 1 (the default strategy) vs 2 logical CPU devices under
  ``MirroredStrategy`` (``--strategy mirrored --logical-cpus 2``; XLA is
  refused there, see ``cnnkit.distribute.setup_compute``, and reported as
  ``unsupported``),

each configuration in its own process (logical devices must be configured
before TensorFlow starts, and one process holds one strategy). The anchor is float32, no jit, 1 device, measured in
the same run; ``ratio`` is images/s over the anchor's.

FLOPs per image come from the model's layer shapes: a convolution does
``H_out * W_out * k_h * k_w * C_in * C_out / groups`` multiply-adds, a dense
layer ``units_in * units_out``; one multiply-add is 2 FLOPs. A training step
costs about 3x the forward pass (the backward pass computes gradients for both
the inputs and the weights, each as costly as the forward; Kaplan et al. 2020,
"Scaling Laws for Neural Language Models", Sec. 2.1). Normalisation,
activations and pooling are left out, so ``fraction_of_peak`` slightly
understates the work done.

On a shared machine wall time depends on the other jobs, so each row also
reports images per CPU-second of this process (all its threads) and the
fraction of one core's peak reached per CPU-second.

Peak: cores x FMA units per core x float32 lanes per 512-bit vector x 2 FLOPs
per FMA x clock, with the clock read from ``/proc/cpuinfo``. AVX-512 BF16's
``VDPBF16PS`` does twice the float32 lanes' multiply-adds per instruction, so
the bfloat16 peak is twice that; the fraction is reported against the
precision's own peak.

Run: ``python benchmarks/scaling.py [--steps 6] [--batch 32]``; prints JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lecture", "resnet18")
PRECISIONS = ("float32", "mixed_bfloat16")
INPUT_SHAPE = (32, 32, 3)
CLASSES = 10
FMA_UNITS_PER_CORE = 2
FLOAT32_LANES = 512 // 32


def machine_peak() -> dict:
    """Float32 and bfloat16 FLOP/s peaks of this CPU, with the figures they come from."""
    info = Path("/proc/cpuinfo").read_text()
    mhz = max(float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M))
    flags = set(re.search(r"^flags\s*:(.*)$", info, re.M)[1].split())
    cores = os.cpu_count()
    float32 = cores * FMA_UNITS_PER_CORE * FLOAT32_LANES * 2 * mhz * 1e6
    return {
        "cpu": re.search(r"^model name\s*:\s*(.*)$", info, re.M)[1],
        "cores": cores,
        "clock_mhz": mhz,
        "fma_units_per_core": FMA_UNITS_PER_CORE,
        "float32_lanes": FLOAT32_LANES,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "float32_flops": float32,
        "bfloat16_flops": float32 * (2 if "avx512_bf16" in flags else 1),
        "formula": "cores x FMA units x float32 lanes x 2 FLOPs per FMA x clock",
    }


def forward_macs(model) -> int:
    """Multiply-adds of one image's forward pass through the model's conv and dense layers."""
    import keras

    total = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, height, width, channels = layer.output.shape
            total += height * width * layer.kernel_size[0] * layer.kernel_size[1] * channels
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, out_channels = layer.output.shape
            in_channels = layer.input.shape[-1]
            total += height * width * layer.kernel_size[0] * layer.kernel_size[1] * in_channels * out_channels // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _leaf_layers(layer)
        else:
            yield layer


def measure(name: str, precision: str, jit: bool, devices: int, steps: int, per_replica_batch: int, repeats: int) -> dict:
    """Training images/s of one configuration; run in a fresh process (one strategy per process)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from cnnkit import distribute, models
    from cnnkit.errors import InputError

    config = {"model": name, "precision": precision, "jit": jit, "devices": devices}
    try:
        strategy = distribute.setup_compute(
            device="cpu",
            strategy="mirrored" if devices > 1 else "one",
            mixed_precision=precision == "mixed_bfloat16",
            logical_cpus=devices,
            jit=jit,
        )
    except InputError as error:
        return {**config, "unsupported": str(error)}
    batch = distribute.global_batch_size(per_replica_batch, strategy)
    rng = np.random.default_rng(0)
    x = rng.random((batch, *INPUT_SHAPE), dtype=np.float32)
    y = rng.integers(0, CLASSES, size=batch)
    data = distribute.shard_by_data(tf.data.Dataset.from_tensors((x, y)).repeat())
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = models.build(name, INPUT_SHAPE, CLASSES)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit)
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)  # trace, compile, warm up
    seconds, cpu_seconds = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    return {
        **config,
        "built": model.name,
        "params": model.count_params(),
        "global_batch": batch,
        "images_per_second": steps * batch / min(seconds),
        "images_per_cpu_second": steps * batch / min(cpu_seconds),
        "forward_flops_per_image": 2 * forward_macs(model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per repeat")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats; the fastest counts")
    parser.add_argument("--batch", type=int, default=32, help="batch per replica")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one JSON configuration
    args = parser.parse_args()
    timing = {"steps": args.steps, "repeats": args.repeats, "batch": args.batch}
    if args.one:
        print(json.dumps(measure(**json.loads(args.one), steps=args.steps, per_replica_batch=args.batch, repeats=args.repeats)))
        return

    rows = []
    for name, precision, jit, devices in itertools.product(args.models.split(","), PRECISIONS, (False, True), (1, 2)):
        config = {"name": name, "precision": precision, "jit": jit, "devices": devices}
        done = subprocess.run(
            [sys.executable, __file__, "--one", json.dumps(config), *(f"--{k}={v}" for k, v in timing.items())],
            cwd=REPO_ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
            capture_output=True,
            text=True,
        )
        if done.returncode:
            sys.exit(f"measuring {config} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    peak = machine_peak()
    anchors = {r["model"]: r["images_per_second"] for r in rows if (r["precision"], r["jit"], r["devices"]) == ("float32", False, 1)}
    for row in rows:
        if "unsupported" in row:
            continue
        training_flops = 3 * row["forward_flops_per_image"]
        precision_peak = peak["bfloat16_flops"] if row["precision"] == "mixed_bfloat16" else peak["float32_flops"]
        row["ratio"] = row["images_per_second"] / anchors[row["model"]]
        row["training_gflops_per_second"] = row["images_per_second"] * training_flops / 1e9
        row["fraction_of_peak"] = row["images_per_second"] * training_flops / precision_peak
        row["fraction_of_float32_peak"] = row["images_per_second"] * training_flops / peak["float32_flops"]
        # Core-seconds the process really got: robust to other jobs sharing the cores.
        row["fraction_of_float32_peak_per_cpu_second"] = (
            row["images_per_cpu_second"] * training_flops / (peak["float32_flops"] / peak["cores"])
        )
    print(json.dumps({"peak": peak, "load_average": os.getloadavg(), **timing, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
