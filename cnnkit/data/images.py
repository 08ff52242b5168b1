"""Image-classification data: the sources (digits, IDX, class folders, tfds) and the tf.data input pipeline.

A dataset spec names a source:

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, values 0..16);
* ``idx:DIR``: MNIST-format IDX files, a ``train-*``/``t10k-*`` pair of pairs or one pair;
* ``folder:DIR``: one subfolder per class of PNG/JPEG/BMP/GIF files of any size and mode;
* ``tfds:NAME``: a tensorflow-datasets image-classification dataset.

:func:`load` returns the raw pixels (uint8, or digits' 0..16 floats) with their
native channels; :func:`pipeline` turns a part of it into batches of float32
``(batch, height, width, channels)`` in [0, 1] at the run's size and channels.
The same :func:`preprocess` serves new data at evaluate/predict time.
"""

from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cnnkit.data import idx
from cnnkit.errors import InputError

log = logging.getLogger(__name__)

SPECS = ("digits", "idx:DIR", "folder:DIR", "tfds:NAME")
OFFLINE_SPECS = "digits, idx:DIR, folder:DIR"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Largest side of the default size of a folder of images, and the square size
# of tfds datasets whose images vary in size: enough to recognise most objects
# while keeping a CPU epoch short. --image-size overrides both.
MAX_DEFAULT_SIDE = 64
# tfds datasets of characters and digits, which a horizontal flip turns into another class or none.
NO_FLIP_TFDS = frozenset({"mnist", "emnist", "kmnist", "binarized_mnist", "svhn_cropped", "omniglot", "cmaterdb"})
# Pillow modes whose pixels are one grey level.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


@dataclass(frozen=True)
class ImageSet:
    """Images and their labels.

    Attributes:
        x: ``(n, height, width, channels)`` pixels in [0, ``Source.max_value``]
            (uint8 for every source but digits).
        y: ``(n,)`` int64 class indices.
    """

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, indices: np.ndarray) -> ImageSet:
        """The examples at ``indices``."""
        return ImageSet(self.x[indices], self.y[indices])


@dataclass(frozen=True)
class Source:
    """A loaded dataset.

    Attributes:
        spec: the spec it was loaded from.
        classes: class names; label ``i`` is ``classes[i]``.
        parts: ``{"train": ..., "test": ...}`` where the dataset defines them, else ``{"all": ...}``.
        max_value: the pixel value that means full intensity (255, or 16 for digits).
        flips: whether a horizontal flip keeps an image's class.
        skipped: unreadable files of a folder, ``{path: reason}``.
    """

    spec: str
    classes: tuple[str, ...]
    parts: dict[str, ImageSet]
    max_value: float
    flips: bool
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of the stored pixels."""
        return next(iter(self.parts.values())).x.shape[1:]

    def everything(self) -> ImageSet:
        """All parts concatenated (train before test)."""
        sets = list(self.parts.values())
        return ImageSet(np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]))


def load(spec: str, *, image_size: tuple[int, int] | None = None, data_dir: str | os.PathLike = "data/tfds") -> Source:
    """Load the dataset named by ``spec``.

    Args:
        spec: ``digits``, ``idx:DIR``, ``folder:DIR`` or ``tfds:NAME``.
        image_size: ``(height, width)``. Folders and variable-size tfds
            datasets are resized to it while loading (their images must share
            one size to be stacked); other sources keep their native size and
            :func:`preprocess` resizes them. ``None``: a folder's most common
            size, shrunk to at most ``MAX_DEFAULT_SIDE``; variable-size tfds:
            ``MAX_DEFAULT_SIDE`` square.
        data_dir: the tfds cache.

    Raises:
        InputError: an unknown spec, a missing or unusable dataset (see each source).
    """
    kind, _, arg = spec.partition(":")
    if kind == "digits" and not arg:
        return _digits(spec)
    if kind in ("idx", "folder", "tfds") and arg:
        return {"idx": _idx, "folder": _folder, "tfds": _tfds}[kind](spec, arg, image_size, data_dir)
    raise InputError(f"--dataset '{spec}': unknown; expected one of: {', '.join(SPECS)}")


def _digits(spec: str) -> Source:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.float32)[..., None]
    return Source(spec, tuple(str(c) for c in digits.target_names), {"all": ImageSet(x, digits.target.astype(np.int64))}, 16.0, False)


def _idx(spec: str, directory: str, image_size, data_dir) -> Source:
    """IDX files in ``directory``: ``train-images*``/``train-labels*`` with ``t10k-*``, or one images/labels pair."""
    root = _existing_dir(spec, directory)
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))

    def pick(prefix: str, kind: str) -> list[Path]:
        return [p for p in files if p.name.startswith(prefix) and kind in p.name]

    pairs = {part: (pick(prefix, "images"), pick(prefix, "labels")) for part, prefix in (("train", "train"), ("test", "t10k"))}
    if not all(all(p) for p in pairs.values()):
        pairs = {"all": (pick("", "images"), pick("", "labels"))}
    for part, (images, labels) in pairs.items():
        if len(images) != 1 or len(labels) != 1:
            raise InputError(
                f"--dataset '{spec}': expected train-images/train-labels and t10k-images/t10k-labels IDX files, "
                f"or one *images* and one *labels* file; found {[p.name for p in files] or 'no files'}"
            )
    loaded = {part: idx.read_pair(images[0], labels[0]) for part, (images, labels) in pairs.items()}
    shapes = {x.shape[1:] for x, _ in loaded.values()}
    if len(shapes) > 1:
        raise InputError(f"--dataset '{spec}': train and test images differ in shape {sorted(shapes)}")
    values = np.unique(np.concatenate([y for _, y in loaded.values()]))
    parts = {
        part: ImageSet(x if x.ndim == 4 else x[..., None], np.searchsorted(values, y).astype(np.int64))
        for part, (x, y) in loaded.items()
    }
    return Source(spec, tuple(str(v) for v in values), parts, 255.0, False)


def _folder(spec: str, directory: str, image_size, data_dir) -> Source:
    """One subfolder per class; every file under it (recursively) is an example."""
    root = _existing_dir(spec, directory)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise InputError(f"--dataset '{spec}': found {len(class_dirs)} class subfolder(s); expected one subfolder per class, at least 2")
    skipped: dict[str, str] = {}
    headers: list[tuple[Path, int, Image.Image]] = []
    for label, class_dir in enumerate(class_dirs):
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                skipped[str(path)] = f"not a {'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} file"
                continue
            try:
                headers.append((path, label, Image.open(path)))  # reads the header only
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
                skipped[str(path)] = f"unreadable ({error})"
    if image_size is None and headers:
        sizes = collections.Counter(image.size for *_, image in headers)
        width, height = sizes.most_common(1)[0][0]
        scale = min(1.0, MAX_DEFAULT_SIDE / max(width, height))
        image_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    channels = 3 if any(image.mode not in GREY_MODES for *_, image in headers) else 1
    xs, ys = [], []
    for path, label, image in headers:
        try:
            with image:
                xs.append(to_array(image, image_size, channels))
            ys.append(label)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            skipped[str(path)] = f"corrupt ({error})"
    for path, reason in skipped.items():
        log.warning("skipped %s: %s", path, reason)
    if not xs:
        raise InputError(f"--dataset '{spec}': no readable image among {len(skipped)} file(s)")
    counts = np.bincount(ys, minlength=len(class_dirs))
    if not counts.all():
        empty = [d.name for d, n in zip(class_dirs, counts) if not n]
        raise InputError(f"--dataset '{spec}': class folder(s) {', '.join(empty)} hold no readable image")
    if skipped:
        log.warning("--dataset '%s': skipped %d unreadable or non-image file(s), kept %d", spec, len(skipped), len(xs))
    parts = {"all": ImageSet(np.stack(xs), np.asarray(ys, np.int64))}
    return Source(spec, tuple(d.name for d in class_dirs), parts, 255.0, True, skipped)


def _tfds(spec: str, name: str, image_size, data_dir) -> Source:
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    except tfds.core.registered.DatasetNotFoundError:
        raise InputError(f"--dataset '{spec}': no such tfds dataset (e.g. tfds:mnist, tfds:fashion_mnist, tfds:cifar10)") from None
    features = builder.info.features
    if builder.info.supervised_keys != ("image", "label") or not isinstance(features["label"], tfds.features.ClassLabel):
        raise InputError(f"--dataset '{spec}': not an image-classification dataset (needs 'image' and a class 'label')")
    if not builder.is_prepared():
        try:
            builder.download_and_prepare()
        except Exception as error:  # noqa: BLE001 - any download failure means "not available"
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise InputError(
                f"--dataset '{spec}': not cached under --data-dir {data_dir} and the download failed ({reason}); "
                f"offline, use one of: {OFFLINE_SPECS}"
            ) from None
    height, width, _ = features["image"].shape
    if image_size is None and (height is None or width is None):
        image_size = (MAX_DEFAULT_SIDE, MAX_DEFAULT_SIDE)
    parts = {}
    for part in ("train", "test") if "test" in builder.info.splits else ("all",):
        ds = builder.as_dataset(split="train" if part == "all" else part, as_supervised=True, shuffle_files=False)
        if image_size is not None:
            ds = ds.map(lambda x, y: (tf.cast(tf.image.resize(x, image_size, antialias=True) + 0.5, tf.uint8), y))
        batches = list(tfds.as_numpy(ds.batch(1024)))
        parts[part] = ImageSet(np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches]).astype(np.int64))
    return Source(spec, tuple(features["label"].names), parts, 255.0, name.split("/")[0] not in NO_FLIP_TFDS)


def _existing_dir(spec: str, directory: str) -> Path:
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise InputError(f"--dataset '{spec}': no such folder '{root}'")
    return root


def to_array(image: Image.Image, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """Decode a Pillow image of any mode into uint8 ``(height, width, channels)`` at ``size``.

    16- and 32-bit greys are scaled into 8 bits; a palette becomes RGB(A);
    transparent pixels are composited onto black (the background of digit
    datasets); colour becomes grey by ITU-R 601-2 luma (Pillow's ``"L"``).

    Args:
        image: an opened image (decoded here, so truncated files raise here).
        size: ``(height, width)``, or ``None`` to keep the image's size.
        channels: 1 (grey) or 3 (RGB).

    Raises:
        OSError: a corrupt or truncated file.
    """
    image.load()
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        pixels = np.asarray(image, np.float64)
        full = 255.0 if pixels.max(initial=0) <= 255 else 65535.0
        image = Image.fromarray(np.clip(pixels / full * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def read_image(path: str | os.PathLike, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """One image file as uint8 ``(height, width, channels)`` (see :func:`to_array`).

    Raises:
        InputError: the file is missing, not an image, or corrupt.
    """
    try:
        with Image.open(path) as image:
            return to_array(image, size, channels)
    except FileNotFoundError:
        raise InputError(f"FILE '{path}': no such file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"FILE '{path}': not a readable image ({error})") from None


def preprocess(x: tf.Tensor, *, max_value: float, size: tuple[int, int], channels: int) -> tf.Tensor:
    """Scale pixels to float32 [0, 1], match ``channels`` and resize to ``size``.

    Args:
        x: ``(..., height, width, c)`` pixels in [0, ``max_value``], one image or a batch.
        max_value: the value of full intensity.
        size: ``(height, width)`` wanted.
        channels: 1 or 3 wanted; grey is repeated into RGB, RGB becomes grey
            by ITU-R 601-2 luma (``tf.image.rgb_to_grayscale``).

    Returns:
        ``(..., size[0], size[1], channels)`` float32 in [0, 1].
    """
    x = tf.cast(x, tf.float32) / max_value
    if x.shape[-1] != channels:
        x = tf.image.rgb_to_grayscale(x[..., :3]) if channels == 1 else tf.repeat(x[..., :1], 3, axis=-1)
    if tuple(x.shape[-3:-1]) != tuple(size):
        # Bilinear with antialiasing: a proper low-pass filter when shrinking.
        x = tf.clip_by_value(tf.image.resize(x, size, antialias=True), 0.0, 1.0)
    return x


def augmenter(*, flips: bool, seed: int) -> keras.Sequential:
    """Random shift (10%), rotation (+-10 degrees) and zoom (+-10%), and horizontal flips where ``flips``.

    The classic small affine augmentation of digit and object classifiers
    (Simard et al. 2003, "Best practices for CNNs applied to visual document
    analysis"). Apply to float batches ``(batch, height, width, channels)``.
    """
    layers = [
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
        keras.layers.RandomRotation(10 / 360, fill_mode="constant", seed=seed + 1),
        keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 2),
    ]
    if flips:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 3))
    return keras.Sequential(layers, name="augment")


def pipeline(
    images: ImageSet,
    *,
    max_value: float,
    size: tuple[int, int],
    channels: int,
    batch_size: int,
    shuffle_seed: int | None = None,
    augment: keras.Sequential | None = None,
) -> tf.data.Dataset:
    """Batches of ``(x, y)``: x float32 ``(batch, height, width, channels)`` in [0, 1], y int64 ``(batch,)``.

    Steps: scale/convert/resize once in chunks (:func:`preprocess`), cache the
    result in memory, reshuffle every epoch (when ``shuffle_seed`` is given),
    batch, augment (after batching, so the random layers work on whole
    batches), and prefetch so input work overlaps training.
    """
    ds = tf.data.Dataset.from_tensor_slices((images.x, images.y))
    ds = ds.batch(1024).map(lambda x, y: (preprocess(x, max_value=max_value, size=size, channels=channels), y), tf.data.AUTOTUNE)
    # unbatch() hides the length; stating it lets Keras count the steps of an epoch.
    ds = ds.unbatch().apply(tf.data.experimental.assert_cardinality(len(images))).cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        # One call at a time: the random layers draw from a seed state that parallel
        # calls would advance in a racing order, and the same --seed must give the same run.
        # Prefetching still overlaps this work with training.
        ds = ds.map(lambda x, y: (augment(x, training=True), y))
    return ds.prefetch(tf.data.AUTOTUNE)
