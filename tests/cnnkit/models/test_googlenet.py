"""GoogLeNet: nine inception modules of Table 1, and the parameter count stated in its docstring."""

import keras
import numpy as np

from cnnkit import models
from cnnkit.models import googlenet


def test_parameter_count_matches_the_docstring():
    # Global average pooling makes the count independent of the spatial size, so a
    # 32x32 build (cheaper) has the ImageNet count.
    model = models.build("googlenet", (32, 32, 3), 1000)
    try:
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        assert (model.count_params(), trainable) == (7_020_392, 7_005_832)
        assert "7,020,392" in googlenet.__doc__ and "7,005,832" in googlenet.__doc__
        modules = [layer.name for layer in model.layers if layer.name.endswith("_concat")]
        assert len(modules) == 9
        # Table 1 output channels of each module: 256, 480, 512, 512, 512, 528, 832, 832, 1024.
        channels = [model.get_layer(n).output.shape[-1] for n in modules]
        assert channels == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
        assert not any("aux" in layer.name for layer in model.layers)
    finally:
        keras.backend.clear_session()
