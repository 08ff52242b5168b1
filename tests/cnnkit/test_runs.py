"""The run folder: atomic writes, config.json with its task, resume and not-a-run checks."""

import json
import os

import numpy as np
import pytest

from cnnkit import runs
from cnnkit.errors import InputError


def test_atomic_open_leaves_old_file_on_error(tmp_path):
    path = tmp_path / "metrics.json"
    runs.write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with runs.atomic_open(path) as f:
            f.write('{"a": 2, "trunc')
            raise RuntimeError("crash mid-write")
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary left behind


def test_atomic_folder_publishes_whole_folders_and_keeps_the_old_one_on_error(tmp_path):
    out = tmp_path / "page"
    with runs.atomic_folder(out) as folder:
        (folder / "a.txt").write_text("1")
        assert not out.exists()  # nothing visible until the folder is complete
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with runs.atomic_folder(out) as folder:
        (folder / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]  # replaced as a whole
    with pytest.raises(RuntimeError):
        with runs.atomic_folder(out) as folder:
            (folder / "c.txt").write_text("3")
            raise RuntimeError("crash mid-way")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert os.listdir(tmp_path) == ["page"]  # no temporary folders left behind
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~runs._umask()


def test_write_json_converts_numpy(tmp_path):
    runs.write_json(tmp_path / "m.json", {"x": np.float32(0.5), "cm": np.eye(2, dtype=np.int64)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": 0.5, "cm": [[1, 0], [0, 1]]}


def test_csv_round_trip(tmp_path):
    rows = [{"epoch": 0, "loss": 0.5}, {"epoch": 1, "loss": 0.25, "val_loss": 0.3}]
    runs.write_csv(tmp_path / "h.csv", rows)
    back = runs.read_csv(tmp_path / "h.csv")
    assert back[0] == {"epoch": 0, "loss": 0.5, "val_loss": ""}
    assert back[1] == rows[1] and isinstance(back[1]["epoch"], int)
    assert runs.read_csv(tmp_path / "missing.csv") == []


def test_temporary_path_keeps_suffixes(tmp_path):
    tmp = runs.temporary_path(tmp_path / "model.keras")
    assert tmp.parent == tmp_path and tmp.name.endswith(".keras") and tmp.name != "model.keras"


def test_written_files_get_the_mode_open_would_give_not_mkstemps_0600(tmp_path):
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("x")
    expected = (tmp_path / "plain.txt").stat().st_mode & 0o777
    runs.write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == expected
    assert runs.temporary_path(tmp_path / "model.keras").stat().st_mode & 0o777 == expected


def test_default_out_is_file_name_safe():
    out = runs.default_out("idx:/data/mnist", "lecture")
    assert out.parent.name == "runs" and out.name.startswith("idx-data-mnist-lecture-")


def test_start_resume_and_refusals(tmp_path):
    out = tmp_path / "run"
    run_dir = runs.start(out, "image", {"epochs": 3})
    assert json.loads((run_dir / "config.json").read_text()) == {"task": "image", "epochs": 3}
    (run_dir / ".model.x1y2.keras").write_bytes(b"half")  # a temporary of a killed attempt
    assert runs.start(out, "image", {"epochs": 3}) == run_dir  # same command: resume
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json"]
    with pytest.raises(InputError, match="different options \\(epochs\\)"):
        runs.start(out, "image", {"epochs": 4})
    runs.finish(run_dir, {"test_accuracy": 1.0})
    with pytest.raises(InputError, match="finished run"):
        runs.start(out, "image", {"epochs": 3})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        runs.start(tmp_path / "other", "image", {})
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        runs.start(tmp_path / "file", "image", {})


def test_start_unwritable_out(tmp_path):
    # A parent that is a file cannot hold a folder, whoever runs the test (root included).
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot write there"):
        runs.start(tmp_path / "file" / "run", "image", {})


def test_finish_drops_backup(tmp_path):
    run_dir = runs.start(tmp_path / "run", "speech", {})
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "state").write_text("x")
    runs.finish(run_dir, {"test_accuracy": 0.5})
    assert not (run_dir / "backup").exists()
    assert json.loads((run_dir / "metrics.json").read_text()) == {"test_accuracy": 0.5}


def test_load_refuses_what_is_not_a_finished_run(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        runs.load(tmp_path / "nope")
    with pytest.raises(InputError, match="not a run"):
        runs.load(tmp_path)
    run_dir = runs.start(tmp_path / "run", "speech", {"seed": 1})
    with pytest.raises(InputError, match="unfinished run"):
        runs.load(run_dir)
    (run_dir / "model.keras").write_bytes(b"")
    runs.finish(run_dir, {"test_accuracy": 0.5})
    run = runs.load(run_dir)
    assert (run.task, run.config["seed"], run.metrics["test_accuracy"]) == ("speech", 1, 0.5)
    assert run.model_path == run_dir / "model.keras"


def test_finished_with_reads_back_the_same_options_and_names_the_ones_that_differ(tmp_path):
    options = {"epochs": 20, "extra_train": "synth-digits:extended", "out": tmp_path / "fold"}
    assert runs.finished_with(tmp_path / "fold", options) is None  # no folder yet
    run_dir = runs.start(tmp_path / "fold", "speech", {**options, "preprocessing": {"classes": ["no", "yes"]}})
    assert runs.finished_with(run_dir, options) is None  # started, not finished: the caller resumes it
    (run_dir / "model.keras").write_bytes(b"")
    runs.finish(run_dir, {"test_accuracy": 0.9})
    # A path compares as the string config.json holds; keys the caller does not know are ignored.
    assert runs.finished_with(run_dir, options).metrics == {"test_accuracy": 0.9}
    with pytest.raises(InputError, match=r"^'.*fold': holds a finished run with other options \(ensemble, epochs\)$"):
        runs.finished_with(run_dir, {**options, "epochs": 2, "ensemble": 3})
