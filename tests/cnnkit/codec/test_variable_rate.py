"""The shipped form of the variable-rate codec: folder round trip, exact decoding, identity and bad folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from threadpoolctl import threadpool_limits

from cnnkit.codec import bitstream, gained, metrics, variable_rate
from cnnkit.errors import InputError

LMBDAS = (0.002, 0.02, 0.2)


def _photo(seed: int, shape=(70, 90)) -> np.ndarray:
    """A smooth random RGB image (a codec with random weights still codes it to something close)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (shape[0] // 10 + 1, shape[1] // 10 + 1, 3))
    return np.clip(np.kron(coarse, np.ones((10, 10, 1)))[: shape[0], : shape[1]], 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tf.random.set_seed(0)
    model = gained.build(filters=8, latent=12, lmbdas=LMBDAS)
    return variable_rate.export(model, tmp_path_factory.mktemp("codec") / "gained", [_photo(1), _photo(2)], step=123), model


@pytest.fixture(scope="module")
def loaded(folder):
    return variable_rate.load(folder[0])


def test_folder_holds_a_manifest_and_small_shards(folder):
    path, _ = folder
    manifest = json.loads((path / variable_rate.MANIFEST).read_text())
    assert manifest["step"] == 123 and manifest["lmbdas"] == list(LMBDAS)
    for shard in manifest["shards"]:
        assert (path / shard["file"]).stat().st_size <= variable_rate.SHARD_BYTES + 4096


def test_loaded_weights_are_the_float16_rounded_originals(folder, loaded):
    _, model = folder
    original = {v.path: v.numpy() for v in model.weights}
    for variable in loaded.model.weights:
        if "hyper_synthesis" in variable.path:
            # Recovered from 13-bit integers: within half a step of the per-channel scale.
            np.testing.assert_allclose(variable.numpy(), original[variable.path], atol=1e-3 * np.abs(original[variable.path]).max() + 1e-6)
        else:
            np.testing.assert_allclose(variable.numpy(), original[variable.path], rtol=1e-3, atol=1e-7)
    assert loaded.step == 123


@pytest.mark.parametrize("quality", [1, 3])
@pytest.mark.parametrize("grey", [False, True])
def test_round_trip_decodes_what_the_model_reconstructs(loaded, quality, grey):
    pixels = _photo(3)
    if grey:
        pixels = pixels[..., 0]
    data = loaded.encode(pixels, quality)
    header, _ = bitstream.unpack(data)
    assert (header.model, header.quality) == (gained.ARCHITECTURE, quality)
    assert data[4] == bitstream.VERSION == 2
    decoded = loaded.decode(data)
    assert decoded.shape == pixels.shape and decoded.dtype == np.uint8
    # The float model at the same level, with rounded latents, reconstructs nearly the same image.
    rgb = np.repeat(pixels[..., None], 3, -1) if grey else pixels
    x = tf.constant(np.pad(rgb, ((0, 128 - 70), (0, 128 - 90), (0, 0)), mode="edge")[None] / 255.0, tf.float32)
    x_hat = loaded.model(x, level=tf.constant([quality - 1]))["x_hat"].numpy()[0, :70, :90]
    reference = np.clip(np.round(x_hat * 255), 0, 255).astype(np.uint8)
    if grey:
        reference = np.round(reference.mean(-1)).astype(np.uint8)
    assert metrics.psnr(reference, decoded) > 35


def test_decoding_is_identical_with_one_and_two_threads(loaded):
    data = loaded.encode(_photo(4), 2)
    with threadpool_limits(1):
        one = loaded.decode(data)
    with threadpool_limits(2):
        two = loaded.decode(data)
    np.testing.assert_array_equal(one, two)


def test_higher_quality_spends_more_bits(loaded):
    pixels = _photo(5)
    sizes = [len(loaded.encode(pixels, q)) for q in loaded.qualities]
    assert sizes == sorted(sizes)


def test_unknown_quality_and_foreign_weights_are_refused(folder, loaded, tmp_path):
    with pytest.raises(InputError, match="quality=7"):
        loaded.encode(_photo(6), 7)
    other = gained.build(filters=8, latent=12, lmbdas=LMBDAS)
    foreign = variable_rate.load(variable_rate.export(other, tmp_path / "other", [_photo(1)]))
    assert foreign.weights_hash != loaded.weights_hash
    with pytest.raises(InputError, match="weights"):
        foreign.decode(loaded.encode(_photo(6), 1), "x.cnz")


def test_a_changed_shard_or_manifest_is_refused(folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder[0], copy)
    shard = copy / "part-00.npz"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256"):
        variable_rate.load(copy)
    manifest = json.loads((folder[0] / variable_rate.MANIFEST).read_text())
    manifest["filters"] = 10**6
    shutil.copytree(folder[0], tmp_path / "absurd")
    (tmp_path / "absurd" / variable_rate.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="filters"):
        variable_rate.load(tmp_path / "absurd")
    with pytest.raises(InputError, match="missing"):
        variable_rate.load(tmp_path / "nothing")


def test_a_corrupted_payload_is_one_input_error(loaded):
    data = bytearray(loaded.encode(_photo(7), 2))
    header, payload = bitstream.unpack(bytes(data))
    rng = np.random.default_rng(0)
    for _ in range(20):
        mutated = bytearray(payload)
        mutated[rng.integers(len(mutated))] ^= 1 << rng.integers(8)
        try:
            decoded = loaded.decode(bitstream.pack(header, bytes(mutated)))
        except InputError as error:
            assert "corrupted" in str(error)
        else:
            assert decoded.shape == (70, 90, 3)
