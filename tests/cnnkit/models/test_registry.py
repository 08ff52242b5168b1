"""The registry: names, option checking and the errors of ``cnnkit.models.build``."""

import numpy as np
import pytest

from cnnkit import models
from cnnkit.errors import InputError


def test_names_lists_every_architecture():
    assert models.names() == [
        "alexnet", "bcresnet", "dscnn", "googlenet", "lecture", "resnet18", "resnet34", "resnet50", "vgg16", "vgg19",
    ]


def test_options_report_builder_defaults():
    assert models.options("lecture") == {"filters": (32, 64, 128), "kernel_size": 3, "dense_units": 128, "dropout": 0.5}
    assert models.options("resnet50") == {"width": 1.0}


def test_conv_layers_resolve_both_flavours():
    import keras

    from cnnkit import handgrad

    assert models.conv_layers("keras").Conv2D is keras.layers.Conv2D
    hg = models.conv_layers("handgrad")
    assert (hg.Conv2D, hg.MaxPooling2D, hg.AveragePooling2D, hg.Dense) == (
        handgrad.Conv2D, handgrad.MaxPooling2D, handgrad.AveragePooling2D, handgrad.Dense,
    )
    assert issubclass(hg.Conv2D, keras.layers.Conv2D)


def test_unknown_name_lists_valid_names():
    with pytest.raises(InputError, match=r"'nope': unknown; expected one of: .*lecture"):
        models.build("nope", (28, 28, 1), 10)


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 1, 1), (0, 28, 1), (28, -3, 1), (28, 28, 0), (28.0, 28, 1), None])
def test_impossible_shape_is_named(shape):
    with pytest.raises(InputError, match=r"input_shape .*expected \(height, width, channels\)"):
        models.build("lecture", shape, 10)


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True])
def test_class_count_below_one_is_rejected(num_classes):
    with pytest.raises(InputError, match="num_classes"):
        models.build("lecture", (8, 8, 1), num_classes)


def test_unknown_option_and_conv_are_rejected():
    with pytest.raises(InputError, match=r"unknown option\(s\) colour; expected some of: .*dropout"):
        models.build("lecture", (8, 8, 1), 10, colour="red")
    with pytest.raises(InputError, match="conv 'torch': unknown; expected one of: keras, handgrad"):
        models.build("lecture", (8, 8, 1), 10, conv="torch")
    with pytest.raises(InputError, match=r"dropout=1\.5"):
        models.build("lecture", (8, 8, 1), 10, dropout=1.5)


def test_small_input_adaptation_shows_in_the_model_name():
    assert models.build("lecture", (28, 28, 1), 10).name == "lecture"
    model = models.build("lecture", (2, 2, 1), 10)
    assert model.name == "lecture_small_input_0of3_downsamples"
    assert model(np.zeros((1, 2, 2, 1), "float32")).shape == (1, 10)
