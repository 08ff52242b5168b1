"""cnnkit command line: a thin click front over pipelines/.

Each command parses its options into the pipeline's frozen Config, calls
``run(cfg)`` and prints the result. TensorFlow and every other heavy import
happen inside the commands, so ``python cli.py --help`` answers at once.

Bad input raises ``cnnkit.errors.InputError``; the group prints its message on
one line and exits with status 2 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import os
import sys

import click

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) drowns the output of
# a short run; users who want it can set the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class CnnkitGroup(click.Group):
    """A click group that turns ``InputError`` into a one-line message and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as error:  # noqa: BLE001 - filtered just below
            from cnnkit.errors import InputError

            if not isinstance(error, InputError) or ctx.obj.get("debug"):
                raise
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)


@click.group(cls=CnnkitGroup)
@click.version_option(__version__, prog_name="cnnkit")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """cnnkit: CNNs on images and audio, with hand-written gradients."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def print_json(obj) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    import json

    click.echo(json.dumps(obj, indent=2, default=str))


# --- foundation: gradient check -------------------------------------------------


@main.command("check-grad")
@click.option("--seed", default=0, show_default=True, help="Seed of the random shapes and values.")
@click.option("--trials", default=3, show_default=True, type=click.IntRange(min=1), help="Random settings per op.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
def check_grad(seed: int, trials: int, as_json: bool) -> None:
    """Compare every hand-written gradient with autodiff and finite differences.

    Exits with status 1 when any error exceeds its tolerance.
    """
    from cnnkit.handgrad.check import TOLERANCES, check_gradients

    rows = check_gradients(seed=seed, trials=trials)
    if as_json:
        print_json({"tolerances": TOLERANCES, "rows": rows})
    else:
        click.echo(f"{'op':<11} {'setting':<44} {'forward':>9} {'autodiff':>9} {'fin.diff':>9}  ok")
        for row in rows:
            errors = " ".join(f"{row[name]:9.1e}" for name in TOLERANCES)
            click.echo(f"{row['op']:<11} {row['setting']:<44} {errors}  {'yes' if row['ok'] else 'NO'}")
        limits = ", ".join(f"{name} {value:g}" for name, value in TOLERANCES.items())
        click.echo(f"max relative errors; tolerances: {limits}")
    if not all(row["ok"] for row in rows):
        sys.exit(1)


# --- train-image --------------------------------------------------------------


def _log_to_stderr(quiet: bool | None) -> None:
    """Progress and warnings (e.g. skipped files) go to stderr; ``--quiet`` keeps only warnings."""
    import logging

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")


def _given(options: dict) -> dict:
    """The options the user set: unset ones are ``None`` so the Config's own defaults apply."""
    return {name: value for name, value in options.items() if value is not None}


class EpochsType(click.ParamType):
    """``--epochs``: ``auto`` or a whole number (checked against >= 1 by the Config)."""

    name = "auto|N"

    def convert(self, value, param, ctx):
        if value == "auto" or isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"'{value}': expected 'auto' or an integer >= 1", param, ctx)


EPOCHS = EpochsType()


def _fit_options(command):
    """Add the options every training command shares (the fields its Config has in common with the others)."""
    options = [
        click.option("--conv", help="keras (default) | handgrad: hand-written-gradient layers."),
        click.option("--epochs", type=EPOCHS, help="Training epochs, or auto (default): a budget of optimizer steps by the training split's size, the learning-rate schedule sized to it."),
        click.option("--batch-size", type=int, help="Batch per replica."),
        click.option("--lr", type=float, help="Peak learning rate of the warm-up/cosine schedule."),
        click.option("--warmup-epochs", type=float, help="Length of the linear learning-rate warm-up."),
        click.option("--optimizer", help="adam (default) | sgd."),
        click.option("--patience", type=int, help="Stop after this many epochs without val_loss improvement (0: never)."),
        click.option("--label-smoothing", type=float, help="Train against (1 - eps) one-hot + eps / classes (default 0: off)."),
        click.option("--mixed-precision/--no-mixed-precision", default=None, help="bfloat16 on CPU, float16 on GPU."),
        click.option("--jit/--no-jit", default=None, help="XLA-compile the train step."),
        click.option("--device", help="auto (default) | cpu | gpu."),
        click.option("--strategy", help="auto (default) | one | mirrored | multiworker (TF_CONFIG)."),
        click.option("--logical-cpus", type=int, help="Split the CPU into N logical devices (mirrored on CPU)."),
        click.option("--save-every", type=int, help="Also save the resume state every N steps."),
        click.option("--quiet/--no-quiet", default=None, help="No progress bars or progress messages."),
        click.option("--out", help="Run folder (default runs/<dataset>-<model>-<time>); rerun with the same --out to resume."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@main.command("train-image")
@click.option("--dataset", help="digits (default, offline) | idx:DIR | folder:DIR | tfds:NAME.")
@click.option("--data-dir", help="tfds cache folder (default data/tfds).")
@click.option("--image-size", type=int, help="Square side in pixels (default: digits 16, else the dataset's own).")
@click.option("--val-fraction", type=float, help="Validation share of the examples (default 0.1).")
@click.option("--test-fraction", type=float, help="Test share, for datasets without a test split (default 0.2).")
@click.option("--augment", help="basic (default): random shift, rotation, zoom (and flips where allowed) | none.")
@click.option("--model", help="A model of the zoo (default lecture).")
@click.option("--seed", type=int, help="Seed of the split, initialisation, shuffling and augmentation (default 0).")
@_fit_options
def train_image(**options) -> None:
    """Train an image classifier (default: the lecture CNN, batch 32, lr 3e-3 on digits).

    --epochs auto: about 4000 optimizer steps, within 10-40 epochs (digits: 40).
    The chosen number is logged and recorded in config.json; model.keras keeps
    the best epoch's weights. Writes model, metrics, history, logs and plots to --out.
    """
    _log_to_stderr(options["quiet"])
    from pipelines import image_classification

    result = image_classification.run(image_classification.Config(**_given(options)))
    speed = f", {result['images_per_second']:,.0f} images/s" if result["images_per_second"] else ""
    skipped = f", {result['skipped_files']} files skipped (listed in metrics.json)" if result["skipped_files"] else ""
    click.echo(
        f"test accuracy {result['test_accuracy']:.4f}, loss {result['test_loss']:.4f} after {result['epochs_run']} epochs "
        f"({result['train_seconds']:.1f} s training{speed}{skipped}); run folder {result['run_dir']}"
    )



# --- commands on a finished run: evaluate, predict, export ----------------------


@main.command()
@click.argument("run_dir")
@click.option("--dataset", help="Dataset spec to evaluate on (default: the run's own).")
@click.option("--subset", default="all", show_default=True, help="all | train | val | test (the run's split of the dataset).")
@click.option("--data-dir", help="tfds cache folder.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def evaluate(run_dir: str, dataset: str | None, subset: str, data_dir: str | None, as_json: bool) -> None:
    """Evaluate a finished run's model on a dataset, with the run's preprocessing."""
    from pipelines import runs

    report = runs.evaluate(run_dir, dataset, subset, **_given({"data_dir": data_dir}))
    if as_json:
        print_json(report)
        return
    click.echo(f"{report['dataset']} ({report['subset']}): accuracy {report['accuracy']:.4f}, loss {report['loss']:.4f}, n {report['n']}")
    click.echo(f"{'class':>12} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}")
    for name, row in report["per_class"].items():
        click.echo(f"{name:>12} {row['precision']:9.4f} {row['recall']:9.4f} {row['f1']:9.4f} {row['support']:8d}")


@main.command()
@click.argument("run_dir")
@click.argument("files", nargs=-1, required=True)
@click.option("--top-k", default=3, show_default=True, help="Classes shown per file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def predict(run_dir: str, files: tuple[str, ...], top_k: int, as_json: bool) -> None:
    """Top-k classes with probabilities for each input file."""
    from pipelines import runs

    predictions = runs.predict(run_dir, list(files), top_k)
    if as_json:
        print_json(predictions)
        return
    for item in predictions:
        click.echo(f"{item['file']}: " + ", ".join(f"{t['label']} {t['probability']:.3f}" for t in item["top"]))


@main.command()
@click.argument("run_dir")
@click.option("--format", "fmt", required=True, help="savedmodel | tflite | keras.")
@click.option("--out", help="Where to write (default RUN_DIR/export/...).")
def export(run_dir: str, fmt: str, out: str | None) -> None:
    """Export a finished run's model for serving."""
    from pipelines import runs

    click.echo(runs.export(run_dir, fmt, out))


@main.command()
@click.argument("run_dir")
@click.argument("files", nargs=-1, required=True)
@click.option("--out", help="Folder for index.html and its PNGs (default RUN_DIR/explain; an earlier explain output there is replaced).")
@click.option("--class", "class_name", help="Also map the evidence for this class (Grad-CAM), besides the predicted one.")
@click.option("--top-k", default=3, show_default=True, help="Classes listed per file.")
def explain(run_dir: str, files: tuple[str, ...], out: str | None, class_name: str | None, top_k: int) -> None:
    """What an image or speech run's CNN sees in each file: first-layer kernels, feature maps, Grad-CAM, top-k.

    Prints the page's path.
    """
    from pipelines import runs

    click.echo(runs.explain(run_dir, list(files), out, class_name, top_k)["page"])


@main.command()
@click.argument("run_dir")
def report(run_dir: str) -> None:
    """Rewrite RUN_DIR/report.html for a finished run or a compress output folder; prints its path."""
    from pipelines import runs

    click.echo(runs.report(run_dir))



# --- train-speech -------------------------------------------------------------


@main.command("train-speech")
@click.option("--dataset", help="synth-digits (default, offline eSpeak NG; synth-digits:extended: 72 training voices, not 22) | fsdd:DIR | folder:DIR | tfds:speech_commands | tfds:spoken_digit.")
@click.option("--split", help="auto (default) | official | random | speaker:NAME[,NAME] (held out as the test set).")
@click.option("--data-dir", help="tfds cache folder (default data/tfds).")
@click.option("--cache-dir", help="Cache of generated synthetic digits (default data/cache).")
@click.option("--sample-rate", type=int, help="Resample every clip to this rate, Hz (default 16000).")
@click.option("--duration", type=float, help="Seconds the model hears; clips are padded or cropped (default 1).")
@click.option("--features", help="logmel (default) | mfcc | stft.")
@click.option("--n-mels", type=int, help="Mel bands (default 40).")
@click.option("--n-mfcc", type=int, help="Cepstral coefficients for --features mfcc (default 13).")
@click.option("--fmax", type=float, help="Highest mel band edge, Hz (default: half the sample rate).")
@click.option("--frontend", help="tf (default, in the tf.data graph) | librosa (the reference).")
@click.option("--time-shift", type=float, help="Training: random shift up to this many seconds (default 0.1; 0: off).")
@click.option("--noise/--no-noise", default=None, help="Training: pink noise at a random 5-30 dB SNR on half of the clips (default on).")
@click.option("--spec-augment/--no-spec-augment", default=None, help="Training: SpecAugment time and frequency masks (default on).")
@click.option("--speed-perturb", type=float, help="Training: random speed change up to this fraction (default 0: off).")
@click.option("--vtlp", type=float, help="Training: random frequency warp up to this fraction, vocal tract length perturbation (default: 0.15 on recordings, 0 on synth-digits; 0: off).")
@click.option("--filter-augment", type=float, help="Training: random smooth equaliser up to +-this many dB, another microphone per clip (FilterAugment; default: 3 on recordings, 0 on synth-digits; 0: off).")
@click.option("--tempo-perturb", type=float, help="Training: random tempo change at the same pitch up to this fraction (default 0: off).")
@click.option("--tta-warp", type=float, help="Testing: average the answers over frequency warps 1-x, 1, 1+x of each clip (default 0: off).")
@click.option("--tta-tempo", type=float, help="Testing: average the answers over tempos 1-x, 1, 1+x of each clip (default 0: off).")
@click.option("--extra-train", help="Another --dataset whose every clip joins the training split | auto (default): synth-digits:extended when recordings' classes are the ten digits | none.")
@click.option("--model", help="A model of the zoo (default dscnn; also bcresnet, lecture, resnet18).")
@click.option("--ensemble", type=int, help="Train this many models from seeds --seed, --seed+1, ... on the same data and average their probabilities (default 1).")
@click.option("--seed", type=int, help="Seed of the synthetic data, split, initialisation, shuffling and augmentation.")
@_fit_options
def train_speech(**options) -> None:
    """Train a spoken-word classifier on spectrograms; writes model, metrics, history and plots to --out.

    --epochs auto: about 2500 optimizer steps, within 12-30 epochs. The chosen
    number is logged and recorded in config.json; model.keras keeps the best
    epoch's weights.
    """
    _log_to_stderr(options["quiet"])
    from pipelines import speech_recognition

    result = speech_recognition.run(speech_recognition.Config(**_given(options)))
    worst = result.get("worst_speaker")
    speakers = f", worst test speaker {worst} {result['per_speaker'][worst]['accuracy']:.4f}" if worst else ""
    skipped = f", {result['skipped_files']} files skipped (listed in metrics.json)" if result["skipped_files"] else ""
    click.echo(
        f"test accuracy {result['test_accuracy']:.4f}, loss {result['test_loss']:.4f}{speakers} after "
        f"{result['epochs_run']} epochs ({result['train_seconds']:.1f} s training{skipped}); run folder {result['run_dir']}"
    )


# --- compress -----------------------------------------------------------------


def _weights_option(function):
    return click.option(
        "--weights", default=None, help="Folder of codec files <model>-q<N>.npz (default: the shipped data/weights)."
    )(function)


def _refine_option(function):
    return click.option(
        "--refine",
        default=0,
        show_default=True,
        type=click.IntRange(min=0),
        help="Encoder-side latent refinement steps per image (Yang et al. 2020): better RD, slower encode, same decoder.",
    )(function)


@main.group(invoke_without_command=True)
@click.option("--out", default=None, help="Report folder (default runs/compress-<time>).")
@click.option("--quality", default=3, show_default=True, help="Quality level of the .cnz files (1 = lowest rate).")
@click.option("--model", default="factorized", show_default=True, help="Codec: factorized, lecture-ae or hyperprior.")
@_weights_option
@click.option("--max-side", default=None, type=int, help="Shrink the sample photos to at most this many pixels per side.")
@click.option("--crop", default=128, show_default=True, help="Side of the side-by-side crops.")
@_refine_option
@click.pass_context
def compress(ctx: click.Context, **options) -> None:
    """Learned image compression to .cnz files, measured against JPEG and WebP.

    Without a subcommand: code scikit-image's astronaut, coffee and chelsea photos
    with the shipped codec and write a report (JSON, RD plot, crops) to --out.
    """
    if ctx.invoked_subcommand is not None:
        return
    from pipelines import image_compression

    report = image_compression.run(image_compression.Config(**options))
    print_json({"out": report["out"], "mean": report["mean"], "bd_rate": report["rd"]["bd_rate"]})


@compress.command("encode")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, help="Folder for the .cnz files.")
@click.option("--quality", default=3, show_default=True, help="Quality level (1 = lowest rate).")
@click.option("--model", default="factorized", show_default=True, help="Codec: factorized, lecture-ae or hyperprior.")
@_weights_option
@_refine_option
def compress_encode(**options) -> None:
    """Compress PNG/JPEG/BMP images (any size; grey stays grey, other modes become RGB) to .cnz."""
    from pipelines import image_compression

    print_json(image_compression.encode(image_compression.EncodeConfig(**options)))


@compress.command("decode")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, help="Folder for the decoded PNGs.")
@_weights_option
def compress_decode(**options) -> None:
    """Decompress .cnz files to PNG (grey PNG for grey sources, RGB otherwise)."""
    from pipelines import image_compression

    print_json(image_compression.decode(image_compression.DecodeConfig(**options)))


@compress.command("eval")
@click.option("--images", required=True, help="Folder of images to measure on.")
@click.option("--model", default="factorized", show_default=True, help="Codec: factorized, lecture-ae or hyperprior.")
@_weights_option
@_refine_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (codec, jpeg, webp, bd_rate).")
def compress_eval(as_json: bool, **options) -> None:
    """Rate-distortion of every quality level against JPEG (4:2:0) and WebP, with BD-rates."""
    from pipelines import image_compression

    report = image_compression.evaluate(image_compression.EvalConfig(**options))
    if as_json:
        print_json(report)
        return
    click.echo(f"{'':>8} {'bpp':>6} {'PSNR':>6} {'MS-SSIM':>7} {'JPEG':>6} {'WebP':>6}   ({report['images']} images)")
    for i, point in enumerate(report["codec"]):
        baseline = [report[name]["psnr_at_codec_bpp"][i]["psnr"] for name in ("jpeg", "webp")]
        cells = " ".join(f"{v:6.2f}" if v is not None else f"{'-':>6}" for v in baseline)
        ssim = f"{point['ms_ssim']:7.4f}" if point["ms_ssim"] is not None else f"{'-':>7}"
        click.echo(f"q{point['quality']:<7} {point['bpp']:6.3f} {point['psnr']:6.2f} {ssim} {cells}")
    for name, value in report["bd_rate"].items():
        click.echo(f"BD-rate vs {name.upper()}: " + (f"{value:+.1f}%" if value is not None else "n/a (curves do not overlap)"))


@compress.command("train")
@click.option("--images", required=True, help="Folder of photos; the last --holdout (by name) validate.")
@click.option("--out", default=None, help="Run folder (rerun the same command to resume).")
@click.option("--model", default="factorized", show_default=True, help="Architecture: factorized, lecture-ae or hyperprior (--patch a multiple of 64).")
@click.option("--lmbda", default=0.01, show_default=True, help="Weight of the 8-bit MSE in rate + lmbda * MSE.")
@click.option("--steps", default=4000, show_default=True, help="Optimizer steps in total.")
@click.option("--patch", default=256, show_default=True, help="Side of the random square crops (a multiple of 16, of 64 for hyperprior).")
@click.option("--batch", default=8, show_default=True, help="Crops per step per replica.")
@click.option("--filters", default=64, show_default=True, help="Hidden channels N.")
@click.option("--latent", default=96, show_default=True, help="Latent channels M.")
@click.option("--lr", default=3e-4, show_default=True, help="Peak Adam learning rate.")
@click.option("--holdout", default=5, show_default=True, help="Photos held out for validation.")
@click.option("--epoch-steps", default=250, show_default=True, help="Steps between validations and checkpoints.")
@click.option("--init", default=None, help="Start from a run folder's model or a codec file (fine-tune another --lmbda; a factorized one warm-starts hyperprior's transforms).")
@click.option("--quality", default=1, show_default=True, help="Quality level recorded in the exported codec file.")
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | gpu.")
@click.option("--strategy", default="auto", show_default=True, help="auto | one | mirrored | multiworker (TF_CONFIG).")
@click.option("--logical-cpus", default=None, type=int, help="Split the CPU into N logical devices (mirrored on CPU).")
@click.option("--mixed-precision/--no-mixed-precision", default=False, show_default=True, help="bfloat16 on CPU, float16 on GPU; the prior stays float32.")
@click.option("--jit/--no-jit", default=False, show_default=True, help="XLA-compile the train step.")
@click.option("--save-every", default=None, type=int, help="Also save the resume state every N steps.")
def compress_train(**options) -> None:
    """Train a codec on random crops of --images for rate + lmbda * MSE."""
    from pipelines import image_compression

    print_json(image_compression.train(image_compression.TrainConfig(**options)))


if __name__ == "__main__":
    main()
