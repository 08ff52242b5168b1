"""The learned factorized entropy model and range coding of quantised latents.

Density model: Ballé, Minnen, Singh, Hwang & Johnston, "Variational image
compression with a scale hyperprior", ICLR 2018, appendix 6.1. Each latent
channel ``c`` has its own cumulative distribution ``c(x) = sigmoid(f_K(...f_1(x)))``
with ``f_k(x) = g_k(H_k x + b_k)``, ``g_k(x) = x + a_k * tanh(x)``, ``H_k =
softplus(.)`` (positive, so ``c`` is monotone) and ``a_k = tanh(.)`` (> -1, so each
``g_k`` is monotone). The likelihood of a (noisy or rounded) latent ``y`` is the
mass of the unit bin around it, ``p(y) = c(y + 1/2) - c(y - 1/2)`` (Ballé et al.
2017, eq. (4)-(6)).

Gaussian conditional (the scale hyperprior of the same paper, sec. 3): given a
scale ``sigma`` per element, ``p(y) = Phi((y + 1/2) / sigma) - Phi((y - 1/2) / sigma)``,
a zero-mean normal convolved with the unit uniform (:func:`gaussian_likelihood`).

Coding: :func:`integer_tables` turns the learned density into an INTEGER
probability table per channel (total ``2**PRECISION``, one escape symbol for
values outside the table), which is stored with the shipped model. Encoder and
decoder build ``constriction`` categorical models from those integers only, so
the decoded symbols never depend on the float arithmetic of the density model.
:func:`gaussian_tables` does the same for the discretised normal at each scale
of a fixed log-spaced table (as CompressAI's ``GaussianConditional``), and
:func:`scale_indexes` picks each element's table from its ``sigma``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cnnkit.codec.gdn import lower_bound

__all__ = [
    "FactorizedPrior",
    "gaussian_likelihood",
    "integer_tables",
    "gaussian_tables",
    "scale_indexes",
    "encode_indexed",
    "decode_indexed",
    "encode_symbols",
    "decode_symbols",
    "PRECISION",
    "SCALE_BOUND",
]

# Ballé et al. use 3 hidden layers of 3 units per channel; more buys nothing measurable.
_FILTERS = (3, 3, 3)
# Smallest likelihood the rate term sees: keeps -log2 p finite for outliers.
_LIKELIHOOD_BOUND = 1e-9
# The density's parameters are stored divided by this and multiplied back when used.
# Adam moves every parameter by about the learning rate per step, so the stored
# form lets the density follow the growing latents this many times faster than
# the transforms learn: with a few thousand steps (not Ballé's million) the
# prior would otherwise lag behind and the rate term stay far above the entropy.
_PARAMETER_SCALE = 10.0


@keras.saving.register_keras_serializable(package="cnnkit.codec")
class FactorizedPrior(keras.layers.Layer):
    """A learned univariate density per channel, returning per-element likelihoods.

    Args:
        init_scale: the initial density is roughly uniform over ``[-init_scale, init_scale]``.

    Input: ``(batch, height, width, channels)`` latents ``y_tilde`` or ``y_hat``.
    Output: ``likelihoods`` of the same shape, in ``(0, 1]``.
    """

    def __init__(self, init_scale: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.init_scale = init_scale

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.channels = channels
        filters = (1, *_FILTERS, 1)
        scale = self.init_scale ** (1 / (len(filters) - 1))
        self.matrices, self.biases, self.factors = [], [], []
        for i in range(len(filters) - 1):
            init = float(np.log(np.expm1(1 / scale / filters[i + 1])))
            self.matrices.append(
                self.add_weight(
                    name=f"matrix_{i}",
                    shape=(channels, filters[i + 1], filters[i]),
                    initializer=keras.initializers.Constant(init / _PARAMETER_SCALE),
                )
            )
            self.biases.append(
                self.add_weight(
                    name=f"bias_{i}",
                    shape=(channels, filters[i + 1], 1),
                    initializer=keras.initializers.RandomUniform(-0.5 / _PARAMETER_SCALE, 0.5 / _PARAMETER_SCALE),
                )
            )
            if i < len(filters) - 2:
                self.factors.append(
                    self.add_weight(name=f"factor_{i}", shape=(channels, filters[i + 1], 1), initializer="zeros")
                )

    def logits_cumulative(self, inputs: tf.Tensor) -> tf.Tensor:
        """Logit of the cumulative ``c(x)``, Ballé et al. 2018 eq. (11)-(13).

        Args:
            inputs: ``(channels, 1, n)`` points per channel.

        Returns:
            ``(channels, 1, n)`` logits; ``sigmoid`` of them is the CDF.
        """
        logits = inputs
        k = _PARAMETER_SCALE
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            logits = tf.linalg.matmul(tf.nn.softplus(k * matrix), logits) + k * bias
            if i < len(self.factors):
                logits += tf.tanh(k * self.factors[i]) * tf.tanh(logits)
        return logits

    def bin_mass(self, values: tf.Tensor) -> tf.Tensor:
        """Probability mass of the unit bins centred on ``values``.

        Args:
            values: ``(channels, 1, n)``.

        Returns:
            ``(channels, 1, n)`` masses, not yet bounded away from zero.
        """
        lower = self.logits_cumulative(values - 0.5)
        upper = self.logits_cumulative(values + 0.5)
        # Subtract in the tail where the sigmoids are far from 1, so that
        # 1 - 1 does not round the mass of an upper-tail bin to zero.
        sign = tf.stop_gradient(-tf.sign(lower + upper))
        return tf.abs(tf.sigmoid(sign * upper) - tf.sigmoid(sign * lower))

    def call(self, y):
        shape = tf.shape(y)
        values = tf.reshape(tf.transpose(y, (3, 0, 1, 2)), (self.channels, 1, -1))
        likelihoods = lower_bound(self.bin_mass(values), _LIKELIHOOD_BOUND)
        likelihoods = tf.reshape(likelihoods, (self.channels, shape[0], shape[1], shape[2]))
        return tf.transpose(likelihoods, (1, 2, 3, 0))

    def get_config(self):
        return {**super().get_config(), "init_scale": self.init_scale}


# Smallest scale of the Gaussian conditional, as tensorflow/compression and CompressAI bound it:
# below it the unit bin around 0 holds all the mass anyway, and 1/sigma would only blow up gradients.
SCALE_BOUND = 0.11


def _normal_cdf(x: tf.Tensor) -> tf.Tensor:
    """The standard normal CDF ``Phi(x)``, accurate in both tails (``erfc`` rather than ``1 + erf``)."""
    return 0.5 * tf.math.erfc(-x / np.sqrt(2.0).astype(x.dtype.as_numpy_dtype))


def _gaussian_bin_mass(values: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Mass of the unit bins centred on ``values`` under ``N(0, sigma^2)``, not yet bounded away from zero."""
    # The normal is symmetric: take both CDFs in the lower tail, where they are far from 1
    # and their difference keeps its precision (the same trick as FactorizedPrior.bin_mass).
    magnitude = tf.abs(values)
    return _normal_cdf((0.5 - magnitude) / sigma) - _normal_cdf((-0.5 - magnitude) / sigma)


def gaussian_likelihood(y: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Likelihood of (noisy or rounded) latents under the Gaussian conditional of Ballé et al. 2018.

    ``p(y | sigma) = Phi((y + 1/2) / sigma) - Phi((y - 1/2) / sigma)`` with
    ``sigma`` bounded below by :data:`SCALE_BOUND` and the result by the same
    floor as the factorized prior's, so ``-log2 p`` stays finite.

    Args:
        y: ``(batch, height, width, channels)`` latents ``y_tilde`` or ``y_hat``.
        sigma: scales of the same shape, > 0.

    Returns:
        Likelihoods shaped like ``y``, in ``(0, 1]``.
    """
    sigma = lower_bound(sigma, SCALE_BOUND)
    return lower_bound(_gaussian_bin_mass(y, sigma), _LIKELIHOOD_BOUND)


# --- integer tables and range coding --------------------------------------------

# Frequencies of each table sum to 2**PRECISION (constriction's range coder works at 24 bits or less).
PRECISION = 16
# Bins outside the table together get at least this mass (the escape symbol) ...
_TAIL_MASS = 2.0**-12
# ... and escaped values are sent as 16-bit two's-complement numbers with a uniform model.
_ESCAPE_BITS = 16
# The table search covers latents in [-_SEARCH_RADIUS, _SEARCH_RADIUS].
_SEARCH_RADIUS = 1024


def integer_tables(prior: FactorizedPrior) -> dict[str, np.ndarray]:
    """Integer probability tables of the learned density, one per channel.

    Channel ``c`` codes the symbols ``offset[c] + k`` for ``k < length[c]`` with
    frequency ``pmf[c, k]``; ``pmf[c, length[c]]`` is the escape symbol for every
    other value. Each row sums to ``2**PRECISION`` and every symbol has frequency
    >= 1, so any latent can be coded.

    Args:
        prior: a built :class:`FactorizedPrior`.

    Returns:
        ``{"offset": (channels,) int32, "length": (channels,) int32,
        "pmf": (channels, max_length + 1) int32}`` (unused entries are 0).
    """
    values = np.arange(-_SEARCH_RADIUS, _SEARCH_RADIUS + 1, dtype=np.float32)
    grid = np.broadcast_to(values, (prior.channels, 1, values.size))
    mass = prior.bin_mass(tf.constant(grid)).numpy()[:, 0].astype(np.float64)
    offsets, rows = [], []
    for channel_mass in mass:
        # Trim the table where the cumulative tail mass stays below _TAIL_MASS / 2 on each side.
        cumulative = np.cumsum(channel_mass)
        first = int(np.searchsorted(cumulative, _TAIL_MASS / 2))
        last = int(np.searchsorted(cumulative, cumulative[-1] - _TAIL_MASS / 2))
        last = max(last, first)
        kept = channel_mass[first : last + 1]
        escape = max(1.0 - kept.sum(), _TAIL_MASS)
        offsets.append(first - _SEARCH_RADIUS)
        rows.append(_frequencies(np.append(kept, escape)))
    width = max(len(r) for r in rows)
    pmf = np.zeros((len(rows), width), np.int32)
    for c, row in enumerate(rows):
        pmf[c, : len(row)] = row
    return {
        "offset": np.asarray(offsets, np.int32),
        "length": np.asarray([len(r) - 1 for r in rows], np.int32),
        "pmf": pmf,
    }


def scale_table(count: int = 64, largest: float = 256.0) -> np.ndarray:
    """``count`` scales from :data:`SCALE_BOUND` to ``largest``, evenly spaced in ``log sigma`` (float64)."""
    return np.exp(np.linspace(np.log(SCALE_BOUND), np.log(largest), count))


def gaussian_tables(scales: np.ndarray) -> dict[str, np.ndarray]:
    """Integer tables of the discretised zero-mean normal at each of ``scales``.

    Table ``k`` codes the symbols ``-m .. m`` (``m`` from the normal's quantile at
    ``_TAIL_MASS / 2``, so wider scales get longer tables) and an escape symbol,
    in the layout of :func:`integer_tables`; every row sums to ``2**PRECISION``
    and every symbol has frequency >= 1.

    Args:
        scales: ``(tables,)`` increasing scales, e.g. :func:`scale_table`.

    Returns:
        ``{"offset", "length", "pmf"}`` as :func:`integer_tables`, one row per scale.
    """
    import scipy.special

    # The normal's quantile at the tail mass: sigma * this many bins cover all but _TAIL_MASS.
    reach = -scipy.special.ndtri(_TAIL_MASS / 2)
    rows = []
    for sigma in np.asarray(scales, np.float64):
        half = int(np.ceil(sigma * reach))
        values = tf.range(-half, half + 1, dtype=tf.float64)
        kept = _gaussian_bin_mass(values, tf.constant(sigma, tf.float64)).numpy()
        rows.append(_frequencies(np.append(kept, max(1.0 - kept.sum(), _TAIL_MASS))))
    pmf = np.zeros((len(rows), max(len(r) for r in rows)), np.int32)
    for k, row in enumerate(rows):
        pmf[k, : len(row)] = row
    lengths = np.asarray([len(r) - 1 for r in rows], np.int32)
    return {"offset": -(lengths // 2), "length": lengths, "pmf": pmf}


def scale_indexes(sigma: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The table of each element: the smallest scale of ``scales`` at or above its ``sigma``.

    Rounding the scale up codes with a slightly wider normal than the model's,
    which costs a little rate but never makes a likely value improbable.

    Caveat: ``sigma`` comes from the float32 hyper-synthesis transform. Encoder
    and decoder compute it from the same integers ``z_hat`` with the same ops,
    so the index is bit-exact on one platform; a different BLAS or CPU could in
    principle move a ``sigma`` that sits exactly at a table boundary to the
    neighbouring table and the decoder would then lose sync.

    Args:
        sigma: scales of any shape (float32 or float64; non-finite values take the last table).
        scales: ``(tables,)`` increasing, as stored in the codec file.

    Returns:
        int32 indexes into ``scales``, shaped like ``sigma``.
    """
    sigma = np.nan_to_num(np.asarray(sigma, np.float64), nan=np.inf)
    return np.minimum(np.searchsorted(scales, sigma, side="left"), len(scales) - 1).astype(np.int32)


def _frequencies(probabilities: np.ndarray) -> np.ndarray:
    """Integer frequencies >= 1 summing to ``2**PRECISION``, closest to ``probabilities`` (largest remainders)."""
    total = 1 << PRECISION
    spare = total - probabilities.size  # every symbol first gets 1
    if spare < 0:
        raise ValueError(f"{probabilities.size} symbols do not fit a table of precision {PRECISION}")
    share = probabilities / probabilities.sum() * spare
    freq = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - freq), kind="stable")
    freq[order[: spare - int(freq.sum())]] += 1
    return (freq + 1).astype(np.int32)


def _model(tables: dict[str, np.ndarray], index: int):
    """The constriction categorical model of table ``index``, from its integer frequencies only.

    ``frequency / 2**PRECISION`` is exact in float64, so every platform hands
    constriction the same numbers and gets the same quantised model.
    """
    import constriction

    row = tables["pmf"][index, : tables["length"][index] + 1]
    return constriction.stream.model.Categorical(row.astype(np.float64) / (1 << PRECISION), perfect=False)


def _escape_model():
    import constriction

    return constriction.stream.model.Uniform(1 << _ESCAPE_BITS)


def encode_indexed(values: np.ndarray, indexes: np.ndarray, tables: dict[str, np.ndarray]) -> bytes:
    """Range-code integers, each with the table its index names.

    The symbols of table 0 go first (in the row-major order of ``values``),
    then their escaped values, then table 1, and so on; the decoder, which
    knows ``indexes``, reads them back in the same order.

    Args:
        values: integers of any shape (any int or integral float dtype).
        indexes: table of each value, same shape, in ``[0, number of tables)``.
        tables: ``offset``, ``length`` and ``pmf`` as made by :func:`integer_tables`
            or :func:`gaussian_tables`.

    Returns:
        The compressed bytes (a whole number of 32-bit words, little-endian).

    Raises:
        ValueError: a value outside the 16-bit escape range (not produced by bounded images).
    """
    import constriction

    values = np.asarray(values).astype(np.int64).ravel()
    indexes = np.asarray(indexes).ravel()
    limit = 1 << (_ESCAPE_BITS - 1)
    if values.size and (values.min() < -limit or values.max() >= limit):
        raise ValueError(f"latent out of the coded range [-{limit}, {limit})")
    encoder = constriction.stream.queue.RangeEncoder()
    escape = _escape_model()
    for k in range(len(tables["length"])):
        chosen = values[indexes == k]
        if not chosen.size:
            continue
        length = tables["length"][k]
        shifted = chosen - tables["offset"][k]
        outside = (shifted < 0) | (shifted >= length)
        encoder.encode(np.where(outside, length, shifted).astype(np.int32), _model(tables, k))
        if outside.any():
            encoder.encode((chosen[outside] + limit).astype(np.int32), escape)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_indexed(payload: bytes, indexes: np.ndarray, tables: dict[str, np.ndarray]) -> np.ndarray:
    """Inverse of :func:`encode_indexed`.

    Args:
        payload: the compressed bytes.
        indexes: the table of each value, as the encoder had them.
        tables: the same tables the encoder used.

    Returns:
        int32 values shaped like ``indexes``.

    Raises:
        ValueError: the payload is not a whole number of 32-bit words, does not
            decode, or holds two or more words more than its symbols need.
    """
    import constriction

    if len(payload) % 4:
        raise ValueError("payload is not a whole number of 32-bit words")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    decoder = constriction.stream.queue.RangeDecoder(words)
    escape = _escape_model()
    limit = 1 << (_ESCAPE_BITS - 1)
    indexes = np.asarray(indexes)
    flat = indexes.ravel()
    values = np.zeros(flat.size, np.int64)
    for k in range(len(tables["length"])):
        chosen = flat == k
        count = int(chosen.sum())
        if not count:
            continue
        symbols = np.asarray(decoder.decode(_model(tables, k), count), dtype=np.int64)
        outside = symbols == tables["length"][k]
        decoded = symbols + tables["offset"][k]
        if outside.any():
            decoded[outside] = np.asarray(decoder.decode(escape, int(outside.sum())), dtype=np.int64) - limit
        values[chosen] = decoded
    # A valid payload is used up exactly; words left over mean a wrong split or a corrupted file.
    # (The range decoder reads one word ahead, so a single spare word goes unnoticed.)
    if not decoder.maybe_exhausted():
        raise ValueError("payload holds more data than its symbols")
    return values.reshape(indexes.shape).astype(np.int32)


def _channel_indexes(shape: tuple[int, ...]) -> np.ndarray:
    """The factorized prior's table of each element of a ``(height, width, channels)`` latent: its channel."""
    return np.broadcast_to(np.arange(shape[-1]), shape)


def encode_symbols(y_hat: np.ndarray, tables: dict[str, np.ndarray]) -> bytes:
    """Range-code integer latents channel by channel, with the factorized prior's tables.

    Args:
        y_hat: ``(height, width, channels)`` integers (any int or integral float dtype).
        tables: from :func:`integer_tables`.

    Returns:
        The compressed bytes (see :func:`encode_indexed`).

    Raises:
        ValueError: a latent outside the 16-bit escape range (not produced by bounded images).
    """
    y_hat = np.asarray(y_hat)
    return encode_indexed(y_hat, _channel_indexes(y_hat.shape), tables)


def decode_symbols(payload: bytes, tables: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`encode_symbols`.

    Args:
        payload: the compressed bytes.
        tables: the same tables the encoder used.
        shape: ``(height, width)`` of the latent.

    Returns:
        ``(height, width, channels)`` int32 latents.

    Raises:
        ValueError: the payload is not a whole number of 32-bit words, or does not decode.
    """
    return decode_indexed(payload, _channel_indexes((*shape, len(tables["length"]))), tables)
