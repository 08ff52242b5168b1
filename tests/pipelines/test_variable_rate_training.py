"""The resumable variable-rate codec run: schedule, crops, resume with optimizer state and EMA."""

import numpy as np
import pytest
from PIL import Image

from pipelines import variable_rate_training as vr


def _photos(folder, count=4, size=(80, 100)):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return str(folder)


def test_learning_rate_warms_up_once_holds_then_decays():
    cfg = vr.Config(images=(), out="x", steps=1000, lr=1.0, warmup_steps=100, decay_start=0.8, final_lr_ratio=0.1)
    assert vr.learning_rate(cfg, 0) == pytest.approx(0.01)
    assert vr.learning_rate(cfg, 500) == 1.0
    assert vr.learning_rate(cfg, 900) == pytest.approx(0.1 + 0.9 * 0.5)
    assert vr.learning_rate(cfg, 1000) == pytest.approx(0.1)


def test_crops_cover_scales_flips_and_rotations(tmp_path):
    cfg = vr.Config(images=(_photos(tmp_path / "p"),), out="x", patch=64, batch=16, holdout=1)
    photos = vr.training_photos(cfg)
    assert len(photos) == 3
    crops = vr.random_crops(photos, cfg, np.random.default_rng(0))
    assert crops.shape == (16, 64, 64, 3) and crops.dtype == np.float32
    assert 0.0 <= crops.min() and crops.max() <= 1.0


@pytest.mark.slow
def test_resume_continues_the_step_count_and_keeps_the_ema(tmp_path):
    cfg = vr.Config(
        images=(_photos(tmp_path / "p"),), out=str(tmp_path / "run"), steps=8, filters=8, latent=12,
        patch=64, batch=2, holdout=1, warmup_steps=2, log_steps=2, bfloat16=False,
    )
    assert vr.run(cfg, max_steps=4)["step"] == 4
    result = vr.run(cfg)
    assert result["step"] == 8
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4", "6", "8"]
    restored = vr.ema_model(cfg)
    fresh = vr._build(cfg)
    assert restored.count_params() == fresh.count_params()
    # The EMA weights were read back, not left at the initialisation.
    assert any(not np.allclose(a, b) for a, b in zip(restored.get_weights(), fresh.get_weights()))


def test_psnr_at_interpolates_in_log_rate_and_extrapolates_past_the_ends():
    points = [{"bpp": 0.2, "psnr": 25.0}, {"bpp": 0.8, "psnr": 31.0}]
    assert vr.psnr_at(points, 0.4) == pytest.approx(28.0)
    assert vr.psnr_at(points, 1.6) == pytest.approx(34.0)
    assert vr.psnr_at(points[::-1], 0.1) == pytest.approx(22.0)


def test_warm_up_restarts_at_the_step_adam_started():
    cfg = vr.Config(images=(), out="x", steps=1000, lr=1.0, warmup_steps=100)
    assert vr.learning_rate(cfg, 500, optimizer_start=450) == pytest.approx(0.51)
    assert vr.learning_rate(cfg, 600, optimizer_start=450) == 1.0


@pytest.mark.slow
def test_evaluation_exports_codes_the_held_out_photos_and_a_new_machine_starts_from_best(tmp_path):
    import json

    cfg = vr.Config(
        images=(_photos(tmp_path / "p", size=(64, 64)),), out=str(tmp_path / "run"), steps=4, filters=8, latent=12,
        patch=64, batch=2, holdout=1, warmup_steps=2, log_steps=2, eval_steps=2, bfloat16=False,
    )
    vr.run(cfg)
    rows = (tmp_path / "run" / "evaluations.csv").read_text().splitlines()
    # Two evaluations (steps 2 and 4) of six levels each.
    assert len(rows) == 1 + 2 * 6 and rows[0].startswith("step,quality,bpp,psnr,score")
    best = tmp_path / "run" / "best"
    assert json.loads((best / "manifest.json").read_text())["step"] in (2, 4)
    again = vr.Config(**{**cfg.__dict__, "out": str(tmp_path / "new-machine"), "init": str(best), "steps": 6})
    (tmp_path / "new-machine").mkdir()
    state = vr._State(again, tmp_path / "new-machine")
    assert int(state.step.numpy()) == state.optimizer_start == json.loads((best / "manifest.json").read_text())["step"]
    # The step reached in the new folder continues from the one it started at.
    assert vr.run(again)["step"] == 6
