"""Shared geometry of sliding windows: argument checks and TensorFlow's padding arithmetic.

Every sliding-window op (convolution, pooling) needs the same facts about a
spatial axis: its checked arguments, how many outputs it has and how much the
forward pass padded it. They live here once so that the backward passes in
``conv.py`` and ``pooling.py`` read as the equations they implement.
"""

from __future__ import annotations

import tensorflow as tf


def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a ``(height, width)`` tuple of positive ints.

    Raises:
        ValueError: naming ``name`` and the value received.
    """
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, int) and v >= 1 for v in values):
        raise ValueError(f"Expected {name} to be a positive int or a pair of them. Received: {name}={value!r}")
    return values


def padding_mode(padding: str) -> str:
    """``"same"`` or ``"valid"`` (any case) as upper case, the spelling ``tf.nn`` wants."""
    if not isinstance(padding, str) or padding.lower() not in ("same", "valid"):
        raise ValueError(f"Expected padding 'same' or 'valid'. Received: padding={padding!r}")
    return padding.upper()


def output_size(size: int, window: int, stride: int, padding: str) -> int:
    """Output length of a sliding window along one axis (TensorFlow's rule).

    SAME gives ``ceil(size / stride)``, VALID gives ``floor((size - window) / stride) + 1``,
    where ``window`` is the effective (dilated) window length.
    """
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - window) // stride + 1


def same_padding(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """``(before, after)`` padding TensorFlow applies along one axis.

    For SAME the total is ``max((out - 1) * stride + window - size, 0)`` and the odd
    element goes AFTER (``before = total // 2``), so an even window pads
    asymmetrically; VALID pads nothing.
    """
    if padding == "VALID":
        return 0, 0
    total = (output_size(size, window, stride, padding) - 1) * stride + window - size
    total = max(total, 0)
    return total // 2, total - total // 2


def static_spatial(x: tf.Tensor, name: str) -> tuple[int, int]:
    """``(height, width)`` of an NHWC tensor, which must be known when the graph is traced.

    Raises:
        ValueError: naming ``name`` when a spatial size is unknown.
    """
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        raise ValueError(f"Expected {name} with known height and width when tracing the backward pass. Received shape {x.shape}")
    return height, width
