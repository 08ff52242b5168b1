"""Keras layers whose backward pass is the hand-written one of ``cnnkit.handgrad``.

Each layer subclasses its Keras namesake and overrides only ``call``, so the
constructor arguments, weights, initialisers, regularisers, constraints,
activation, ``get_config`` and ``.keras`` saving are Keras' own. Keras adds a
conv or dense bias with its own broadcast ``add`` (differentiated by autodiff); here
the bias goes into the hand-written op, so ``dL/db = sum(dL/dA)`` is written out
beside ``dL/dx`` and ``dL/dw``.

Under a mixed-precision policy Keras hands ``call`` inputs in the compute dtype;
the weights are cast to it here, and the cast's own gradient returns their
gradients in the variable dtype (float32), as for the built-in layers.
"""

from __future__ import annotations

import keras

from cnnkit.handgrad.conv import conv2d
from cnnkit.handgrad.dense import dense
from cnnkit.handgrad.pooling import avg_pool2d, max_pool2d


def _channels_last(layer: keras.layers.Layer) -> None:
    if layer.data_format != "channels_last":
        raise ValueError(
            f"Expected data_format 'channels_last' (cnnkit.handgrad is NHWC only). Received: data_format={layer.data_format!r}"
        )


@keras.saving.register_keras_serializable(package="cnnkit")
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` computed by :func:`cnnkit.handgrad.conv.conv2d` (NHWC, groups=1)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _channels_last(self)
        if self.groups != 1:
            raise ValueError(f"Expected groups=1 (grouped convolution is not hand-written). Received: groups={self.groups}")

    def call(self, inputs):
        dtype = self.compute_dtype
        bias = keras.ops.cast(self.bias, dtype) if self.use_bias else None
        outputs = conv2d(inputs, keras.ops.cast(self.kernel, dtype), bias, self.strides, self.padding, self.dilation_rate)
        return outputs if self.activation is None else self.activation(outputs)


@keras.saving.register_keras_serializable(package="cnnkit")
class Dense(keras.layers.Dense):
    """``keras.layers.Dense`` computed by :func:`cnnkit.handgrad.dense.dense`."""

    def call(self, inputs, training=None):
        dtype = self.compute_dtype
        bias = keras.ops.cast(self.bias, dtype) if self.use_bias else None
        outputs = dense(inputs, keras.ops.cast(self.kernel, dtype), bias)
        return outputs if self.activation is None else self.activation(outputs)


class _Pooling:
    """What both pooling layers add to their Keras base: the NHWC check and the hand-written op ``pool``."""

    pool = None  # max_pool2d or avg_pool2d, set by each layer

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _channels_last(self)

    def call(self, inputs):
        return self.pool(inputs, self.pool_size, self.strides, self.padding)


@keras.saving.register_keras_serializable(package="cnnkit")
class MaxPooling2D(_Pooling, keras.layers.MaxPooling2D):
    """``keras.layers.MaxPooling2D`` computed by :func:`cnnkit.handgrad.pooling.max_pool2d`."""

    pool = staticmethod(max_pool2d)


@keras.saving.register_keras_serializable(package="cnnkit")
class AveragePooling2D(_Pooling, keras.layers.AveragePooling2D):
    """``keras.layers.AveragePooling2D`` computed by :func:`cnnkit.handgrad.pooling.avg_pool2d`."""

    pool = staticmethod(avg_pool2d)
