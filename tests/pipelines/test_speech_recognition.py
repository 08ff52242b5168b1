"""pipelines.speech_recognition: a tiny synth-digits run, then evaluate and predict on it."""

from __future__ import annotations

import functools
import json

import keras
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from cnnkit import report as reporting
from cnnkit.data import speech, synth_speech
from cnnkit.errors import InputError
from pipelines import runs
from pipelines import speech_recognition as sr
from tests import browser

# The default dataset, shrunk: 2 accents x 2 training voices x 10 digits, 2 unseen test voices.
TINY_SYNTH = {"accents": ("en", "en-us"), "train_variants": ("m1", "f2"), "test_variants": ("m7",)}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    # Hand-written-gradient convolutions: the run must also save and reload them.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(speech.synth_speech, "load", functools.partial(synth_speech.load, **TINY_SYNTH))
        cfg = sr.Config(
            sample_rate=8000, duration=0.5, n_mels=20, epochs=1, batch_size=8, quiet=True,
            cache_dir=str(folder / "cache"), out=str(folder / "run"), speed_perturb=0.1, vtlp=0.1, filter_augment=6.0,
            conv="handgrad", fmax=3800.0, tempo_perturb=0.2,
        )  # fmt: skip
        result = sr.run(cfg)
        yield folder, result


@pytest.mark.slow
def test_run_writes_metrics_with_per_speaker_accuracy(finished_run):
    folder, result = finished_run
    run_dir = folder / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "speech" and metrics["examples"]["test"] == 20
    assert set(metrics["per_speaker"]) == {"en+m7", "en-us+m7"}
    per_speaker = [row["accuracy"] * row["n"] for row in metrics["per_speaker"].values()]
    assert sum(per_speaker) / 20 == pytest.approx(metrics["test_accuracy"])
    assert metrics["worst_speaker"] in metrics["per_speaker"]
    assert np.sum(metrics["confusion_matrix"]) == 20
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == "speech" and config["preprocessing"]["input_shape"] == [47, 20, 1]
    assert config["fmax"] == 3800.0
    for name in ("model.keras", "history.csv", "curves.png", "confusion_matrix.png", "misclassified.png"):
        assert (run_dir / name).is_file()
    assert result["run_dir"] == str(run_dir)


@pytest.mark.slow
def test_evaluate_repeats_the_test_score_and_predict_ranks_words(finished_run, tmp_path, monkeypatch):
    folder, result = finished_run
    run_dir = str(folder / "run")
    monkeypatch.setattr(speech.synth_speech, "load", functools.partial(synth_speech.load, **TINY_SYNTH))
    report = sr.evaluate(run_dir, "synth-digits", "test", cache_dir=str(folder / "cache"))
    assert report["n"] == 20 and report["accuracy"] == pytest.approx(result["test_accuracy"])
    assert report["per_speaker"] == result["per_speaker"]

    clip = synth_speech.load(folder / "cache", sample_rate=8000, **TINY_SYNTH)["test"][0][3]
    wav = tmp_path / "three.wav"
    sf.write(wav, clip, 8000, subtype="PCM_16")
    [prediction] = sr.predict(run_dir, [str(wav)], top_k=3)
    probabilities = [row["probability"] for row in prediction["top"]]
    assert prediction["file"] == str(wav) and len(probabilities) == 3
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0 + 1e-6
    assert {row["label"] for row in prediction["top"]} <= set(synth_speech.DIGITS)

    (tmp_path / "fake.wav").write_text("hello")
    with pytest.raises(InputError, match="fake.wav': not a readable WAV"):
        sr.predict(run_dir, [str(wav), str(tmp_path / "fake.wav")])
    with pytest.raises(InputError, match="--subset 'holdout'"):
        sr.evaluate(run_dir, "synth-digits", "holdout")


@pytest.fixture(scope="module")
def explained(finished_run):
    """``cli.py explain`` of one test clip of the finished run, with ``--class nine``: (wav, explain folder)."""
    import cli

    folder, _ = finished_run
    wav = folder / "clip.wav"
    sf.write(wav, synth_speech.load(folder / "cache", sample_rate=8000, **TINY_SYNTH)["test"][0][4], 8000, subtype="PCM_16")
    outcome = CliRunner().invoke(cli.main, ["explain", str(folder / "run"), str(wav), "--class", "nine", "--out", str(folder / "seen")])
    assert outcome.exit_code == 0, outcome.output
    return wav, folder / "seen"


@pytest.mark.slow
def test_the_report_plays_the_misclassified_test_clips(finished_run):
    folder, result = finished_run
    run_dir = folder / "run"
    test_clips = synth_speech.load(folder / "cache", sample_rate=8000, **TINY_SYNTH)["test"][0]
    heard = result["misclassified_examples"]
    assert len(heard) == min(result["misclassified"], reporting.CLIPS_HEARD) > 0
    for clip in heard:
        audio, rate = sf.read(run_dir / clip["audio"], dtype="float32")
        # The WAV is that test clip (16-bit PCM), in the test split's order.
        assert rate == 8000 and np.abs(audio - test_clips[clip["index"]]).max() < 2**-14
        assert (run_dir / clip["spectrogram"]).is_file() and clip["true"] != clip["predicted"]
    page = (run_dir / "report.html").read_text()
    assert page.count("<audio ") == len(heard) and "Per test speaker" in page


@pytest.mark.slow
def test_explain_answers_as_predict_does_through_hand_written_convolutions(finished_run, explained):
    folder, _ = finished_run
    wav, seen = explained
    record = json.loads((seen / "explain.json").read_text())
    [answer] = sr.predict(str(folder / "run"), [str(wav)], top_k=3)
    assert [t["label"] for t in record["inputs"][0]["top"]] == [t["label"] for t in answer["top"]]
    assert record["grad_cam_block"] == "ds4_pw_conv" and record["blocks"][0] == "conv1_conv"
    assert record["inputs"][0]["grad_cam_classes"][1] == "nine"


@pytest.mark.slow
def test_both_speech_pages_show_every_picture_and_clip_in_chromium(finished_run, explained):
    browser.require_chromium()
    folder, _ = finished_run
    shown = browser.assert_shows_everything(folder / "run" / "report.html")
    assert shown.audio and len(shown.images) > len(shown.audio)
    browser.assert_shows_everything(explained[1] / "index.html")


@pytest.mark.slow
def test_cli_evaluate_on_a_folder_of_new_recordings(finished_run, tmp_path):
    import cli

    folder, _ = finished_run
    for label in ("one", "two"):
        for i in range(2):
            clip = 0.3 * np.sin(np.arange(4000) * (0.1 + 0.05 * i + (label == "two") * 0.2))
            (tmp_path / label).mkdir(exist_ok=True)
            sf.write(tmp_path / label / f"{i}.wav", clip, 8000)
    outcome = CliRunner().invoke(cli.main, ["evaluate", str(folder / "run"), "--dataset", f"folder:{tmp_path}", "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output)
    assert report["n"] == 4 and report["subset"] == "all"
    assert sum(row["support"] for row in report["per_class"].values()) == 4
    assert report["per_class"]["one"]["support"] == 2


def _label_folder(root, labels, per_label=2):
    for k, label in enumerate(labels):
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            sf.write(root / label / f"{i}.wav", 0.3 * np.sin(np.arange(4000) * 0.01 * (k + 1 + i)), 8000)
    return root


def test_extra_train_appends_every_clip_under_the_main_datasets_labels(tmp_path):
    main = _label_folder(tmp_path / "main", ["one", "three", "two"], per_label=4)
    extra = _label_folder(tmp_path / "extra", ["one", "two"], per_label=3)
    cfg = sr.Config(dataset=f"folder:{main}", extra_train=f"folder:{extra}", sample_rate=8000)
    data = speech.load(cfg.dataset, split="auto", sample_rate=8000)
    mixed = sr._with_extra_training(data, cfg)
    assert mixed.train.size == data.train.size + 6 and mixed.test.size == data.test.size
    labels = [int(y) for _, y in mixed.train.dataset]
    main_labels = [int(y) for _, y in data.train.dataset]
    # the extra folder's "two" (its index 1) is the main dataset's index 2
    assert labels[len(main_labels):] == [0, 0, 0, 2, 2, 2]

    unknown = _label_folder(tmp_path / "unknown", ["one", "seven"])
    with pytest.raises(InputError, match=r"'seven'"):
        sr._with_extra_training(data, sr.Config(extra_train=f"folder:{unknown}", sample_rate=8000))


def test_bad_options_fail_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(InputError, match="--frontend 'sox'"):
        sr.run(sr.Config(frontend="sox", out=str(out)))
    with pytest.raises(InputError, match="--model 'wavenet'"):
        sr.run(sr.Config(model="wavenet", out=str(out)))
    with pytest.raises(InputError, match="--save-every 0: expected a positive number of steps"):
        sr.run(sr.Config(save_every=0, out=str(out)))
    with pytest.raises(InputError, match="--vtlp 0.6"):
        sr.run(sr.Config(vtlp=0.6, out=str(out)))
    with pytest.raises(InputError, match="--vtlp 0.1: works on the power spectrum inside the tf front end"):
        sr.run(sr.Config(vtlp=0.1, frontend="librosa", out=str(out)))
    with pytest.raises(InputError, match="--filter-augment 30.0: expected 0 to 20 dB"):
        sr.run(sr.Config(filter_augment=30.0, out=str(out)))
    with pytest.raises(InputError, match="--filter-augment 6.0: works on the power spectrum inside the tf front end"):
        sr.run(sr.Config(filter_augment=6.0, frontend="librosa", out=str(out)))
    with pytest.raises(InputError, match=r"--tempo-perturb 0.5: expected a fraction in \[0, 0.5\)"):
        sr.run(sr.Config(tempo_perturb=0.5, out=str(out)))
    with pytest.raises(InputError, match="--tempo-perturb 0.1: works on the power spectrum inside the tf front end"):
        sr.run(sr.Config(tempo_perturb=0.1, frontend="librosa", out=str(out)))
    with pytest.raises(InputError, match=r"--tta-tempo 0.7: expected a fraction in \[0, 0.5\)"):
        sr.run(sr.Config(tta_tempo=0.7, out=str(out)))
    with pytest.raises(InputError, match="--tta-warp 0.1: works on the power spectrum inside the tf front end"):
        sr.run(sr.Config(tta_warp=0.1, frontend="librosa", out=str(out)))
    with pytest.raises(InputError, match="--fmax 9000: expected above fmin"):
        sr.run(sr.Config(fmax=9000.0, out=str(out)))
    with pytest.raises(InputError, match="shorter than one"):
        sr.run(sr.Config(duration=0.01, time_shift=0.0, out=str(out)))
    assert not out.exists()


def test_cli_help_lists_every_config_field():
    import cli

    outcome = CliRunner().invoke(cli.main, ["train-speech", "--help"])
    assert outcome.exit_code == 0
    for field in sr.Config.__dataclass_fields__:
        assert f"--{field.replace('_', '-')}" in outcome.output


@pytest.mark.slow
def test_scoring_views_put_the_clip_as_it_is_first_and_cross_warps_with_tempos():
    assert sr.scoring_views({}) == [speech.View()]
    assert sr.scoring_views({"tta_warp": 0.1}) == [speech.View(1.0), speech.View(0.9), speech.View(1.1)]
    views = sr.scoring_views({"tta_warp": 0.1, "tta_tempo": 0.2})
    assert len(views) == 9 and views[0].identity and speech.View(1.1, 0.8) in views


def test_an_ensemble_run_trains_each_member_and_averages_them(tmp_path, monkeypatch):
    monkeypatch.setattr(speech.synth_speech, "load", functools.partial(synth_speech.load, **TINY_SYNTH))
    cfg = sr.Config(
        sample_rate=8000, duration=0.5, n_mels=20, epochs=1, batch_size=8, quiet=True, ensemble=2,
        cache_dir=str(tmp_path / "cache"), out=str(tmp_path / "run"), time_shift=0.0, tta_warp=0.1,
    )  # fmt: skip
    result = sr.run(cfg)
    run_dir = tmp_path / "run"
    members = result["members"]
    assert [m["seed"] for m in members] == [0, 1] and result["epochs_run"] == 2
    for i in range(2):
        assert (run_dir / "members" / str(i) / "model.keras").is_file()
        assert (run_dir / "members" / str(i) / "history.csv").is_file()
    # Two seeds, two different members; the run's model is their average.
    model = keras.saving.load_model(run_dir / "model.keras")
    first, second = (keras.saving.load_model(run_dir / "members" / str(i) / "model.keras") for i in range(2))
    x = np.random.default_rng(0).normal(size=(4, 47, 20, 1)).astype(np.float32)
    assert not np.allclose(first.predict(x, verbose=0), second.predict(x, verbose=0))
    np.testing.assert_allclose(
        model.predict(x, verbose=0), (first.predict(x, verbose=0) + second.predict(x, verbose=0)) / 2, atol=1e-6
    )
    # evaluate scores through the run's own three test-time views
    report = sr.evaluate(str(run_dir), "synth-digits", "test", cache_dir=str(tmp_path / "cache"))
    assert report["accuracy"] == pytest.approx(result["test_accuracy"])
    # The report shows each member's curves; explain draws member 0 and answers as predict does (three views).
    assert "members/1/curves.png" in (run_dir / "report.html").read_text()
    wav = tmp_path / "clip.wav"
    sf.write(wav, 0.3 * np.sin(np.arange(4000) * 0.2), 8000)
    explained = runs.explain(str(run_dir), [str(wav)], str(tmp_path / "seen"), top_k=2)
    assert explained["explained_network"] == "member0"
    [answer] = sr.predict(str(run_dir), [str(wav)], top_k=2)
    np.testing.assert_allclose([t["probability"] for t in explained["inputs"][0]["top"]], [t["probability"] for t in answer["top"]], rtol=1e-5)
    with pytest.raises(InputError, match="--ensemble 0: expected 1 to 16 models"):
        sr.run(sr.Config(ensemble=0, out=str(tmp_path / "other")))


def test_a_run_on_recordings_records_the_augmentation_its_defaults_chose(tmp_path):
    clips = _label_folder(tmp_path / "clips", ["one", "two"], per_label=6)
    common = dict(dataset=f"folder:{clips}", sample_rate=8000, duration=0.5, n_mels=20, epochs=1, batch_size=8, quiet=True)
    sr.run(sr.Config(**common, out=str(tmp_path / "default")))
    config = json.loads((tmp_path / "default" / "config.json").read_text())
    # two words, not the ten digits: no eSpeak voices join
    assert (config["vtlp"], config["filter_augment"], config["extra_train"]) == (0.15, 3.0, "")
    sr.run(sr.Config(**common, vtlp=0.0, filter_augment=0.0, out=str(tmp_path / "off")))
    config = json.loads((tmp_path / "off" / "config.json").read_text())
    assert (config["vtlp"], config["filter_augment"]) == (0.0, 0.0)
