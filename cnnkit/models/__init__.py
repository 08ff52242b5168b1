"""The CNN model zoo: ``build(name, input_shape, num_classes, conv=...)`` and ``names()``.

Each architecture lives in its own module and registers its builder with
``@register_model(name)``; importing this package registers them all. Every model
ends with a float32 softmax layer named ``predictions`` and outputs class
probabilities; models do not rescale their inputs.
"""

from cnnkit.models import alexnet, googlenet, lecture, resnet, speech, vgg  # noqa: F401  (importing registers the builders)
from cnnkit.models.registry import build, conv_layers, names, options, register_model

__all__ = ["build", "conv_layers", "names", "options", "register_model"]
