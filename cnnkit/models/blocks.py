"""Building blocks shared by the architectures: tensor -> tensor functions with predictable layer names.

Every block takes the ``ConvLayers`` of the chosen flavour (see ``registry.conv_layers``)
so the same code builds Keras and hand-written-gradient models. Batch norm, depthwise
convolution, global pooling, dropout and activations have no hand-written twin and are
always Keras' own.

Small inputs. Each architecture downsamples by 2 a fixed number of times D (VGG and
ResNet: 5). ``downsampling_plan`` keeps the LAST k of those steps, k the largest
number (<= D) for which the final feature map still has a smaller side >= 2 under
"same" padding (``ceil(side / 2**k) >= 2``); the earliest steps, i.e. the stem, are the
ones dropped: a strided convolution gets stride 1, a pooling layer is left out. At
ImageNet size nothing changes; on 32x32 CIFAR a ResNet keeps 4 of its 5 halvings, on
8x8 digits 2; an input with a side of 1 or 2 keeps none, and no map ever falls below
1x1. The speech builders apply the rule to time and frequency separately, as they
downsample the two axes differently. ``finish`` records the adaptation in the model
name (``resnet18_small_input_4of5_downsamples``) and logs it at INFO level.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence

import keras

from cnnkit.errors import InputError
from cnnkit.handgrad._geometry import padding_mode, pair, same_padding
from cnnkit.models.registry import ConvLayers

log = logging.getLogger(__name__)

# The smallest side a feature map keeps after the last downsampling (see module docstring).
MIN_FINAL_SIDE = 2


def downsampling_plan(sides: Sequence[int], steps: int) -> tuple[int, ...]:
    """Strides (1 or 2) for each of an architecture's ``steps`` halvings, earliest first.

    Args:
        sides: the spatial sizes the halvings act on, e.g. ``(height, width)``.
        steps: how many times the full-size architecture halves its feature maps.

    Returns:
        ``steps`` strides: the first ``steps - k`` are 1 (dropped), the last k are 2,
        with k the largest number for which ``ceil(min(sides) / 2**k) >= MIN_FINAL_SIDE``.
    """
    side = min(sides)
    keep = 0
    while keep < steps and math.ceil(side / 2 ** (keep + 1)) >= MIN_FINAL_SIDE:
        keep += 1
    return (1,) * (steps - keep) + (2,) * keep


def finish(inputs: keras.KerasTensor, outputs: keras.KerasTensor, arch: str, plan: Sequence[int]) -> keras.Model:
    """Wrap a graph into a model named after the architecture and any small-input adaptation."""
    kept = sum(s != 1 for s in plan)
    name = arch
    if kept < len(plan):
        name = f"{arch}_small_input_{kept}of{len(plan)}_downsamples"
        log.info(
            "%s: input %s is small, so the first %d of %d downsampling steps are dropped (model %r)",
            arch, tuple(inputs.shape[1:]), len(plan) - kept, len(plan), name,
        )
    return keras.Model(inputs, outputs, name=name)


def classifier(x: keras.KerasTensor, num_classes: int, layers: ConvLayers) -> keras.KerasTensor:
    """The common head: ``Dense(num_classes)`` logits then a float32 softmax named ``predictions``.

    The softmax is float32 even under a mixed-precision policy, so every model outputs
    float32 probabilities of shape ``(batch, num_classes)``.
    """
    x = layers.Dense(num_classes, name="logits")(x)
    return keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)


def hidden_fc(
    x: keras.KerasTensor, layers: ConvLayers, units: int, dropout: float, *, dropout_first: bool
) -> keras.KerasTensor:
    """Flatten, then two fully connected ReLU layers ``fc1``, ``fc2`` of ``units`` with dropout.

    AlexNet drops out before each layer (``dropout_first``), VGG after; names
    ``fc{i}_dropout``. No dropout layer when ``dropout`` is 0.

    Args:
        x: ``(batch, height, width, channels)``.
        layers: conv flavour.
        units: width of each hidden layer.
        dropout: dropout rate.
        dropout_first: dropout before (True) or after (False) each layer.

    Returns:
        ``(batch, units)``.
    """
    x = keras.layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        if dropout and dropout_first:
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        if dropout and not dropout_first:
            x = keras.layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return x


def conv_bn_relu(
    x: keras.KerasTensor,
    layers: ConvLayers,
    filters: int,
    kernel_size: int | tuple[int, int],
    *,
    strides: int | tuple[int, int] = 1,
    use_bias: bool = False,
    epsilon: float = 1e-3,
    name: str,
) -> keras.KerasTensor:
    """Convolution ("same" padding) -> batch norm -> ReLU, named ``{name}_conv/_bn/_relu``.

    ``use_bias`` defaults to False because the batch norm's shift makes a conv bias
    redundant; Keras Applications' ResNet50 keeps it, so its count matches with True.
    """
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=use_bias, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=epsilon, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def depthwise_conv(
    x: keras.KerasTensor,
    kernel_size: int | tuple[int, int],
    strides: int | tuple[int, int] = 1,
    *,
    padding: str = "same",
    dilation_rate: int | tuple[int, int] = 1,
    use_bias: bool = False,
    name: str,
) -> keras.KerasTensor:
    """``keras.layers.DepthwiseConv2D`` that also works with different strides along height and width.

    TensorFlow's own depthwise kernel (``DepthwiseConv2dNative`` on CPUs without
    oneDNN, e.g. AMD and pre-AVX-512 Intel) refuses ``strides=(1, 2)``: "Current
    implementation only supports equal length strides". Unequal strides are run
    as the stride-1 convolution followed by keeping every s-th output, which
    gives the same values: output j of a strided convolution is the window
    starting at input ``j * s - pad_before``, and output i of the stride-1 one
    the window starting at ``i - pad_before_1``, so ``i = j * s + pad_before_1 - pad_before``
    (``pad_before`` from ``handgrad._geometry.same_padding``, TensorFlow's rule, with
    the dilated kernel length; "valid" pads nothing). The layer keeps its
    name and kernel shape, so weights load either way.

    Args:
        x: ``(batch, height, width, channels)`` with static height and width.
        kernel_size, strides, dilation_rate: as for ``DepthwiseConv2D``.
        padding: ``"same"`` or ``"valid"``.
        use_bias: as for ``DepthwiseConv2D``.
        name: the convolution layer's name.

    Returns:
        ``(batch, out_height, out_width, channels)``, as ``DepthwiseConv2D(..., strides=strides)`` gives.
    """
    kernel_size, strides = pair(kernel_size, "kernel_size"), pair(strides, "strides")
    dilation_rate = pair(dilation_rate, "dilation_rate")
    options = dict(padding=padding, dilation_rate=dilation_rate, use_bias=use_bias, name=name)
    if strides[0] == strides[1]:
        return keras.layers.DepthwiseConv2D(kernel_size, strides=strides, **options)(x)
    y = keras.layers.DepthwiseConv2D(kernel_size, strides=1, **options)(x)
    mode = padding_mode(padding)
    offsets = [
        same_padding(side, (k - 1) * d + 1, 1, mode)[0] - same_padding(side, (k - 1) * d + 1, s, mode)[0]
        for side, k, s, d in zip(x.shape[1:3], kernel_size, strides, dilation_rate)
    ]
    return y[:, offsets[0] :: strides[0], offsets[1] :: strides[1], :]


def check_fraction(option: str, value: object) -> float:
    """Validate a probability-like option such as ``dropout`` (0 <= value < 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise InputError(f"option {option}={value!r}: expected a number in [0, 1)")
    return float(value)


def check_positive(option: str, value: object) -> float:
    """Validate a strictly positive number such as a ``width`` multiplier."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise InputError(f"option {option}={value!r}: expected a number > 0")
    return float(value)


def check_count(option: str, value: object, minimum: int = 1) -> int:
    """Validate an integer option such as ``fc_units`` (>= ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"option {option}={value!r}: expected an integer >= {minimum}")
    return int(value)


def scaled(channels: int, width: float) -> int:
    """A channel count multiplied by the ``width`` option, at least 1."""
    return max(1, round(channels * width))


def basic_block(
    x: keras.KerasTensor,
    layers: ConvLayers,
    filters: int,
    *,
    stride: int,
    name: str,
) -> keras.KerasTensor:
    """ResNet basic block (He et al. 2016, Fig. 2 left): ``relu(F(x) + shortcut(x))``.

    ``F`` is 3x3 conv (stride ``stride``) -> BN -> ReLU -> 3x3 conv -> BN. The shortcut is
    the identity when shape is kept, else a 1x1 conv with the same stride and a BN
    (option B of the paper), as in torchvision. Convs carry no bias; BN epsilon 1e-5.

    Args:
        x: ``(batch, height, width, channels_in)``.
        layers: conv flavour.
        filters: output channels.
        stride: 1 or 2.
        name: prefix, e.g. ``conv3_block1`` -> ``conv3_block1_1_conv``, ``..._0_conv`` (shortcut).

    Returns:
        ``(batch, ceil(height / stride), ceil(width / stride), filters)``.
    """
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_0_conv")(x)
        shortcut = keras.layers.BatchNormalization(epsilon=1e-5, name=f"{name}_0_bn")(shortcut)
    x = conv_bn_relu(x, layers, filters, 3, strides=stride, epsilon=1e-5, name=f"{name}_1")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(x)
    return _bn_add_relu(x, shortcut, epsilon=1e-5, name=f"{name}_2", block=name)


def bottleneck_block(
    x: keras.KerasTensor,
    layers: ConvLayers,
    filters: int,
    *,
    stride: int,
    conv_shortcut: bool,
    name: str,
) -> keras.KerasTensor:
    """ResNet bottleneck block (He et al. 2016, Fig. 5 right), ``4 * filters`` channels out.

    ``F`` is 1x1 conv (``filters``) -> BN -> ReLU -> 3x3 conv (``filters``, stride
    ``stride``) -> BN -> ReLU -> 1x1 conv (``4 * filters``) -> BN; output
    ``relu(F(x) + shortcut(x))``, the shortcut a strided 1x1 conv + BN when
    ``conv_shortcut``. Layer names and parameters are those of Keras Applications'
    ResNet50 (convs with bias, BN epsilon 1.001e-5); the stride sits on the 3x3 conv
    ("ResNet v1.5", as in torchvision), which changes no parameter count.

    Args:
        x: ``(batch, height, width, channels_in)``.
        layers: conv flavour.
        filters: bottleneck width; the block outputs ``4 * filters`` channels.
        stride: 1 or 2.
        conv_shortcut: project the shortcut (first block of a stage) or pass ``x`` as is.
        name: prefix, e.g. ``conv2_block1``.

    Returns:
        ``(batch, ceil(height / stride), ceil(width / stride), 4 * filters)``.
    """
    shortcut = x
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = keras.layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_0_bn")(shortcut)
    x = conv_bn_relu(x, layers, filters, 1, use_bias=True, epsilon=1.001e-5, name=f"{name}_1")
    x = conv_bn_relu(x, layers, filters, 3, strides=stride, use_bias=True, epsilon=1.001e-5, name=f"{name}_2")
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return _bn_add_relu(x, shortcut, epsilon=1.001e-5, name=f"{name}_3", block=name)


def _bn_add_relu(
    x: keras.KerasTensor, shortcut: keras.KerasTensor, *, epsilon: float, name: str, block: str
) -> keras.KerasTensor:
    """The end of a residual block: ``relu(BN(x) + shortcut)``, named ``{name}_bn``, ``{block}_add/_out``."""
    x = keras.layers.BatchNormalization(epsilon=epsilon, name=f"{name}_bn")(x)
    x = keras.layers.Add(name=f"{block}_add")([shortcut, x])
    return keras.layers.Activation("relu", name=f"{block}_out")(x)


def inception_module(
    x: keras.KerasTensor,
    layers: ConvLayers,
    branches: tuple[int, int, int, int, int, int],
    *,
    name: str,
) -> keras.KerasTensor:
    """Inception module with dimension reductions (Szegedy et al. 2015, Fig. 2b).

    Four parallel branches concatenated on channels: 1x1 conv; 1x1 reduction -> 3x3
    conv; 1x1 reduction -> 5x5 conv; 3x3 max pool (stride 1) -> 1x1 projection. Each
    conv is conv-BN-ReLU (the paper predates batch norm; it is what makes the net
    train from scratch without auxiliary heads).

    Args:
        x: ``(batch, height, width, channels_in)``.
        layers: conv flavour.
        branches: ``(#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj)``, the
            columns of Table 1 of the paper.
        name: prefix, e.g. ``inception3a`` -> ``inception3a_3x3_reduce_conv``.

    Returns:
        ``(batch, height, width, #1x1 + #3x3 + #5x5 + pool proj)``.
    """
    n1x1, n3x3r, n3x3, n5x5r, n5x5, pool_proj = branches
    b1 = conv_bn_relu(x, layers, n1x1, 1, name=f"{name}_1x1")
    b2 = conv_bn_relu(x, layers, n3x3r, 1, name=f"{name}_3x3_reduce")
    b2 = conv_bn_relu(b2, layers, n3x3, 3, name=f"{name}_3x3")
    b3 = conv_bn_relu(x, layers, n5x5r, 1, name=f"{name}_5x5_reduce")
    b3 = conv_bn_relu(b3, layers, n5x5, 5, name=f"{name}_5x5")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    b4 = conv_bn_relu(b4, layers, pool_proj, 1, name=f"{name}_pool_proj")
    return keras.layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])
