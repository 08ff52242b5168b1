"""The ``.cnz`` file format: a small header, the range-coded payload and a CRC32.

Layout (all integers big-endian)::

    offset  size  field
    0       4     magic b"\\x89CNZ" (the high byte keeps text tools from taking it for ASCII)
    4       1     format version (VERSION; version 1 files, of the factorized codecs, still read)
    5       1     n = length of the model name
    6       n     model name, ASCII (e.g. "factorized")
    6+n     8     weights hash: first 8 bytes of the SHA-256 of the codec file used
    14+n    1     quality level (1 = lowest rate)
    15+n    4     image height in pixels
    19+n    4     image width in pixels
    23+n    1     image channels (1 grey, 3 RGB): what decode writes back
    24+n    4     m = payload length in bytes
    28+n    m     payload (see cnnkit.codec.codec: y, or the hyperprior's z then y)
    28+n+m  4     CRC32 of every byte before it

Every way a file can be wrong maps to its own :class:`~cnnkit.errors.InputError`
message: not a .cnz file (magic), another format version, truncated, trailing
bytes, corrupted (CRC) or nonsensical header fields.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from cnnkit.errors import InputError

__all__ = ["MAGIC", "VERSION", "Header", "pack", "unpack"]

MAGIC = b"\x89CNZ"
# 2: the variable-rate gained hyperprior's payload (cnnkit.codec.variable_rate); the header is unchanged.
VERSION = 2
READABLE_VERSIONS = (1, 2)
HASH_BYTES = 8
# Latents are coded on a 1/16 grid with int32 counts; 2**16 px per side keeps every size in range.
MAX_SIDE = 1 << 16
_SIZES = struct.Struct(">BIIBI")  # quality, height, width, channels, payload length


@dataclass(frozen=True)
class Header:
    """What a ``.cnz`` file says about the image and the codec that made it.

    Attributes:
        model: codec architecture name, e.g. ``"factorized"``.
        weights_hash: ``HASH_BYTES`` bytes identifying the exact codec file.
        quality: quality level, >= 1.
        height: image height in pixels.
        width: image width in pixels.
        channels: 1 (grey) or 3 (RGB).
    """

    model: str
    weights_hash: bytes
    quality: int
    height: int
    width: int
    channels: int


def pack(header: Header, payload: bytes) -> bytes:
    """Serialise a header and payload into the bytes of a ``.cnz`` file.

    Raises:
        ValueError: a field does not fit the format.
    """
    name = header.model.encode("ascii")
    if not 0 < len(name) < 256 or len(header.weights_hash) != HASH_BYTES:
        raise ValueError("model name must be 1-255 ASCII bytes and the hash 8 bytes")
    _check_fields(header, ValueError)
    body = b"".join(
        [
            MAGIC,
            bytes([VERSION, len(name)]),
            name,
            header.weights_hash,
            _SIZES.pack(header.quality, header.height, header.width, header.channels, len(payload)),
            payload,
        ]
    )
    return body + struct.pack(">I", zlib.crc32(body))


def unpack(data: bytes, source: str = "input") -> tuple[Header, bytes]:
    """Parse and check the bytes of a ``.cnz`` file.

    Args:
        data: the whole file.
        source: names the file in error messages.

    Returns:
        ``(header, payload)``.

    Raises:
        InputError: not a .cnz file, unsupported version, truncated, trailing
            data, CRC mismatch or impossible header values.
    """
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise InputError(f"'{source}': not a .cnz file (expected it to start with {MAGIC!r})")
    if len(data) < len(MAGIC) + 2:
        raise InputError(f"'{source}': truncated .cnz file (header incomplete)")
    version, name_length = data[4], data[5]
    if version not in READABLE_VERSIONS:
        raise InputError(f"'{source}': .cnz format version {version} is not supported; expected one of {READABLE_VERSIONS}")
    start = 6 + name_length + HASH_BYTES
    if len(data) < start + _SIZES.size:
        raise InputError(f"'{source}': truncated .cnz file (header incomplete)")
    quality, height, width, channels, payload_length = _SIZES.unpack_from(data, start)
    end = start + _SIZES.size + payload_length
    if len(data) < end + 4:
        raise InputError(f"'{source}': truncated .cnz file ({len(data)} bytes, the header announces {end + 4})")
    if len(data) > end + 4:
        raise InputError(f"'{source}': {len(data) - end - 4} unexpected bytes after the end of the .cnz data")
    (crc,) = struct.unpack_from(">I", data, end)
    if zlib.crc32(data[:end]) != crc:
        raise InputError(f"'{source}': corrupted .cnz file (CRC32 mismatch)")
    try:
        model = data[6 : 6 + name_length].decode("ascii")
    except UnicodeDecodeError:
        raise InputError(f"'{source}': corrupted .cnz file (model name is not ASCII)") from None
    header = Header(model, bytes(data[6 + name_length : start]), quality, height, width, channels)
    _check_fields(header, InputError, source)
    return header, bytes(data[start + _SIZES.size : end])


def _check_fields(header: Header, error: type[Exception], source: str = "header") -> None:
    if not (0 < header.height <= MAX_SIDE and 0 < header.width <= MAX_SIDE):
        raise error(f"'{source}': image size {header.height}x{header.width} outside 1..{MAX_SIDE} px per side")
    if header.channels not in (1, 3):
        raise error(f"'{source}': {header.channels} image channels; expected 1 (grey) or 3 (RGB)")
    if not 0 < header.quality < 256:
        raise error(f"'{source}': quality {header.quality} outside 1..255")
