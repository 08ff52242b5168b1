"""The CNN model zoo: ``build(name, input_shape, num_classes, conv=...)`` and ``names()``.

Each architecture lives in its own module and registers its builder with
``@register_model(name)``; importing this package registers them all. Every model
ends with a float32 softmax layer named ``predictions`` and outputs class
probabilities; models do not rescale their inputs.

Architectures: ``lecture`` (conv -> ReLU -> max-pool blocks, fully connected),
``alexnet``, ``vgg16``, ``vgg19``, ``googlenet``, ``resnet18``, ``resnet34``,
``resnet50`` for images; ``dscnn`` and ``bcresnet`` for spectrograms (``lecture``
and the ResNets take spectrograms too). Inputs as small as 8x8 work with every
architecture: the earliest downsampling steps are dropped (``blocks.downsampling_plan``)
and the model name says so, e.g. ``resnet18_small_input_4of5_downsamples``.
``average_ensemble`` joins trained members into one model that averages their
probabilities.
"""

# Importing the architecture modules registers their builders.
from cnnkit.models import alexnet, googlenet, lecture, resnet, speech, vgg  # noqa: F401
from cnnkit.models.ensemble import average_ensemble
from cnnkit.models.registry import build, conv_layers, names, options, register_model

__all__ = ["average_ensemble", "build", "conv_layers", "names", "options", "register_model"]
