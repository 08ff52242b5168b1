"""GoogLeNet, Inception v1 (Szegedy et al. 2015, "Going Deeper with Convolutions", Table 1).

Variant: the paper's Table 1 layout (stem 7x7/2 conv, 3x3/2 max pool, 1x1 and 3x3
convs, 3x3/2 max pool; nine inception modules 3a-3b, 4a-4e, 5a-5b with 1x1
reductions and 5x5 branches, 3x3/2 max pools after 3b and 4e; global average
pooling, dropout 0.4, one fully connected layer), with two departures stated here:
every convolution is conv-BN-ReLU without bias (as torchvision's GoogLeNet; the paper
predates batch norm), and there are NO auxiliary classifiers and no local response
normalisation (batch norm makes both unnecessary to train from scratch).

Parameter count at ``(224, 224, 3)`` and 1000 classes: 7,020,392, of which 7,005,832
trainable (the rest are BN moving statistics). torchvision's GoogLeNet has 6,624,904
trainable because its "5x5" branch is in fact 3x3; with that kernel this builder gives
exactly torchvision's count, which is how its layout was checked.

Small inputs: of the 5 halvings (stem conv, and the four max pools) the earliest are
dropped (see ``blocks.downsampling_plan``); a dropped pool is left out.
"""

from __future__ import annotations

import keras

from cnnkit.models.blocks import (
    check_fraction,
    check_positive,
    classifier,
    conv_bn_relu,
    downsampling_plan,
    finish,
    inception_module,
    scaled,
)
from cnnkit.models.registry import ConvLayers, register_model

# Table 1: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) per module.
_INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


@register_model("googlenet")
def googlenet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: ConvLayers,
    *,
    dropout: float = 0.4,
    width: float = 1.0,
) -> keras.Model:
    """Build GoogLeNet (Inception v1 without auxiliary heads).

    Layer names: ``conv1``, ``pool1``, ``conv2_reduce``, ``conv2``, ``pool2``,
    ``inception3a_*`` ... ``inception5b_*``, ``pool3``, ``pool4``, ``avg_pool``.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: number of classes.
        layers: conv flavour.
        dropout: dropout rate before the classifier (0.4 in the paper).
        width: multiplier on every channel count (1.0 = the paper's).

    Returns:
        Model from ``(batch, *input_shape)`` to ``(batch, num_classes)`` probabilities.
    """
    dropout = check_fraction("dropout", dropout)
    width = check_positive("width", width)
    plan = downsampling_plan(input_shape[:2], 5)
    conv1_stride, *pool_strides = plan

    def pool(x: keras.KerasTensor, i: int) -> keras.KerasTensor:
        if pool_strides[i - 1] == 1:
            return x
        return layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)

    def inception(x: keras.KerasTensor, module: str) -> keras.KerasTensor:
        branches = tuple(scaled(n, width) for n in _INCEPTION[module])
        return inception_module(x, layers, branches, name=f"inception{module}")

    inputs = keras.Input(input_shape, name="input")
    x = conv_bn_relu(inputs, layers, scaled(64, width), 7, strides=conv1_stride, name="conv1")
    x = pool(x, 1)
    x = conv_bn_relu(x, layers, scaled(64, width), 1, name="conv2_reduce")
    x = conv_bn_relu(x, layers, scaled(192, width), 3, name="conv2")
    x = pool(x, 2)
    x = inception(inception(x, "3a"), "3b")
    x = pool(x, 3)
    for module in ("4a", "4b", "4c", "4d", "4e"):
        x = inception(x, module)
    x = pool(x, 4)
    x = inception(inception(x, "5a"), "5b")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return finish(inputs, classifier(x, num_classes, layers), "googlenet", plan)
