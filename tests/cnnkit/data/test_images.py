"""Image sources (digits, IDX, folders, tfds via mock data) and the tf.data pipeline."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cnnkit.data import idx, images
from cnnkit.errors import InputError


def write_idx_pair(folder, prefix, n, seed):
    rng = np.random.default_rng(seed)
    idx.write(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 5, 5), dtype=np.uint8))
    idx.write(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 3 + 4)


def test_digits():
    source = images.load("digits")
    assert source.classes == tuple("0123456789") and source.max_value == 16.0
    everything = source.parts["all"]
    assert everything.x.shape == (1797, 8, 8, 1) and everything.x.max() == 16 and not source.flips


def test_idx_train_and_test_pairs(tmp_path):
    write_idx_pair(tmp_path, "train", 12, 0)
    write_idx_pair(tmp_path, "t10k", 6, 1)
    source = images.load(f"idx:{tmp_path}")
    assert source.classes == ("4", "5", "6")
    assert source.parts["train"].x.shape == (12, 5, 5, 1) and len(source.parts["test"]) == 6
    np.testing.assert_array_equal(source.parts["train"].y, np.arange(12) % 3)


def test_idx_single_pair_and_errors(tmp_path):
    write_idx_pair(tmp_path, "t10k", 6, 0)
    assert set(images.load(f"idx:{tmp_path}").parts) == {"all"}
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match="expected train-images"):
        images.load(f"idx:{tmp_path}")
    with pytest.raises(InputError, match="no such folder"):
        images.load(f"idx:{tmp_path / 'nope'}")


def make_folder(root):
    """Two classes, every mode the loader must handle, plus a corrupt, a truncated and a non-image file."""
    cat, dog = root / "cat", root / "dog"
    cat.mkdir(parents=True)
    dog.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (10, 12), dtype=np.uint8), "L").save(cat / "grey.png")
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8), "RGB").save(cat / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (20, 24, 4), dtype=np.uint8), "RGBA").save(cat / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8), "RGB").convert("P").save(dog / "palette.gif")
    Image.fromarray(rng.integers(0, 65536, (7, 9), dtype=np.uint16)).save(dog / "deep.png")  # 16-bit grey
    Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8), "RGB").save(dog / "pic.bmp")
    (dog / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    full = cat / "rgb.jpg"
    (dog / "truncated.jpg").write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    (dog / "notes.txt").write_text("not an image")


def test_folder_modes_sizes_and_bad_files(tmp_path, caplog):
    make_folder(tmp_path)
    source = images.load(f"folder:{tmp_path}")
    assert source.classes == ("cat", "dog") and source.flips
    everything = source.parts["all"]
    # The most common size (12 wide, 10 high) is the default; a colour file makes it RGB.
    assert everything.x.shape == (6, 10, 12, 3) and everything.x.dtype == np.uint8
    np.testing.assert_array_equal(everything.y, [0, 0, 0, 1, 1, 1])
    assert sorted(p.rsplit("/", 1)[1] for p in source.skipped) == ["corrupt.png", "notes.txt", "truncated.jpg"]
    assert "skipped 3 unreadable or non-image file(s)" in caplog.text
    grey = np.asarray(Image.open(tmp_path / "cat" / "grey.png"))
    np.testing.assert_array_equal(everything.x[0], np.repeat(grey[..., None], 3, axis=-1))


def test_folder_resized_grey(tmp_path):
    make_folder(tmp_path)
    source = images.load(f"folder:{tmp_path}", image_size=(4, 5))
    assert source.parts["all"].x.shape == (6, 4, 5, 3)
    deep = images.read_image(tmp_path / "dog" / "deep.png", None, 1)
    raw = np.asarray(Image.open(tmp_path / "dog" / "deep.png"), np.float64)
    np.testing.assert_allclose(deep[..., 0], np.round(raw / 65535 * 255), atol=1)  # 16 bits scaled, not clipped


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        images.load(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(InputError, match="found 0 class subfolder"):
        images.load(f"folder:{tmp_path}")
    (tmp_path / "only").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "only" / "a.png")
    with pytest.raises(InputError, match="found 1 class subfolder"):
        images.load(f"folder:{tmp_path}")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.png").write_bytes(b"junk")
    with pytest.raises(InputError, match="other hold no readable image"):
        images.load(f"folder:{tmp_path}")
    (tmp_path / "only" / "a.png").write_bytes(b"junk")
    with pytest.raises(InputError, match="no readable image among 2 file"):
        images.load(f"folder:{tmp_path}")


def test_unknown_spec():
    with pytest.raises(InputError, match="expected one of: digits, idx:DIR, folder:DIR, tfds:NAME"):
        images.load("mnist")


def test_tfds_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=8):
        source = images.load("tfds:mnist", data_dir=tmp_path)
    assert source.classes == tuple(str(i) for i in range(10)) and not source.flips
    # Mock data carries no split metadata, so the loader reads "train" as the whole dataset.
    assert set(source.parts) == {"all"}
    assert source.parts["all"].x.shape == (8, 28, 28, 1) and source.parts["all"].x.dtype == np.uint8
    assert source.parts["all"].y.max() < 10


def test_tfds_unknown_and_offline(tmp_path):
    with pytest.raises(InputError, match="no such tfds dataset"):
        images.load("tfds:no_such_dataset_xyz", data_dir=tmp_path)


def test_tfds_offline_names_the_alternatives(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(InputError, match="not cached .* download failed \\(Failed to resolve host\\); offline, use one of: digits"):
        images.load("tfds:mnist", data_dir=tmp_path)


def test_preprocess_scales_converts_and_resizes():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)
    grey = images.preprocess(rgb, max_value=255.0, size=(6, 6), channels=1).numpy()
    luma = np.stack([np.asarray(Image.fromarray(im).convert("L"), np.float32) / 255 for im in rgb])[..., None]
    np.testing.assert_allclose(grey, luma, atol=1 / 255 + 1e-6)  # ITU-R 601-2 luma, like Pillow
    up = images.preprocess(np.full((4, 4, 1), 8.0, np.float32), max_value=16.0, size=(8, 8), channels=3).numpy()
    assert up.shape == (8, 8, 3) and np.allclose(up, 0.5)


def test_pipeline_batches_shuffles_and_augments():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    data = images.ImageSet(x * 20, np.arange(10))
    plain = list(images.pipeline(data, max_value=255.0, size=(4, 4), channels=1, batch_size=4))
    assert [b[0].shape for b in plain] == [(4, 4, 4, 1), (4, 4, 4, 1), (2, 4, 4, 1)]
    assert plain[0][0].dtype == tf.float32
    np.testing.assert_allclose(plain[0][0].numpy()[:, 0, 0, 0], np.arange(4) * 20 / 255, rtol=1e-6)
    shuffled = images.pipeline(data, max_value=255.0, size=(4, 4), channels=1, batch_size=10, shuffle_seed=0)
    first, second = (next(iter(shuffled))[1].numpy() for _ in range(2))
    assert sorted(first) == list(range(10)) and list(first) != list(second)  # reshuffled every epoch
    augmented = images.pipeline(data, max_value=255.0, size=(4, 4), channels=1, batch_size=10, augment=images.augmenter(flips=True, seed=0))
    x_aug, y_aug = next(iter(augmented))
    assert x_aug.shape == (10, 4, 4, 1) and list(y_aug.numpy()) == list(range(10))


def test_augmented_pipeline_is_reproducible():
    x = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    data = images.ImageSet(x, np.arange(64) % 2)

    def epoch(augment):
        ds = images.pipeline(data, max_value=255.0, size=(8, 8), channels=1, batch_size=8, shuffle_seed=0, augment=augment)
        return np.concatenate([batch.numpy() for batch, _ in ds])

    first, second = (epoch(images.augmenter(flips=False, seed=0)) for _ in range(2))
    np.testing.assert_array_equal(first, second)  # the same seed, the same augmented images
    assert not np.allclose(first, epoch(None))  # and they were augmented
