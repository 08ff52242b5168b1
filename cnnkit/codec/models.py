"""Learned image codecs: transforms + factorized entropy model, trained for rate + lambda * distortion.

Two architectures share one :class:`ImageCodec` (a ``keras.Model`` with its own
``train_step``/``test_step``, in the manner of tensorflow/compression's
``bls2017.py``):

* ``factorized`` -- Ballé, Laparra & Simoncelli, "End-to-end optimized image
  compression", ICLR 2017: analysis ``g_a`` = 4 x (5x5 conv, stride 2) with GDN
  between them, synthesis ``g_s`` = the mirror with transposed convolutions and
  IGDN, and the learned factorized prior of :mod:`cnnkit.codec.entropy`.
* ``lecture-ae`` -- the lecture's under-complete convolutional autoencoder
  (3x3 conv + ReLU + 2x2 max-pool encoder, upsample + conv decoder, sigmoid
  output), whose latent is quantised and entropy coded with the same prior.
  It is the baseline: ReLU and pooling in place of GDN and strided convolutions.

Names follow the papers: ``x`` the image in [0, 1], ``y = g_a(x)`` the latent,
``y_tilde = y + u`` with ``u ~ U(-1/2, 1/2)`` during training (the differentiable
proxy for rounding, eq. (8) of Ballé 2017), ``y_hat = round(y)`` at test time,
``x_hat = g_s(y_hat)`` and ``likelihoods = p(y_hat)``. The loss is eq. (2)
``L = R + lmbda * D`` with ``R`` in bits per pixel and ``D`` the MSE of 8-bit pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from cnnkit.codec.entropy import FactorizedPrior
from cnnkit.codec.gdn import GDN
from cnnkit.errors import InputError

__all__ = ["ImageCodec", "build", "names", "DOWNSAMPLING"]

# Every architecture here halves the resolution four times: images are padded to this multiple.
DOWNSAMPLING = 16


def _factorized_transforms(filters: int, latent: int) -> tuple[keras.Sequential, keras.Sequential]:
    conv = dict(kernel_size=5, strides=2, padding="same")
    analysis = keras.Sequential(name="analysis")
    for i in range(3):
        analysis.add(keras.layers.Conv2D(filters, **conv, name=f"analysis_conv{i}"))
        analysis.add(GDN(name=f"analysis_gdn{i}"))
    # Start the latents ~10x larger than Glorot would: against the unit-wide training noise,
    # small latents carry almost no information, and the first thousand steps go into growing them.
    wide = keras.initializers.VarianceScaling(100.0, mode="fan_avg", distribution="uniform")
    analysis.add(keras.layers.Conv2D(latent, **conv, kernel_initializer=wide, name="analysis_conv3"))
    synthesis = keras.Sequential(name="synthesis")
    for i in range(3):
        synthesis.add(keras.layers.Conv2DTranspose(filters, **conv, name=f"synthesis_conv{i}"))
        synthesis.add(GDN(inverse=True, name=f"synthesis_igdn{i}"))
    synthesis.add(keras.layers.Conv2DTranspose(3, **conv, name="synthesis_conv3"))
    return analysis, synthesis


def _lecture_ae_transforms(filters: int, latent: int) -> tuple[keras.Sequential, keras.Sequential]:
    analysis = keras.Sequential(name="analysis")
    for i in range(4):
        analysis.add(keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"analysis_conv{i}"))
        analysis.add(keras.layers.MaxPooling2D(2, name=f"analysis_pool{i}"))
    # The bottleneck: `latent` channels at 1/16 resolution, latent / (16 * 16 * 3) of the input size.
    analysis.add(keras.layers.Conv2D(latent, 1, name="analysis_bottleneck"))
    synthesis = keras.Sequential(name="synthesis")
    for i in range(4):
        synthesis.add(keras.layers.UpSampling2D(2, name=f"synthesis_up{i}"))
        synthesis.add(keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"synthesis_conv{i}"))
    synthesis.add(keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid", name="synthesis_output"))
    return analysis, synthesis


_ARCHITECTURES: dict[str, Callable[[int, int], tuple[keras.Sequential, keras.Sequential]]] = {
    "factorized": _factorized_transforms,
    "lecture-ae": _lecture_ae_transforms,
}


def names() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(_ARCHITECTURES)


@keras.saving.register_keras_serializable(package="cnnkit.codec")
class ImageCodec(keras.Model):
    """Analysis transform, factorized prior and synthesis transform, trained end to end.

    Args:
        architecture: one of :func:`names`.
        filters: channels of the hidden layers (``N`` in Ballé et al.).
        latent: channels of ``y`` (``M``).
        lmbda: weight of the distortion term in ``R + lmbda * D``.
    """

    def __init__(self, architecture: str, filters: int, latent: int, lmbda: float, **kwargs):
        super().__init__(**kwargs)
        self.architecture = architecture
        self.filters = filters
        self.latent = latent
        self.lmbda = lmbda
        self.analysis, self.synthesis = _ARCHITECTURES[architecture](filters, latent)
        self.prior = FactorizedPrior(name="prior")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.bpp_tracker = keras.metrics.Mean(name="bpp")
        self.mse_tracker = keras.metrics.Mean(name="mse")
        self.psnr_tracker = keras.metrics.Mean(name="psnr")

    def call(self, x, training=False):
        """Forward pass.

        Args:
            x: ``(batch, height, width, 3)`` float32 in [0, 1], height and width multiples of 16.
            training: add uniform noise (True) or round (False).

        Returns:
            Dict with ``y`` ``(batch, height/16, width/16, latent)``, ``y_hat`` (noisy
            ``y_tilde`` when training), ``likelihoods`` shaped like ``y`` and ``x_hat``
            shaped like ``x``.
        """
        y = self.analysis(x)
        if training:
            y_hat = y + tf.random.uniform(tf.shape(y), -0.5, 0.5)
        else:
            y_hat = tf.round(y)
        likelihoods = self.prior(y_hat)
        x_hat = self.synthesis(y_hat)
        return {"y": y, "y_hat": y_hat, "likelihoods": likelihoods, "x_hat": x_hat}

    def _rate_distortion(self, x, training):
        out = self(x, training=training)
        num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        bpp = tf.reduce_sum(-tf.math.log(out["likelihoods"])) / (num_pixels * np.log(2.0))
        x_hat = out["x_hat"] if training else tf.clip_by_value(out["x_hat"], 0.0, 1.0)
        mse = tf.reduce_mean(tf.square(x - x_hat)) * 255.0**2
        loss = bpp + self.lmbda * mse
        self.loss_tracker.update_state(loss)
        self.bpp_tracker.update_state(bpp)
        self.mse_tracker.update_state(mse)
        self.psnr_tracker.update_state(10.0 * tf.math.log(255.0**2 / mse) / np.log(10.0))
        return loss

    def train_step(self, x):
        with tf.GradientTape() as tape:
            loss = self._rate_distortion(x, training=True)
            # A LossScaleOptimizer (mixed_float16) scales the loss so small float16 gradients do not
            # flush to zero, and unscales them in apply_gradients; any other optimizer returns it as is.
            scaled_loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled_loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, x):
        self._rate_distortion(x, training=False)
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.loss_tracker, self.bpp_tracker, self.mse_tracker, self.psnr_tracker]

    def get_config(self):
        return {
            "architecture": self.architecture,
            "filters": self.filters,
            "latent": self.latent,
            "lmbda": self.lmbda,
        }

    def latent_ratio(self) -> float:
        """Number of latent values per input value (``latent / (16 * 16 * 3)``)."""
        return self.latent / (DOWNSAMPLING * DOWNSAMPLING * 3)


def build(name: str, *, filters: int, latent: int, lmbda: float) -> ImageCodec:
    """Build a codec with its weights created (ready for ``load_weights``).

    Args:
        name: architecture, one of :func:`names`.
        filters: hidden channels ``N``.
        latent: latent channels ``M``.
        lmbda: rate-distortion trade-off.

    Raises:
        InputError: unknown name or non-positive sizes.
    """
    if name not in _ARCHITECTURES:
        raise InputError(f"--model {name!r}: unknown; expected one of: {', '.join(names())}")
    if filters < 1 or latent < 1:
        raise InputError(f"model sizes must be positive; got filters={filters}, latent={latent}")
    model = ImageCodec(name, filters, latent, lmbda, name=name.replace("-", "_"))
    model(tf.zeros((1, DOWNSAMPLING, DOWNSAMPLING, 3)))
    return model
