"""The .cnz container: round trip, and a distinct InputError for each kind of bad file (fuzzed)."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnkit.codec import bitstream
from cnnkit.errors import InputError

HEADER = bitstream.Header("factorized", bytes(range(8)), 3, 37, 53, 3)
PAYLOAD = bytes(range(40))
GOOD = bitstream.pack(HEADER, PAYLOAD)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


def test_round_trip_and_layout():
    assert bitstream.unpack(GOOD) == (HEADER, PAYLOAD)
    assert GOOD.startswith(bitstream.MAGIC + bytes([bitstream.VERSION, len("factorized")]) + b"factorized")
    # magic, version, name length, name, hash, quality, height, width, channels, payload length, payload, CRC.
    assert len(GOOD) == 4 + 1 + 1 + 10 + 8 + 1 + 4 + 4 + 1 + 4 + len(PAYLOAD) + 4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(40), "not a .cnz file"),
        (b"", "not a .cnz file"),
        (GOOD[:4], "truncated"),
        (GOOD[:20], "truncated"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "unexpected bytes"),
        (GOOD[:4] + bytes([9]) + GOOD[5:], "version 9 is not supported"),
        (GOOD[:-8] + bytes([GOOD[-8] ^ 0x10]) + GOOD[-7:], "CRC32 mismatch"),
        (GOOD[:-1] + bytes([GOOD[-1] ^ 1]), "CRC32 mismatch"),
    ],
    ids=["foreign", "empty", "magic-only", "header-cut", "crc-cut", "trailing", "version", "payload-bit", "crc-bit"],
)
def test_each_kind_of_bad_file_has_its_own_message(data, message):
    with pytest.raises(InputError, match=message):
        bitstream.unpack(data, "x.cnz")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (bitstream.Header("factorized", bytes(8), 3, 0, 53, 3), "image size"),
        (bitstream.Header("factorized", bytes(8), 3, 37, 53, 4), "channels"),
        (bitstream.Header("factorized", bytes(8), 0, 37, 53, 3), "quality"),
    ],
)
def test_impossible_header_fields_are_refused_even_with_a_valid_crc(header, message):
    body = bitstream.MAGIC + bytes([1, 10]) + b"factorized" + header.weights_hash
    body += struct.pack(">BIIBI", header.quality, header.height, header.width, header.channels, 0)
    with pytest.raises(InputError, match=message):
        bitstream.unpack(_with_crc(body))
    with pytest.raises(ValueError):
        bitstream.pack(header, b"")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_input_error(data):
    with pytest.raises(InputError):
        bitstream.unpack(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_every_single_byte_change_is_caught(position, flip):
    data = bytearray(GOOD)
    data[position] ^= flip
    with pytest.raises(InputError):
        bitstream.unpack(bytes(data))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(GOOD) - 1))
def test_every_truncation_is_caught(length):
    with pytest.raises(InputError):
        bitstream.unpack(GOOD[:length])
