"""VGG: ImageNet parameter counts equal Keras Applications'; pools are left out on small inputs."""

import keras
import pytest

from cnnkit import models


@pytest.mark.parametrize(("name", "count"), [("vgg16", 138_357_544), ("vgg19", 143_667_240)])
def test_imagenet_parameter_counts_equal_keras_applications(name, count):
    model = models.build(name, (224, 224, 3), 1000)
    try:
        assert model.count_params() == count
        assert tuple(model.get_layer("flatten").input.shape) == (None, 7, 7, 512)
    finally:
        keras.backend.clear_session()


def test_small_input_keeps_the_last_pools_and_the_dropout():
    model = models.build("vgg16", (28, 28, 1), 10, width=0.25, fc_units=16, dropout=0.3)
    names = [layer.name for layer in model.layers]
    assert "block1_pool" not in names and "block2_pool" in names
    assert tuple(model.get_layer("flatten").input.shape) == (None, 2, 2, 128)
    assert model.get_layer("fc1_dropout").rate == 0.3
    assert model.name == "vgg16_small_input_4of5_downsamples"
    keras.backend.clear_session()
