"""The IDX reader on tiny generated files."""

import gzip

import numpy as np
import pytest

from cnnkit.data import idx
from cnnkit.errors import InputError


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip_raw_and_gzip(tmp_path, name):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    idx.write(tmp_path / name, x)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    np.testing.assert_array_equal(idx.read(tmp_path / name), x)


def test_header_by_hand(tmp_path):
    # magic 0x00000801 (ubyte, 1 dim), size 3, then the labels
    (tmp_path / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9]))
    np.testing.assert_array_equal(idx.read(tmp_path / "labels"), [7, 0, 9])
    big = np.array([[1, -2], [300, 4]], np.int32)
    idx.write(tmp_path / "ints", big)
    assert (tmp_path / "ints").read_bytes()[:12] == bytes([0, 0, 0x0C, 2, 0, 0, 0, 2, 0, 0, 0, 2])
    np.testing.assert_array_equal(idx.read(tmp_path / "ints"), big)


def test_wrong_magic(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(InputError, match="wrong magic number 12340801"):
        idx.read(tmp_path / "bad")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"PK\x03\x04zip"))
    with pytest.raises(InputError, match="wrong magic"):
        idx.read(tmp_path / "bad.gz")


def test_truncated_data(tmp_path):
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(InputError, match="2 data bytes, but the header's shape \\(5,\\) needs 5"):
        idx.read(tmp_path / "short")


def test_pair_counts_must_agree(tmp_path):
    idx.write(tmp_path / "i", np.zeros((3, 2, 2), np.uint8))
    idx.write(tmp_path / "l", np.zeros(4, np.uint8))
    with pytest.raises(InputError, match="3 images but 4 labels"):
        idx.read_pair(tmp_path / "i", tmp_path / "l")
    with pytest.raises(InputError, match="expected labels"):
        idx.read_pair(tmp_path / "i", tmp_path / "i")
