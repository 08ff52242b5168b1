"""A trained codec as one file, and images <-> ``.cnz`` bytes with it.

A codec file (``<model>-q<quality>.npz``) holds everything the decoder needs:
the model config, its weights (float32, in ``model.get_weights()`` order) and
the INTEGER probability tables of :func:`cnnkit.codec.entropy.integer_tables`
(and, for the ``hyperprior`` model, the scale table and the integer Gaussian
tables of :func:`cnnkit.codec.entropy.gaussian_tables`, keys ``gaussian_*``).
Its SHA-256 identifies it in every ``.cnz`` header, so a file is never decoded
with other weights than the ones that encoded it.

Pixels: a grey image is coded as RGB with equal channels and decoded back to
one channel; palette, RGBA and every other mode are converted to RGB (alpha is
dropped). Images are padded to a multiple of the model's ``pad_multiple`` (16,
or 64 for ``hyperprior``) by repeating edge pixels, and the decoder crops the
padding away again.

Encoding may first refine the latents for the image
(:mod:`cnnkit.codec.refine`, ``refine_steps``); the payload and the decoder
are the same either way.

Payload: the factorized models send ``y_hat`` as
:func:`cnnkit.codec.entropy.encode_symbols` codes it. The ``hyperprior`` model
sends ``n`` (4 bytes, big-endian), then the ``n`` bytes of ``z_hat`` coded with
the factorized tables, then ``y_hat`` coded with the Gaussian table of each
element's scale index, which the decoder recomputes from ``z_hat`` (see the
caveat of :func:`cnnkit.codec.entropy.scale_indexes`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from cnnkit.codec import bitstream, entropy, models, refine
from cnnkit.errors import InputError

__all__ = ["Codec", "save", "load", "find", "to_pixels", "model_input", "cropped_pixels"]

_TABLE_KEYS = ("offset", "length", "pmf")
# The hyperprior's Gaussian tables and their scales, stored as gaussian_<key>.
_GAUSSIAN_KEYS = (*_TABLE_KEYS, "scales")
# Length in bytes of the z part of a hyperprior payload.
_Z_LENGTH = struct.Struct(">I")
# Pillow modes that are grey already; everything else is coded as RGB.
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class Codec:
    """A trained model, its integer tables and identity, ready to encode and decode.

    Attributes:
        model: the :class:`~cnnkit.codec.models.ImageCodec`.
        tables: integer tables (``offset``, ``length``, ``pmf``) of the factorized prior.
        quality: the quality level this file provides.
        weights_hash: first 8 bytes of the SHA-256 of the codec file.
        gaussian: for a hyperprior model, the Gaussian tables and their ``scales``; None otherwise.
    """

    model: models.ImageCodec
    tables: dict
    quality: int
    weights_hash: bytes
    gaussian: dict | None = None

    @property
    def name(self) -> str:
        return self.model.architecture

    def encode(self, pixels: np.ndarray, refine_steps: int = 0) -> bytes:
        """Compress an image to the bytes of a ``.cnz`` file.

        Args:
            pixels: ``(height, width)`` grey or ``(height, width, 3)`` RGB, uint8.
            refine_steps: steps of encoder-side latent refinement
                (:func:`cnnkit.codec.refine.refine_latents`); 0 codes the
                analysis transform's latents. Any value decodes the same way.

        Returns:
            The ``.cnz`` bytes.
        """
        height, width = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else 3
        x = self._model_input(pixels)
        latents = refine.refine_latents(self.model, x, self.model.encoder_latents(x), refine_steps)
        header = bitstream.Header(self.name, self.weights_hash, self.quality, height, width, channels)
        return bitstream.pack(header, self._encode_latents(latents))

    def _model_input(self, pixels: np.ndarray) -> tf.Tensor:
        return model_input(pixels, self.model.pad_multiple)

    def unquantised_reconstruction(self, pixels: np.ndarray) -> np.ndarray:
        """``g_s(g_a(x))`` with ``y`` NOT rounded, as 8-bit RGB: what the transforms alone lose.

        Rounding ``y`` only adds error to this (refined latents aside, which are
        no longer ``g_a(x)``), so when a quality level's decoded PSNR is close to
        this one's, the level is limited by its transforms, not by its rate.

        Args:
            pixels: ``(height, width)`` grey or ``(height, width, 3)`` RGB, uint8.

        Returns:
            ``(height, width, 3)`` uint8.
        """
        x_tilde = self.model.synthesis(self.model.encoder_latents(self._model_input(pixels))["y"])
        return cropped_pixels(x_tilde, *pixels.shape[:2])

    def _encode_latents(self, latents: dict[str, tf.Tensor]) -> bytes:
        """The payload for continuous ``latents`` (``y`` ``(1, height/16, width/16, latent)``, and ``z``
        for the hyperprior), rounded here (see the module docstring)."""
        y_hat = np.round(latents["y"].numpy()[0]).astype(np.int32)
        if self.gaussian is None:
            return entropy.encode_symbols(y_hat, self.tables)
        z_hat = np.round(latents["z"].numpy()[0]).astype(np.int32)
        z_part = entropy.encode_symbols(z_hat, self.tables)
        y_part = entropy.encode_indexed(y_hat, self._scale_indexes(z_hat), self.gaussian)
        return _Z_LENGTH.pack(len(z_part)) + z_part + y_part

    def _decode_latents(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        """Inverse of :meth:`_encode_latents`: ``y_hat`` ``(height, width, latent)`` int32 for ``shape`` (height, width).

        Raises:
            ValueError: a payload that does not split or decode.
        """
        if self.gaussian is None:
            return entropy.decode_symbols(payload, self.tables, shape)
        if len(payload) < _Z_LENGTH.size:
            raise ValueError("payload shorter than its z length")
        (z_length,) = _Z_LENGTH.unpack_from(payload)
        z_end = _Z_LENGTH.size + z_length
        if z_end > len(payload):
            raise ValueError(f"z part of {z_length} bytes does not fit a payload of {len(payload)}")
        z_shape = (shape[0] // models.HYPER_DOWNSAMPLING, shape[1] // models.HYPER_DOWNSAMPLING)
        z_hat = entropy.decode_symbols(payload[_Z_LENGTH.size : z_end], self.tables, z_shape)
        return entropy.decode_indexed(payload[z_end:], self._scale_indexes(z_hat), self.gaussian)

    def _scale_indexes(self, z_hat: np.ndarray) -> np.ndarray:
        """The Gaussian table of each element of ``y``, from ``z_hat`` ``(height/4, width/4, filters)`` alone.

        Encoder and decoder both call this on the same integers, so they pick the same tables.
        """
        sigma = self.model.scales(tf.constant(z_hat[None], tf.float32)).numpy()[0]
        return entropy.scale_indexes(sigma, self.gaussian["scales"])

    def decode(self, data: bytes, source: str = "input") -> np.ndarray:
        """Decompress ``.cnz`` bytes made by this codec.

        Args:
            data: the whole file.
            source: names the file in error messages.

        Returns:
            ``(height, width)`` uint8 for grey images, ``(height, width, 3)`` for RGB.

        Raises:
            InputError: bad file, or one made by another model, quality or weights.
        """
        header, payload = bitstream.unpack(data, source)
        self.check(header, source)
        step = self.model.pad_multiple
        padded = (-(-header.height // step) * step, -(-header.width // step) * step)
        shape = (padded[0] // models.DOWNSAMPLING, padded[1] // models.DOWNSAMPLING)
        try:
            y_hat = self._decode_latents(payload, shape)
        except (ValueError, RuntimeError) as error:
            raise InputError(f"'{source}': corrupted .cnz payload ({error})") from error
        rgb = cropped_pixels(self.model.synthesis(tf.constant(y_hat[None], tf.float32)), header.height, header.width)
        if header.channels == 1:
            return np.round(rgb.mean(axis=-1)).astype(np.uint8)
        return rgb

    def check(self, header: bitstream.Header, source: str) -> None:
        """Raise InputError unless ``header`` names this codec (model, quality and weights)."""
        mine = (self.name, self.quality, self.weights_hash)
        if (header.model, header.quality, header.weights_hash) != mine:
            raise InputError(
                f"'{source}': made by {header.model} quality {header.quality} weights {header.weights_hash.hex()}; "
                f"this codec is {self.name} quality {self.quality} weights {self.weights_hash.hex()}"
            )


def model_input(pixels: np.ndarray, multiple: int) -> tf.Tensor:
    """``x``: ``pixels`` (uint8 grey or RGB) as ``(1, H, W, 3)`` float32 in [0, 1], edge-padded to a multiple of ``multiple``."""
    height, width = pixels.shape[:2]
    rgb = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels
    padded = np.pad(rgb, ((0, -height % multiple), (0, -width % multiple), (0, 0)), mode="edge")
    return tf.constant(padded[None], tf.float32) / 255.0


def cropped_pixels(x_hat: tf.Tensor, height: int, width: int) -> np.ndarray:
    """``(1, H, W, 3)`` synthesis output in [0, 1] -> its top-left ``(height, width, 3)`` as rounded, clipped uint8."""
    return np.clip(np.round(x_hat.numpy()[0, :height, :width] * 255.0), 0, 255).astype(np.uint8)


def to_pixels(image: Image.Image) -> np.ndarray:
    """A Pillow image as the pixels :meth:`Codec.encode` takes: grey stays grey, the rest becomes RGB.

    Returns:
        ``(height, width)`` or ``(height, width, 3)`` uint8.
    """
    if image.mode in _GREY_MODES:
        if image.mode in ("I", "I;16", "F"):
            # 16-bit and float grey: scale the full range down to 8 bits.
            values = np.asarray(image, dtype=np.float64)
            top = 65535.0 if image.mode != "F" or values.max() > 1.0 else 1.0
            return np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def save(model: models.ImageCodec, quality: int, path: str | os.PathLike) -> Path:
    """Write a codec file: config, weights and the integer tables derived from ``model.prior``.

    A :class:`~cnnkit.codec.models.ScaleHyperprior` also gets the scale table and its Gaussian tables.

    The file is written under a temporary name and renamed.
    """
    path = Path(path)
    arrays = {f"weight_{i:03d}": w for i, w in enumerate(model.get_weights())}
    arrays.update(entropy.integer_tables(model.prior))
    if isinstance(model, models.ScaleHyperprior):
        scales = entropy.scale_table()
        gaussian = {**entropy.gaussian_tables(scales), "scales": scales}
        arrays.update({f"gaussian_{key}": value for key, value in gaussian.items()})
    config = {**model.get_config(), "quality": quality}
    arrays["config"] = np.frombuffer(json.dumps(config, sort_keys=True).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path


def load(path: str | os.PathLike) -> Codec:
    """Read a codec file written by :func:`save`.

    Raises:
        InputError: missing or not a codec file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            config = json.loads(arrays["config"].tobytes())
            tables = {k: arrays[k] for k in _TABLE_KEYS}
            gaussian = {k: arrays[f"gaussian_{k}"] for k in _GAUSSIAN_KEYS} if "gaussian_pmf" in arrays.files else None
            weights = [arrays[k] for k in sorted(arrays.files) if k.startswith("weight_")]
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"codec file '{path}': missing or not a codec file ({error})") from error
    model = models.build(config["architecture"], filters=config["filters"], latent=config["latent"], lmbda=config["lmbda"])
    try:
        model.set_weights(weights)
    except ValueError as error:
        raise InputError(f"codec file '{path}': weights do not fit its config ({error})") from error
    if isinstance(model, models.ScaleHyperprior) != (gaussian is not None):
        raise InputError(f"codec file '{path}': Gaussian tables missing or not expected for {config['architecture']}")
    digest = hashlib.sha256(data).digest()[: bitstream.HASH_BYTES]
    return Codec(model, tables, int(config["quality"]), digest, gaussian)


def find(weights_dir: str | os.PathLike, model: str) -> dict[int, Path]:
    """The codec files ``<model>-q<quality>.npz`` in ``weights_dir``, by quality.

    Raises:
        InputError: none there.
    """
    found = {}
    for path in Path(weights_dir).glob(f"{model}-q*.npz"):
        suffix = path.name[len(model) + 2 : -len(".npz")]
        if suffix.isdigit():
            found[int(suffix)] = path
    if not found:
        raise InputError(f"--weights '{weights_dir}': no codec files {model}-q<N>.npz there")
    return dict(sorted(found.items()))
