"""The variable-rate codec of :mod:`cnnkit.codec.gained` as shipped: a folder of weight shards, and images <-> ``.cnz``.

A codec folder holds:

* ``manifest.json``: the model config (``filters``, ``latent``, ``lmbdas``), the training
  ``step`` the weights come from, and for each shard its SHA-256 and the names of its arrays;
* ``part-00.npz``, ``part-01.npz``, ...: the arrays, uncompressed, each shard at most
  :data:`SHARD_BYTES` (small files for version control and downloads), read with
  ``allow_pickle=False``.

The arrays:

* ``w/<variable path>``: the float weights of ``g_a``, ``g_s``, ``h_a``, the gains and the
  ``z`` priors. Convolution kernels (the bulk of the parameters) are stored as float16 and
  computed with in float32; everything else is float32.
* ``hs/<name>``: the integer hyper-synthesis (:mod:`cnnkit.codec.integer_hyper`). Encoder
  and decoder both run it to pick the table and the mean of every latent, so they agree
  bit for bit on any CPU, BLAS or thread count; a trained float ``h_s`` is recovered
  from it (:meth:`~cnnkit.codec.integer_hyper.IntegerHyperSynthesis.float_weights`).
* ``z<q>/offset|length|pmf``: integer tables of level ``q``'s factorized prior of ``z``.
* ``gaussian/offset|length|pmf|scales``: integer tables of the discretised normal at each scale.

The first 8 bytes of the manifest's SHA-256, which fixes every shard's bytes, identify the
folder in every ``.cnz`` header it writes.

Payload of quality ``q`` (level ``q - 1``; layout of the file around it in
:mod:`cnnkit.codec.bitstream`): ``n`` (4 bytes, big-endian), ``n`` bytes of the gained
``z_hat = round(h_q * h_a(y))`` coded with level ``q``'s tables, then the residuals
``r = round(g_q * y - mu_g)`` coded with the Gaussian table of each element's index, where
``(index, mu_g)`` come from the integer ``h_s(z_hat)``. The decoder forms
``y_hat = (r + mu_g) * g_q^-1`` (the inverse gain) and ``x_hat = g_s(y_hat)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from cnnkit import runs
from cnnkit.codec import bitstream, codec, entropy, gained, integer_hyper
from cnnkit.errors import InputError

__all__ = ["VariableRateCodec", "export", "load", "SHARD_BYTES", "MANIFEST"]

MANIFEST = "manifest.json"
SHARD_BYTES = 4 << 20
# What a manifest of a few hundred array names can need; anything larger is not one.
_MANIFEST_BYTES = 1 << 20
# The decoder's ``g_s`` works in float32 whatever the file stores; these are stored as float16.
_HALF_PRECISION_LAYERS = ("analysis/", "synthesis/", "hyper_analysis/")
_Z_LENGTH = struct.Struct(">I")
# Photos (at most this many) whose hyper latents calibrate the integer h_s at export.
_CALIBRATION_PHOTOS = 8


@dataclass(frozen=True)
class VariableRateCodec:
    """The gained hyperprior with its integer tables and identity, at every quality level.

    Attributes:
        model: the float model (for ``g_a``, ``h_a``, ``g_s`` and the gains).
        hyper: the integer ``h_s`` that picks every latent's table and mean.
        z_tables: per level, the integer tables of the prior of ``z``.
        gaussian: the Gaussian tables and their ``scales``.
        weights_hash: first 8 bytes of the manifest's SHA-256.
        step: training step the weights come from (None if not recorded).
    """

    model: gained.GainedHyperprior
    hyper: integer_hyper.IntegerHyperSynthesis
    z_tables: tuple[dict, ...]
    gaussian: dict
    weights_hash: bytes
    step: int | None = None

    name = gained.ARCHITECTURE

    @property
    def qualities(self) -> tuple[int, ...]:
        """The quality levels, 1 (lowest rate) to ``levels``."""
        return tuple(range(1, self.model.levels + 1))

    def _level(self, quality: int) -> int:
        if quality not in self.qualities:
            raise InputError(f"quality={quality}: expected one of {self.qualities[0]}..{self.qualities[-1]}")
        return quality - 1

    def encode(self, pixels: np.ndarray, quality: int) -> bytes:
        """Compress an image at ``quality`` to the bytes of a ``.cnz`` file.

        Args:
            pixels: ``(height, width)`` grey or ``(height, width, 3)`` RGB, uint8.
            quality: 1 .. ``levels``.

        Returns:
            The ``.cnz`` bytes (format version :data:`cnnkit.codec.bitstream.VERSION`).
        """
        level = self._level(quality)
        height, width = pixels.shape[:2]
        x = codec.model_input(pixels, gained.PAD_MULTIPLE)
        y = tf.cast(self.model.analysis(x), tf.float32)
        hyper_gain = np.exp(self.model.log_hyper_gain.numpy()[level].astype(np.float64))
        z_hat = np.round(tf.cast(self.model.hyper_analysis(y), tf.float32).numpy()[0] * hyper_gain)
        indexes, mu_g = self.hyper.decode_parameters(z_hat, level)
        gain = np.exp(self.model.log_gain.numpy()[level].astype(np.float64))
        residual = np.round(y.numpy()[0].astype(np.float64) * gain - mu_g)
        z_part = entropy.encode_symbols(z_hat, self.z_tables[level])
        y_part = entropy.encode_indexed(residual, indexes, self.gaussian)
        channels = 1 if pixels.ndim == 2 else 3
        header = bitstream.Header(self.name, self.weights_hash, quality, height, width, channels)
        return bitstream.pack(header, _Z_LENGTH.pack(len(z_part)) + z_part + y_part)

    def decode(self, data: bytes, source: str = "input") -> np.ndarray:
        """Decompress ``.cnz`` bytes made with these weights, at the quality their header names.

        Args:
            data: the whole file.
            source: names the file in error messages.

        Returns:
            ``(height, width)`` uint8 for grey images, ``(height, width, 3)`` for RGB.

        Raises:
            InputError: a bad file, one made with other weights, or a corrupted payload.
        """
        header, payload = bitstream.unpack(data, source)
        if (header.model, header.weights_hash) != (self.name, self.weights_hash):
            raise InputError(
                f"'{source}': made by {header.model} weights {header.weights_hash.hex()}; "
                f"this codec is {self.name} weights {self.weights_hash.hex()}"
            )
        level = self._level(header.quality)
        step = gained.PAD_MULTIPLE
        y_shape = (-(-header.height // step) * step // gained.Y_DOWNSAMPLING, -(-header.width // step) * step // gained.Y_DOWNSAMPLING)
        try:
            y_hat = self._decode_latents(payload, level, y_shape)
        except (ValueError, RuntimeError, AssertionError) as error:
            raise InputError(f"'{source}': corrupted .cnz payload ({error})") from error
        rgb = codec.cropped_pixels(self.model.synthesis(tf.constant(y_hat[None], tf.float32)), header.height, header.width)
        if header.channels == 1:
            return np.round(rgb.mean(axis=-1)).astype(np.uint8)
        return rgb

    def _decode_latents(self, payload: bytes, level: int, y_shape: tuple[int, int]) -> np.ndarray:
        """``y_hat`` ``(H/16, W/16, M)`` float64, ungained, from a payload (see the module docstring).

        Raises:
            ValueError: a payload that does not split or decode.
        """
        if len(payload) < _Z_LENGTH.size:
            raise ValueError("payload shorter than its z length")
        (z_length,) = _Z_LENGTH.unpack_from(payload)
        z_end = _Z_LENGTH.size + z_length
        if z_end > len(payload):
            raise ValueError(f"z part of {z_length} bytes does not fit a payload of {len(payload)}")
        ratio = gained.PAD_MULTIPLE // gained.Y_DOWNSAMPLING
        z_shape = (y_shape[0] // ratio, y_shape[1] // ratio)
        z_hat = entropy.decode_symbols(payload[_Z_LENGTH.size : z_end], self.z_tables[level], z_shape)
        indexes, mu_g = self.hyper.decode_parameters(z_hat, level)
        residual = entropy.decode_indexed(payload[z_end:], indexes, self.gaussian)
        inverse_gain = np.exp(self.model.log_inverse_gain.numpy()[level].astype(np.float64))
        return (residual + mu_g) * inverse_gain


def codec_input_z(model: gained.GainedHyperprior, photos: list[np.ndarray]) -> list[np.ndarray]:
    """Ungained ``z = h_a(g_a(x))`` of each photo, ``(H/64, W/64, N)`` float64 (to calibrate the integer ``h_s``)."""
    out = []
    for pixels in photos:
        y = model.analysis(codec.model_input(pixels, gained.PAD_MULTIPLE))
        out.append(tf.cast(model.hyper_analysis(tf.cast(y, tf.float32)), tf.float64).numpy()[0])
    return out


def _arrays(model: gained.GainedHyperprior, calibration_photos: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every array of a codec folder (see the module docstring), from a float model."""
    scales = entropy.scale_table()
    hyper = integer_hyper.quantise(model, codec_input_z(model, calibration_photos[:_CALIBRATION_PHOTOS]), scales)
    hyper_paths = {v.path for v in model.hyper_synthesis.weights}
    arrays = {}
    for variable in model.weights:
        if variable.path in hyper_paths:
            continue
        value = variable.numpy()
        half = value.ndim == 4 and any(f"/{layer}" in variable.path for layer in _HALF_PRECISION_LAYERS)
        arrays[f"w/{variable.path}"] = value.astype(np.float16 if half else np.float32)
    arrays.update({f"hs/{key}": value for key, value in hyper.arrays().items()})
    for level, prior in enumerate(model.priors):
        arrays.update({f"z{level}/{key}": value for key, value in entropy.integer_tables(prior).items()})
    gaussian = {**entropy.gaussian_tables(scales), "scales": scales}
    arrays.update({f"gaussian/{key}": value for key, value in gaussian.items()})
    return arrays


def _shards(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Arrays packed in name order into groups of at most :data:`SHARD_BYTES` (a larger array alone)."""
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for key in sorted(arrays):
        nbytes = arrays[key].nbytes
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][key] = arrays[key]
        size += nbytes
    return shards


def export(model: gained.GainedHyperprior, folder: str | os.PathLike, calibration_photos: list[np.ndarray], step: int | None = None) -> Path:
    """Write a codec folder for ``model`` (replacing one that is there, atomically).

    Args:
        model: the trained float model (float32 or mixed precision).
        folder: where to write.
        calibration_photos: RGB uint8 photos, e.g. of the training set, whose hyper latents
            fix the integer ``h_s``'s activation ranges (the first 8 are used).
        step: the training step, recorded in the manifest.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    manifest = {"architecture": gained.ARCHITECTURE, **model.get_config(), "step": step, "shards": []}
    with runs.atomic_folder(folder) as tmp:
        for i, shard in enumerate(_shards(_arrays(model, calibration_photos))):
            name = f"part-{i:02d}.npz"
            with open(tmp / name, "wb") as f:
                np.savez(f, **shard)
            digest = hashlib.sha256((tmp / name).read_bytes()).hexdigest()
            manifest["shards"].append({"file": name, "sha256": digest, "arrays": sorted(shard)})
        runs.write_json(tmp / MANIFEST, manifest)
    return folder


def _read_shard(path: Path, expected_sha256: str) -> dict[str, np.ndarray]:
    """The arrays of one shard, after checking its size, its zip members' sizes and its SHA-256."""
    if path.stat().st_size > 2 * SHARD_BYTES:
        raise ValueError(f"'{path.name}' is {path.stat().st_size} bytes; shards are at most {SHARD_BYTES}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ValueError(f"'{path.name}' does not match the SHA-256 in {MANIFEST}")
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if sum(info.file_size for info in archive.infolist()) > 2 * SHARD_BYTES:
            raise ValueError(f"'{path.name}' unpacks to more than {2 * SHARD_BYTES} bytes")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


def _config(manifest: dict) -> dict:
    """The model config of a manifest, checked to be one this code can build."""
    filters, latent, lmbdas = manifest["filters"], manifest["latent"], manifest["lmbdas"]
    if manifest.get("architecture") != gained.ARCHITECTURE:
        raise ValueError(f"architecture {manifest.get('architecture')!r}; expected {gained.ARCHITECTURE!r}")
    if not all(isinstance(v, int) and 1 <= v <= 1024 for v in (filters, latent)):
        raise ValueError(f"filters={filters}, latent={latent}; expected integers 1..1024")
    if not (isinstance(lmbdas, list) and 1 <= len(lmbdas) <= 64 and all(isinstance(v, (int, float)) and v > 0 for v in lmbdas)):
        raise ValueError("lmbdas: expected a list of 1..64 positive numbers")
    return {"filters": filters, "latent": latent, "lmbdas": lmbdas}


def load(folder: str | os.PathLike) -> VariableRateCodec:
    """Read a codec folder written by :func:`export`.

    Raises:
        InputError: missing, not a codec folder, a shard that does not match its manifest,
            or weights that do not fit the config.
    """
    folder = Path(folder)
    try:
        manifest_bytes = (folder / MANIFEST).read_bytes()
        if len(manifest_bytes) > _MANIFEST_BYTES:
            raise ValueError(f"{MANIFEST} of {len(manifest_bytes)} bytes")
        manifest = json.loads(manifest_bytes)
        config = _config(manifest)
        arrays: dict[str, np.ndarray] = {}
        for shard in manifest["shards"]:
            arrays.update(_read_shard(folder / Path(shard["file"]).name, shard["sha256"]))
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
        raise InputError(f"codec folder '{folder}': missing or not a codec folder ({error})") from error
    model = gained.build(**config)
    hyper = integer_hyper.IntegerHyperSynthesis.from_arrays({k[3:]: v for k, v in arrays.items() if k.startswith("hs/")})
    try:
        hyper_paths = [v.path for v in model.hyper_synthesis.weights]
        hyper_values = [w for layer in hyper.float_weights() for w in layer]
        values = dict(zip(hyper_paths, hyper_values, strict=True))
        values.update({v.path: arrays[f"w/{v.path}"] for v in model.weights if v.path not in values})
        for variable in model.weights:
            variable.assign(values[variable.path].astype(np.float32))
        z_tables = tuple({key: arrays[f"z{level}/{key}"] for key in ("offset", "length", "pmf")} for level in range(model.levels))
        gaussian = {key: arrays[f"gaussian/{key}"] for key in ("offset", "length", "pmf", "scales")}
    except (KeyError, ValueError) as error:
        raise InputError(f"codec folder '{folder}': weights do not fit its config ({error})") from error
    digest = hashlib.sha256(manifest_bytes).digest()[: bitstream.HASH_BYTES]
    return VariableRateCodec(model, hyper, z_tables, gaussian, digest, manifest.get("step"))
