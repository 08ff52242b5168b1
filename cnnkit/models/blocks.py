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
8x8 digits 2. ``finish`` records the adaptation in the model name
(``resnet18_small_input_4of5_downsamples``) and logs it.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence

import keras

from cnnkit.errors import InputError
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


def scaled(channels: int, width: float) -> int:
    """A channel count multiplied by the ``width`` option, at least 1."""
    return max(1, round(channels * width))
