"""``report.html``: one page per run folder that shows what its files hold.

The page is assembled from what the run already wrote (``config.json``,
``metrics.json``, the PNG plots, the misclassified clips) and nothing else, so
``cli.py report RUN_DIR`` can rewrite it for any finished run, also one made
before reports existed (a plot it lacks is named, not shown broken).
Four kinds of folder have a page:

* a ``train-image`` or ``train-speech`` run: test metrics, learning curves,
  the per-class table, the confusion matrix, the misclassified examples (for
  speech each clip's spectrogram with a player of the clip), per-speaker
  accuracy where speakers are known, ensemble members, skipped files, the config;
* a ``compress train`` run: the held-out rate-distortion point, learning
  curves, the RD plot against JPEG and WebP and side-by-side crops, the config;
* the output folder of ``compress`` without a subcommand (``report.json``):
  per-photo rates and PSNR against JPEG and WebP, every quality level, BD-rates,
  the RD plot and the crops.

The page is self-contained (see :mod:`cnnkit.pages`): inline style, no
scripts, pictures and sounds referenced beside it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit import pages, runs
from cnnkit.errors import InputError

PAGE = "report.html"
COMPRESS_REPORT = "report.json"  # what the compress job writes (no config.json: it trains nothing)
CLIPS = "misclassified"  # a speech run's folder of misclassified test clips, WAV and spectrogram
CLIPS_HEARD = 12  # clips kept there: each costs a spectrogram plot at the end of a run


def write(folder: str | os.PathLike) -> Path:
    """Write ``folder/report.html`` for the run or compress report in ``folder``; returns its path.

    Raises:
        InputError: ``folder`` is missing, holds neither a finished run nor a
            compress ``report.json``, or holds a run of a task without a page.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"RUN_DIR '{folder}': no such folder")
    if not (folder / runs.CONFIG).is_file() and (folder / COMPRESS_REPORT).is_file():
        return _compress_job(folder)
    run = runs.load(folder)
    builders = {"image": _classifier, "speech": _classifier, "compress": _codec_training}
    if run.task not in builders:
        raise InputError(f"RUN_DIR '{folder}': task {run.task!r} has no report page; expected one of: {', '.join(builders)}")
    return builders[run.task](run)


@dataclass(frozen=True)
class Clip:
    """A misclassified test clip of a speech run.

    Attributes:
        index: its place in the test split.
        true, predicted: class names.
        speaker: its speaker, or None.
        waveform: ``(samples,)`` float32 in [-1, 1].
        features: ``(frames, bins)``, the spectrogram the model saw.
    """

    index: int
    true: str
    predicted: str
    speaker: str | None
    waveform: np.ndarray
    features: np.ndarray


def write_clips(
    run_dir: str | os.PathLike, clips: Sequence[Clip], sample_rate: int, times: np.ndarray, frequencies: np.ndarray | None
) -> list[dict]:
    """Write each clip as ``misclassified/<k>.wav`` (16-bit PCM) and its spectrogram as ``<k>.png``, atomically.

    Args:
        run_dir: the run folder.
        clips: the clips, at most :data:`CLIPS_HEARD` by convention.
        sample_rate: of the waveforms, Hz.
        times, frequencies: the spectrograms' axes (see :func:`cnnkit.plots.spectrogram`).

    Returns:
        One ``{"index", "true", "predicted", "speaker", "audio", "spectrogram"}`` per clip, the paths
        relative to ``run_dir``: the run's ``metrics.json`` lists them as ``misclassified_examples``.
    """
    import soundfile as sf

    from cnnkit import plots

    folder = Path(run_dir) / CLIPS
    folder.mkdir(exist_ok=True)
    written = []
    for k, clip in enumerate(clips):
        audio, picture = f"{CLIPS}/{k:02d}.wav", f"{CLIPS}/{k:02d}.png"
        with runs.atomic_open(Path(run_dir) / audio, "wb") as f:
            sf.write(f, np.asarray(clip.waveform, np.float32), sample_rate, format="WAV", subtype="PCM_16")
        title = f"test clip {clip.index}: {clip.true} heard as {clip.predicted}"
        plots.spectrogram(clip.features, times, frequencies, Path(run_dir) / picture, title=title)
        fields = {"index": clip.index, "true": clip.true, "predicted": clip.predicted, "speaker": clip.speaker}
        written.append({**fields, "audio": audio, "spectrogram": picture})
    return written


def _classifier(run: runs.Run) -> Path:
    m, folder = run.metrics, run.dir
    summary = {
        "test accuracy": m.get("test_accuracy"),
        "test loss": m.get("test_loss"),
        "examples (train / val / test)": " / ".join(str(m.get("examples", {}).get(k, "?")) for k in ("train", "val", "test")),
        "misclassified": m.get("misclassified"),
        "epochs run": m.get("epochs_run"),
        "best epoch": m.get("best_epoch"),
        "stopped early": m.get("stopped_early"),
        "training seconds": m.get("train_seconds"),
    }
    parts = [pages.paragraph(f"{run.task} run of {run.config.get('model')} on {run.config.get('dataset')}, in {folder.resolve()}.")]
    parts.append(pages.section("Test metrics", pages.settings(summary, ("metric", "value"))))
    parts.append(pages.section("Learning curves", *_curves(folder)))
    if m.get("per_class"):
        rows = [(name, r["precision"], r["recall"], r["f1"], r["support"]) for name, r in m["per_class"].items()]
        parts.append(pages.section("Per class", pages.table(["class", "precision", "recall", "f1", "support"], rows)))
    parts.append(pages.section("Confusion matrix", pages.figure(folder, "confusion_matrix.png", "rows: true class, columns: predicted")))
    if m.get("per_speaker"):
        worst = m.get("worst_speaker")
        speakers = m["per_speaker"]
        rows = [(name, row["n"], row["accuracy"]) for name, row in speakers.items()]
        marks = ["worst" if name == worst else "" for name in speakers]
        parts.append(pages.section("Per test speaker", pages.table(["speaker", "clips", "accuracy"], rows, row_class=marks)))
    parts.append(pages.section("Misclassified examples", *_misclassified(folder, m)))
    if m.get("members"):
        rows = [(r.get("seed"), r.get("test_accuracy"), r.get("epochs_run"), r.get("best_epoch")) for r in m["members"]]
        parts.append(pages.section("Ensemble members", pages.table(["seed", "test accuracy", "epochs run", "best epoch"], rows)))
    if m.get("skipped"):
        parts.append(pages.section(f"Skipped files ({m.get('skipped_files', len(m['skipped']))})", pages.table(["skipped"], [[s] for s in m["skipped"]])))
    parts.append(pages.section("Config", pages.settings(run.config)))
    return pages.write(folder / PAGE, f"Report: {folder.name}", parts)


def _curves(folder: Path) -> list[str]:
    """The run's curves, or each ensemble member's (``members/<i>/curves.png``)."""
    members = sorted(folder.glob("members/*/curves.png"), key=lambda p: (len(p.parent.name), p.parent.name))
    if members:
        return [pages.figure(folder, str(p.relative_to(folder)), f"member {p.parent.name}", width=640) for p in members]
    return [pages.figure(folder, "curves.png", "training and validation, per epoch", width=800)]


def _misclassified(folder: Path, metrics: Mapping[str, Any]) -> list[str]:
    """The misclassified grid, and for speech each recorded clip's spectrogram with a player."""
    parts = [pages.figure(folder, "misclassified.png", "true -> predicted")]
    clips = metrics.get("misclassified_examples") or []
    if clips:
        parts.append(pages.paragraph(f"The first {len(clips)} misclassified test clips, in test order:"))
    for clip in clips:
        speaker = f" (speaker {clip['speaker']})" if clip.get("speaker") else ""
        caption = f"{clip['true']} heard as {clip['predicted']}{speaker}"
        parts.append(pages.figure(folder, clip["spectrogram"], caption, below=pages.audio(folder, clip["audio"])))
    return parts


def _codec_training(run: runs.Run) -> Path:
    m, folder = run.metrics, run.dir
    validation = m.get("validation", {})
    summary = {
        "held-out photos": ", ".join(validation.get("images", [])),
        "held-out bpp": validation.get("bpp"),
        "held-out PSNR (dB)": validation.get("psnr"),
        "held-out MS-SSIM": validation.get("ms_ssim"),
        "steps": m.get("steps"),
        "global batch": m.get("global_batch"),
        "training seconds": m.get("train_seconds"),
        "codec file": m.get("codec_file"),
        "latent ratio": m.get("latent_ratio"),
        "last epoch": m.get("history"),
    }
    parts = [
        pages.paragraph(f"compress train run of {run.config.get('model')} at lambda {run.config.get('lmbda')}, in {folder.resolve()}."),
        pages.section("Held-out photos (real .cnz files)", pages.settings(summary, ("metric", "value"))),
        pages.section("Learning curves", pages.figure(folder, "curves.png", "rate + lambda x distortion, bits per pixel and PSNR per epoch", width=900)),
        pages.section("Rate-distortion against JPEG and WebP", pages.figure(folder, "rd.png", "held-out photos: the codec's point against JPEG and WebP curves")),
        pages.section("Side-by-side crops", pages.figure(folder, "crops.png", "original, .cnz, and JPEG and WebP at the nearest rate")),
        pages.section("Config", pages.settings(run.config)),
    ]
    return pages.write(folder / PAGE, f"Report: {folder.name}", parts)


def _compress_job(folder: Path) -> Path:
    try:
        report = json.loads((folder / COMPRESS_REPORT).read_text(encoding="utf-8"))
        photos, rd = report["photos"], report["rd"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"RUN_DIR '{folder}': {COMPRESS_REPORT} is not a compress report") from None
    columns = ("width", "height", "bytes", "bpp", "psnr", "ms_ssim", "jpeg_psnr_at_same_bpp", "webp_psnr_at_same_bpp")
    header = ["photo", "width", "height", "bytes", "bpp", "PSNR (dB)", "MS-SSIM", "JPEG PSNR, same bpp", "WebP PSNR, same bpp"]
    rows = [(name, *(row.get(c) for c in columns)) for name, row in photos.items()]
    mean = report.get("mean", {})
    rows.append(("mean", None, None, None, *(mean.get(c) for c in columns[3:])))
    levels = [(p["quality"], p["bpp"], p["psnr"], p.get("ms_ssim"), p.get("psnr_unquantised")) for p in rd["codec"]]
    bd = {f"BD-rate vs {name.upper()} (%)": value for name, value in rd.get("bd_rate", {}).items()}
    files = " ".join(pages.link(folder, f"{name}.cnz") for name in photos)
    parts = [
        pages.paragraph(
            f"compress: {report.get('model')} codec, quality {report.get('quality')}, "
            f"{report.get('refine_steps', 0)} refinement steps, in {Path(report.get('out', folder)).resolve()}."
        ),
        pages.section(f"Photos at quality {report.get('quality')}", pages.table(header, rows), f"<p>Files: {files}</p>"),
        pages.section("Every quality level", pages.table(["quality", "bpp", "PSNR (dB)", "MS-SSIM", "PSNR, y not rounded"], levels), pages.settings(bd, ("baseline", "BD-rate"))),
        pages.section("Rate-distortion against JPEG and WebP", pages.figure(folder, "rd.png", "PSNR against the real file rate")),
        pages.section("Side-by-side crops", pages.figure(folder, "crops.png", "original, .cnz, and JPEG and WebP at the nearest rate")),
    ]
    return pages.write(folder / PAGE, f"Report: {folder.name}", parts)
