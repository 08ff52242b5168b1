"""The contract every registered architecture keeps, with both conv flavours.

Each model builds on the small inputs the pipelines use (8x8 digits, 28x28 MNIST,
32x32 CIFAR, a 98x40 log-mel spectrogram), runs a forward pass, and outputs float32
probabilities. With ``conv="handgrad"`` every architecture runs on the smallest
image and the spectrogram, and ``lecture`` and ``resnet18`` (the pipelines' default
models) on all four: the stem adaptation does not depend on the flavour, and each
build costs about a second of CPU, most of it creating variables. Channel widths and
VGG/AlexNet's 4096-unit layers are shrunk where the builder has the option, to keep
memory and initialisation small; the defaults are built in the per-model
parameter-count tests.
"""

import keras
import numpy as np
import pytest

from cnnkit import models

SMALL_SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3), (98, 40, 1)]
_NARROW = {"width": 0.25}
_LIGHT = {
    "alexnet": {"width": 0.25, "fc_units": 32},
    "vgg16": {"width": 0.25, "fc_units": 32},
    "vgg19": {"width": 0.25, "fc_units": 32},
    "googlenet": _NARROW,
    "resnet18": _NARROW,
    "resnet34": _NARROW,
    "resnet50": _NARROW,
}


@pytest.fixture(autouse=True)
def _fresh_session():
    yield
    keras.backend.clear_session()


def _cases():
    for name in models.names():
        yield pytest.param(name, "keras", SMALL_SHAPES, id=f"{name}-keras")
        shapes = SMALL_SHAPES if name in ("lecture", "resnet18") else [(8, 8, 1), (98, 40, 1)]
        yield pytest.param(name, "handgrad", shapes, id=f"{name}-handgrad")


@pytest.mark.parametrize(("name", "conv", "shapes"), _cases())
def test_every_architecture_classifies_small_shapes(name, conv, shapes):
    for shape in shapes:
        model = models.build(name, shape, 5, conv=conv, **_LIGHT.get(name, {}))
        x = np.random.rand(2, *shape).astype("float32")
        p = model(x, training=False)
        assert p.shape == (2, 5) and p.dtype == "float32", (name, shape)
        np.testing.assert_allclose(np.sum(p, axis=1), 1.0, atol=1e-5)
        assert np.all(np.asarray(p) >= 0)
        last = model.layers[-1]
        assert last.name == "predictions" and last.dtype_policy.compute_dtype == "float32"
        if conv == "handgrad":
            from cnnkit import handgrad

            assert any(isinstance(layer, handgrad.Conv2D) for layer in model.layers)
        keras.backend.clear_session()


def test_mixed_precision_still_outputs_float32_probabilities():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = models.build("resnet18", (8, 8, 1), 3, width=0.25)
        assert model.get_layer("conv1_conv").compute_dtype == "float16"
        p = model(np.random.rand(2, 8, 8, 1).astype("float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert p.dtype == "float32"
    np.testing.assert_allclose(np.sum(p, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(("name", "conv"), [("bcresnet", "keras"), ("lecture", "handgrad")])
def test_saved_model_reloads_with_the_same_outputs(name, conv, tmp_path):
    model = models.build(name, (16, 10, 1), 4, conv=conv)
    x = np.random.rand(3, 16, 10, 1).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    assert again.name == model.name
    np.testing.assert_allclose(again(x, training=False), model(x, training=False), atol=1e-6)
