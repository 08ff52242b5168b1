"""Learned image codecs: transforms + entropy model, trained for rate + lambda * distortion.

Three architectures share one :class:`ImageCodec` (a ``keras.Model`` with its own
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
* ``hyperprior`` -- Ballé, Minnen, Singh, Hwang & Johnston, "Variational image
  compression with a scale hyperprior", ICLR 2018 (:class:`ScaleHyperprior`):
  the ``factorized`` transforms, plus a hyper-analysis ``z = h_a(|y|)`` whose
  rounded ``z_hat`` is coded with the factorized prior and mapped by the
  hyper-synthesis to a scale ``sigma = h_s(z_hat)`` per element of ``y``; ``y``
  is coded with a zero-mean Gaussian of that scale.

Names follow the papers: ``x`` the image in [0, 1], ``y = g_a(x)`` the latent,
``y_tilde = y + u`` with ``u ~ U(-1/2, 1/2)`` during training (the differentiable
proxy for rounding, eq. (8) of Ballé 2017), ``y_hat = round(y)`` at test time,
``x_hat = g_s(y_hat)`` and ``likelihoods = p(y_hat)``. The hyperprior adds
``z``, ``z_hat`` (noisy or rounded like ``y``) and ``sigma``, and its
``likelihoods`` is ``{"y": p(y_hat | sigma), "z": p(z_hat)}``. The loss is eq. (2)
``L = R + lmbda * D`` with ``R`` in bits per pixel (of every latent coded) and
``D`` the MSE of 8-bit pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from cnnkit.codec.entropy import SCALE_BOUND, FactorizedPrior, gaussian_likelihood
from cnnkit.codec.gdn import GDN, lower_bound
from cnnkit.errors import InputError

__all__ = ["ImageCodec", "ScaleHyperprior", "build", "names", "pad_multiple", "DOWNSAMPLING"]

# Every analysis transform here halves the resolution four times: y is at 1/16 of the image.
DOWNSAMPLING = 16
# The hyper-analysis halves it twice more: z is at 1/64.
HYPER_DOWNSAMPLING = 4


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


def _hyper_transforms(filters: int, latent: int) -> tuple[keras.Sequential, keras.Sequential]:
    """Hyper-analysis ``h_a`` and hyper-synthesis ``h_s`` of Ballé et al. 2018, fig. 4.

    ``h_a``: 3x3 conv stride 1, ReLU, 5x5 conv stride 2, ReLU, 5x5 conv stride 2
    (``filters`` channels each); it takes ``|y|``, since only the scale of ``y`` is
    modelled. ``h_s`` mirrors it with transposed convolutions and ends with
    ``latent`` channels: the log-scales of ``y`` (see :meth:`ScaleHyperprior.scales`).
    """
    hyper_analysis = keras.Sequential(name="hyper_analysis")
    hyper_analysis.add(keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="hyper_analysis_conv0"))
    hyper_analysis.add(keras.layers.Conv2D(filters, 5, strides=2, padding="same", activation="relu", name="hyper_analysis_conv1"))
    hyper_analysis.add(keras.layers.Conv2D(filters, 5, strides=2, padding="same", name="hyper_analysis_conv2"))
    hyper_synthesis = keras.Sequential(name="hyper_synthesis")
    up = dict(kernel_size=5, strides=2, padding="same", activation="relu")
    hyper_synthesis.add(keras.layers.Conv2DTranspose(filters, **up, name="hyper_synthesis_conv0"))
    hyper_synthesis.add(keras.layers.Conv2DTranspose(filters, **up, name="hyper_synthesis_conv1"))
    hyper_synthesis.add(keras.layers.Conv2DTranspose(latent, 3, padding="same", name="hyper_synthesis_conv2"))
    return hyper_analysis, hyper_synthesis


@keras.saving.register_keras_serializable(package="cnnkit.codec")
class ImageCodec(keras.Model):
    """Analysis transform, factorized prior and synthesis transform, trained end to end.

    Attributes:
        pad_multiple: images are padded to a multiple of this many pixels per side.
        prior: the learned factorized density of the first latent coded (``y`` here).

    Args:
        architecture: one of :func:`names`.
        filters: channels of the hidden layers (``N`` in Ballé et al.).
        latent: channels of ``y`` (``M``).
        lmbda: weight of the distortion term in ``R + lmbda * D``.
    """

    pad_multiple = DOWNSAMPLING

    def __init__(self, architecture: str, filters: int, latent: int, lmbda: float, **kwargs):
        super().__init__(**kwargs)
        self.architecture = architecture
        self.filters = filters
        self.latent = latent
        self.lmbda = lmbda
        self.analysis, self.synthesis = _ARCHITECTURES[architecture].transforms(filters, latent)
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
        y_hat = _quantise(y, training)
        likelihoods = self.latent_likelihoods({"y": y_hat})
        x_hat = self.synthesis(y_hat)
        return {"y": y, "y_hat": y_hat, "likelihoods": likelihoods, "x_hat": x_hat}

    def encoder_latents(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        """The continuous latents the encoder rounds and codes: ``{"y": g_a(x)}``.

        Args:
            x: ``(batch, height, width, 3)`` float32 in [0, 1], height and width multiples of :attr:`pad_multiple`.
        """
        return {"y": self.analysis(x)}

    def latent_likelihoods(self, latents_hat: dict[str, tf.Tensor]) -> tf.Tensor:
        """``p(y_hat)`` under the factorized prior, shaped like ``latents_hat["y"]``.

        ``latents_hat`` holds rounded, noisy or relaxed latents, as from :meth:`encoder_latents`.
        """
        return self.prior(latents_hat["y"])

    def rate_distortion_loss(self, x: tf.Tensor, latents_hat: dict[str, tf.Tensor]) -> tf.Tensor:
        """Eq. (2) ``R + lmbda * D`` of one set of latents: bits per pixel of every latent, plus ``lmbda`` x 8-bit MSE.

        Args:
            x: ``(batch, height, width, 3)`` float32 in [0, 1].
            latents_hat: the latents of ``x`` (keys as :meth:`encoder_latents`), rounded or relaxed.

        Returns:
            Scalar float32.
        """
        x_hat = tf.clip_by_value(self.synthesis(latents_hat["y"]), 0.0, 1.0)
        return _bits_per_pixel(self.latent_likelihoods(latents_hat), x) + self.lmbda * _mse_8bit(x, x_hat)

    def _rate_distortion(self, x, training):
        out = self(x, training=training)
        bpp = _bits_per_pixel(out["likelihoods"], x)
        x_hat = out["x_hat"] if training else tf.clip_by_value(out["x_hat"], 0.0, 1.0)
        mse = _mse_8bit(x, x_hat)
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


def _bits_per_pixel(likelihoods, x: tf.Tensor) -> tf.Tensor:
    """``R``: ``-log2`` of every likelihood coded (``y`` alone, or ``y`` and the side information ``z``), per pixel of ``x``."""
    num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
    bits = tf.add_n([tf.reduce_sum(-tf.math.log(p)) for p in tf.nest.flatten(likelihoods)]) / np.log(2.0)
    return bits / num_pixels


def _mse_8bit(x: tf.Tensor, x_hat: tf.Tensor) -> tf.Tensor:
    """``D``: mean squared error on the 0..255 scale of images in [0, 1]."""
    return tf.reduce_mean(tf.square(x - x_hat)) * 255.0**2


def _quantise(latent: tf.Tensor, training: bool) -> tf.Tensor:
    """``latent + u``, ``u ~ U(-1/2, 1/2)``, when training (Ballé 2017 eq. (8)); ``round(latent)`` otherwise."""
    if training:
        return latent + tf.random.uniform(tf.shape(latent), -0.5, 0.5)
    return tf.round(latent)


@keras.saving.register_keras_serializable(package="cnnkit.codec")
class ScaleHyperprior(ImageCodec):
    """The scale hyperprior codec of Ballé et al. 2018: ``y`` coded with Gaussian scales sent as ``z``.

    ``prior`` models ``z`` here; ``y`` has the conditional
    :func:`~cnnkit.codec.entropy.gaussian_likelihood` with ``sigma = h_s(z_hat)``.
    Images are padded to a multiple of 64, so that ``z`` has whole pixels.
    """

    pad_multiple = DOWNSAMPLING * HYPER_DOWNSAMPLING

    def __init__(self, architecture: str, filters: int, latent: int, lmbda: float, **kwargs):
        super().__init__(architecture, filters, latent, lmbda, **kwargs)
        self.hyper_analysis, self.hyper_synthesis = _hyper_transforms(filters, latent)

    def scales(self, z_hat: tf.Tensor) -> tf.Tensor:
        """``sigma = max(exp(h_s(z_hat)), 0.11)``: ``h_s`` predicts log-scales, which the log-spaced table quantises evenly.

        Args:
            z_hat: ``(batch, height/64, width/64, filters)``.

        Returns:
            ``(batch, height/16, width/16, latent)`` scales >= :data:`~cnnkit.codec.entropy.SCALE_BOUND`.
        """
        return lower_bound(tf.exp(self.hyper_synthesis(z_hat)), SCALE_BOUND)

    def call(self, x, training=False):
        """Forward pass.

        Args:
            x: ``(batch, height, width, 3)`` float32 in [0, 1], height and width multiples of 64.
            training: add uniform noise to ``y`` and ``z`` (True) or round them (False).

        Returns:
            Dict with ``y`` ``(batch, height/16, width/16, latent)`` and its ``y_hat``,
            ``z`` ``(batch, height/64, width/64, filters)`` and its ``z_hat`` (noisy
            when training), ``sigma`` shaped like ``y``, ``likelihoods`` ``{"y": like
            y, "z": like z}`` and ``x_hat`` shaped like ``x``.
        """
        latents = self.encoder_latents(x)
        y, z = latents["y"], latents["z"]
        z_hat = _quantise(z, training)
        sigma = self.scales(z_hat)
        y_hat = _quantise(y, training)
        likelihoods = {"y": gaussian_likelihood(y_hat, sigma), "z": self.prior(z_hat)}
        x_hat = self.synthesis(y_hat)
        return {"y": y, "y_hat": y_hat, "z": z, "z_hat": z_hat, "sigma": sigma, "likelihoods": likelihoods, "x_hat": x_hat}

    def encoder_latents(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        """``{"y": g_a(x), "z": h_a(|y|)}`` (``x`` as :meth:`ImageCodec.encoder_latents`, sides multiples of 64)."""
        y = self.analysis(x)
        return {"y": y, "z": self.hyper_analysis(tf.abs(y))}

    def latent_likelihoods(self, latents_hat: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """``{"y": p(y_hat | sigma(z_hat)), "z": p(z_hat)}`` of rounded, noisy or relaxed latents."""
        z_hat = latents_hat["z"]
        return {"y": gaussian_likelihood(latents_hat["y"], self.scales(z_hat)), "z": self.prior(z_hat)}

    def latent_ratio(self) -> float:
        """Number of coded values per input value: ``y`` plus the side information ``z``."""
        return super().latent_ratio() + self.filters / (self.pad_multiple**2 * 3)


class _Architecture(NamedTuple):
    model_class: type[ImageCodec]  # ScaleHyperprior adds the side information z
    transforms: Callable[[int, int], tuple[keras.Sequential, keras.Sequential]]  # (filters, latent) -> (g_a, g_s)


_ARCHITECTURES: dict[str, _Architecture] = {
    "factorized": _Architecture(ImageCodec, _factorized_transforms),
    "lecture-ae": _Architecture(ImageCodec, _lecture_ae_transforms),
    "hyperprior": _Architecture(ScaleHyperprior, _factorized_transforms),
}


def names() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(_ARCHITECTURES)


def pad_multiple(name: str) -> int:
    """Images coded by architecture ``name`` are padded to a multiple of this many pixels per side.

    Raises:
        InputError: unknown name.
    """
    _check_name(name)
    return _ARCHITECTURES[name].model_class.pad_multiple


def _check_name(name: str) -> None:
    if name not in _ARCHITECTURES:
        raise InputError(f"--model {name!r}: unknown; expected one of: {', '.join(names())}")


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
    _check_name(name)
    if filters < 1 or latent < 1:
        raise InputError(f"model sizes must be positive; got filters={filters}, latent={latent}")
    model_class = _ARCHITECTURES[name].model_class
    model = model_class(name, filters, latent, lmbda, name=name.replace("-", "_"))
    model(tf.zeros((1, model_class.pad_multiple, model_class.pad_multiple, 3)))
    return model
