"""A trained codec as one file, and images <-> ``.cnz`` bytes with it.

A codec file (``<model>-q<quality>.npz``) holds everything the decoder needs:
the model config, its weights (float32, in ``model.get_weights()`` order) and
the INTEGER probability tables of :func:`cnnkit.codec.entropy.integer_tables`.
Its SHA-256 identifies it in every ``.cnz`` header, so a file is never decoded
with other weights than the ones that encoded it.

Pixels: a grey image is coded as RGB with equal channels and decoded back to
one channel; palette, RGBA and every other mode are converted to RGB (alpha is
dropped). Images are padded to a multiple of 16 by repeating edge pixels, and
the decoder crops the padding away again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from cnnkit.codec import bitstream, entropy, models
from cnnkit.errors import InputError

__all__ = ["Codec", "save", "load", "find", "to_pixels"]

_TABLE_KEYS = ("offset", "length", "pmf")
# Pillow modes that are grey already; everything else is coded as RGB.
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class Codec:
    """A trained model, its integer tables and identity, ready to encode and decode.

    Attributes:
        model: the :class:`~cnnkit.codec.models.ImageCodec`.
        tables: integer tables (``offset``, ``length``, ``pmf``).
        quality: the quality level this file provides.
        weights_hash: first 8 bytes of the SHA-256 of the codec file.
    """

    model: models.ImageCodec
    tables: dict
    quality: int
    weights_hash: bytes

    @property
    def name(self) -> str:
        return self.model.architecture

    def encode(self, pixels: np.ndarray) -> bytes:
        """Compress an image to the bytes of a ``.cnz`` file.

        Args:
            pixels: ``(height, width)`` grey or ``(height, width, 3)`` RGB, uint8.

        Returns:
            The ``.cnz`` bytes.
        """
        height, width = pixels.shape[:2]
        channels = 1 if pixels.ndim == 2 else 3
        rgb = np.repeat(pixels[..., None], 3, axis=-1) if channels == 1 else pixels
        step = models.DOWNSAMPLING
        padded = np.pad(rgb, ((0, -height % step), (0, -width % step), (0, 0)), mode="edge")
        y = self.model.analysis(tf.constant(padded[None], tf.float32) / 255.0)
        y_hat = np.round(y.numpy()[0]).astype(np.int32)
        header = bitstream.Header(self.name, self.weights_hash, self.quality, height, width, channels)
        return bitstream.pack(header, entropy.encode_symbols(y_hat, self.tables))

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
        step = models.DOWNSAMPLING
        shape = (-(-header.height // step), -(-header.width // step))
        try:
            y_hat = entropy.decode_symbols(payload, self.tables, shape)
        except (ValueError, RuntimeError) as error:
            raise InputError(f"'{source}': corrupted .cnz payload ({error})") from error
        x_hat = self.model.synthesis(tf.constant(y_hat[None], tf.float32)).numpy()[0]
        rgb = np.clip(np.round(x_hat[: header.height, : header.width] * 255.0), 0, 255).astype(np.uint8)
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

    The file is written under a temporary name and renamed.
    """
    path = Path(path)
    arrays = {f"weight_{i:03d}": w for i, w in enumerate(model.get_weights())}
    arrays.update(entropy.integer_tables(model.prior))
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
            weights = [arrays[k] for k in sorted(arrays.files) if k.startswith("weight_")]
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"codec file '{path}': missing or not a codec file ({error})") from error
    model = models.build(config["architecture"], filters=config["filters"], latent=config["latent"], lmbda=config["lmbda"])
    try:
        model.set_weights(weights)
    except ValueError as error:
        raise InputError(f"codec file '{path}': weights do not fit its config ({error})") from error
    return Codec(model, tables, int(config["quality"]), hashlib.sha256(data).digest()[: bitstream.HASH_BYTES])


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
