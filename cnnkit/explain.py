"""What a trained CNN sees: its first kernels, the feature maps of each convolution block, and Grad-CAM.

* **Kernels**: the weights of the first convolution, each output channel a small picture.
* **Feature maps**: the output of each convolution block for one input, the
  strongest channels (largest mean absolute activation) first. A block is a
  convolution layer with the batch normalisation and activation layers that
  follow it alone (``conv -> bn -> relu``; the lecture CNN's ``block{i}_conv``
  has its ReLU inside).
* **Grad-CAM** (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep
  Networks via Gradient-based Localization"): with ``A^k`` the k-th channel of
  the last convolution block and ``y^c`` the score of class c before the
  softmax, ``alpha_k^c = 1/Z sum_ij dy^c / dA^k_ij`` (their eq. 1) and the map
  ``L^c = ReLU(sum_k alpha_k^c A^k)`` (eq. 2), upsampled to the input.

Any functional model of the zoo works, with Keras or hand-written-gradient
convolutions alike: ``cnnkit.handgrad.Conv2D`` subclasses ``keras.layers.Conv2D``,
and the gradient Grad-CAM takes through it is its hand-written backward pass.
For a seed ensemble (:func:`cnnkit.models.average_ensemble`) the pictures are
those of its first member.

:func:`write_page` turns these into ``DIR/index.html`` with its PNGs (see
:mod:`cnnkit.pages`); ``cli.py explain`` calls it through ``pipelines.runs``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cnnkit import metrics, pages, plots, runs
from cnnkit.errors import InputError

# Layers that convolve (handgrad.Conv2D is a keras.layers.Conv2D).
CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
# Layers that act on each channel alone and so belong to the convolution before them.
_BLOCK_FOLLOWERS = (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU)
# Feature maps drawn per block and input: the strongest channels.
MAPS_SHOWN = 8
PAGE = "index.html"
RECORD = "explain.json"  # what was explained; also marks a folder as explain's own, which a rerun may replace


@dataclass(frozen=True)
class Block:
    """One convolution block.

    Attributes:
        name: the convolution layer's name.
        conv: the convolution layer.
        output: the block's last layer (the convolution itself, or the batch norm / activation after it).
    """

    name: str
    conv: keras.layers.Layer
    output: keras.layers.Layer


def network(model: keras.Model) -> keras.Model:
    """The classifier whose convolutions are explained: ``model``, or the first member of a seed ensemble."""
    if any(isinstance(layer, CONVOLUTIONS) for layer in model.layers):
        return model
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not members:
        raise InputError(f"model {model.name!r}: has no convolution layers to explain")
    return network(members[0])


def blocks(net: keras.Model) -> list[Block]:
    """The convolution blocks of ``net`` in order (see the module docstring)."""
    found = []
    for layer in net.layers:
        if not isinstance(layer, CONVOLUTIONS):
            continue
        last = layer
        while len(last._outbound_nodes) == 1 and isinstance(last._outbound_nodes[0].operation, _BLOCK_FOLLOWERS):
            last = last._outbound_nodes[0].operation
        found.append(Block(layer.name, layer, last))
    if not found:
        raise InputError(f"model {net.name!r}: has no convolution layers to explain")
    return found


def first_kernels(net: keras.Model) -> np.ndarray:
    """The first convolution's kernel, ``(kernel_height, kernel_width, in_channels, out_channels)``.

    A depthwise first layer's ``(kh, kw, in, multiplier)`` kernel is returned as it is.
    """
    conv = blocks(net)[0].conv
    kernel = conv.depthwise_kernel if isinstance(conv, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)) else conv.kernel
    return np.asarray(keras.ops.convert_to_numpy(kernel), np.float32)


def feature_maps(net: keras.Model, x: np.ndarray, chosen: Sequence[Block] | None = None) -> list[np.ndarray]:
    """The output of each block for inputs ``x`` ``(n, *input_shape)``: a list of ``(n, height, width, channels)`` float32."""
    chosen = list(chosen or blocks(net))
    probe = keras.Model(net.inputs, [b.output.output for b in chosen])
    outputs = probe(tf.convert_to_tensor(x, tf.float32), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [np.asarray(tf.cast(o, tf.float32)) for o in outputs]


def strongest_channels(maps: np.ndarray, count: int = MAPS_SHOWN) -> np.ndarray:
    """Indices ``(n, count)`` of each input's channels by mean absolute activation, strongest first.

    Args:
        maps: ``(n, height, width, channels)``.
        count: how many channels (at most all of them).
    """
    strength = np.mean(np.abs(maps), axis=(1, 2))
    return np.argsort(-strength, axis=1, kind="stable")[:, :count]


def class_scores(net: keras.Model):
    """The tensor of class scores before the softmax (the input of a final softmax layer; else the output)."""
    last = net.layers[-1]
    activation = getattr(last, "activation", None)
    if isinstance(last, keras.layers.Activation) and getattr(activation, "__name__", "") == "softmax":
        return last.input
    return net.output


def grad_cam(net: keras.Model, x: np.ndarray, classes: Sequence[int], block: Block | None = None) -> np.ndarray:
    """Grad-CAM maps (Selvaraju et al. 2017, eqs. 1-2) at the resolution of ``block`` (default: the last).

    Args:
        net: a functional classifier (see :func:`network`).
        x: ``(n, *input_shape)`` inputs.
        classes: ``n`` class indices, the class explained for each input.
        block: the convolution block whose activations ``A`` are weighted.

    Returns:
        ``(n, height, width)`` float32 ``ReLU(sum_k alpha_k A^k)``, not normalised.
    """
    block = block or blocks(net)[-1]
    probe = keras.Model(net.inputs, [block.output.output, class_scores(net)])
    x = tf.convert_to_tensor(x, tf.float32)
    picked = tf.constant(np.asarray(classes, np.int64).reshape(-1, 1))
    with tf.GradientTape() as tape:
        activations, scores = probe(x, training=False)
        score = tf.gather(tf.cast(scores, tf.float32), picked, batch_dims=1)
    gradients = tf.cast(tape.gradient(score, activations), tf.float32)
    activations = tf.cast(activations, tf.float32)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # alpha_k^c, eq. 1
    return np.asarray(tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)))  # L^c, eq. 2


def upsample(maps: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``(n, h, w)`` maps resized (bilinear) to ``size`` and scaled to [0, 1] each (an all-zero map stays 0)."""
    resized = np.asarray(tf.image.resize(np.asarray(maps, np.float32)[..., None], tuple(size), "bilinear"))[..., 0]
    top = resized.max(axis=(1, 2), keepdims=True)
    return np.where(top > 0, resized / np.where(top > 0, top, 1), 0.0)


# --- the page -----------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One input to explain.

    Attributes:
        name: what the page calls it (its file name).
        x: the model input ``(height, width, channels)``; for speech ``(frames, bins, 1)``.
    """

    name: str
    x: np.ndarray


@dataclass(frozen=True)
class SpectrogramAxes:
    """The axes of a speech input: ``times`` ``(frames,)`` in s, ``frequencies`` ``(bins,)`` in Hz or None (MFCC)."""

    times: np.ndarray
    frequencies: np.ndarray | None


@dataclass(frozen=True)
class Inputs:
    """What a run gives :func:`write_page`.

    Attributes:
        examples: the inputs.
        probabilities: ``(len(examples), classes)``, the run's answer for each (as ``predict`` gives it).
        axes: for speech runs, the spectrograms' axes.
    """

    examples: list[Example]
    probabilities: np.ndarray
    axes: SpectrogramAxes | None = None


def check_out(out: str | os.PathLike) -> Path:
    """The folder explain may write: new, empty, or an earlier explain output (which is replaced).

    Raises:
        InputError: ``out`` is a file, or a folder holding other things.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}': exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / RECORD).is_file():
        raise InputError(f"--out '{out}': folder holds other files (no {RECORD} of an earlier explain); choose a new folder")
    return out


def write_page(
    out: str | os.PathLike,
    model: keras.Model,
    inputs: Inputs,
    classes: Sequence[str],
    *,
    title: str,
    top_k: int = 3,
    other_class: str | None = None,
) -> dict:
    """Write ``out/index.html``, its PNGs and ``explain.json``, all at once (an earlier explain output is replaced).

    Args:
        out: the folder (see :func:`check_out`).
        model: the run's model.
        inputs: the inputs, the run's answers and (speech) the axes.
        classes: class names.
        title: the page's title.
        top_k: classes listed per input.
        other_class: a class to explain besides the predicted one (Grad-CAM).

    Returns:
        The contents of ``explain.json``: per input its file, top-k and the
        classes Grad-CAM explains, and the blocks shown.

    Raises:
        InputError: ``out`` is not writable as explain's folder, or ``other_class`` is not a class.
    """
    out = check_out(out)
    if other_class is not None and other_class not in classes:
        raise InputError(f"--class '{other_class}': not a class of this run; expected one of: {', '.join(map(str, classes))}")
    net = network(model)
    chosen = blocks(net)
    examples, axes = inputs.examples, inputs.axes
    x = np.stack([e.x for e in examples]).astype(np.float32)
    predicted = np.asarray(inputs.probabilities).argmax(axis=1)
    explained = [("predicted", predicted)]
    if other_class is not None:
        explained.append(("--class", np.full(len(x), list(classes).index(other_class))))
    cams = [upsample(grad_cam(net, x, wanted, chosen[-1]), x.shape[1:3]) for _, wanted in explained]
    maps = feature_maps(net, x, chosen)
    tops = metrics.top_k(inputs.probabilities, classes, top_k)
    record = {
        "model": model.name,
        "explained_network": net.name,
        "grad_cam_block": chosen[-1].name,
        "blocks": [b.name for b in chosen],
        "inputs": [
            {"file": e.name, "top": top, "grad_cam_classes": [str(classes[w[i]]) for _, w in explained]}
            for i, (e, top) in enumerate(zip(examples, tops))
        ],
    }
    with runs.atomic_folder(out) as folder:
        kernels = first_kernels(net)
        title = f"{chosen[0].name}: {kernels.shape[-1]} kernels of {kernels.shape[0]}x{kernels.shape[1]}"
        plots.kernel_grid(kernels, folder / "kernels.png", title=title, time_major=axes is not None)
        parts = [_introduction(model, net, chosen), pages.section("First-layer kernels", pages.figure(folder, "kernels.png", _kernel_caption(kernels)))]
        for i, example in enumerate(examples):
            captions = [f"Grad-CAM: {classes[w[i]]} ({how})" for how, w in explained]
            parts.append(_input_section(folder, i, example, tops[i], list(zip(captions, [c[i] for c in cams])), chosen, [m[i] for m in maps], axes))
        pages.write(folder / PAGE, title, parts)
        runs.write_json(folder / RECORD, record)
    return record


def _introduction(model: keras.Model, net: keras.Model, chosen: Sequence[Block]) -> str:
    ensemble = f" {model.name} averages several members; the pictures are those of its first member, {net.name}." if net is not model else ""
    return pages.paragraph(
        f"Model {net.name}: {len(chosen)} convolution blocks ({', '.join(b.name for b in chosen)}). "
        f"Grad-CAM (Selvaraju et al. 2017) weights each channel of the last block, {chosen[-1].name}, by the mean gradient "
        "of the class score (before the softmax) with respect to it, and keeps the positive part of the weighted sum: "
        "warm colours are where evidence for that class lies. Feature maps show each block's strongest channels "
        f"(largest mean absolute activation) first, on one colour scale per block.{ensemble}"
    )


def _kernel_caption(kernels: np.ndarray) -> str:
    channels = kernels.shape[2]
    how = {1: "grey, 0 at mid-grey", 3: "RGB, min-max scaled per kernel"}.get(channels, f"mean over the {channels} input channels")
    return f"{kernels.shape[-1]} kernels of {kernels.shape[0]}x{kernels.shape[1]} ({how})"


def _input_section(folder, i, example, top, cams, chosen, maps, axes) -> str:
    """One input's section: top-k table, the input with its Grad-CAM maps, and each block's feature maps."""
    saliency = f"input{i}-gradcam.png"
    if axes is None:
        plots.saliency(np.clip(example.x, 0, 1), cams, folder / saliency)
        orientation = ""
    else:
        plots.saliency(example.x[..., 0], cams, folder / saliency, times=axes.times, frequencies=axes.frequencies)
        orientation = " Time runs to the right and frequency up, as in the spectrogram."
    parts = [
        pages.table(["class", "probability"], [(t["label"], t["probability"]) for t in top]),
        pages.figure(folder, saliency, "the input, then Grad-CAM of " + " and of ".join(c.split(": ", 1)[1] for c, _ in cams)),
    ]
    for block, block_maps in zip(chosen, maps):
        name = f"input{i}-{block.name}.png"
        order = strongest_channels(block_maps[None])[0]
        height, width, channels = block_maps.shape
        title = f"{block.name}: {len(order)} of {channels} channels, {height}x{width}"
        plots.feature_map_grid(block_maps, order, folder / name, title=title, time_major=axes is not None)
        after = f", after {block.output.name}" if block.output is not block.conv else ""
        parts.append(pages.figure(folder, name, f"{block.name}{after}: strongest channels first.{orientation}"))
    return pages.section(f"Input {i + 1}: {example.name}", *parts)
