"""Shared blocks: the small-input rule, and the residual / inception wiring checked numerically."""

import keras
import numpy as np
import pytest

from cnnkit.models import conv_layers
from cnnkit.models.blocks import basic_block, bottleneck_block, depthwise_conv, downsampling_plan, inception_module

KERAS = conv_layers("keras")


@pytest.mark.parametrize(
    ("sides", "steps", "plan"),
    [
        ((224, 224), 5, (2, 2, 2, 2, 2)),  # ImageNet: untouched, final map 7x7
        ((32, 32), 5, (1, 2, 2, 2, 2)),  # CIFAR: the stem halving goes, final 2x2
        ((8, 8), 5, (1, 1, 1, 2, 2)),  # sklearn digits: final 2x2
        ((98, 40), 5, (2, 2, 2, 2, 2)),  # 40-band spectrogram: ceil(40/32) = 2
        ((1, 1), 2, (1, 1)),  # nothing can be halved
    ],
)
def test_downsampling_plan_drops_the_earliest_halvings(sides, steps, plan):
    assert downsampling_plan(sides, steps) == plan



def _zero_kernels(model: keras.Model) -> None:
    """Zero every conv kernel and bias: the residual branch then outputs BN(0) = beta = 0."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


def test_basic_block_with_zero_branch_is_relu_of_identity():
    x = keras.Input((6, 5, 4))
    model = keras.Model(x, basic_block(x, KERAS, 4, stride=1, name="b"))
    _zero_kernels(model)
    v = np.random.randn(2, 6, 5, 4).astype("float32")
    np.testing.assert_allclose(model(v, training=False), np.maximum(v, 0), atol=1e-6)
    assert "b_0_conv" not in [layer.name for layer in model.layers]  # identity shortcut


def test_basic_block_projects_shortcut_when_shape_changes():
    x = keras.Input((6, 5, 4))
    y = basic_block(x, KERAS, 8, stride=2, name="b")
    assert tuple(y.shape) == (None, 3, 3, 8)
    model = keras.Model(x, y)
    # Shortcut: 1x1/2 conv (4*8 weights, no bias) and BN; two 3x3 convs, two BNs.
    assert model.get_layer("b_0_conv").count_params() == 4 * 8
    assert model.count_params() == 4 * 8 + 3 * 3 * 4 * 8 + 3 * 3 * 8 * 8 + 3 * 4 * 8


def test_bottleneck_block_output_is_relu_of_projected_shortcut():
    x = keras.Input((6, 6, 8))
    model = keras.Model(x, bottleneck_block(x, KERAS, 4, stride=2, conv_shortcut=True, name="b"))
    v = np.random.randn(2, 6, 6, 8).astype("float32")
    # With a zero residual branch the block is relu(BN(conv1x1/2(x))), BN at its initial identity.
    for name in ("b_1_conv", "b_2_conv", "b_3_conv"):
        layer = model.get_layer(name)
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    kernel, bias = model.get_layer("b_0_conv").get_weights()
    shortcut = np.einsum("bhwc,cf->bhwf", v[:, ::2, ::2], kernel[0, 0]) + bias
    np.testing.assert_allclose(model(v, training=False), np.maximum(shortcut / np.sqrt(1 + 1.001e-5), 0), atol=1e-5)
    assert tuple(model.output.shape) == (None, 3, 3, 16)


def test_inception_module_concatenates_its_four_branches():
    x = keras.Input((7, 7, 16))
    y = inception_module(x, KERAS, (3, 4, 5, 2, 6, 7), name="inc")
    assert tuple(y.shape) == (None, 7, 7, 3 + 5 + 6 + 7)
    model = keras.Model(x, y)
    assert model.get_layer("inc_5x5_conv").kernel.shape == (5, 5, 2, 6)
    assert model.get_layer("inc_pool").pool_size == (3, 3)


def _depthwise_reference(x, kernel, strides, padding, dilation):
    """Direct loop over output positions with TensorFlow's padding rule (independent of any TF depthwise kernel)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel.shape[:2], strides, dilation
    pads = []
    for side, k, s, d in zip(x.shape[1:3], (kh, kw), (sh, sw), (dh, dw)):
        k_eff = (k - 1) * d + 1
        out = -(-side // s) if padding == "same" else (side - k_eff) // s + 1
        total = max((out - 1) * s + k_eff - side, 0) if padding == "same" else 0
        pads.append((out, total // 2, total - total // 2))
    (oh, top, bottom), (ow, left, right) = pads
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    y = np.zeros((x.shape[0], oh, ow, x.shape[3]), np.float64)
    for i in range(oh):
        for j in range(ow):
            window = padded[:, i * sh : i * sh + (kh - 1) * dh + 1 : dh, j * sw : j * sw + (kw - 1) * dw + 1 : dw, :]
            y[:, i, j, :] = np.einsum("bhwc,hwc->bc", window, kernel[..., 0])
    return y


@pytest.mark.parametrize(
    ("shape", "kernel_size", "strides", "padding", "dilation"),
    [
        ((6, 8), (1, 3), (1, 2), "same", (1, 1)),  # BC-ResNet's frequency halving, even width
        ((6, 7), (1, 3), (1, 2), "same", (1, 1)),  # odd width: the kept outputs shift by one
        ((7, 5), (3, 3), (2, 1), "same", (1, 1)),  # DS-CNN's halving adapted to one axis
        ((9, 6), (3, 3), (2, 1), "same", (2, 1)),
        ((9, 8), (3, 3), (1, 3), "valid", (1, 1)),
        ((6, 6), (3, 3), (2, 2), "same", (1, 1)),  # equal strides: Keras' own layer
    ],
)
def test_depthwise_conv_matches_the_strided_convolution(shape, kernel_size, strides, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *shape, 3)).astype("float32")
    inputs = keras.Input((*shape, 3))
    model = keras.Model(
        inputs, depthwise_conv(inputs, kernel_size, strides, padding=padding, dilation_rate=dilation, name="dw")
    )
    kernel = rng.normal(size=(*kernel_size, 3, 1)).astype("float32")
    model.get_layer("dw").set_weights([kernel])
    np.testing.assert_allclose(
        model(x), _depthwise_reference(x, kernel, strides, padding, dilation), rtol=1e-5, atol=1e-5
    )
