"""Ops and Keras layers whose backward pass is written by hand, next to the forward.

Functional ops (``tf.custom_gradient``, NHWC input, HWIO kernels)::

    conv2d(x, w, b=None, strides=1, padding="same", dilation_rate=1)
    max_pool2d(x, pool_size=2, strides=None, padding="valid")
    avg_pool2d(x, pool_size=2, strides=None, padding="valid")
    dense(x, w, b=None)

Keras layers with the constructor arguments of their Keras namesakes, registered
for ``.keras`` saving under the package ``"cnnkit"``: ``Conv2D``, ``MaxPooling2D``,
``AveragePooling2D``, ``Dense``. ``cnnkit.handgrad.check.check_gradients()`` compares
every op with TensorFlow's autodiff and with finite differences.
"""

from cnnkit.handgrad.conv import conv2d
from cnnkit.handgrad.dense import dense
from cnnkit.handgrad.layers import AveragePooling2D, Conv2D, Dense, MaxPooling2D
from cnnkit.handgrad.pooling import avg_pool2d, max_pool2d

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "dense", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Dense"]
