"""report and explain through the CLI on the shared tiny image run: the pages, what they say, Chromium, and bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import cli
from tests import browser


def invoke(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("digits")
    digits = load_digits()
    files = []
    for i in (0, 7):
        files.append(folder / f"digit {i}.png")
        Image.fromarray(np.round(digits.images[i] * 255 / 16).astype(np.uint8), "L").resize((24, 24)).save(files[-1])
    return files


def test_train_image_writes_the_report_and_cli_report_rewrites_it(image_run):
    page = image_run / "report.html"
    first = page.read_text()
    assert "Test metrics" in first and "confusion_matrix.png" in first and "misclassified.png" in first
    page.unlink()
    result = invoke("report", image_run)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(page) and page.read_text() == first


def test_explain_shows_what_predict_answers(image_run, digit_files, tmp_path):
    out = tmp_path / "seen"
    result = invoke("explain", image_run, *digit_files, "--class", "3", "--top-k", 4, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / "index.html")
    record = json.loads((out / "explain.json").read_text())
    predicted = json.loads(invoke("predict", image_run, *digit_files, "--top-k", 4, "--json").output)
    for explained, answer in zip(record["inputs"], predicted):
        assert [t["label"] for t in explained["top"]] == [t["label"] for t in answer["top"]]
        np.testing.assert_allclose([t["probability"] for t in explained["top"]], [t["probability"] for t in answer["top"]], rtol=1e-5)
        assert explained["grad_cam_classes"] == [answer["top"][0]["label"], "3"]
    assert record["grad_cam_block"] == "block3_conv"
    assert {"kernels.png", "input0-gradcam.png", "input1-block3_conv.png"} <= {p.name for p in out.iterdir()}
    page = (out / "index.html").read_text()
    assert "digit 0.png" in page and 'src="input0-gradcam.png"' in page


def test_explain_defaults_to_the_run_folder(image_run, digit_files):
    result = invoke("explain", image_run, digit_files[0])
    assert result.exit_code == 0, result.output
    assert (image_run / "explain" / "index.html").is_file()


@pytest.mark.slow
def test_both_image_pages_show_every_picture_in_chromium(image_run, digit_files, tmp_path):
    browser.require_chromium()
    assert invoke("explain", image_run, *digit_files, "--class", "8", "--out", tmp_path / "seen").exit_code == 0
    for page in (image_run / "report.html", tmp_path / "seen" / "index.html"):
        shown = browser.assert_shows_everything(page)
        assert len(shown.images) >= 3


def not_an_image(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    return tmp_path / "x.png"


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t, run, f: ["explain", t, f], "not a run"),
        (lambda t, run, f: ["explain", t / "nope", f], "no such folder"),
        (lambda t, run, f: ["explain", run, t / "missing.png"], "FILE '.*missing.png': no such file"),
        (lambda t, run, f: ["explain", run, not_an_image(t)], "x.png': not a readable image"),
        (lambda t, run, f: ["explain", run, f, "--class", "ten"], "--class 'ten': not a class of this run; expected one of: 0, 1, 2"),
        (lambda t, run, f: ["explain", run, f, "--top-k", 0], "--top-k 0: expected an integer >= 1"),
        (lambda t, run, f: ["report", t], "not a run"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(image_run, digit_files, tmp_path, make_args, message):
    args = make_args(tmp_path, image_run, digit_files[0])
    result = invoke(*args, *(["--out", tmp_path / "out"] if args[0] == "explain" else []))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "report.html").exists()


def test_explain_never_overwrites_a_folder_it_did_not_write(image_run, digit_files, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke("explain", image_run, digit_files[0], "--out", tmp_path)
    assert result.exit_code == 2 and "holds other files" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
