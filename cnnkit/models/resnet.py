"""ResNet-18/34/50 (He et al. 2016, "Deep Residual Learning for Image Recognition", Table 1).

Stem: 7x7/2 conv -> BN -> ReLU -> 3x3/2 max pool; four stages ``conv2``..``conv5`` of
basic (18, 34) or bottleneck (50) blocks, the first block of ``conv3``..``conv5``
halving the map; global average pooling and one fully connected layer. No dropout.
Layer names follow Keras Applications (``conv1_conv``, ``pool1_pool``,
``conv2_block1_1_conv``, ``avg_pool``).

Parameter counts at ``(224, 224, 3)`` and 1000 classes:

- ``resnet50``: 25,636,712 (Keras Applications' ResNet50: biased convs, BN epsilon
  1.001e-5; total including BN moving statistics).
- ``resnet18`` / ``resnet34``: 11,689,512 / 21,797,672 trainable, torchvision's count
  (no conv bias, BN epsilon 1e-5); Keras also counts BN moving means and variances as
  non-trainable parameters, 9,600 / 17,024 more.

Small inputs: of the 5 halvings (stem conv, stem pool, conv3..conv5) the earliest are
dropped (see ``blocks.downsampling_plan``); a dropped stem pool is left out.
"""

from __future__ import annotations

import keras

from cnnkit.models.blocks import (
    basic_block,
    bottleneck_block,
    check_positive,
    classifier,
    conv_bn_relu,
    downsampling_plan,
    finish,
    scaled,
)
from cnnkit.models.registry import ConvLayers, register_model

_STAGE_FILTERS = (64, 128, 256, 512)


def _resnet(
    arch: str,
    blocks_per_stage: tuple[int, int, int, int],
    bottleneck: bool,
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: ConvLayers,
    *,
    width: float = 1.0,
) -> keras.Model:
    """Build a ResNet; the public builders only state the block type and stage depths.

    Args:
        arch: registered name, used as the model name.
        blocks_per_stage: number of blocks in ``conv2``..``conv5``.
        bottleneck: bottleneck blocks (ResNet-50 and deeper) or basic blocks.
        input_shape: ``(height, width, channels)``; a spectrogram ``(frames, bins, 1)`` works too.
        num_classes: number of classes.
        layers: conv flavour.
        width: multiplier on every channel count (1.0 = the paper's).

    Returns:
        Model from ``(batch, *input_shape)`` to ``(batch, num_classes)`` probabilities.
    """
    width = check_positive("width", width)
    plan = downsampling_plan(input_shape[:2], 5)
    stem_stride, pool_stride, *stage_strides = plan
    inputs = keras.Input(input_shape, name="input")
    x = conv_bn_relu(
        inputs, layers, scaled(64, width), 7, strides=stem_stride,
        use_bias=bottleneck, epsilon=1.001e-5 if bottleneck else 1e-5, name="conv1",
    )
    if pool_stride == 2:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)
    for stage, (filters, blocks, stride) in enumerate(zip(_STAGE_FILTERS, blocks_per_stage, (1, *stage_strides)), 2):
        for b in range(1, blocks + 1):
            name = f"conv{stage}_block{b}"
            s = stride if b == 1 else 1
            if bottleneck:
                x = bottleneck_block(x, layers, scaled(filters, width), stride=s, conv_shortcut=b == 1, name=name)
            else:
                x = basic_block(x, layers, scaled(filters, width), stride=s, name=name)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return finish(inputs, classifier(x, num_classes, layers), arch, plan)


@register_model("resnet18")
def resnet18(
    input_shape: tuple[int, int, int], num_classes: int, layers: ConvLayers, *, width: float = 1.0
) -> keras.Model:
    """ResNet-18: basic blocks, 2-2-2-2; see ``_resnet`` for the arguments."""
    return _resnet("resnet18", (2, 2, 2, 2), False, input_shape, num_classes, layers, width=width)


@register_model("resnet34")
def resnet34(
    input_shape: tuple[int, int, int], num_classes: int, layers: ConvLayers, *, width: float = 1.0
) -> keras.Model:
    """ResNet-34: basic blocks, 3-4-6-3; see ``_resnet`` for the arguments."""
    return _resnet("resnet34", (3, 4, 6, 3), False, input_shape, num_classes, layers, width=width)


@register_model("resnet50")
def resnet50(
    input_shape: tuple[int, int, int], num_classes: int, layers: ConvLayers, *, width: float = 1.0
) -> keras.Model:
    """ResNet-50: bottleneck blocks, 3-4-6-3; see ``_resnet`` for the arguments."""
    return _resnet("resnet50", (3, 4, 6, 3), True, input_shape, num_classes, layers, width=width)
