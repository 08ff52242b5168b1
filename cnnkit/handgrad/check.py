"""Check every hand-written gradient against TensorFlow's autodiff and against finite differences.

For each op, on randomly drawn shapes and settings (seeded, so a failure can be
replayed), three errors are measured, each as ``max|ours - reference| / max|reference|``:

* ``forward``: the op's output against the built-in op (float32);
* ``autodiff``: the gradients of ``sum(A * U)`` (``U`` random) with respect to every
  input, against TensorFlow's autodiff of the built-in op (float32);
* ``finite_difference``: the op's Jacobians against central finite differences
  (``tf.test.compute_gradient``) in float64, which needs no reference op at all.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from cnnkit.handgrad.conv import conv2d
from cnnkit.handgrad.dense import dense
from cnnkit.handgrad.pooling import avg_pool2d, max_pool2d

# float32 round-off on sums of a few hundred products stays far below these;
# a wrong index or a missed padding row is off by O(1).
TOLERANCES = {"forward": 1e-5, "autodiff": 1e-4, "finite_difference": 1e-6}


@dataclasses.dataclass(frozen=True)
class Case:
    """One op on one set of inputs: ``ours(*inputs)`` should equal ``builtin(*inputs)``."""

    op: str
    setting: str
    ours: object
    builtin: object
    inputs: tuple[np.ndarray, ...]


def relative_error(ours, reference) -> float:
    """``max|ours - reference| / max|reference|`` (absolute when the reference is all zeros)."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    scale = np.abs(reference).max(initial=0.0)
    return float(np.abs(ours - reference).max(initial=0.0) / (scale if scale > 0 else 1.0))


def random_cases(rng: np.random.Generator, trials: int) -> list[Case]:
    """``trials`` random settings of each op, with small shapes so finite differences stay quick."""
    cases = []
    for _ in range(trials):
        cases += [_conv_case(rng), _pool_case(rng, "max_pool2d"), _pool_case(rng, "avg_pool2d"), _dense_case(rng)]
    return cases


def _conv_case(rng) -> Case:
    kernel = tuple(int(k) for k in rng.integers(1, 5, size=2))
    dilated = rng.random() < 0.3
    strides = (1, 1) if dilated else tuple(int(s) for s in rng.integers(1, 4, size=2))
    dilation = tuple(int(d) for d in rng.integers(1, 4, size=2)) if dilated else (1, 1)
    padding = str(rng.choice(["same", "valid"]))
    size = [int(rng.integers((k - 1) * d + 1, (k - 1) * d + 6)) for k, d in zip(kernel, dilation)]
    in_ch, out_ch = (int(v) for v in rng.integers(1, 4, size=2))
    batch = int(rng.integers(1, 3))
    x = rng.standard_normal((batch, *size, in_ch))
    w = rng.standard_normal((*kernel, in_ch, out_ch))
    b = rng.standard_normal(out_ch)

    def builtin(x, w, b):
        # tf.nn.convolution differentiates dilated convolutions on CPU too (conv2d's own gradient kernels refuse them).
        return tf.nn.convolution(x, w, strides, padding.upper(), dilations=dilation) + b

    def ours(x, w, b):
        return conv2d(x, w, b, strides, padding, dilation)

    setting = f"x{x.shape} k{kernel} s{strides} d{dilation} {padding}"
    return Case("conv2d", setting, ours, builtin, (x, w, b))


def _pool_case(rng, op: str) -> Case:
    window = tuple(int(k) for k in rng.integers(1, 4, size=2))
    strides = tuple(int(s) for s in rng.integers(1, 4, size=2))
    padding = str(rng.choice(["same", "valid"]))
    batch, channels = (int(v) for v in rng.integers(1, 3, size=2))
    size = [int(rng.integers(k, k + 6)) for k in window]
    # Distinct values 0.01 apart: a finite-difference step (1e-3) never changes a window's maximum.
    n = batch * size[0] * size[1] * channels
    x = (rng.permutation(n) * 0.01).reshape(batch, *size, channels)
    ours_fn, builtin_fn = (max_pool2d, tf.nn.max_pool2d) if op == "max_pool2d" else (avg_pool2d, tf.nn.avg_pool2d)

    def ours(x):
        return ours_fn(x, window, strides, padding)

    def builtin(x):
        return builtin_fn(x, window, strides, padding.upper())

    return Case(op, f"x{x.shape} window{window} s{strides} {padding}", ours, builtin, (x,))


def _dense_case(rng) -> Case:
    rows, in_features, out_features = (int(v) for v in rng.integers(1, 7, size=3))
    leading = (rows,) if rng.random() < 0.5 else (rows, int(rng.integers(1, 4)))
    x = rng.standard_normal((*leading, in_features))
    w = rng.standard_normal((in_features, out_features))
    b = rng.standard_normal(out_features)

    def builtin(x, w, b):
        return tf.tensordot(x, w, axes=1) + b

    return Case("dense", f"x{x.shape} w{w.shape}", dense, builtin, (x, w, b))


def measure(case: Case) -> dict:
    """The three errors of one case, and whether each is within :data:`TOLERANCES`."""
    inputs32 = [tf.constant(v, tf.float32) for v in case.inputs]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs32)
        ours, reference = case.ours(*inputs32), case.builtin(*inputs32)
        upstream = tf.constant(np.random.default_rng(0).standard_normal(reference.shape), tf.float32)
        ours_loss, reference_loss = tf.reduce_sum(ours * upstream), tf.reduce_sum(reference * upstream)
    ours_grads, reference_grads = tape.gradient(ours_loss, inputs32), tape.gradient(reference_loss, inputs32)
    theoretical, numerical = tf.test.compute_gradient(case.ours, [tf.constant(v, tf.float64) for v in case.inputs])
    errors = {
        "forward": relative_error(ours, reference),
        "autodiff": max(relative_error(a, r) for a, r in zip(ours_grads, reference_grads)),
        "finite_difference": max(relative_error(t, n) for t, n in zip(theoretical, numerical)),
    }
    row = {"op": case.op, "setting": case.setting, **errors}
    row["ok"] = all(errors[name] <= TOLERANCES[name] for name in TOLERANCES)
    return row


def check_gradients(seed: int = 0, trials: int = 3) -> list[dict]:
    """Measure every op on ``trials`` random settings each.

    Returns:
        One dict per case: ``op``, ``setting``, ``forward``, ``autodiff``,
        ``finite_difference`` (relative errors) and ``ok``.
    """
    return [measure(case) for case in random_cases(np.random.default_rng(seed), trials)]
