"""AlexNet: the parameter count stated in its docstring, derived here layer by layer."""

import keras

from cnnkit import models
from cnnkit.models import alexnet


def test_imagenet_parameter_count_matches_the_docstring_and_the_layout():
    model = models.build("alexnet", (224, 224, 3), 1000)
    try:
        convs = [(3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3), (256, 256, 3)]
        expected = sum(k * k * cin * cout + cout for cin, cout, k in convs)
        expected += (7 * 7 * 256 + 1) * 4096 + (4096 + 1) * 4096 + (4096 + 1) * 1000
        assert model.count_params() == expected == 74_732_328
        assert model.get_layer("conv1").strides == (4, 4)
        assert "74,732,328" in alexnet.__doc__
    finally:
        keras.backend.clear_session()


def test_small_input_lowers_conv1_stride_before_dropping_pools():
    model = models.build("alexnet", (8, 8, 1), 10, width=0.25, fc_units=16)
    names = [layer.name for layer in model.layers]
    assert model.get_layer("conv1").strides == (1, 1)
    assert "pool1" not in names and "pool2" in names and "pool5" in names
    assert tuple(model.get_layer("flatten").input.shape) == (None, 2, 2, 64)
    keras.backend.clear_session()
