"""Image compression: train a learned codec, encode/decode ``.cnz`` files, measure rate-distortion.

Jobs (each with its frozen config, one field per CLI option of ``cli.py compress``):

* :func:`run` (:class:`Config`) -- the offline main job: code scikit-image's
  sample photos with the shipped codec, report bpp/PSNR/MS-SSIM against JPEG and
  WebP at the same rate, and draw the RD plot and side-by-side crops.
* :func:`encode` / :func:`decode` (:class:`EncodeConfig`, :class:`DecodeConfig`)
  -- image files <-> ``.cnz`` files.
* :func:`evaluate` (:class:`EvalConfig`) -- RD points of every quality level,
  the JPEG/WebP sweeps and the BD-rates on a folder of images.
* :func:`train` (:class:`TrainConfig`) -- fit a codec of :mod:`cnnkit.codec.models`
  on random crops of a folder of photos for ``rate + lmbda * MSE``, resumable,
  with validation on held-out photos, and export it as a codec file.

Shipped codec files live in ``data/weights`` as ``<model>-q<quality>.npz``
(see :mod:`cnnkit.codec.codec`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cnnkit import distribute, runs, training
from cnnkit.codec import baselines, bitstream, codec, metrics, models
from cnnkit.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# The shipped codec files, beside the package in the repository.
WEIGHTS_DIR = str(Path(__file__).resolve().parents[1] / "data" / "weights")


# --- photos -------------------------------------------------------------------


def list_images(folder: str | Path, option: str = "--images") -> list[Path]:
    """Image files (PNG/JPEG/BMP) directly in ``folder``, sorted by name.

    Raises:
        InputError: no such folder, or no image in it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{option} '{folder}': no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{option} '{folder}': no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def split_holdout(files: list[Path], holdout: int) -> tuple[list[Path], list[Path]]:
    """The last ``holdout`` files (by name) are held out for validation; the rest train.

    Raises:
        InputError: fewer than ``holdout + 1`` files.
    """
    if holdout < 1 or len(files) <= holdout:
        raise InputError(f"--holdout {holdout}: need 1 <= holdout < number of images ({len(files)})")
    return files[:-holdout], files[-holdout:]


def read_pixels(path: str | Path) -> np.ndarray:
    """Read an image file as the codec codes it: ``(height, width)`` grey or ``(height, width, 3)`` RGB uint8.

    Grey modes stay grey; palette, RGBA and the rest become RGB (see :func:`cnnkit.codec.codec.to_pixels`).

    Raises:
        InputError: unreadable or not an image.
    """
    try:
        with Image.open(path) as image:
            return codec.to_pixels(image)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"'{path}': not a readable image ({error})") from error


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as ``(height, width, 3)`` uint8 RGB."""
    pixels = read_pixels(path)
    return np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels


def _write_png(pixels: np.ndarray, path: Path) -> None:
    tmp = runs.temporary_path(path)
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)


def _write_bytes(data: bytes, path: Path) -> None:
    with runs.atomic_open(path, "wb") as f:
        f.write(data)


def _output_dir(out: str) -> Path:
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"-o/--out '{out}': exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- codecs -------------------------------------------------------------------


def load_codecs(weights: str | None, model: str) -> dict[int, codec.Codec]:
    """Every quality level of ``model`` in the folder ``weights`` (None: the shipped codecs), loaded.

    Raises:
        InputError: unknown model, or no codec files for it there.
    """
    if model not in models.names():
        raise InputError(f"--model {model!r}: unknown; expected one of: {', '.join(models.names())}")
    return {q: codec.load(path) for q, path in codec.find(weights or WEIGHTS_DIR, model).items()}


def check_refine(steps: int) -> None:
    """Raise InputError unless ``steps`` (``--refine``) is a count of refinement steps."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise InputError(f"--refine {steps!r}: expected a whole number of steps, 0 (off) or more")


def _pick(codecs: dict[int, codec.Codec], quality: int) -> codec.Codec:
    if quality not in codecs:
        raise InputError(f"--quality {quality}: not available; expected one of: {', '.join(map(str, codecs))}")
    return codecs[quality]


def rate_distortion(codec_: codec.Codec, pixels: np.ndarray, refine_steps: int = 0) -> tuple[dict, bytes, np.ndarray]:
    """Encode (with ``refine_steps`` of latent refinement) and decode one image; measure the real file rate and the distortion.

    Returns:
        ``({"bpp", "psnr", "ms_ssim", "ms_ssim_scales"}, file bytes, decoded pixels)``.
    """
    data = codec_.encode(pixels, refine_steps)
    decoded = codec_.decode(data)
    ssim, scales = metrics.ms_ssim(pixels, decoded)
    point = {
        "bpp": metrics.bits_per_pixel(len(data), *pixels.shape[:2]),
        "psnr": metrics.psnr(pixels, decoded),
        "ms_ssim": ssim,
        "ms_ssim_scales": scales,
    }
    return point, data, decoded


def _mean_points(points: list[dict]) -> dict:
    ssims = [p["ms_ssim"] for p in points if p["ms_ssim"] is not None]
    return {
        "bpp": float(np.mean([p["bpp"] for p in points])),
        "psnr": float(np.mean([p["psnr"] for p in points])),
        "ms_ssim": float(np.mean(ssims)) if ssims else None,
        # Images too small for any SSIM scale (< 11 px) are left out of the mean, and counted here.
        "ms_ssim_skipped": len(points) - len(ssims),
    }


def rd_report(codecs: dict[int, codec.Codec], images: list[np.ndarray], refine_steps: int = 0) -> dict:
    """RD points of every quality level, JPEG/WebP sweeps interpolated at those rates, and BD-rates.

    Args:
        codecs: quality -> codec.
        images: uint8 pixels, grey or RGB.
        refine_steps: latent refinement steps per encode (see :func:`cnnkit.codec.refine.refine_latents`).

    Returns:
        ``{"codec": [{"quality", "bpp", "psnr", "ms_ssim", "psnr_unquantised", ...}], "jpeg": {...},
        "webp": {...}, "bd_rate": {"jpeg": percent, "webp": percent}}``; each
        baseline entry holds its ``curve`` and ``psnr_at_codec_bpp``.
    """
    rgb = [np.repeat(p[..., None], 3, axis=-1) if p.ndim == 2 else p for p in images]
    points = []
    for quality, codec_ in codecs.items():
        per_image = [rate_distortion(codec_, pixels, refine_steps)[0] for pixels in images]
        # The same transforms with y not rounded: how much of the distortion is the transforms' own.
        unquantised = [metrics.psnr(r, codec_.unquantised_reconstruction(p)) for r, p in zip(rgb, images, strict=True)]
        points.append({"quality": quality, **_mean_points(per_image), "psnr_unquantised": float(np.mean(unquantised))})
    report: dict = {"refine_steps": refine_steps, "codec": points}
    for name in baselines.CODECS:
        curve = baselines.sweep(rgb, name)
        report[name] = {
            "curve": curve,
            "psnr_at_codec_bpp": [
                {"quality": p["quality"], "bpp": p["bpp"], "psnr": baselines.interpolate_psnr(curve, p["bpp"])}
                for p in points
            ],
        }
    report["bd_rate"] = {name: baselines.bd_rate(report[name]["curve"], points) for name in baselines.CODECS}
    return report


# --- the main job -------------------------------------------------------------

# scikit-image's bundled lossless photos: offline, and never seen in training.
SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea")


@dataclass(frozen=True)
class Config:
    """Options of ``compress`` without a subcommand."""

    out: str | None = None  # report folder; default runs/compress-<time>
    quality: int = 3  # quality level of the .cnz files and the per-image table
    model: str = "factorized"  # codec architecture
    weights: str | None = None  # folder of codec files; None: the shipped ones
    max_side: int | None = None  # shrink the sample photos to at most this many pixels per side (quick runs)
    crop: int = 128  # side of the side-by-side crops
    refine: int = 0  # encoder-side latent refinement steps per photo (slower encode, same decoder); 0 = off


def sample_photos(max_side: int | None = None) -> dict[str, np.ndarray]:
    """scikit-image's astronaut, coffee and chelsea photos as RGB uint8, optionally shrunk."""
    import skimage.data

    photos = {}
    for name in SAMPLE_PHOTOS:
        pixels = getattr(skimage.data, name)()
        if max_side and max(pixels.shape[:2]) > max_side:
            image = Image.fromarray(pixels)
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            pixels = np.asarray(image)
        photos[name] = pixels
    return photos


def run(cfg: Config) -> dict:
    """Compress the sample photos, decode them, and report against JPEG and WebP.

    Writes to ``cfg.out``: ``<photo>.cnz`` and the decoded ``<photo>.png`` at
    ``cfg.quality``, ``report.json`` (per photo and mean bpp/PSNR/MS-SSIM, JPEG
    and WebP PSNR at the same bpp, the RD points of every quality level and the
    BD-rates), ``rd.png`` and ``crops.png``.

    Returns:
        The report.
    """
    check_refine(cfg.refine)
    codecs = load_codecs(cfg.weights, cfg.model)
    chosen = _pick(codecs, cfg.quality)
    out = _output_dir(cfg.out or runs.default_out("compress"))
    photos = sample_photos(cfg.max_side)
    per_photo, crops = {}, {}
    for name, pixels in photos.items():
        point, data, decoded = rate_distortion(chosen, pixels, cfg.refine)
        _write_bytes(data, out / f"{name}.cnz")
        _write_png(decoded, out / f"{name}.png")
        row = {"height": pixels.shape[0], "width": pixels.shape[1], "bytes": len(data), **point}
        crops[name] = {"original": pixels, "cnz": (decoded, point)}
        for baseline in baselines.CODECS:
            curve = baselines.sweep([pixels], baseline)
            row[f"{baseline}_psnr_at_same_bpp"] = baselines.interpolate_psnr(curve, point["bpp"])
            closest = min(curve, key=lambda p: abs(p["bpp"] - point["bpp"]))
            data_b, decoded_b = baselines.compress(pixels, baseline, closest["quality"])
            bpp_b = metrics.bits_per_pixel(len(data_b), *pixels.shape[:2])
            crops[name][baseline] = (decoded_b, {"bpp": bpp_b, "psnr": metrics.psnr(pixels, decoded_b)})
        per_photo[name] = row
    mean = {
        key: float(np.mean([r[key] for r in per_photo.values()]))
        for key in ("bpp", "psnr", "ms_ssim", "jpeg_psnr_at_same_bpp", "webp_psnr_at_same_bpp")
        if all(r[key] is not None for r in per_photo.values())
    }
    report = {
        "out": str(out),
        "model": cfg.model,
        "quality": cfg.quality,
        "refine_steps": cfg.refine,
        "latent_ratio": chosen.model.latent_ratio(),
        "photos": per_photo,
        "mean": mean,
        "rd": rd_report(codecs, list(photos.values()), cfg.refine),
    }
    runs.write_json(out / "report.json", report)
    _plot_rd(report["rd"], out / "rd.png", f"{cfg.model} on {', '.join(photos)}")
    _plot_crops(crops, cfg.crop, out / "crops.png")
    return report


def _plot_rd(rd: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot([p["bpp"] for p in rd["codec"]], [p["psnr"] for p in rd["codec"]], "o-", label="cnnkit (.cnz)")
    for name in baselines.CODECS:
        curve = rd[name]["curve"]
        ax.plot([p["bpp"] for p in curve], [p["psnr"] for p in curve], ".--", label=name.upper())
    top = max(p["bpp"] for p in rd["codec"]) * 1.5
    ax.set(xlim=(0, top), xlabel="bits per pixel (file size)", ylabel="PSNR (dB, RGB)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = runs.temporary_path(path)
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _plot_crops(crops: dict, side: int, path: Path) -> None:
    """One row per photo: the centre crop of the original, the .cnz decode, JPEG and WebP at the nearest rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ("original", "cnz", *baselines.CODECS)
    fig, axes = plt.subplots(len(crops), len(columns), figsize=(3 * len(columns), 3 * len(crops)), squeeze=False)
    for row, (name, images) in zip(axes, crops.items()):
        height, width = images["original"].shape[:2]
        top, left = max((height - side) // 2, 0), max((width - side) // 2, 0)
        for ax, column in zip(row, columns):
            pixels, point = (images[column], None) if column == "original" else images[column]
            ax.imshow(pixels[top : top + side, left : left + side], cmap="gray", vmin=0, vmax=255)
            label = f"{name}: original" if point is None else f"{column}: {point['bpp']:.2f} bpp, {point['psnr']:.1f} dB"
            ax.set_title(label, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    tmp = runs.temporary_path(path)
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


# --- encode / decode ------------------------------------------------------------


@dataclass(frozen=True)
class EncodeConfig:
    """Options of ``compress encode``."""

    inputs: tuple[str, ...]  # image files (PNG/JPEG/BMP, any size and mode)
    out: str  # folder for the .cnz files (<stem>.cnz)
    quality: int = 3  # quality level, 1 = lowest rate
    model: str = "factorized"  # codec architecture
    weights: str | None = None  # folder of codec files <model>-q<quality>.npz; None: the shipped ones
    refine: int = 0  # encoder-side latent refinement steps per image (slower encode, same decoder); 0 = off


@dataclass(frozen=True)
class DecodeConfig:
    """Options of ``compress decode``."""

    inputs: tuple[str, ...]  # .cnz files
    out: str  # folder for the decoded PNGs (<stem>.png)
    weights: str | None = None  # folder of codec files; None: the shipped ones


def encode(cfg: EncodeConfig) -> list[dict]:
    """Compress image files to ``<out>/<stem>.cnz``.

    Returns:
        One ``{"input", "output", "height", "width", "channels", "bytes", "bpp"}`` per file.

    Raises:
        InputError: unreadable input, unknown model or quality.
    """
    check_refine(cfg.refine)
    codec_ = _pick(load_codecs(cfg.weights, cfg.model), cfg.quality)
    out = _output_dir(cfg.out)
    results = []
    for path in map(Path, cfg.inputs):
        pixels = read_pixels(path)
        data = codec_.encode(pixels, cfg.refine)
        target = out / f"{path.stem}.cnz"
        _write_bytes(data, target)
        height, width = pixels.shape[:2]
        results.append(
            {
                "input": str(path),
                "output": str(target),
                "height": height,
                "width": width,
                "channels": 1 if pixels.ndim == 2 else 3,
                "bytes": len(data),
                "bpp": metrics.bits_per_pixel(len(data), height, width),
            }
        )
    return results


def decode(cfg: DecodeConfig) -> list[dict]:
    """Decompress ``.cnz`` files to ``<out>/<stem>.png`` (grey PNG for grey sources, RGB otherwise).

    Decoding is deterministic: the same file gives the same pixels in every
    run and process on the same platform (TensorFlow's deterministic ops).

    Returns:
        One ``{"input", "output", "height", "width", "channels"}`` per file.

    Raises:
        InputError: a bad file (see :mod:`cnnkit.codec.bitstream`) or missing codec.
    """
    tf.config.experimental.enable_op_determinism()
    out = _output_dir(cfg.out)
    loaded: dict[tuple[str, int], codec.Codec] = {}
    results = []
    for path in map(Path, cfg.inputs):
        try:
            data = path.read_bytes()
        except OSError as error:
            raise InputError(f"'{path}': cannot read ({error.strerror or error})") from error
        header, _ = bitstream.unpack(data, str(path))
        key = (header.model, header.quality)
        if key not in loaded:
            weights = cfg.weights or WEIGHTS_DIR
            files = codec.find(weights, header.model) if header.model in models.names() else {}
            if header.quality not in files:
                raise InputError(f"'{path}': needs codec {header.model} quality {header.quality}, not in '{weights}'")
            loaded[key] = codec.load(files[header.quality])
        pixels = loaded[key].decode(data, str(path))
        target = out / f"{path.stem}.png"
        _write_png(pixels, target)
        results.append(
            {"input": str(path), "output": str(target), "height": header.height, "width": header.width, "channels": header.channels}
        )
    return results


# --- evaluate -------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """Options of ``compress eval``."""

    images: str  # folder of images to measure on
    model: str = "factorized"  # codec architecture
    weights: str | None = None  # folder of codec files; None: the shipped ones
    refine: int = 0  # encoder-side latent refinement steps per image and level; 0 = off


def evaluate(cfg: EvalConfig) -> dict:
    """Rate-distortion of every quality level on a folder of images, against JPEG and WebP.

    Returns:
        See :func:`rd_report`, plus ``"images"`` (how many were measured).
    """
    check_refine(cfg.refine)
    codecs = load_codecs(cfg.weights, cfg.model)
    images = [read_pixels(p) for p in list_images(cfg.images)]
    return {"images": len(images), **rd_report(codecs, images, cfg.refine)}


# --- train --------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Options of ``compress train``."""

    images: str  # folder of photos; the last `holdout` (by name) are held out for validation
    out: str | None = None  # run folder; default runs/compress-<model>-<lmbda>-<time>; rerun to resume
    model: str = "factorized"  # architecture, see cnnkit.codec.models.names(); hyperprior needs --patch a multiple of 64
    lmbda: float = 0.01  # weight of the MSE (8-bit scale) in rate + lmbda * MSE
    steps: int = 4000  # optimizer steps in total
    patch: int = 256  # side of the random square training crops
    batch: int = 8  # crops per step per replica; the global batch is batch x replicas
    filters: int = 64  # hidden channels N of the transforms (Ballé et al. use 128-192; 64 trains on 2 CPU cores)
    latent: int = 96  # latent channels M (more than N leaves room for the high rates)
    lr: float = 3e-4  # peak Adam learning rate (linear warm-up, then cosine decay); 1e-3 diverges
    holdout: int = 5  # photos held out for validation
    epoch_steps: int = 250  # steps between validations and resume checkpoints
    init: str | None = None  # start from this run's model.keras or codec file (fine-tuning another lmbda; factorized -> hyperprior: the transforms)
    quality: int = 1  # quality level recorded in the exported codec file <out>/<model>-q<quality>.npz
    seed: int = 0  # crop sampling and initialisation
    device: str = "auto"  # auto | cpu | gpu (see cnnkit.distribute.setup_compute)
    strategy: str = "auto"  # auto | one | mirrored | multiworker (TF_CONFIG)
    logical_cpus: int | None = None  # split the CPU into this many logical devices (mirrored on CPU)
    mixed_precision: bool = False  # bfloat16 (CPU) / float16 (GPU) transforms; prior and outputs stay float32
    jit: bool = False  # XLA-compile the train step
    save_every: int | None = None  # also save the resume state every N steps (None: at --epoch-steps only)


def _crops(images: list[np.ndarray], patch: int, batch: int, seed: int) -> tf.data.Dataset:
    """An endless dataset of ``(batch, patch, patch, 3)`` float32 random crops in [0, 1], randomly flipped."""
    rng = np.random.default_rng(seed)

    def generate():
        while True:
            out = np.empty((batch, patch, patch, 3), np.float32)
            for i in range(batch):
                image = images[rng.integers(len(images))]
                top = rng.integers(image.shape[0] - patch + 1)
                left = rng.integers(image.shape[1] - patch + 1)
                crop = image[top : top + patch, left : left + patch]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                if rng.random() < 0.5:
                    crop = crop[::-1]
                out[i] = crop / 255.0
            yield out

    signature = tf.TensorSpec((batch, patch, patch, 3), tf.float32)
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)


def _validation(images: list[np.ndarray], patch: int, batch: int) -> tf.data.Dataset:
    """Batches of ``batch`` centre ``patch`` x ``patch`` crops of the held-out photos."""
    crops = []
    for image in images:
        top, left = (image.shape[0] - patch) // 2, (image.shape[1] - patch) // 2
        crops.append(image[top : top + patch, left : left + patch] / np.float32(255.0))
    return tf.data.Dataset.from_tensor_slices(np.stack(crops)).batch(batch)


# --init across architectures: (from, to). The scale hyperprior's analysis and synthesis transforms
# are the factorized model's (Balle et al. 2018 add h_a and h_s to the 2017 model), so a trained
# factorized codec gives them a warm start; only h_a, h_s and the prior of z begin from scratch.
WARM_STARTS = {("factorized", "hyperprior")}


@dataclass(frozen=True)
class InitSource:
    """The trained model ``compress train --init`` starts from.

    Attributes:
        path: a compress run's ``model.keras`` or a codec file (``<model>-q<N>.npz``).
        architecture: the model it holds; this run's, or one of :data:`WARM_STARTS` into it.
    """

    path: Path
    architecture: str

    @property
    def is_codec_file(self) -> bool:
        return self.path.suffix == ".npz"


def _init_source(cfg: TrainConfig) -> InitSource:
    """What ``--init`` names (a compress run folder, its ``model.keras``, or a codec file), checked to fit this run.

    Raises:
        InputError: not a compress run or codec file, another size, an architecture that gives
            this one no weights, or nothing saved yet.
    """
    init = Path(cfg.init)
    if init.suffix == ".npz":
        if not init.is_file():
            raise InputError(f"--init '{cfg.init}': no such codec file")
        config = codec.load(init).model.get_config()
        theirs = {"model": config["architecture"], "filters": config["filters"], "latent": config["latent"]}
        weights = init
    else:
        run_dir = init if init.is_dir() else init.parent
        try:
            config = json.loads((run_dir / runs.CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise InputError(f"--init '{cfg.init}': not a compress training run ({error})") from error
        theirs = {key: config.get(key) for key in ("model", "filters", "latent")}
        weights = init / runs.MODEL if init.is_dir() else init
    mine = {key: getattr(cfg, key) for key in theirs}
    warm_start = (theirs["model"], cfg.model) in WARM_STARTS
    if theirs != mine and not (warm_start and {**theirs, "model": cfg.model} == mine):
        raise InputError(f"--init '{cfg.init}': a run of {theirs}; this run is {mine}")
    if not weights.is_file():
        raise InputError(f"--init '{cfg.init}': no saved {runs.MODEL} there yet")
    return InitSource(weights, theirs["model"])


def _start_from(model: models.ImageCodec, source: InitSource) -> None:
    """Load ``source``'s weights into ``model``: all of them, or for a warm start only the transforms they share."""
    if source.architecture == model.architecture and not source.is_codec_file:
        model.load_weights(source.path)
        return
    if source.is_codec_file:
        trained = codec.load(source.path).model
    else:
        trained = models.build(source.architecture, filters=model.filters, latent=model.latent, lmbda=model.lmbda)
        trained.load_weights(source.path)
    if source.architecture == model.architecture:
        model.set_weights(trained.get_weights())
        return
    model.analysis.set_weights(trained.analysis.get_weights())
    model.synthesis.set_weights(trained.synthesis.get_weights())


def _build(cfg: TrainConfig) -> models.ImageCodec:
    """The codec of ``cfg``, its hidden layers computing in the global mixed-precision policy, if any.

    The learned prior (whose likelihoods enter the rate as ``-log2 p``, where a
    bfloat16 mantissa of 8 bits would swamp the small rate differences that
    training follows), the latents it models (``y``, and for the hyperprior
    ``z`` and the scales ``sigma``) and the reconstruction ``x_hat`` stay
    float32, as Keras' mixed-precision guide advises for the outputs that feed
    the loss; only the convolutions and GDNs between them run in low precision.
    Variables are float32 under every policy, so the layers are built in
    float32 and switched afterwards.
    """
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = models.build(cfg.model, filters=cfg.filters, latent=cfg.latent, lmbda=cfg.lmbda)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if policy.compute_dtype != "float32":
        transforms = [model.analysis, model.synthesis]
        if isinstance(model, models.ScaleHyperprior):
            transforms += [model.hyper_analysis, model.hyper_synthesis]
        for transform in transforms:
            for layer in transform.layers[:-1]:
                layer.dtype_policy = policy
    return model


def _optimizer(learning_rate) -> keras.optimizers.Optimizer:
    """Adam with global-norm clipping, wrapped for dynamic loss scaling under ``mixed_float16``.

    Clipping the global gradient norm keeps one bad batch from throwing IGDN
    (whose output grows quadratically) into a divergence; Adam's direction is
    unchanged in the common case. ``Model.compile`` adds loss scaling itself
    only when the model's own policy is ``mixed_float16``, and :func:`_build`
    builds the codec in float32, so the wrapping happens here.
    """
    optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=1.0)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def export(run_dir: str | Path, quality: int, path: str | Path) -> Path:
    """Write the codec file of a training run (its best weights, see :func:`cnnkit.codec.codec.save`).

    Raises:
        InputError: ``run_dir`` is not a compress training run with a saved model.
    """
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / runs.CONFIG).read_text(encoding="utf-8"))
        model = models.build(config["model"], filters=config["filters"], latent=config["latent"], lmbda=config["lmbda"])
        model.load_weights(run_dir / runs.MODEL)
    except (OSError, ValueError, KeyError) as error:
        raise InputError(f"'{run_dir}': not a compress training run with a saved model ({error})") from error
    return codec.save(model, quality, path)


def train(cfg: TrainConfig) -> dict:
    """Train a codec, export it to ``<out>/<model>-q<quality>.npz`` and measure it on the held-out photos.

    Returns:
        ``{"out", "codec_file", "steps", "replicas", "global_batch", "train_seconds",
        "history": last epoch's logs, "validation": mean real-file RD on the held-out
        photos, "latent_ratio", "skipped_small_images"}``.

    Raises:
        InputError: bad folder, options, too little disk space, or a run folder holding a different run.
    """
    multiple = models.pad_multiple(cfg.model)
    if cfg.patch < multiple or cfg.patch % multiple:
        raise InputError(f"--patch {cfg.patch}: expected a positive multiple of {multiple} for --model {cfg.model}")
    if cfg.steps < 1 or cfg.batch < 1 or cfg.epoch_steps < 1:
        raise InputError("--steps, --batch and --epoch-steps must be positive")
    train_files, val_files = split_holdout(list_images(cfg.images), cfg.holdout)
    photos = [read_rgb(f) for f in train_files]
    usable = [p for p in photos if min(p.shape[:2]) >= cfg.patch]
    held_out = [p for p in (read_rgb(f) for f in val_files) if min(p.shape[:2]) >= cfg.patch]
    if not usable or not held_out:
        raise InputError(f"--images '{cfg.images}': no training or held-out photo is at least {cfg.patch} px on each side")
    training.check_save_every(cfg.save_every)
    init = _init_source(cfg) if cfg.init else None
    strategy = distribute.setup_compute(cfg.device, cfg.strategy, cfg.mixed_precision, cfg.logical_cpus, jit=cfg.jit)
    batch = distribute.global_batch_size(cfg.batch, strategy)
    out = Path(cfg.out or runs.default_out("compress", cfg.model, f"{cfg.lmbda:g}"))
    with distribute.run_folder(out, strategy) as folder:
        keras.utils.set_random_seed(cfg.seed)
        with strategy.scope():
            model = _build(cfg)
            if init:
                _start_from(model, init)
            epochs = math.ceil(cfg.steps / cfg.epoch_steps)
            schedule = training.learning_rate_schedule(cfg.lr, epochs * cfg.epoch_steps, min(200, cfg.steps // 10))
            model.compile(optimizer=_optimizer(schedule), jit_compile=cfg.jit)
        distribute.check_disk_space(folder, model)
        run_dir = runs.start(folder, task="compress", config=asdict(cfg))
        # Every worker draws the same crops (same seed); sharding keeps every N-th batch on each.
        crops = (
            _crops(usable, cfg.patch, batch, cfg.seed)
            # Keras runs an epoch until the dataset ends; each epoch restarts the generator with fresh crops.
            .take(cfg.epoch_steps)
            .apply(tf.data.experimental.assert_cardinality(cfg.epoch_steps))
        )
        result = training.fit(
            model,
            distribute.shard_by_data(crops),
            validation=distribute.shard_by_data(_validation(held_out, cfg.patch, batch)),
            epochs=epochs,
            run_dir=run_dir,
            monitor="val_loss",
            save_every=cfg.save_every,
            verbose=False,
            examples_per_epoch=cfg.epoch_steps * batch,
        )
        # The codec file is float32 whatever the training precision: decoding must give the same pixels everywhere.
        keras.mixed_precision.set_global_policy("float32")
        codec_file = export(run_dir, cfg.quality, run_dir / f"{cfg.model}-q{cfg.quality}.npz")
        trained = codec.load(codec_file)
        held_out_points = [rate_distortion(trained, read_pixels(f))[0] for f in val_files]
        summary = {
            "out": str(out),
            "codec_file": str(out / codec_file.name),
            "steps": result.epochs_run * cfg.epoch_steps,
            "replicas": strategy.num_replicas_in_sync,
            "global_batch": batch,
            "train_seconds": result.train_seconds,
            "history": result.history[-1] if result.history else {},
            "validation": {"images": [f.name for f in val_files], **_mean_points(held_out_points)},
            "latent_ratio": model.latent_ratio(),
            "skipped_small_images": len(photos) - len(usable),
        }
        runs.finish(run_dir, summary)
    return summary
