"""CNNs made for spectrograms: DS-CNN and BC-ResNet, on ``(frames, bins, 1)`` inputs.

Axis convention: time runs down the rows (frames), frequency across the columns
(bins), as produced by ``cnnkit.audio``. ``lecture`` and ``resnet18`` also accept
spectrograms; these two are designed for keyword spotting:

- ``dscnn``: Zhang, Suda, Lai & Chandra 2017, "Hello Edge: Keyword Spotting on
  Microcontrollers", the depthwise-separable CNN (DS-CNN-S/M/L of ARM's reference
  code). A 10x4 conv (10 frames by 4 bins) then depthwise-separable blocks
  (3x3 depthwise -> BN -> ReLU -> 1x1 pointwise -> BN -> ReLU), global average pooling,
  one fully connected layer.
- ``bcresnet``: Kim, Chang, Lee & Sung 2021, "Broadcasted Residual Learning for
  Efficient Keyword Spotting" (Interspeech), BC-ResNet-tau. Each block convolves
  along frequency (2-D features, normalised per sub-band with SubSpectral Norm), then
  averages frequency out and convolves along time (1-D, dilated), and broadcasts the
  1-D result back over frequency as a residual.

The depthwise convolutions and batch norms are always Keras' own; the full
convolutions, poolings and the classifier follow the conv flavour.
"""

from __future__ import annotations

import math

import keras

from cnnkit.errors import InputError
from cnnkit.models.blocks import (
    check_count,
    check_fraction,
    check_positive,
    classifier,
    conv_bn_relu,
    depthwise_conv,
    downsampling_plan,
    finish,
    scaled,
)
from cnnkit.models.registry import ConvLayers, register_model

# ARM ML-KWS-for-MCU DS-CNN sizes: filters, and (time, freq) strides of the first conv
# and of each depthwise-separable block.
_DSCNN_SIZES = {
    "s": (64, (2, 2), ((1, 1),) * 4),
    "m": (172, (2, 1), ((2, 2),) + ((1, 1),) * 3),
    "l": (276, (2, 1), ((2, 2),) + ((1, 1),) * 4),
}


def _adapt_strides(
    frames: int, bins: int, strides: list[tuple[int, int]]
) -> tuple[list[tuple[int, int]], tuple[int, ...]]:
    """Apply ``downsampling_plan`` separately along time and frequency.

    Args:
        frames, bins: input size.
        strides: the full-size ``(time, freq)`` stride (1 or 2) of each layer, in order.

    Returns:
        The adapted strides and the joint plan (for ``finish``).
    """
    plans = []
    for axis, side in enumerate((frames, bins)):
        halvings = [i for i, s in enumerate(strides) if s[axis] == 2]
        plans.append(dict(zip(halvings, downsampling_plan((side,), len(halvings)))))
    adapted = [(plans[0].get(i, 1), plans[1].get(i, 1)) for i in range(len(strides))]
    return adapted, tuple(plans[0].values()) + tuple(plans[1].values())


@register_model("dscnn")
def dscnn(
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: ConvLayers,
    *,
    size: str = "s",
    width: float = 1.0,
    dropout: float = 0.2,
) -> keras.Model:
    """Build DS-CNN (Zhang et al. 2017).

    Layer names: ``conv1_conv/_bn/_relu``, then per block i ``ds{i}_dw`` / ``ds{i}_dw_bn``
    / ``ds{i}_dw_relu`` and ``ds{i}_pw_conv`` / ``_bn`` / ``_relu``, ``avg_pool``.

    Args:
        input_shape: ``(frames, bins, channels)``, e.g. ``(98, 40, 1)`` log-mel or
            ``(49, 10, 1)`` MFCC as in the paper.
        num_classes: number of classes.
        layers: conv flavour.
        size: ``"s"`` (64 filters, 4 blocks, ~24k parameters at 49x10), ``"m"`` (172
            filters, 4 blocks) or ``"l"`` (276 filters, 5 blocks), the paper's
            DS-CNN-S/M/L.
        width: multiplier on the filter count.
        dropout: dropout rate before the classifier (ours; the paper states none, the
            MLPerf Tiny reference DS-CNN uses 0.4).

    Returns:
        Model from ``(batch, *input_shape)`` to ``(batch, num_classes)`` probabilities.
    """
    if size not in _DSCNN_SIZES:
        raise InputError(f"option size={size!r}: expected one of: {', '.join(_DSCNN_SIZES)}")
    width = check_positive("width", width)
    dropout = check_fraction("dropout", dropout)
    filters, conv1_strides, block_strides = _DSCNN_SIZES[size]
    filters = scaled(filters, width)
    strides, plan = _adapt_strides(*input_shape[:2], [conv1_strides, *block_strides])

    inputs = keras.Input(input_shape, name="input")
    x = conv_bn_relu(inputs, layers, filters, (10, 4), strides=strides[0], name="conv1")
    for i, stride in enumerate(strides[1:], 1):
        x = depthwise_conv(x, 3, stride, name=f"ds{i}_dw")
        x = keras.layers.BatchNormalization(name=f"ds{i}_dw_bn")(x)
        x = keras.layers.Activation("relu", name=f"ds{i}_dw_relu")(x)
        x = conv_bn_relu(x, layers, filters, 1, name=f"ds{i}_pw")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return finish(inputs, classifier(x, num_classes, layers), "dscnn", plan)


def _sub_spectral_norm(x: keras.KerasTensor, sub_bands: int, *, name: str) -> keras.KerasTensor:
    """SubSpectral Norm (Chang et al. 2021): batch norm with statistics per (sub-band, channel).

    The frequency axis is split into ``gcd(bins, sub_bands)`` equal sub-bands (the
    paper uses 5 on 40-band input; the gcd keeps the split exact on any band count,
    and falls back to plain batch norm when it is 1).

    Args:
        x: ``(batch, frames, bins, channels)``.
        sub_bands: requested number of sub-bands.
        name: prefix of the layer names.

    Returns:
        Same shape as ``x``.
    """
    frames, bins, channels = x.shape[1:]
    s = math.gcd(bins, sub_bands)
    if s == 1:
        return keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    # (frames, s, bins/s, C) -> (frames, bins/s, s*C): one BN channel per (sub-band, channel).
    x = keras.layers.Reshape((frames, s, bins // s, channels), name=f"{name}_split")(x)
    x = keras.layers.Permute((1, 3, 2, 4), name=f"{name}_to_channels")(x)
    x = keras.layers.Reshape((frames, bins // s, s * channels), name=f"{name}_merge")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    x = keras.layers.Reshape((frames, bins // s, s, channels), name=f"{name}_unmerge")(x)
    x = keras.layers.Permute((1, 3, 2, 4), name=f"{name}_to_bands")(x)
    return keras.layers.Reshape((frames, bins, channels), name=f"{name}_join")(x)


def _bc_res_block(
    x: keras.KerasTensor,
    layers: ConvLayers,
    channels: int,
    *,
    freq_stride: int,
    dilation: int,
    sub_bands: int,
    dropout: float,
    name: str,
) -> keras.KerasTensor:
    """BC-ResBlock (Kim et al. 2021, Fig. 2): ``relu(x + f2(x) + BC(f1(avgpool_freq(f2(x)))))``.

    ``f2`` is a 3-tap frequency depthwise conv + SubSpectral Norm; ``f1`` a 3-tap time
    depthwise conv (dilated) -> BN -> swish -> 1x1 conv -> channel dropout; ``BC``
    broadcasts over frequency. A transition block (channel count changes) first maps
    ``x`` with 1x1 conv -> BN -> ReLU and drops the identity term.

    Args:
        x: ``(batch, frames, bins, channels_in)``.
        layers: conv flavour.
        channels: output channels.
        freq_stride: 1, or 2 to halve the frequency axis (transition blocks only).
        dilation: time dilation of the temporal depthwise conv.
        sub_bands: SubSpectral Norm sub-bands.
        dropout: channel (spatial) dropout rate on ``f1``.
        name: prefix, e.g. ``stage2_block1``.

    Returns:
        ``(batch, frames, ceil(bins / freq_stride), channels)``.
    """
    transition = x.shape[-1] != channels
    identity = x
    if transition:
        x = conv_bn_relu(x, layers, channels, 1, name=f"{name}_in")
    x = depthwise_conv(x, (1, 3), (1, freq_stride), name=f"{name}_freq_dw")
    aux = _sub_spectral_norm(x, sub_bands, name=f"{name}_ssn")
    y = layers.AveragePooling2D((1, aux.shape[2]), name=f"{name}_freq_avg")(aux)
    y = keras.layers.DepthwiseConv2D(
        (3, 1), dilation_rate=(dilation, 1), padding="same", use_bias=False, name=f"{name}_time_dw"
    )(y)
    y = keras.layers.BatchNormalization(name=f"{name}_time_bn")(y)
    y = keras.layers.Activation("swish", name=f"{name}_time_swish")(y)
    y = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_pw_conv")(y)
    if dropout:
        y = keras.layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(y)
    terms = [aux, y] if transition else [identity, aux, y]
    x = keras.layers.Add(name=f"{name}_add")(terms)
    return keras.layers.Activation("relu", name=f"{name}_out")(x)


# BC-ResNet-1 (Table 1 of the paper): per stage (blocks, channels, time dilation,
# frequency halving in its first block); channels are multiplied by tau.
_BC_STAGES = ((2, 8, 1, False), (2, 12, 2, True), (4, 16, 4, True), (4, 20, 8, False))


@register_model("bcresnet")
def bcresnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: ConvLayers,
    *,
    tau: float = 3.0,
    dropout: float = 0.1,
    sub_bands: int = 5,
) -> keras.Model:
    """Build BC-ResNet-tau (Kim et al. 2021).

    Head: 5x5 conv with 16*tau filters halving frequency -> BN -> ReLU. Four stages of
    BC-ResBlocks (2, 2, 4, 4 blocks; 8, 12, 16, 20 x tau channels; time dilation 1, 2,
    4, 8; stages 2 and 3 halve frequency). Tail: 5x5 depthwise conv, "valid" along
    frequency (``min(5, bins)`` taps) and "same" along time, 1x1 conv to 32*tau -> BN ->
    ReLU, global average pooling, the classifier. Time is never downsampled.

    Args:
        input_shape: ``(frames, bins, channels)``, e.g. ``(98, 40, 1)`` log-mel.
        num_classes: number of classes.
        layers: conv flavour.
        tau: width multiplier (the paper's BC-ResNet-1 ... -8; 3 gives ~50k parameters).
        dropout: channel dropout rate in each block (0.1 in the paper).
        sub_bands: SubSpectral Norm sub-bands (5 in the paper).

    Returns:
        Model from ``(batch, *input_shape)`` to ``(batch, num_classes)`` probabilities.
    """
    tau = check_positive("tau", tau)
    dropout = check_fraction("dropout", dropout)
    sub_bands = check_count("sub_bands", sub_bands)
    freq_steps = 1 + sum(halves for *_, halves in _BC_STAGES)
    plan = downsampling_plan(input_shape[1:2], freq_steps)
    freq_strides = iter(plan)

    inputs = keras.Input(input_shape, name="input")
    x = conv_bn_relu(inputs, layers, scaled(16, tau), 5, strides=(1, next(freq_strides)), name="head")
    for stage, (blocks, channels, dilation, halves) in enumerate(_BC_STAGES, 1):
        for b in range(1, blocks + 1):
            x = _bc_res_block(
                x, layers, scaled(channels, tau),
                freq_stride=next(freq_strides) if halves and b == 1 else 1,
                dilation=dilation, sub_bands=sub_bands, dropout=dropout, name=f"stage{stage}_block{b}",
            )
    taps = min(5, x.shape[2])
    x = keras.layers.ZeroPadding2D(((2, 2), (0, 0)), name="tail_pad")(x)
    x = keras.layers.DepthwiseConv2D((5, taps), use_bias=False, name="tail_dw")(x)
    x = conv_bn_relu(x, layers, scaled(32, tau), 1, name="tail")
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return finish(inputs, classifier(x, num_classes, layers), "bcresnet", plan)
