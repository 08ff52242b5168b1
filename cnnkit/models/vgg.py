"""VGG-16 and VGG-19 (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks", Table 1 D and E).

Five blocks of 3x3 "same" convolutions with ReLU (64, 128, 256, 512, 512 filters),
each closed by a 2x2/2 max pool; then flatten, two fully connected ReLU layers of
4096 units with dropout 0.5 (the paper's regularisation; Keras Applications leaves
it out, which changes no parameter count) and the classifier. Layer names follow
Keras Applications (``block1_conv1``, ``block1_pool``, ``fc1``, ``fc2``).

Parameter counts at ``(224, 224, 3)`` and 1000 classes equal Keras Applications':
VGG16 138,357,544 and VGG19 143,667,240.

Small inputs: the earliest of the 5 pools are left out (see ``blocks.downsampling_plan``);
the flattened map then has ``ceil(side / 2**k)`` rows and columns.
"""

from __future__ import annotations

import keras

from cnnkit.models.blocks import (
    check_count,
    check_fraction,
    check_positive,
    classifier,
    downsampling_plan,
    finish,
    hidden_fc,
    scaled,
)
from cnnkit.models.registry import ConvLayers, register_model

_BLOCK_FILTERS = (64, 128, 256, 512, 512)


def _vgg(
    arch: str,
    convs_per_block: tuple[int, int, int, int, int],
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: ConvLayers,
    *,
    dropout: float = 0.5,
    width: float = 1.0,
    fc_units: int = 4096,
) -> keras.Model:
    """Build a VGG net; the public builders only state the convolutions per block.

    Args:
        arch: registered name, used as the model name.
        convs_per_block: number of 3x3 convolutions in each of the five blocks.
        input_shape: ``(height, width, channels)``.
        num_classes: number of classes.
        layers: conv flavour.
        dropout: dropout rate after each of the two hidden fully connected layers.
        width: multiplier on every convolution's filter count (1.0 = the paper's).
        fc_units: units of each hidden fully connected layer (4096 in the paper).

    Returns:
        Model from ``(batch, *input_shape)`` to ``(batch, num_classes)`` probabilities.
    """
    dropout = check_fraction("dropout", dropout)
    width = check_positive("width", width)
    fc_units = check_count("fc_units", fc_units)
    plan = downsampling_plan(input_shape[:2], 5)
    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for block, (filters, convs, stride) in enumerate(zip(_BLOCK_FILTERS, convs_per_block, plan), 1):
        for c in range(1, convs + 1):
            x = layers.Conv2D(
                scaled(filters, width), 3, padding="same", activation="relu", name=f"block{block}_conv{c}"
            )(x)
        if stride == 2:
            x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{block}_pool")(x)
    x = hidden_fc(x, layers, fc_units, dropout, dropout_first=False)
    return finish(inputs, classifier(x, num_classes, layers), arch, plan)


@register_model("vgg16")
def vgg16(
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: ConvLayers,
    *,
    dropout: float = 0.5,
    width: float = 1.0,
    fc_units: int = 4096,
) -> keras.Model:
    """VGG-16 (configuration D): 2-2-3-3-3 convolutions; see ``_vgg`` for the arguments."""
    return _vgg(
        "vgg16", (2, 2, 3, 3, 3), input_shape, num_classes, layers, dropout=dropout, width=width, fc_units=fc_units
    )


@register_model("vgg19")
def vgg19(
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: ConvLayers,
    *,
    dropout: float = 0.5,
    width: float = 1.0,
    fc_units: int = 4096,
) -> keras.Model:
    """VGG-19 (configuration E): 2-2-4-4-4 convolutions; see ``_vgg`` for the arguments."""
    return _vgg(
        "vgg19", (2, 2, 4, 4, 4), input_shape, num_classes, layers, dropout=dropout, width=width, fc_units=fc_units
    )
