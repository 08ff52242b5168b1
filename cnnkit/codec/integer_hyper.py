"""The hyper-synthesis of :mod:`cnnkit.codec.gained` in exact integer arithmetic, for the decoder.

The decoder picks the probability table of every latent from ``h_s(z_hat)``. A
float network may round differently on another CPU, BLAS, thread count or
oneDNN setting, and one table index off desynchronises the range decoder for the
rest of the file. Ballé, Johnston & Minnen, "Integer Networks for Data
Compression with Latent-Variable Models", ICLR 2019, make ``h_s`` integer; here
a trained float ``h_s`` is quantised after training (post-training quantisation,
per output channel), and every step below is exact by construction:

* activations are integers ``X`` with ``x ~ s_x * X``, ``0 <= X < 2**15``;
  weights integers ``Wq`` with ``W[..., o] ~ s_w[o] * Wq[..., o]``, ``|Wq| < 2**13``;
* a convolution is a sum of products of such integers, computed as float64
  matrix products: every product and partial sum is an integer below ``2**53``,
  so the float64 result is exact whatever the summation order, blocking, FMA or
  number of threads of the BLAS;
* bias, ReLU and requantisation ``Y = (acc * M[o] + 2**(S-1)) >> S`` (``M`` a
  15-bit fixed-point multiplier of ``s_x s_w[o] / s_y``) run in int64;
* the last layer's integers ``O`` give the table index by comparison with
  integer thresholds ``T[q, c, j]`` precomputed from the scale table
  (``sigma_g >= table_j`` <=> ``O <= T_j``), so no ``exp`` is evaluated at decode,
  and the gained mean ``O * c[q, c]`` as one IEEE float64 multiplication, which
  every conforming platform rounds the same way.

The only float inputs are the integers ``z_hat`` times one float64 constant per
level and channel, also a single correctly rounded multiplication.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IntegerHyperSynthesis", "quantise"]

ACTIVATION_BITS = 15
WEIGHT_BITS = 13
MULTIPLIER_BITS = 15
# Calibrated activation maxima get this much headroom before they saturate.
_HEADROOM = 1.25
_INPUT_HEADROOM = 2.0


# Rows of the im2col matrices per matrix product: bounds their memory (to ~64 MB) whatever the image size.
_PRODUCT_BYTES = 64 << 20


def _row_blocks(rows: int, row_bytes: int) -> range:
    """Starts of blocks of rows whose matrices stay within :data:`_PRODUCT_BYTES`."""
    return range(0, rows, max(1, _PRODUCT_BYTES // max(row_bytes, 1)))


def _transposed_conv(x: np.ndarray, kernel: np.ndarray, stride: int = 2) -> np.ndarray:
    """Keras/TF ``Conv2DTranspose`` (``padding="same"``) of integer-valued float64 arrays, exactly.

    One matrix product per block of input rows gives every tap's contribution,
    ``P[i, j, a, b] = x[i, j] @ kernel[a, b].T``, which is then added into place.

    Args:
        x: ``(height, width, in)``.
        kernel: ``(k, k, out, in)``, Keras' layout.

    Returns:
        ``(stride * height, stride * width, out)``: ``out[s*i + a - p, s*j + b - p] += x[i, j] @ kernel[a, b].T``
        with ``p = (k - stride) // 2``: TF puts the smaller half of the ``k - stride`` padding first.
    """
    height, width, channels = x.shape
    size, _, out_channels, _ = kernel.shape
    pad = (size - stride) // 2
    taps = np.ascontiguousarray(kernel.transpose(3, 0, 1, 2).reshape(channels, -1))  # (in, k*k*out)
    full = np.zeros((stride * height + size, stride * width + size, out_channels))
    blocks = _row_blocks(height, 8 * width * taps.shape[1])
    for top in blocks:
        rows = x[top : top + blocks.step]
        products = (rows.reshape(-1, channels) @ taps).reshape(len(rows), width, size, size, out_channels)
        for a in range(size):
            for b in range(size):
                start = stride * top + a
                full[start : start + stride * len(rows) : stride, b : b + stride * width : stride] += products[:, :, a, b]
    return full[pad : pad + stride * height, pad : pad + stride * width]


def _conv_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Keras ``Conv2D`` (stride 1, ``padding="same"``, odd ``k``) of integer-valued float64 arrays, exactly.

    im2col: each block of output rows is one matrix product of its ``(rows * width, k * k * in)``
    patches with the ``(k * k * in, out)`` kernel.

    Args:
        x: ``(height, width, in)``.
        kernel: ``(k, k, in, out)``.
    """
    height, width, channels = x.shape
    size = kernel.shape[0]
    half = size // 2
    padded = np.pad(x, ((half, half), (half, half), (0, 0)))
    flat_kernel = kernel.reshape(-1, kernel.shape[3])
    out = np.empty((height, width, kernel.shape[3]))
    blocks = _row_blocks(height, 8 * width * flat_kernel.shape[0])
    for top in blocks:
        rows = min(blocks.step, height - top)
        patches = np.stack(
            [padded[top + a : top + a + rows, b : b + width] for a in range(size) for b in range(size)], axis=2
        )  # (rows, width, k*k, in): the same order as the kernel's (k, k, in) flattening
        out[top : top + rows] = (patches.reshape(rows * width, -1) @ flat_kernel).reshape(rows, width, -1)
    return out


class IntegerHyperSynthesis:
    """``h_s`` as integers: from decoded ``z_hat`` to table indexes and gained means of ``y``.

    Build it with :func:`quantise`; :meth:`arrays` and :meth:`from_arrays` store and restore it.

    Attributes:
        latent: channels ``M`` of ``y``.
    """

    def __init__(self, arrays: dict[str, np.ndarray]):
        self._a = arrays
        self.latent = int(arrays["mean_multiplier"].shape[1])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array it needs, for a codec file (integers, and the float64 constants of the docstring)."""
        return dict(self._a)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> IntegerHyperSynthesis:
        return cls(arrays)

    def float_weights(self) -> list[list[np.ndarray]]:
        """``[kernel, bias]`` of each float layer of ``h_s`` (Keras layouts, float32), as the integers state them.

        ``W = s_w * Wq`` and ``b = s_x s_w * B``: the weights to resume training from when only
        the integer network was kept (13-bit weights, finer than float16's 11-bit significand).
        """
        a = self._a
        weights = []
        for i, out_axis in enumerate((2, 2, 3)):
            scale = a[f"weight_scale{i}"]
            shape = [1, 1, 1, 1]
            shape[out_axis] = -1
            kernel = a[f"kernel{i}"].astype(np.float64) * scale.reshape(shape)
            bias = a[f"bias{i}"].astype(np.float64) * a["activation_scale"][i] * scale
            weights.append([kernel.astype(np.float32), bias.astype(np.float32)])
        return weights

    def outputs(self, z_hat: np.ndarray, level: int) -> np.ndarray:
        """The last layer's integers ``O``: ``(H/16, W/16, 2M)`` int64 for ``z_hat`` ``(H/64, W/64, N)``."""
        a = self._a
        top = (1 << ACTIVATION_BITS) - 1
        x = np.clip(np.round(np.asarray(z_hat, np.float64) * a["input_multiplier"][level]), -top, top)
        for i, transposed in enumerate((True, True, False)):
            kernel = a[f"kernel{i}"].astype(np.float64)
            acc = (_transposed_conv(x, kernel) if transposed else _conv_same(x, kernel)).astype(np.int64)
            acc += a[f"bias{i}"]
            if i == 2:
                return acc
            acc = np.maximum(acc, 0)
            shift = int(a[f"shift{i}"])
            x = np.minimum((acc * a[f"multiplier{i}"] + (1 << (shift - 1))) >> shift, top).astype(np.float64)
        raise AssertionError("unreachable")

    def decode_parameters(self, z_hat: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Table index and gained mean of every element of ``y``.

        Args:
            z_hat: ``(H/64, W/64, N)`` decoded integers (gained, as coded).
            level: quality level index ``0 .. levels - 1``.

        Returns:
            ``(indexes, mu_g)``: int32 and float64, each ``(H/16, W/16, M)``.
        """
        out = self.outputs(z_hat, level)
        mean_part, scale_part = out[..., : self.latent], out[..., self.latent :]
        thresholds = self._a["thresholds"][level]  # (M, tables), increasing in the last axis
        indexes = (scale_part[..., None] > thresholds).sum(axis=-1)
        indexes = np.minimum(indexes, thresholds.shape[-1] - 1).astype(np.int32)
        return indexes, mean_part.astype(np.float64) * self._a["mean_multiplier"][level]


def _weight_quantisation(kernel: np.ndarray, out_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel scale ``s_w`` and integers ``Wq`` with ``|Wq| < 2**WEIGHT_BITS``."""
    axes = tuple(i for i in range(kernel.ndim) if i != out_axis)
    largest = np.max(np.abs(kernel), axis=axes)
    scale = np.where(largest > 0, largest, 1.0) / ((1 << WEIGHT_BITS) - 1)
    shape = [1] * kernel.ndim
    shape[out_axis] = -1
    return scale, np.round(kernel / scale.reshape(shape)).astype(np.int16)


def quantise(model, calibration_z: list[np.ndarray], scales: np.ndarray) -> IntegerHyperSynthesis:
    """Quantise ``model.hyper_synthesis`` (a :class:`~cnnkit.codec.gained.GainedHyperprior`) to integers.

    Args:
        model: the trained float model.
        calibration_z: ungained ``z = h_a(y)`` of some photos (``(h, w, N)`` float arrays, e.g. of
            training photos); the activations they cause at every level fix each layer's scale.
        scales: ``(tables,)`` the increasing scale table of the Gaussian conditional.

    Returns:
        The integer network; its inputs are the gained, coded ``z_hat``.
    """
    import tensorflow as tf

    layers = model.hyper_synthesis.layers
    gain_z = np.exp(model.log_hyper_gain.numpy().astype(np.float64))  # (levels, N)
    inverse_gain_z = np.exp(model.log_hyper_inverse_gain.numpy().astype(np.float64))  # (levels, N)
    gain_y = np.exp(model.log_gain.numpy().astype(np.float64))  # (levels, M)
    top = (1 << ACTIVATION_BITS) - 1

    # Activation maxima of the float network: its input at every level, round(g_q z) / g'_q as the
    # decoder forms it, and the output of each ReLU.
    inputs = [np.round(np.asarray(z, np.float64) * g) * inverse for z in calibration_z for g, inverse in zip(gain_z, inverse_gain_z)]
    maxima = [max(float(np.max(np.abs(z))) for z in inputs)]
    batch = [tf.constant(z[None], tf.float32) for z in inputs]
    for layer in layers[:2]:
        batch = [layer(t) for t in batch]
        maxima.append(max(float(tf.reduce_max(t)) for t in batch))
    # The input is the coded z, which an unusual image can push further out than the hidden layers.
    headroom = [_INPUT_HEADROOM, _HEADROOM, _HEADROOM]
    activation_scale = [h * max(m, 1e-6) / top for h, m in zip(headroom, maxima)]

    arrays: dict[str, np.ndarray] = {
        "input_multiplier": inverse_gain_z / activation_scale[0],
        "activation_scale": np.asarray(activation_scale, np.float64),
    }
    for i, layer in enumerate(layers):
        kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
        transposed = i < 2
        weight_scale, quantised = _weight_quantisation(kernel, out_axis=2 if transposed else 3)
        unit = activation_scale[i] * weight_scale  # value of one unit of the accumulator, per output channel
        arrays[f"kernel{i}"] = quantised
        arrays[f"weight_scale{i}"] = weight_scale
        arrays[f"bias{i}"] = np.round(bias / unit).astype(np.int64)
        if i < 2:
            shift = 30
            arrays[f"multiplier{i}"] = np.round(unit / activation_scale[i + 1] * 2.0**shift).astype(np.int64)
            # Keep the multiplier within MULTIPLIER_BITS so that acc * M stays inside int64.
            while arrays[f"multiplier{i}"].max() >= 1 << MULTIPLIER_BITS:
                shift -= 1
                arrays[f"multiplier{i}"] = np.round(unit / activation_scale[i + 1] * 2.0**shift).astype(np.int64)
            arrays[f"shift{i}"] = np.asarray(shift, np.int64)
        else:
            latent = model.latent
            mean_unit, scale_unit = unit[:latent], unit[latent:]
            arrays["mean_multiplier"] = mean_unit[None, :] * gain_y
            # sigma_g = exp(O * u) * g >= table_j  <=>  O >= (log table_j - log g) / u; the index is the
            # first j with sigma_g <= table_j, i.e. the count of j with O > floor((log table_j - log g) / u).
            bound = (np.log(scales)[None, None, :] - np.log(gain_y)[:, :, None]) / scale_unit[None, :, None]
            arrays["thresholds"] = np.floor(np.clip(bound, -(2.0**62), 2.0**62)).astype(np.int64)
    return IntegerHyperSynthesis(arrays)
