"""compress end to end with tiny codecs: the default job, encode/decode, eval --json, train + resume, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cli import main
from cnnkit.errors import InputError
from pipelines import image_compression
from tests.cnnkit.codec.conftest import make_tiny_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six small synthetic 'photos' (smooth gradients plus noise), 48x40 and 40x56."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        height, width = (48, 40) if i % 2 else (40, 56)
        y, x = np.mgrid[0:height, 0:width]
        pixels = np.stack([x * 4 + i * 20, y * 5, (x + y) * 2], -1) + rng.normal(0, 10, (height, width, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def _invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_help_lists_the_subcommands():
    result = _invoke("compress", "--help")
    assert result.exit_code == 0
    for command in ("encode", "decode", "train", "eval"):
        assert command in result.output


@pytest.mark.slow
def test_default_job_writes_files_report_and_plots(weights, tmp_path):
    result = _invoke("compress", "--weights", str(weights), "--out", str(tmp_path), "--max-side", "64", "--quality", "2")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["photos"]) == {"astronaut", "coffee", "chelsea"}
    for name, row in report["photos"].items():
        cnz = tmp_path / f"{name}.cnz"
        assert row["bpp"] == pytest.approx(8 * cnz.stat().st_size / (row["height"] * row["width"]))
        with Image.open(tmp_path / f"{name}.png") as decoded:
            assert decoded.size == (row["width"], row["height"]) and decoded.mode == "RGB"
        assert max(row["height"], row["width"]) == 64
        assert set(row) >= {"psnr", "ms_ssim", "jpeg_psnr_at_same_bpp", "webp_psnr_at_same_bpp"}
    assert report["mean"]["bpp"] == pytest.approx(np.mean([r["bpp"] for r in report["photos"].values()]))
    assert [p["quality"] for p in report["rd"]["codec"]] == [1, 2, 3, 4]
    for plot in ("rd.png", "crops.png"):
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_encode_then_decode_keeps_size_and_grey(weights, tmp_path):
    rgb = tmp_path / "rgb.png"
    grey = tmp_path / "grey.bmp"
    palette = tmp_path / "palette.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (21, 35, 3), dtype=np.uint8)).save(rgb)
    Image.fromarray(rng.integers(0, 256, (18, 9), dtype=np.uint8)).save(grey)
    Image.open(rgb).convert("P").save(palette)
    result = _invoke("compress", "encode", str(rgb), str(grey), str(palette), "-o", str(tmp_path / "cnz"), "--weights", str(weights))
    assert result.exit_code == 0, result.output
    encoded = json.loads(result.output)
    assert [e["channels"] for e in encoded] == [3, 1, 3]
    for entry in encoded:
        size = (tmp_path / "cnz" / f"{entry['input'].rsplit('/', 1)[-1].split('.')[0]}.cnz").stat().st_size
        assert entry["bytes"] == size and entry["bpp"] == pytest.approx(8 * size / (entry["height"] * entry["width"]))
    files = sorted(str(p) for p in (tmp_path / "cnz").glob("*.cnz"))
    result = _invoke("compress", "decode", *files, "-o", str(tmp_path / "png"), "--weights", str(weights))
    assert result.exit_code == 0, result.output
    expected = {"rgb": ((35, 21), "RGB"), "grey": ((9, 18), "L"), "palette": ((35, 21), "RGB")}
    for name, (size, mode) in expected.items():
        with Image.open(tmp_path / "png" / f"{name}.png") as image:
            assert (image.size, image.mode) == (size, mode)


def test_decode_refuses_a_foreign_file_with_one_line(weights, tmp_path):
    bad = tmp_path / "bad.cnz"
    bad.write_bytes(b"GIF89a" + bytes(30))
    result = CliRunner().invoke(main, ["compress", "decode", str(bad), "-o", str(tmp_path), "--weights", str(weights)])
    assert result.exit_code == 2
    assert "not a .cnz file" in result.output and len(result.output.strip().splitlines()) == 1


def test_unknown_quality_and_model_are_input_errors(weights, photos, tmp_path):
    result = CliRunner().invoke(main, ["compress", "encode", str(photos / "000.png"), "-o", str(tmp_path), "--quality", "9", "--weights", str(weights)])
    assert result.exit_code == 2 and "--quality 9: not available; expected one of: 1, 2, 3, 4" in result.output
    result = CliRunner().invoke(main, ["compress", "eval", "--images", str(photos), "--model", "vq", "--weights", str(weights)])
    assert result.exit_code == 2 and "--model 'vq': unknown" in result.output


def test_refine_encodes_files_the_same_decoder_reads_and_a_negative_count_is_refused(weights, photos, tmp_path):
    source = str(photos / "000.png")
    result = _invoke("compress", "encode", source, "-o", str(tmp_path / "cnz"), "--weights", str(weights), "--refine", "3")
    assert result.exit_code == 0, result.output
    result = _invoke("compress", "decode", str(tmp_path / "cnz" / "000.cnz"), "-o", str(tmp_path / "png"), "--weights", str(weights))
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "png" / "000.png") as decoded, Image.open(source) as original:
        assert decoded.size == original.size
    result = CliRunner().invoke(main, ["compress", "eval", "--images", str(photos), "--weights", str(weights), "--refine", "-1"])
    assert result.exit_code == 2 and "-1 is not in the range x>=0" in result.output
    with pytest.raises(InputError, match="--refine -2: expected a whole number of steps"):
        image_compression.encode(image_compression.EncodeConfig(inputs=(source,), out=str(tmp_path / "x"), weights=str(weights), refine=-2))
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_eval_json_has_the_agreed_keys(weights, photos):
    result = _invoke("compress", "eval", "--images", str(photos), "--weights", str(weights), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert {"codec", "jpeg", "webp", "bd_rate"} <= set(report)
    assert [set(p) >= {"quality", "bpp", "psnr", "ms_ssim"} for p in report["codec"]] == [True] * 4
    assert set(report["bd_rate"]) == {"jpeg", "webp"}
    assert report["images"] == 6
    # JPEG's curve rises with its quality setting, and each point's rate comes from a real file.
    curve = report["jpeg"]["curve"]
    assert curve[0]["bpp"] < curve[-1]["bpp"] and curve[0]["psnr"] < curve[-1]["psnr"]


@pytest.mark.slow
def test_train_exports_a_codec_and_resumes(photos, tmp_path):
    cfg = image_compression.TrainConfig(
        images=str(photos), out=str(tmp_path / "run"), filters=4, latent=4, steps=4, epoch_steps=2,
        patch=32, batch=2, holdout=2, quality=3,
    )
    summary = image_compression.train(cfg)
    assert summary["steps"] == 4
    assert summary["validation"]["images"] == ["004.png", "005.png"]
    assert summary["validation"]["bpp"] > 0
    codec_file = tmp_path / "run" / "factorized-q3.npz"
    assert summary["codec_file"] == str(codec_file)
    weights = tmp_path / "weights"
    weights.mkdir()
    codec_file.rename(weights / codec_file.name)
    encoded = image_compression.encode(
        image_compression.EncodeConfig(inputs=(str(photos / "000.png"),), out=str(tmp_path / "cnz"), quality=3, weights=str(weights))
    )
    assert encoded[0]["height"] == 40
    with pytest.raises(Exception, match="finished run"):
        image_compression.train(cfg)
    wider = dataclasses.replace(cfg, out=str(tmp_path / "wider"), filters=8, init=str(tmp_path / "run"))
    with pytest.raises(InputError, match=r"--init '.*run': a run of \{'model': 'factorized', 'filters': 4"):
        image_compression.train(wider)
    with pytest.raises(InputError, match="--init '.*photos0': not a compress training run"):
        image_compression.train(dataclasses.replace(wider, filters=4, init=str(photos)))
    assert not (tmp_path / "wider").exists()


def test_train_refuses_a_patch_that_is_not_a_multiple_of_16(photos):
    with pytest.raises(Exception, match="--patch 30"):
        image_compression.train(image_compression.TrainConfig(images=str(photos), patch=30))


# --- compress train: precision, mid-epoch saves, distribution (issue 6) --------------------------

TINY_TRAIN = dict(filters=4, latent=4, patch=32, batch=2, holdout=2)


def test_mixed_bfloat16_keeps_the_prior_in_float32_and_matches_float32(photos):
    """The bfloat16 hidden layers change the rate-distortion loss of the same weights by well under 1%."""
    import tensorflow as tf

    cfg = image_compression.TrainConfig(images=str(photos), **TINY_TRAIN)
    x = tf.constant(np.random.default_rng(0).uniform(size=(2, 32, 32, 3)), tf.float32)
    mixed, losses = _bfloat16_beside_float32(cfg, x)
    assert [layer.compute_dtype for layer in mixed.analysis.layers] == ["bfloat16"] * 6 + ["float32"]
    assert mixed.prior.compute_dtype == "float32"
    out = mixed(x)
    assert out["likelihoods"].dtype == tf.float32 and out["x_hat"].dtype == tf.float32
    assert losses[1] == pytest.approx(losses[0], rel=0.01)


def _bfloat16_beside_float32(cfg: image_compression.TrainConfig, x):
    """The codec of ``cfg`` built under mixed_bfloat16 with a float32 twin's weights, and both models' losses on ``x``."""
    import keras

    reference = image_compression._build(cfg)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = image_compression._build(cfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mixed.set_weights(reference.get_weights())
    losses = []
    for model in (reference, mixed):
        model.compile()
        losses.append(model.evaluate(x, verbose=0, return_dict=True)["loss"])
    return mixed, losses


def test_mixed_float16_scales_the_loss_and_trains_finitely(photos):
    """The GPU policy: the codec's train step goes through a LossScaleOptimizer (runs on CPU too, slowly)."""
    import keras
    import tensorflow as tf

    cfg = image_compression.TrainConfig(images=str(photos), **TINY_TRAIN)
    x = tf.constant(np.random.default_rng(0).uniform(size=(2, 32, 32, 3)), tf.float32)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = image_compression._build(cfg)
        model.compile(optimizer=image_compression._optimizer(1e-3))
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        before = [v.numpy().copy() for v in model.trainable_variables]
        logs = model.fit(tf.data.Dataset.from_tensors(x).repeat(20), epochs=1, verbose=0, shuffle=False).history
    finally:
        keras.mixed_precision.set_global_policy("float32")
    optimizer = model.optimizer
    assert np.isfinite(logs["loss"]).all()
    # The initial scale 2**15 overflows float16 gradients: those steps are skipped and the scale halves,
    # until steps go through; without scaling the overflowing gradients would have reached the weights.
    assert float(optimizer.dynamic_scale) < 2.0**15 and 0 < int(optimizer.iterations) < 20
    after = [v.numpy() for v in model.trainable_variables]
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))


@pytest.mark.slow
def test_train_with_mixed_precision_gives_a_finite_loss(photos, tmp_path):
    import keras

    cfg = image_compression.TrainConfig(
        images=str(photos), out=str(tmp_path / "run"), steps=2, epoch_steps=2, mixed_precision=True, **TINY_TRAIN
    )
    summary = image_compression.train(cfg)
    assert summary["steps"] == 2 and summary["replicas"] == 1
    assert np.isfinite([summary["history"][k] for k in ("loss", "bpp", "mse", "val_loss")]).all()
    assert np.isfinite(summary["validation"]["bpp"]) and summary["validation"]["bpp"] > 0
    # The exported codec and whatever runs next in this process are float32 again.
    assert keras.mixed_precision.global_policy().name == "float32"
    assert json.loads((tmp_path / "run" / "config.json").read_text())["mixed_precision"] is True


@pytest.mark.slow
def test_save_every_writes_mid_epoch_resume_states(photos, tmp_path, monkeypatch):
    from cnnkit import training

    saved = []
    save = training.ResumeCheckpoint._save

    def spy(self, epoch, step):
        path = save(self, epoch, step)
        saved.append((epoch, step, path.name, path.is_file()))
        return path

    monkeypatch.setattr(training.ResumeCheckpoint, "_save", spy)
    cfg = image_compression.TrainConfig(images=str(photos), out=str(tmp_path / "run"), steps=4, epoch_steps=4, save_every=2, **TINY_TRAIN)
    image_compression.train(cfg)
    # Steps 2 and 4 of the only epoch, then the epoch end.
    assert [(e, s, exists) for e, s, _, exists in saved] == [(0, 2, True), (0, 4, True), (1, 0, True)]
    assert saved[0][2] == "epoch-00000-step-0000002.weights.h5"


def test_save_every_must_be_positive(photos):
    with pytest.raises(Exception, match="--save-every 0"):
        image_compression.train(image_compression.TrainConfig(images=str(photos), save_every=0, **TINY_TRAIN))


@pytest.mark.slow
def test_train_mirrored_over_two_logical_cpus_in_a_subprocess(photos, tmp_path):
    """Logical CPU devices must be set before TensorFlow starts, hence a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    command = [
        sys.executable, str(root / "cli.py"), "compress", "train", "--images", str(photos), "--out", str(tmp_path / "run"),
        "--strategy", "mirrored", "--logical-cpus", "2", "--steps", "2", "--epoch-steps", "2",
        "--patch", "32", "--batch", "1", "--filters", "4", "--latent", "4", "--holdout", "2",
    ]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert (summary["replicas"], summary["global_batch"], summary["steps"]) == (2, 2, 2)
    assert np.isfinite(summary["history"]["loss"])
    assert (tmp_path / "run" / "factorized-q1.npz").is_file()


# --- the hyperprior model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_photos(tmp_path_factory):
    """Three 72x80 synthetic 'photos': the hyperprior trains on multiples of 64."""
    folder = tmp_path_factory.mktemp("large_photos")
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:72, 0:80]
    for i in range(3):
        pixels = np.stack([x * 3 + i * 20, y * 3, (x + y) * 2], -1) + rng.normal(0, 10, (72, 80, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_train_hyperprior_then_encode_decode_and_eval_with_its_codec_file(large_photos, tmp_path):
    run = tmp_path / "run"
    result = _invoke(
        "compress", "train", "--model", "hyperprior", "--images", str(large_photos), "--out", str(run),
        "--steps", "2", "--epoch-steps", "2", "--patch", "64", "--batch", "1", "--filters", "4", "--latent", "4",
        "--holdout", "1", "--quality", "2",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["steps"] == 2 and summary["codec_file"] == str(run / "hyperprior-q2.npz")
    assert np.isfinite(summary["validation"]["bpp"]) and summary["validation"]["bpp"] > 0
    grey = tmp_path / "grey.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 45), dtype=np.uint8)).save(grey)
    result = _invoke(
        "compress", "encode", str(large_photos / "000.png"), str(grey), "-o", str(tmp_path / "cnz"),
        "--model", "hyperprior", "--quality", "2", "--weights", str(run),
    )
    assert result.exit_code == 0, result.output
    files = [str(tmp_path / "cnz" / "000.cnz"), str(tmp_path / "cnz" / "grey.cnz")]
    result = _invoke("compress", "decode", *files, "-o", str(tmp_path / "png"), "--weights", str(run))
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "png" / "000.png") as rgb, Image.open(tmp_path / "png" / "grey.png") as decoded_grey:
        assert (rgb.size, rgb.mode, decoded_grey.size, decoded_grey.mode) == ((80, 72), "RGB", (45, 30), "L")
    result = _invoke("compress", "eval", "--images", str(large_photos), "--model", "hyperprior", "--weights", str(run), "--json")
    assert result.exit_code == 0, result.output
    assert [p["quality"] for p in json.loads(result.output)["codec"]] == [2]


def test_a_factorized_codec_file_warm_starts_the_hyperprior_transforms_and_nothing_else(weights, large_photos, tmp_path):
    from cnnkit.codec import codec, models

    cfg = image_compression.TrainConfig(
        images=str(large_photos), model="hyperprior", filters=4, latent=4, patch=64, batch=1, holdout=1,
        steps=1, epoch_steps=1, init=str(weights / "factorized-q2.npz"), out=str(tmp_path / "run"),
    )
    source = image_compression._init_source(cfg)
    assert (source.architecture, source.is_codec_file) == ("factorized", True)
    factorized = codec.load(weights / "factorized-q2.npz").model
    hyperprior = models.build("hyperprior", filters=4, latent=4, lmbda=0.01)
    fresh_hyper = [w.copy() for w in hyperprior.hyper_analysis.get_weights()]
    image_compression._start_from(hyperprior, source)
    for mine, theirs in ((hyperprior.analysis, factorized.analysis), (hyperprior.synthesis, factorized.synthesis)):
        assert all(np.array_equal(a, b) for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(hyperprior.hyper_analysis.get_weights(), fresh_hyper, strict=True))
    assert image_compression.train(cfg)["steps"] == 1
    # The other way gives the factorized model no prior for y, and the sizes must match.
    with pytest.raises(InputError, match=r"--init '.*hyperprior-q1.npz': a run of \{'model': 'hyperprior'"):
        image_compression.train(dataclasses.replace(cfg, model="factorized", patch=32, init=str(tmp_path / "run" / "hyperprior-q1.npz"),
                                                    out=str(tmp_path / "other")))
    with pytest.raises(InputError, match=r"a run of \{'model': 'factorized', 'filters': 4, 'latent': 4\}; this run is \{'model': 'hyperprior', 'filters': 8"):
        image_compression.train(dataclasses.replace(cfg, filters=8, out=str(tmp_path / "other")))
    with pytest.raises(InputError, match="--init '.*missing.npz': no such codec file"):
        image_compression.train(dataclasses.replace(cfg, init=str(tmp_path / "missing.npz"), out=str(tmp_path / "other")))
    assert not (tmp_path / "other").exists()


def test_train_hyperprior_refuses_a_patch_that_is_not_a_multiple_of_64(large_photos):
    with pytest.raises(Exception, match="--patch 32: expected a positive multiple of 64 for --model hyperprior"):
        image_compression.train(image_compression.TrainConfig(images=str(large_photos), model="hyperprior", patch=32))


def test_mixed_bfloat16_hyperprior_keeps_z_sigma_and_likelihoods_in_float32(large_photos):
    import tensorflow as tf

    cfg = image_compression.TrainConfig(images=str(large_photos), model="hyperprior", filters=4, latent=4, patch=64)
    x = tf.constant(np.random.default_rng(0).uniform(size=(1, 64, 64, 3)), tf.float32)
    mixed, losses = _bfloat16_beside_float32(cfg, x)
    for transform in (mixed.hyper_analysis, mixed.hyper_synthesis):
        assert [layer.compute_dtype for layer in transform.layers] == ["bfloat16", "bfloat16", "float32"]
    out = mixed(x)
    assert {out[k].dtype for k in ("z", "sigma", "x_hat")} == {tf.float32}
    assert {p.dtype for p in out["likelihoods"].values()} == {tf.float32}
    assert losses[1] == pytest.approx(losses[0], rel=0.01)
