"""cnnkit.explain: the numbers behind the pictures, checked against models whose answer is known, and the page's folder."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnkit import explain, models
from cnnkit.errors import InputError
from cnnkit.models.registry import conv_layers

SIDE = 16
CORNER = 5  # the model below sees only the top-right CORNER x CORNER pixels


def corner_model(conv: str) -> keras.Model:
    """A CNN that sees only the top-right corner of its input: cropped there, padded back with zeros, convolved.

    The convolutions have no bias, so outside the corner (and the two-pixel
    halo of two 3x3 convolutions) the last block's activations are exactly 0.
    Class 0's logit adds every channel's mean (positive weights), class 1's
    subtracts it, so class 0 is predicted and all of Grad-CAM's channel
    weights are positive for it and negative for class 1.
    """
    layers = conv_layers(conv)
    inputs = keras.Input((SIDE, SIDE, 1), name="input")
    crop = ((0, SIDE - CORNER), (SIDE - CORNER, 0))
    x = keras.layers.ZeroPadding2D(crop)(keras.layers.Cropping2D(crop)(inputs))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, activation="relu", name="block1_conv")(x)
    x = layers.Conv2D(6, 3, padding="same", use_bias=False, activation="relu", name="block2_conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = layers.Dense(2, use_bias=False, name="logits")
    outputs = keras.layers.Activation("softmax", name="predictions")(logits(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for name in ("block1_conv", "block2_conv"):
        kernel = model.get_layer(name).kernel
        kernel.assign(np.abs(rng.normal(size=kernel.shape)).astype(np.float32))  # every channel fires on a bright input
    logits.kernel.assign(np.stack([np.ones(6), -np.ones(6)], axis=1).astype(np.float32))
    return model


@pytest.mark.parametrize("conv", ["keras", "handgrad"])
def test_grad_cam_peaks_in_the_corner_the_model_looks_at(conv):
    model = corner_model(conv)
    x = np.random.default_rng(1).uniform(0.2, 1.0, (3, SIDE, SIDE, 1)).astype(np.float32)
    assert (model.predict(x, verbose=0).argmax(axis=1) == 0).all()
    raw = explain.grad_cam(model, x, [0, 0, 0])
    assert raw.shape == (3, SIDE, SIDE)  # "same" convolutions keep the input's side
    cam = explain.upsample(raw, (SIDE, SIDE))
    corner = np.zeros((SIDE, SIDE), bool)
    corner[: CORNER + 2, SIDE - CORNER - 2 :] = True  # the corner and the halo of two 3x3 convolutions
    for one in cam:
        row, col = np.unravel_index(one.argmax(), one.shape)
        assert row < CORNER and col >= SIDE - CORNER, f"peak at {(row, col)}, not in the top-right corner"
        assert one[~corner].max() == 0 and one.max() == 1
    # Class 1's weights are all negative: no positive evidence anywhere, an all-zero map.
    assert explain.grad_cam(model, x, [1, 1, 1]).max() == 0


@pytest.mark.parametrize("conv", ["keras", "handgrad"])
def test_grad_cam_of_each_class_follows_the_channel_that_class_reads(conv):
    """Channel 0 of the input has a blob top-left, channel 1 bottom-right; class c reads only channel c."""
    layers = conv_layers(conv)
    inputs = keras.Input((12, 12, 2))
    x = layers.Conv2D(2, 1, use_bias=False, activation="relu", name="look")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Activation("softmax", name="predictions")(layers.Dense(2, use_bias=False, name="logits")(x))
    model = keras.Model(inputs, outputs)
    model.get_layer("look").kernel.assign(np.eye(2, dtype=np.float32)[None, None])
    model.get_layer("logits").kernel.assign(np.eye(2, dtype=np.float32))
    x = np.random.default_rng(2).uniform(0, 0.1, (1, 12, 12, 2)).astype(np.float32)
    x[0, 1:4, 1:4, 0] = 1.0
    x[0, 8:11, 7:10, 1] = 1.0
    for cls, (rows, cols) in ((0, (slice(1, 4), slice(1, 4))), (1, (slice(8, 11), slice(7, 10)))):
        cam = explain.grad_cam(model, x, [cls])[0]
        # alpha = w / (h * w) for the channel the class reads, 0 for the other: the map is that channel, scaled.
        np.testing.assert_allclose(cam, x[0, ..., cls] / 144, rtol=1e-5)
        row, col = np.unravel_index(cam.argmax(), cam.shape)
        assert rows.start <= row < rows.stop and cols.start <= col < cols.stop


@pytest.mark.parametrize("conv", ["keras", "handgrad"])
def test_feature_maps_equal_the_layer_outputs(conv):
    model = models.build("lecture", (SIDE, SIDE, 1), 10, conv=conv)
    x = np.random.default_rng(3).random((2, SIDE, SIDE, 1)).astype(np.float32)
    chosen = explain.blocks(model)
    assert [b.name for b in chosen] == ["block1_conv", "block2_conv", "block3_conv"]
    maps = explain.feature_maps(model, x)
    # The first block by hand: ReLU(x * W + b) with TensorFlow's own convolution.
    first = model.get_layer("block1_conv")
    by_hand = tf.nn.relu(tf.nn.conv2d(x, first.kernel, 1, "SAME") + first.bias)
    np.testing.assert_allclose(maps[0], by_hand, rtol=1e-5, atol=1e-6)
    # Every block: the layers called one after another on the input.
    y, outputs = x, {}
    for layer in model.layers[1:]:
        y = layer(y, training=False)
        outputs[layer.name] = np.asarray(y)
    for block, got in zip(chosen, maps):
        np.testing.assert_allclose(got, outputs[block.output.name], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(explain.first_kernels(model), np.asarray(first.kernel))


def test_a_block_takes_in_the_batch_norm_and_activation_after_its_convolution():
    model = models.build("dscnn", (47, 20, 1), 10, conv="handgrad")
    chosen = explain.blocks(model)
    assert [(b.name, b.output.name) for b in chosen[:3]] == [("conv1_conv", "conv1_relu"), ("ds1_dw", "ds1_dw_relu"), ("ds1_pw_conv", "ds1_pw_relu")]
    x = np.random.default_rng(4).normal(size=(1, 47, 20, 1)).astype(np.float32)
    y = x
    for name in ("conv1_conv", "conv1_bn", "conv1_relu"):
        y = model.get_layer(name)(y, training=False)
    np.testing.assert_allclose(explain.feature_maps(model, x, chosen[:1])[0], y, rtol=1e-5, atol=1e-6)


def test_strongest_channels_come_first():
    maps = np.zeros((2, 3, 3, 4), np.float32)
    maps[0, ..., 2], maps[0, ..., 0], maps[0, 0, 0, 3] = 5.0, -2.0, 1.0  # mean |a|: 5, 2, 0, 1/9
    maps[1, ..., 1] = 1.0
    np.testing.assert_array_equal(explain.strongest_channels(maps, 3), [[2, 0, 3], [1, 0, 2]])


def test_an_ensemble_is_explained_through_its_first_member():
    members = [models.build("lecture", (8, 8, 1), 3, filters=(4,), dense_units=0) for _ in range(2)]
    ensemble = models.average_ensemble(members)
    net = explain.network(ensemble)
    assert net.name == "member0" and [b.name for b in explain.blocks(net)] == ["block1_conv"]
    np.testing.assert_array_equal(explain.first_kernels(net), np.asarray(members[0].get_layer("block1_conv").kernel))
    with pytest.raises(InputError, match="no convolution layers"):
        explain.network(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def page_inputs(model: keras.Model, n: int = 2) -> explain.Inputs:
    x = np.random.default_rng(5).random((n, SIDE, SIDE, 1)).astype(np.float32)
    return explain.Inputs([explain.Example(f"in <{i}>.png", x[i]) for i in range(n)], model.predict(x, verbose=0))


def test_write_page_writes_the_whole_folder_and_replaces_only_its_own(tmp_path):
    model = corner_model("keras")
    out = tmp_path / "explain"
    record = explain.write_page(out, model, page_inputs(model), ["left", "right"], title="t", top_k=2, other_class="right")
    assert record["grad_cam_block"] == "block2_conv" and record["blocks"] == ["block1_conv", "block2_conv"]
    assert record["inputs"][0]["grad_cam_classes"] == ["left", "right"]
    assert [t["label"] for t in record["inputs"][1]["top"]] == ["left", "right"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["index.html", "explain.json", "kernels.png"]
        + [f"input{i}-{what}.png" for i in range(2) for what in ("gradcam", "block1_conv", "block2_conv")]
    )
    page = (out / "index.html").read_text()
    assert "in &lt;0&gt;.png" in page and "<script" not in page and "http" not in page
    assert json.loads((out / "explain.json").read_text()) == json.loads(json.dumps(record))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    # A rerun replaces its own earlier output...
    explain.write_page(out, model, page_inputs(model, 1), ["left", "right"], title="t")
    assert not (out / "input1-gradcam.png").exists()
    # ... but never a folder of other files, nor a file, and an unknown class writes nothing.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    (tmp_path / "file").write_text("keep")
    for target in ("mine", "file"):
        with pytest.raises(InputError, match=f"--out '.*{target}'"):
            explain.write_page(tmp_path / target, model, page_inputs(model), ["left", "right"], title="t")
    with pytest.raises(InputError, match="--class 'up': not a class"):
        explain.write_page(tmp_path / "new", model, page_inputs(model), ["left", "right"], title="t", other_class="up")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep" and not (tmp_path / "new").exists()
