"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet Classification with Deep CNNs").

Variant: the single-tower AlexNet of Krizhevsky 2014 ("One weird trick for
parallelizing CNNs"), the one torchvision ships: five convolutions with ReLU, 64
11x11/4, 192 5x5, 384 3x3, 256 3x3, 256 3x3 filters; 3x3/2 max pools after the
1st, 2nd and 5th; then dropout 0.5 -> 4096 ReLU -> dropout 0.5 -> 4096 ReLU -> the
classifier. No local response normalisation (the 2014 variant dropped it). All
convolutions and pools use "same" padding, so at 224x224 the last map is 7x7 where
torchvision's "valid" pools and adaptive pooling give 6x6.

Parameter count at ``(224, 224, 3)`` and 1000 classes: 74,732,328 (torchvision's
61,100,840 differs only in fc1's input, 7*7*256 here against 6*6*256).

Small inputs: conv1's stride 4 counts as two halvings, the pools as one each; of those
5 the earliest are dropped (see ``blocks.downsampling_plan``), so conv1's stride falls
to 2 and then 1 before any pool is left out.
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

# (filters, kernel size, max pool after it) of conv1..conv5.
_CONVS = ((64, 11, True), (192, 5, True), (384, 3, False), (256, 3, False), (256, 3, True))


@register_model("alexnet")
def alexnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: ConvLayers,
    *,
    dropout: float = 0.5,
    width: float = 1.0,
    fc_units: int = 4096,
) -> keras.Model:
    """Build AlexNet (single-tower variant).

    Layer names: ``conv1``..``conv5``, ``pool1``, ``pool2``, ``pool5``, ``flatten``,
    ``fc1``, ``fc2`` (each preceded by ``fc{i}_dropout``), ``logits``, ``predictions``.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: number of classes.
        layers: conv flavour.
        dropout: dropout rate before each of the two hidden fully connected layers.
        width: multiplier on every convolution's filter count (1.0 = the paper's).
        fc_units: units of each hidden fully connected layer (4096 in the paper).

    Returns:
        Model from ``(batch, *input_shape)`` to ``(batch, num_classes)`` probabilities.
    """
    dropout = check_fraction("dropout", dropout)
    width = check_positive("width", width)
    fc_units = check_count("fc_units", fc_units)
    plan = downsampling_plan(input_shape[:2], 5)
    conv_strides = (plan[0] * plan[1], 1, 1, 1, 1)
    pool_strides = iter(plan[2:])
    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for i, ((filters, kernel, pooled), stride) in enumerate(zip(_CONVS, conv_strides), 1):
        x = layers.Conv2D(
            scaled(filters, width), kernel, strides=stride, padding="same", activation="relu", name=f"conv{i}"
        )(x)
        if pooled and next(pool_strides) == 2:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
    x = hidden_fc(x, layers, fc_units, dropout, dropout_first=True)
    return finish(inputs, classifier(x, num_classes, layers), "alexnet", plan)
