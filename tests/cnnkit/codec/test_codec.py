"""Images <-> .cnz with tiny codecs (factorized and hyperprior): exact sizes and modes, real file rate, determinism, wrong-codec and fuzzed files."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnkit.codec import bitstream, codec
from cnnkit.codec.metrics import bits_per_pixel
from cnnkit.errors import InputError


def _image(mode: str, height: int, width: int) -> Image.Image:
    rng = np.random.default_rng(height * 1000 + width)
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    return rgb.convert(mode)


@pytest.mark.parametrize(
    ("mode", "channels"), [("RGB", 3), ("L", 1), ("RGBA", 3), ("P", 3), ("LA", 1), ("CMYK", 3), ("I;16", 1)]
)
@pytest.mark.parametrize(("height", "width"), [(1, 1), (16, 16), (17, 33), (40, 23)])
def test_round_trip_keeps_exact_size_and_grey_or_rgb(tiny_codec, mode, channels, height, width):
    pixels = codec.to_pixels(_image(mode, height, width))
    assert pixels.ndim == (2 if channels == 1 else 3)
    data = tiny_codec.encode(pixels)
    header, _ = bitstream.unpack(data)
    assert (header.height, header.width, header.channels) == (height, width, channels)
    decoded = tiny_codec.decode(data)
    assert decoded.shape == pixels.shape and decoded.dtype == np.uint8


def test_unquantised_reconstruction_is_the_synthesis_of_unrounded_latents_cropped_back(tiny_codec):
    grey = codec.to_pixels(_image("L", 17, 33))
    padded = np.pad(np.repeat(grey[..., None], 3, axis=-1), ((0, 15), (0, 15), (0, 0)), mode="edge")
    y = tiny_codec.model.analysis(padded[None].astype(np.float32) / 255.0)
    expected = np.clip(np.round(tiny_codec.model.synthesis(y).numpy()[0, :17, :33] * 255.0), 0, 255)
    unquantised = tiny_codec.unquantised_reconstruction(grey)
    assert unquantised.shape == (17, 33, 3) and unquantised.dtype == np.uint8
    np.testing.assert_array_equal(unquantised, expected)
    # ...and not the file's rounded latents: decoding a file gives another picture.
    rounded = tiny_codec.model.synthesis(np.round(y)).numpy()[0, :17, :33]
    assert not np.array_equal(expected, np.clip(np.round(rounded * 255.0), 0, 255))


def test_rgba_and_palette_are_coded_as_their_rgb_conversion():
    image = _image("RGBA", 5, 7)
    np.testing.assert_array_equal(codec.to_pixels(image), np.asarray(image.convert("RGB")))
    palette = _image("P", 5, 7)
    np.testing.assert_array_equal(codec.to_pixels(palette), np.asarray(palette.convert("RGB")))


def test_sixteen_bit_grey_is_scaled_to_eight_bits():
    image = Image.fromarray(np.array([[0, 65535, 32896]], np.uint16))
    np.testing.assert_array_equal(codec.to_pixels(image), [[0, 255, 128]])


def test_file_rate_is_eight_bits_per_byte_per_pixel(tiny_codec, tmp_path):
    pixels = codec.to_pixels(_image("RGB", 24, 40))
    path = tmp_path / "a.cnz"
    path.write_bytes(tiny_codec.encode(pixels))
    assert bits_per_pixel(path.stat().st_size, 24, 40) == 8 * path.stat().st_size / (24 * 40)


def test_a_file_decodes_only_with_the_codec_that_made_it(tiny_weights, tiny_codec):
    other = codec.load(tiny_weights / "factorized-q2.npz")
    data = tiny_codec.encode(codec.to_pixels(_image("RGB", 16, 16)))
    with pytest.raises(InputError, match="quality 1 weights"):
        other.decode(data, "a.cnz")


def test_codec_file_hash_identifies_its_bytes(tiny_weights, tiny_codec):
    digest = hashlib.sha256((tiny_weights / "factorized-q1.npz").read_bytes()).digest()
    assert tiny_codec.weights_hash == digest[:8]


def test_missing_or_foreign_codec_file_is_an_input_error(tmp_path):
    (tmp_path / "factorized-q1.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a codec file"):
        codec.load(tmp_path / "factorized-q1.npz")
    with pytest.raises(InputError, match="no codec files"):
        codec.find(tmp_path / "empty", "factorized")


def test_decode_is_bit_identical_in_another_process(tiny_weights, tiny_hyperprior_file, tmp_path):
    """Both payload kinds: the hyperprior's also depends on the scale indexes the decoder recomputes."""
    arguments, here, again = [], [], []
    for codec_file in (tiny_weights / "factorized-q1.npz", tiny_hyperprior_file):
        loaded = codec.load(codec_file)
        data = loaded.encode(codec.to_pixels(_image("RGB", 33, 47)))
        (tmp_path / f"{codec_file.stem}.cnz").write_bytes(data)
        arguments += [str(codec_file), str(tmp_path / f"{codec_file.stem}.cnz")]
        here.append(hashlib.sha256(loaded.decode(data).tobytes()).hexdigest())
        again.append(hashlib.sha256(codec.load(codec_file).decode(data).tobytes()).hexdigest())
    script = (
        "import hashlib, sys; from cnnkit.codec import codec\n"
        "for weights, cnz in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    d = open(cnz, 'rb').read(); print(hashlib.sha256(codec.load(weights).decode(d).tobytes()).hexdigest())"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, *arguments], capture_output=True, text=True, check=True
    ).stdout.split()[-2:]
    assert here == again == other


@pytest.fixture(scope="module")
def original(tiny_codec):
    return tiny_codec.encode(codec.to_pixels(_image("RGB", 20, 20)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_never_decode_to_garbage(tiny_codec, original, data):
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(mutated)))
    mutated = bytes(mutated[:cut])
    if mutated == original:
        assert tiny_codec.decode(mutated).shape == (20, 20, 3)
        return
    with pytest.raises(InputError):
        tiny_codec.decode(mutated)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_never_decode(tiny_codec, data):
    with pytest.raises(InputError):
        tiny_codec.decode(bitstream.MAGIC + data)


# --- the hyperprior codec: z then y in the payload ------------------------------


@pytest.mark.parametrize(("mode", "height", "width"), [("RGB", 1, 1), ("RGB", 17, 33), ("L", 70, 65), ("RGB", 64, 128)])
def test_hyperprior_round_trip_keeps_exact_size_and_is_deterministic(tiny_hyperprior, mode, height, width):
    pixels = codec.to_pixels(_image(mode, height, width))
    data = tiny_hyperprior.encode(pixels)
    header, _ = bitstream.unpack(data)
    assert (header.model, header.height, header.width) == ("hyperprior", height, width)
    decoded = tiny_hyperprior.decode(data)
    assert decoded.shape == pixels.shape and decoded.dtype == np.uint8
    assert tiny_hyperprior.encode(pixels) == data
    np.testing.assert_array_equal(tiny_hyperprior.decode(data), decoded)


def test_hyperprior_codec_file_holds_the_scales_and_gaussian_tables(tiny_hyperprior):
    from cnnkit.codec import entropy

    np.testing.assert_array_equal(tiny_hyperprior.gaussian["scales"], entropy.scale_table())
    assert tiny_hyperprior.gaussian["pmf"].dtype == np.int32
    assert tiny_hyperprior.model.pad_multiple == 64


def test_hyperprior_file_rate_follows_the_models_estimate_after_a_few_training_steps(tmp_path):
    import keras
    import tensorflow as tf

    from cnnkit.codec import models

    keras.utils.set_random_seed(0)
    model = models.build("hyperprior", filters=8, latent=8, lmbda=0.01)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    y, x = np.mgrid[0:64, 0:128] / 64.0
    pixels = np.round(np.stack([x / 2, y, x * y / 2], -1) * 255).astype(np.uint8)
    batch = tf.constant(pixels[None] / np.float32(255))
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(10), epochs=1, verbose=0, shuffle=False)
    trained = codec.load(codec.save(model, 1, tmp_path / "hyperprior-q1.npz"))
    estimate = float(trained.model.test_step(batch)["bpp"]) * 64 * 128
    _, payload = bitstream.unpack(trained.encode(pixels))
    # The payload adds the 32-bit z length and at most one partial 32-bit word per part; y's scales
    # are rounded up to the table, which costs a few percent.
    coded_bits = 8 * len(payload) - 32
    assert 0.85 * estimate <= coded_bits <= 1.15 * estimate + 64


def _repacked(data: bytes, payload: bytes) -> bytes:
    """``data`` with another payload and a valid CRC: what reaches the entropy decoder."""
    header, _ = bitstream.unpack(data)
    return bitstream.pack(header, payload)


@pytest.fixture(scope="module")
def hyperprior_file(tiny_hyperprior):
    return tiny_hyperprior.encode(codec.to_pixels(_image("RGB", 40, 70)))


def test_hyperprior_payload_that_does_not_split_is_an_input_error(tiny_hyperprior, hyperprior_file):
    _, payload = bitstream.unpack(hyperprior_file)
    (z_length,) = struct.unpack_from(">I", payload)
    broken = [
        payload[:3],  # shorter than the z length
        struct.pack(">I", len(payload)) + payload[4:],  # z part longer than the payload
        payload[:-1],  # y part not whole words
        payload + payload[-8:],  # words left over (the range decoder cannot tell one spare word)
        struct.pack(">I", z_length + 8) + payload[4:],  # y's first words read as z's
    ]
    for bad in broken:
        with pytest.raises(InputError, match="corrupted .cnz payload"):
            tiny_hyperprior.decode(_repacked(hyperprior_file, bad), "a.cnz")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_hyperprior_payloads_fail_cleanly_or_keep_the_size(tiny_hyperprior, hyperprior_file, data):
    """Past the CRC (recomputed here), any payload either decodes to an image of the header's size or is an InputError."""
    _, payload = bitstream.unpack(hyperprior_file)
    mutated = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    mutated = bytes(mutated[: data.draw(st.integers(0, len(mutated)))])
    try:
        decoded = tiny_hyperprior.decode(_repacked(hyperprior_file, mutated))
    except InputError:
        return
    assert decoded.shape == (40, 70, 3)
