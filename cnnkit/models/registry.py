"""The model registry: architecture name -> builder, and the one public entry point ``build``.

A builder is a plain function ``builder(input_shape, num_classes, layers, **options)
-> keras.Model`` registered under a name with ``@register_model("resnet18")``. Its
keyword-only parameters are its options; ``build`` checks the shape, the class count
and the option names before calling it, so builders only state their architecture.

The convolution flavour is chosen by passing layer classes in (the habit of Keras
Applications and torchvision): ``conv_layers("keras")`` returns Keras' ``Conv2D``,
``MaxPooling2D``, ``AveragePooling2D`` and ``Dense``; ``conv_layers("handgrad")``
returns the same four from ``cnnkit.handgrad``, whose backward pass is written by
hand. Layers without a hand-written twin (``BatchNormalization``, ``DepthwiseConv2D``,
``GlobalAveragePooling2D``, ``Dropout``, activations) are always Keras' own.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Callable, Sequence

import keras

from cnnkit.errors import InputError

Builder = Callable[..., keras.Model]

_REGISTRY: dict[str, Builder] = {}

CONV_FLAVOURS = ("keras", "handgrad")


@dataclasses.dataclass(frozen=True)
class ConvLayers:
    """The four layer classes that have a hand-written-gradient twin.

    Both flavours take the same constructor arguments as ``keras.layers``, so a
    builder writes ``layers.Conv2D(64, 3, padding="same", name=...)`` whatever the flavour.
    """

    Conv2D: type
    MaxPooling2D: type
    AveragePooling2D: type
    Dense: type


def conv_layers(conv: str) -> ConvLayers:
    """Resolve a conv flavour to its layer classes.

    Args:
        conv: ``"keras"`` (TensorFlow's own ops and gradients) or ``"handgrad"``
            (``cnnkit.handgrad``: forward and backward written by hand).

    Returns:
        The ``Conv2D``, ``MaxPooling2D``, ``AveragePooling2D`` and ``Dense`` classes.

    Raises:
        InputError: ``conv`` is neither flavour.
    """
    if conv == "keras":
        kl = keras.layers
        return ConvLayers(kl.Conv2D, kl.MaxPooling2D, kl.AveragePooling2D, kl.Dense)
    if conv == "handgrad":
        # Imported here so the Keras flavour never depends on the handgrad package.
        from cnnkit import handgrad

        return ConvLayers(handgrad.Conv2D, handgrad.MaxPooling2D, handgrad.AveragePooling2D, handgrad.Dense)
    raise InputError(f"conv {conv!r}: unknown; expected one of: {', '.join(CONV_FLAVOURS)}")


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator that registers a builder under ``name`` (lower case, unique)."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = builder
        return builder

    return decorate


def names() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(_REGISTRY)


def options(name: str) -> dict[str, object]:
    """The options a builder accepts and their defaults, e.g. ``{"dropout": 0.5}``."""
    return {
        p.name: p.default
        for p in inspect.signature(_lookup(name)).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def build(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    conv: str = "keras",
    **opts: object,
) -> keras.Model:
    """Build a registered classifier.

    Args:
        name: architecture, one of ``names()``.
        input_shape: ``(height, width, channels)`` of one example, e.g. ``(28, 28, 1)``
            for MNIST or ``(frames, bins, 1)`` for a spectrogram. Inputs are expected in
            [0, 1] (images) or normalised (features); models do not rescale.
        num_classes: number of classes, >= 1.
        conv: ``"keras"`` or ``"handgrad"``, see ``conv_layers``.
        **opts: architecture options (see each builder's docstring, or ``options(name)``).

    Returns:
        A ``keras.Model`` from ``(batch, *input_shape)`` float32 to ``(batch, num_classes)``
        float32 class probabilities; its last layer is the float32 softmax
        ``Activation`` named ``"predictions"``.

    Raises:
        InputError: unknown name, conv flavour or option; impossible shape or class count.
    """
    builder = _lookup(name)
    shape = _check_shape(name, input_shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise InputError(f"num_classes {num_classes!r} for model {name!r}: expected an integer >= 1")
    allowed = options(name)
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise InputError(
            f"model {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"expected some of: {', '.join(allowed) or '(none)'}"
        )
    return builder(shape, int(num_classes), conv_layers(conv), **opts)


def _lookup(name: str) -> Builder:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"model {name!r}: unknown; expected one of: {', '.join(names())}") from None


def _check_shape(name: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        dims = tuple(input_shape)
    except TypeError:
        dims = ()
    if len(dims) != 3 or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in dims
    ):
        raise InputError(
            f"input_shape {input_shape!r} for model {name!r}: expected (height, width, channels), "
            "three integers >= 1"
        )
    return tuple(int(d) for d in dims)
