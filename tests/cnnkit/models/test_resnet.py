"""ResNet: ImageNet parameter counts against Keras Applications / torchvision, and the small-input stem."""

import keras
import numpy as np
import pytest

from cnnkit import models


def _trainable(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    ("name", "total", "trainable"),
    [
        ("resnet18", 11_699_112, 11_689_512),  # torchvision resnet18: 11,689,512
        ("resnet34", 21_814_696, 21_797_672),  # torchvision resnet34: 21,797,672
        ("resnet50", 25_636_712, 25_583_592),  # keras.applications.ResNet50: 25,636,712
    ],
)
def test_imagenet_parameter_counts(name, total, trainable):
    model = models.build(name, (224, 224, 3), 1000)
    try:
        assert (model.count_params(), _trainable(model)) == (total, trainable)
        assert model.name == name  # nothing adapted at ImageNet size
        assert model.get_layer("conv1_conv").strides == (2, 2)
        assert tuple(model.get_layer("avg_pool").input.shape) == (None, 7, 7, 2048 if name == "resnet50" else 512)
    finally:
        keras.backend.clear_session()


@pytest.mark.parametrize(
    ("shape", "stem_stride", "has_pool", "final_side"),
    [((32, 32, 3), 1, True, 2), ((8, 8, 1), 1, False, 2)],
)
def test_small_inputs_drop_the_stem_downsampling(shape, stem_stride, has_pool, final_side):
    model = models.build("resnet18", shape, 10, width=0.25)
    names = [layer.name for layer in model.layers]
    assert model.get_layer("conv1_conv").strides == (stem_stride, stem_stride)
    assert ("pool1_pool" in names) == has_pool
    assert "conv2_block1_1_conv" in names and "conv5_block2_out" in names
    assert tuple(model.get_layer("avg_pool").input.shape) == (None, final_side, final_side, 128)
    assert model.name.startswith("resnet18_small_input_")
    keras.backend.clear_session()


def test_width_option_scales_channels_and_rejects_nonsense():
    from cnnkit.errors import InputError

    with pytest.raises(InputError, match=r"width=0"):
        models.build("resnet50", (32, 32, 3), 10, width=0)
    with pytest.raises(InputError, match="unknown option.*dropout"):
        models.build("resnet18", (32, 32, 3), 10, dropout=0.5)  # ResNets have no dropout
