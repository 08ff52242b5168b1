"""Read MNIST-format IDX files (LeCun et al., http://yann.lecun.com/exdb/mnist/), raw or gzip.

An IDX file is a big-endian header -- two zero bytes, a type code, the number of
dimensions ``d`` -- then ``d`` big-endian uint32 sizes, then the values in C order.
MNIST uses type ``0x08`` (unsigned byte): images ``(n, rows, cols)``, labels ``(n,)``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from cnnkit.errors import InputError

# Type code -> big-endian NumPy dtype, from the IDX format description.
DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip is detected from its magic bytes, not its name).

    Returns:
        The array with the file's shape and native-endian dtype, e.g. uint8
        ``(n, 28, 28)`` for MNIST images or ``(n,)`` for labels.

    Raises:
        InputError: unreadable file, wrong magic number, unknown type code, or
            a size that disagrees with the header.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise InputError(f"IDX file '{path}': cannot read ({error})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in DTYPES or raw[3] == 0:
        raise InputError(f"IDX file '{path}': wrong magic number {raw[:4].hex() or '(empty)'}; expected 0000 <type> <dims>, e.g. 00000803")
    dtype, ndim = np.dtype(DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"IDX file '{path}': truncated header")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InputError(f"IDX file '{path}': {len(raw) - header} data bytes, but the header's shape {shape} needs {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file (gzip when ``path`` ends in ``.gz``); the inverse of :func:`read`."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items()}
    array = np.asarray(array)
    code = codes[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(np.dtype(DTYPES[code])).tobytes()
    Path(path).write_bytes(gzip.compress(data) if str(path).endswith(".gz") else data)


def read_pair(images: str | os.PathLike, labels: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file ``(n, rows, cols)`` and its labels file ``(n,)``.

    Raises:
        InputError: a bad file (see :func:`read`), wrong ranks, or counts that disagree.
    """
    x, y = read(images), read(labels)
    if x.ndim not in (3, 4):
        raise InputError(f"IDX file '{images}': {x.ndim} dimensions; expected images (n, rows, cols)")
    if y.ndim != 1:
        raise InputError(f"IDX file '{labels}': {y.ndim} dimensions; expected labels (n,)")
    if len(x) != len(y):
        raise InputError(f"IDX files '{images}' and '{labels}': {len(x)} images but {len(y)} labels")
    return x, y
