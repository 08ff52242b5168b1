"""train-speech on real recordings: accuracy against the TensorFlow "simple audio" recipe, and front-end speed.

Prints one JSON object. Every figure has its anchor measured in the same run:

* ``official``: the Free Spoken Digit Dataset beside the repository
  (``../shared/datasets/fsdd``, 5 speakers, 2,500 clips), takes 0-4 as the
  test set, trained with ``pipelines.speech_recognition`` (``--model``,
  default dscnn on log-mel; with ``--extra-train synth-digits``, the eSpeak
  NG voices of the default dataset, ``--vtlp 0.15`` and ``--filter-augment 3``:
  FSDD has only 4 training speakers, each with his own microphone, in a
  leave-one-out fold; ``--model bcresnet --speed-perturb 0.1`` is the other
  recipe in README) and with the TensorFlow tutorial recipe
  (https://www.tensorflow.org/tutorials/audio/simple_audio: |STFT| 255/128,
  resize to 32x32, Normalization, Conv32-Conv64-MaxPool-Dropout-Dense128-Dropout,
  10 epochs, early stopping with patience 2);
* ``leave_one_speaker_out``: the same two, trained on 4 speakers and tested
  on the 5th, for each speaker; mean and worst;
* ``frontend``: clips/s of the in-graph tf.signal log-mel pipeline and of the
  librosa reference on the same clips (the official training split, a pass
  each), alternated, and the median of each round's ratio;
* ``epoch_seconds``: the median training epoch of our model (official split;
  with ``--ensemble N``, one epoch of each of the N members).

With ``--tta-warp X`` our test score averages each clip's probabilities over
frequency warps 1-X, 1 and 1+X (test-time augmentation; ``--tta-tempo`` the
same over tempos).

With ``--ensemble N`` each of our runs trains N models (seeds ``--seed`` to
``--seed + N - 1``) and averages their probabilities; every member's own
accuracy is reported too (``ours_member0`` is the single-model figure).

Usage: ``python benchmarks/speech.py [--epochs 20] [--model dscnn] [--vtlp 0.15] [--filter-augment 3] [--sample-rate 16000] [--speed-perturb 0] [--tempo-perturb 0] [--tta-warp 0] [--tta-tempo 0] [--extra-train synth-digits] [--label-smoothing 0] [--ensemble 1] [--speakers george,theo] [--runs DIR] [--skip-loso | --frontend-only]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cnnkit import runs  # noqa: E402
from cnnkit.audio.features import FeatureSpec  # noqa: E402
from cnnkit.data import speech  # noqa: E402
from cnnkit.errors import InputError  # noqa: E402
from pipelines import speech_recognition  # noqa: E402

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fsdd" / "recordings"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo")


def ours(split: str, args, out: Path) -> dict:
    """Accuracy and timing of a train-speech run on FSDD with ``split``, in the run folder ``out``.

    An unfinished run in ``out`` resumes (the pipeline's own resume); a
    finished one with the same options is read back instead of retrained.
    """
    cfg = speech_recognition.Config(
        dataset=f"fsdd:{FSDD}",
        split=split,
        model=args.model,
        epochs=args.epochs,
        vtlp=args.vtlp,
        filter_augment=args.filter_augment,
        sample_rate=args.sample_rate,
        speed_perturb=args.speed_perturb,
        tempo_perturb=args.tempo_perturb,
        tta_warp=args.tta_warp,
        tta_tempo=args.tta_tempo,
        extra_train=args.extra_train,
        label_smoothing=args.label_smoothing,
        quiet=True,
        out=str(out),
        seed=args.seed,
        ensemble=args.ensemble,
    )
    result = _finished_run(out, cfg)
    if result is None:
        result = speech_recognition.run(cfg)
    print(f"ours {split}: {result['test_accuracy']:.4f}", file=sys.stderr, flush=True)
    return {
        "accuracy": result["test_accuracy"],
        "epoch_seconds": result["epoch_seconds"],
        "clips_per_second": result["clips_per_second"],
        "epochs_run": result["epochs_run"],
        "parameters": result["parameters"],
        # Member i alone (seed + i): member 0 is the single-model figure of the same recipe.
        "members": [m["test_accuracy"] for m in result.get("members", [])],
    }


def _finished_run(out: Path, cfg: speech_recognition.Config) -> dict | None:
    """The metrics of the finished run in ``out`` if it was run with ``cfg``; None when ``out`` holds no finished run.

    Raises:
        SystemExit: ``out`` holds a finished run with other options (a one-line error, status 2).
    """
    try:
        run = runs.finished_with(out, asdict(cfg))
    except InputError as error:
        print(f"--runs: {error}; choose another --runs", file=sys.stderr)
        sys.exit(2)
    if run is None:
        return None
    print(f"ours {cfg.split}: read back from {out}", file=sys.stderr, flush=True)
    return run.metrics


def tutorial(split: str, seed: int) -> float:
    """Test accuracy of the TensorFlow "simple audio" tutorial recipe on FSDD with ``split``."""
    keras.utils.set_random_seed(seed)
    data = speech.load(f"fsdd:{FSDD}", split=split, sample_rate=16000, seed=seed)

    def spectrograms(part: speech.Split, shuffle: bool = False) -> tf.data.Dataset:
        def stft(waveform, label):
            waveform = waveform[:16000]
            waveform = tf.concat([waveform, tf.zeros([16000 - tf.shape(waveform)[0]])], 0)
            magnitude = tf.abs(tf.signal.stft(waveform, frame_length=255, frame_step=128))
            return magnitude[..., None], label

        ds = part.dataset.map(stft).cache()
        # The clips come sorted by label; the tutorial's loader shuffles them.
        return (ds.shuffle(part.size, seed=seed) if shuffle else ds).batch(64)

    train, val, test = spectrograms(data.train, shuffle=True), spectrograms(data.val), spectrograms(data.test)
    norm = keras.layers.Normalization()
    norm.adapt(train.map(lambda x, _y: x))
    model = keras.Sequential(
        [
            keras.Input((124, 129, 1)),
            keras.layers.Resizing(32, 32),
            norm,
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Dropout(0.25),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    model.fit(
        train,
        validation_data=val,
        epochs=10,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(verbose=0, patience=2)],
    )
    accuracy = float(model.evaluate(test, verbose=0)[1])
    print(f"tutorial {split}: {accuracy:.4f}", file=sys.stderr, flush=True)
    return accuracy


def frontend_speed(repeats: int) -> dict:
    """Clips/s of the tf and librosa front ends over the same clips (1 s, 16 kHz log-mel), alternated.

    The clips are the official split's whole training set, one pass per
    timing, as an epoch reads them. Each pipeline is built once and run once
    untimed first, so its tracing (which a training run pays once, not per
    epoch) stays out of the figure.
    """
    data = speech.load(f"fsdd:{FSDD}", split="official")
    clips = data.train
    spec = FeatureSpec()
    times = {"tf": [], "librosa": []}
    pipelines = {name: speech.batches(clips, spec, duration=1.0, batch_size=64, frontend=name) for name in times}
    for ds in pipelines.values():
        for _ in ds:
            pass
    for r in range(repeats):
        for name in times if r % 2 == 0 else reversed(list(times)):
            ds = pipelines[name]
            start = time.perf_counter()
            n = sum(int(y.shape[0]) for _, y in ds)
            times[name].append(n / (time.perf_counter() - start))
    speed = {name: statistics.median(v) for name, v in times.items()}
    # This shared machine switches between a fast and a slow state (about 1.5x
    # apart) for seconds at a time: each round's ratio pairs two passes run
    # back to back, so their median is steadier than the ratio of medians.
    ratios = [tf_speed / librosa_speed for tf_speed, librosa_speed in zip(times["tf"], times["librosa"])]
    report = {
        "clips": clips.size,
        "tf_clips_per_second": speed["tf"],
        "librosa_clips_per_second": speed["librosa"],
        "ratio": statistics.median(ratios),
        "ratio_per_round": ratios,
    }
    print(f"front ends: {report}", file=sys.stderr, flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of our model (the tutorial keeps its 10)")
    parser.add_argument("--model", default="dscnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vtlp", type=float, default=0.15, help="our recipe's frequency warp (train-speech --vtlp)")
    parser.add_argument(
        "--filter-augment", type=float, default=3.0, help="our recipe's random equaliser, dB (train-speech --filter-augment)"
    )
    parser.add_argument("--sample-rate", type=int, default=16000, help="our recipe's sample rate (FSDD is recorded at 8000)")
    parser.add_argument("--speed-perturb", type=float, default=0.0, help="our recipe's speed change (train-speech --speed-perturb)")
    parser.add_argument(
        "--tempo-perturb", type=float, default=0.0, help="our recipe's tempo change at the same pitch (train-speech --tempo-perturb)"
    )
    parser.add_argument("--tta-warp", type=float, default=0.0, help="our test-time frequency warps (train-speech --tta-warp)")
    parser.add_argument("--tta-tempo", type=float, default=0.0, help="our test-time tempos (train-speech --tta-tempo)")
    parser.add_argument(
        "--extra-train", default="synth-digits", help="our recipe's extra training voices (train-speech --extra-train; '' for none)"
    )
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="our recipe's label smoothing (train-speech --label-smoothing)")
    parser.add_argument("--ensemble", type=int, default=1, help="our models per run, probabilities averaged (train-speech --ensemble)")
    parser.add_argument(
        "--runs",
        type=Path,
        help="keep our run folders here (DIR/official, DIR/<speaker>); rerunning the same command resumes an "
        "unfinished fold and reads back a finished one (default: a temporary folder)",
    )
    parser.add_argument("--speakers", default=",".join(SPEAKERS), help="held-out speakers for leave-one-speaker-out")
    parser.add_argument("--skip-loso", action="store_true", help="only the official split and the front ends")
    parser.add_argument("--frontend-only", action="store_true", help="only the front-end speed")
    parser.add_argument("--tutorial-only", action="store_true", help="only the tutorial recipe, official and leave-one-out")
    parser.add_argument("--repeats", type=int, default=7, help="timing rounds of the front ends")
    args = parser.parse_args()
    if not FSDD.is_dir():
        print(json.dumps({"skipped": f"{FSDD} is absent"}))
        return
    report = {"dataset": str(FSDD), "model": args.model, "epochs": args.epochs}
    recipe = (
        "vtlp", "filter_augment", "sample_rate", "speed_perturb", "tempo_perturb", "tta_warp", "tta_tempo", "extra_train",
        "label_smoothing", "ensemble",
    )  # fmt: skip
    report["recipe"] = {name: getattr(args, name) for name in recipe}
    if args.tutorial_only:
        loso = {speaker: tutorial(f"speaker:{speaker}", args.seed) for speaker in args.speakers.split(",")}
        report["tutorial"] = {"official": tutorial("official", args.seed), "leave_one_speaker_out": loso}
        print(json.dumps(report, indent=2))
        return
    report["frontend"] = frontend_speed(args.repeats)
    if args.frontend_only:
        print(json.dumps(report, indent=2))
        return
    # With --runs the run folders stay, so an interrupted benchmark resumes where it stopped.
    with tempfile.TemporaryDirectory() if args.runs is None else contextlib.nullcontext(args.runs) as tmp:
        official = ours("official", args, Path(tmp) / "official")
        report["official"] = {"ours": official["accuracy"], "tutorial": tutorial("official", args.seed)}
        if official["members"]:
            report["official"]["ours_members"] = official["members"]
        report["epoch_seconds"] = official["epoch_seconds"]
        report["train_clips_per_second"] = official["clips_per_second"]
        report["parameters"] = official["parameters"]
        if not args.skip_loso:
            loso = {"ours": {}, "tutorial": {}}
            if args.ensemble > 1:
                loso.update({f"ours_member{i}": {} for i in range(args.ensemble)})
            for speaker in args.speakers.split(","):
                fold = ours(f"speaker:{speaker}", args, Path(tmp) / speaker)
                loso["ours"][speaker] = fold["accuracy"]
                for i, accuracy in enumerate(fold["members"]):
                    loso[f"ours_member{i}"][speaker] = accuracy
                loso["tutorial"][speaker] = tutorial(f"speaker:{speaker}", args.seed)
            report["leave_one_speaker_out"] = {
                who: {"mean": float(np.mean(list(accs.values()))), "worst": min(accs.values()), "per_speaker": accs}
                for who, accs in loso.items()
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
