"""One variable-rate codec: a mean-scale hyperprior with gain units.

Transforms and entropy model: Minnen, Ballé & Toderici, "Joint Autoregressive and
Hierarchical Priors for Learned Image Compression", NeurIPS 2018, without the
context model (their "mean & scale hyperprior"): analysis ``g_a`` = 4 x (5x5
conv, stride 2) with GDN between them, synthesis ``g_s`` its mirror with IGDN;
hyper-analysis ``z = h_a(y)``; hyper-synthesis ``(mu, log sigma) = h_s(z_hat)``;
each ``y`` coded with a Gaussian of mean ``mu`` and scale ``sigma`` convolved
with the unit uniform, ``z`` with a learned factorized prior.

Variable rate: Cui, Wang, Gao, Bai, Wang & Yang, "Asymmetric Gained Deep Image
Compression With Continuous Rate Adaptation", CVPR 2021. Quality level ``q``
owns a gain vector ``g_q`` (length ``M``) and an inverse gain ``g_q^-1``;
the encoder codes ``round(g_q * y)`` and the decoder feeds ``g_q^-1 * y_hat`` to
``g_s``. The hyper latent has its own gain pair ``h_q`` (length ``N``) and each
level its own factorized prior of ``z``. ``h_s`` predicts the mean and scale of
the ungained ``y``; the gained latent's are ``g_q * mu`` and ``g_q * sigma``.
One set of transforms serves every level; training draws a level per sample and
minimises the mean of ``R_q + lambda_q * D_q``.

Quantisation in training ("mixed", as in Minnen & Singh, "Channel-wise
autoregressive entropy models", ICIP 2020): the rate sees additive uniform
noise, ``y_tilde = g y + u``; the synthesis sees the rounded residual
``round(g y - g mu) + g mu`` with a straight-through gradient, so it learns on
the values it will decode.

Names follow the papers: ``x`` in [0, 1], ``y``, ``z``, ``y_hat``, ``z_hat``,
``x_hat``, ``lmbda``; ``D`` is the MSE of 8-bit pixels and ``R`` bits per pixel.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cnnkit.codec.entropy import SCALE_BOUND, FactorizedPrior, gaussian_likelihood
from cnnkit.codec.gdn import GDN, lower_bound

__all__ = ["GainedHyperprior", "ARCHITECTURE", "DEFAULT_LMBDAS", "PAD_MULTIPLE", "Y_DOWNSAMPLING"]

ARCHITECTURE = "gained-hyperprior"
# y is at 1/16 of the image, z at 1/64: images are padded to a multiple of 64.
Y_DOWNSAMPLING = 16
PAD_MULTIPLE = 64
# lambda of each quality level (MSE on 0..255 pixels, the units of CompressAI's lambdas):
# geometric steps of about 2.1 from CompressAI's lowest quality (0.0018) to past its
# quality 6 (0.0483), so that 1 bpp on detailed photos lies inside the range.
DEFAULT_LMBDAS = (0.0018, 0.0039, 0.0082, 0.0176, 0.0376, 0.08)


def _analysis(filters: int, latent: int) -> keras.Sequential:
    conv = dict(kernel_size=5, strides=2, padding="same")
    layers = []
    for i in range(3):
        layers += [keras.layers.Conv2D(filters, **conv, name=f"analysis_conv{i}"), GDN(name=f"analysis_gdn{i}")]
    layers.append(keras.layers.Conv2D(latent, **conv, name="analysis_conv3"))
    return keras.Sequential(layers, name="analysis")


def _synthesis(filters: int) -> keras.Sequential:
    conv = dict(kernel_size=5, strides=2, padding="same")
    layers = []
    for i in range(3):
        layers += [
            keras.layers.Conv2DTranspose(filters, **conv, name=f"synthesis_conv{i}"),
            GDN(inverse=True, name=f"synthesis_igdn{i}"),
        ]
    layers.append(keras.layers.Conv2DTranspose(3, **conv, name="synthesis_conv3"))
    return keras.Sequential(layers, name="synthesis")


def _hyper_analysis(filters: int) -> keras.Sequential:
    """``h_a``: 3x3 conv, ReLU, 5x5 conv stride 2, ReLU, 5x5 conv stride 2 (Minnen et al. 2018, fig. 4)."""
    return keras.Sequential(
        [
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name="hyper_analysis_conv0"),
            keras.layers.Conv2D(filters, 5, strides=2, padding="same", activation="relu", name="hyper_analysis_conv1"),
            keras.layers.Conv2D(filters, 5, strides=2, padding="same", name="hyper_analysis_conv2"),
        ],
        name="hyper_analysis",
    )


def _hyper_synthesis(latent: int) -> keras.Sequential:
    """``h_s``: two 5x5 transposed convs (stride 2, ReLU; ``M`` then ``3M/2`` channels), a 3x3 conv to ``2M``.

    Output channels ``[:M]`` are the means of ``y``, ``[M:]`` its log-scales. ReLU (not
    Minnen's leaky ReLU) so that :mod:`cnnkit.codec.integer_hyper` computes the same
    network in exact integer arithmetic for the decoder.
    """
    up = dict(kernel_size=5, strides=2, padding="same", activation="relu")
    return keras.Sequential(
        [
            keras.layers.Conv2DTranspose(latent, **up, name="hyper_synthesis_conv0"),
            keras.layers.Conv2DTranspose(latent * 3 // 2, **up, name="hyper_synthesis_conv1"),
            keras.layers.Conv2D(2 * latent, 3, padding="same", name="hyper_synthesis_conv2"),
        ],
        name="hyper_synthesis",
    )


def _round_straight_through(x: tf.Tensor) -> tf.Tensor:
    """``round(x)`` forward, identity backward."""
    return x + tf.stop_gradient(tf.round(x) - x)


@keras.saving.register_keras_serializable(package="cnnkit.codec")
class GainedHyperprior(keras.Model):
    """The variable-rate mean-scale hyperprior codec (see the module docstring).

    Args:
        filters: hidden channels ``N`` of the transforms, and channels of ``z``.
        latent: channels ``M`` of ``y``.
        lmbdas: ``lambda_q`` of each quality level, increasing (level ``q`` is ``lmbdas[q - 1]``).

    Attributes:
        priors: one :class:`~cnnkit.codec.entropy.FactorizedPrior` of ``z`` per level.
        log_gain: ``(levels, M)`` log of the gains ``g_q``; the inverse gains are separate,
            ``log_inverse_gain`` (Cui et al. learn both: "asymmetric" gains).
        log_hyper_gain, log_hyper_inverse_gain: ``(levels, N)``, the same for ``z``.
    """

    pad_multiple = PAD_MULTIPLE
    architecture = ARCHITECTURE

    def __init__(self, filters: int = 128, latent: int = 192, lmbdas=DEFAULT_LMBDAS, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.latent = int(filters), int(latent)
        self.lmbdas = tuple(float(v) for v in lmbdas)
        self.levels = len(self.lmbdas)
        self.analysis = _analysis(self.filters, self.latent)
        self.synthesis = _synthesis(self.filters)
        self.hyper_analysis = _hyper_analysis(self.filters)
        self.hyper_synthesis = _hyper_synthesis(self.latent)
        self.priors = [FactorizedPrior(name=f"prior_q{q + 1}") for q in range(self.levels)]
        # High-rate theory: the best quantiser step goes as lambda^(-1/2), so the gains start
        # there (relative to the middle level) and training only fine-tunes them per channel.
        start = 0.5 * np.log(np.asarray(self.lmbdas) / np.sqrt(self.lmbdas[0] * self.lmbdas[-1]))
        gain_init = keras.initializers.Constant(np.repeat(start[:, None], self.latent, axis=1))
        inverse_init = keras.initializers.Constant(np.repeat(-start[:, None], self.latent, axis=1))
        self.log_gain = self.add_weight(name="log_gain", shape=(self.levels, self.latent), initializer=gain_init)
        self.log_inverse_gain = self.add_weight(name="log_inverse_gain", shape=(self.levels, self.latent), initializer=inverse_init)
        self.log_hyper_gain = self.add_weight(name="log_hyper_gain", shape=(self.levels, self.filters), initializer="zeros")
        self.log_hyper_inverse_gain = self.add_weight(name="log_hyper_inverse_gain", shape=(self.levels, self.filters), initializer="zeros")

    # --- the pieces encoder and decoder share ------------------------------------------

    def gains(self, level: tf.Tensor) -> dict[str, tf.Tensor]:
        """The four gain vectors of each element of ``level``.

        Args:
            level: ``(batch,)`` int32 level indexes ``0 .. levels - 1`` (quality - 1).

        Returns:
            ``{"y", "y_inverse"}`` shaped ``(batch, 1, 1, M)`` and ``{"z", "z_inverse"}`` ``(batch, 1, 1, N)``.
        """

        def pick(log_values):
            return tf.exp(tf.gather(log_values, level))[:, None, None, :]

        return {
            "y": pick(self.log_gain),
            "y_inverse": pick(self.log_inverse_gain),
            "z": pick(self.log_hyper_gain),
            "z_inverse": pick(self.log_hyper_inverse_gain),
        }

    def mean_scale(self, z_hat_ungained: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``mu`` and ``sigma`` of the ungained ``y`` from ``h_s``.

        Args:
            z_hat_ungained: ``(batch, H/64, W/64, N)``, the decoded ``z`` times its inverse gain.

        Returns:
            ``(mu, sigma)``, each ``(batch, H/16, W/16, M)`` float32; ``sigma = exp(.)``, not yet bounded.
        """
        params = tf.cast(self.hyper_synthesis(z_hat_ungained), tf.float32)
        return params[..., : self.latent], tf.exp(params[..., self.latent :])

    def z_likelihoods(self, z_tilde: tf.Tensor, level: tf.Tensor) -> tf.Tensor:
        """``p(z_tilde)`` under each sample's own level prior, shaped like ``z_tilde``."""
        every = tf.stack([prior(z_tilde) for prior in self.priors], axis=0)
        chosen = tf.one_hot(level, self.levels, dtype=every.dtype)
        return tf.einsum("lbhwc,bl->bhwc", every, chosen)

    # --- training ------------------------------------------------------------------------

    def call(self, x, level=None, training=False):
        """Forward pass with noisy (``training``) or rounded latents.

        Args:
            x: ``(batch, H, W, 3)`` float32 in [0, 1], ``H`` and ``W`` multiples of 64.
            level: ``(batch,)`` int32 level indexes; None: every sample at the top level.
            training: noise for the rate and straight-through rounding for the synthesis (True),
                or rounding everywhere (False).

        Returns:
            ``{"x_hat": like x, "likelihoods": {"y": (batch, H/16, W/16, M), "z": (batch, H/64, W/64, N)}}``.
        """
        if level is None:
            level = tf.fill(tf.shape(x)[:1], self.levels - 1)
        gain = self.gains(level)
        y = tf.cast(self.analysis(x), tf.float32)
        z = tf.cast(self.hyper_analysis(y), tf.float32) * gain["z"]
        if training:
            z_tilde = z + tf.random.uniform(tf.shape(z), -0.5, 0.5)
            z_hat = _round_straight_through(z)
        else:
            z_tilde = z_hat = tf.round(z)
        mu, sigma = self.mean_scale(z_hat * gain["z_inverse"])
        y_g, mu_g = y * gain["y"], mu * gain["y"]
        sigma_g = lower_bound(sigma * gain["y"], SCALE_BOUND)
        residual = y_g - mu_g
        if training:
            y_likelihoods = gaussian_likelihood(residual + tf.random.uniform(tf.shape(residual), -0.5, 0.5), sigma_g)
        else:
            y_likelihoods = gaussian_likelihood(tf.round(residual), sigma_g)
        y_hat = _round_straight_through(residual) + mu_g
        x_hat = tf.cast(self.synthesis(y_hat * gain["y_inverse"]), tf.float32)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": self.z_likelihoods(z_tilde, level)}}

    def rate_distortion(self, x: tf.Tensor, level: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        """Per-sample ``R`` (bpp), ``D`` (8-bit MSE) and the loss ``mean(R_q + lambda_q D_q)``.

        Returns:
            ``{"loss": scalar, "bpp": (batch,), "mse": (batch,)}``.
        """
        out = self(x, level=level, training=training)
        x_hat = out["x_hat"] if training else tf.clip_by_value(out["x_hat"], 0.0, 1.0)
        pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
        bits = sum(tf.reduce_sum(-tf.math.log(p), axis=(1, 2, 3)) for p in out["likelihoods"].values()) / np.log(2.0)
        bpp = bits / pixels
        mse = tf.reduce_mean(tf.square(x - x_hat), axis=(1, 2, 3)) * 255.0**2
        lmbda = tf.gather(tf.constant(self.lmbdas, tf.float32), level)
        return {"loss": tf.reduce_mean(bpp + lmbda * mse), "bpp": bpp, "mse": mse}

    def get_config(self):
        return {"filters": self.filters, "latent": self.latent, "lmbdas": list(self.lmbdas)}


def build(filters: int = 128, latent: int = 192, lmbdas=DEFAULT_LMBDAS) -> GainedHyperprior:
    """A :class:`GainedHyperprior` with its weights created (ready for ``set_weights``)."""
    model = GainedHyperprior(filters, latent, lmbdas, name="gained_hyperprior")
    model(tf.zeros((1, PAD_MULTIPLE, PAD_MULTIPLE, 3)), level=tf.zeros((1,), tf.int32))
    return model
