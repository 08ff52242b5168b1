"""The output folder of a training run: atomic writes, ``config.json``, ``metrics.json``.

Every training command (train-image, train-speech, compress train) writes one
folder per run::

    RUN_DIR/
      config.json     every option of the run plus "task" ("image", "speech", ...)
                      and whatever the task needs to preprocess new inputs
      model.keras     the best weights (written by cnnkit.training)
      history.csv     one row per completed epoch (written by cnnkit.training)
      backup/         the resume state while training is unfinished
      logs/           TensorBoard event files
      metrics.json    written last: its presence means the run finished
      *.png           plots

Every file is written to a temporary name in the same folder and then renamed
with ``os.replace``, which is atomic on POSIX and Windows, so a crash (even
SIGKILL) leaves either the old file or the new one, never half of one.

Typical use by a pipeline::

    run_dir = runs.start(cfg.out, task="image", config={**asdict(cfg), "preprocessing": {...}})
    ...                                   # cnnkit.training.fit(model, ..., run_dir=run_dir)
    runs.write_json(run_dir / runs.METRICS, metrics)

and by ``cli.py evaluate/predict/export``::

    run = runs.load(run_dir)              # InputError when the folder is not a run
    run.task, run.config, run.model_path
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cnnkit.errors import InputError

CONFIG = "config.json"
METRICS = "metrics.json"
MODEL = "model.keras"
HISTORY = "history.csv"
BACKUP = "backup"
LOGS = "logs"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the same folder so that ``os.replace`` is a
    rename within one file system (atomic), and it is fsynced first so the
    rename never publishes a file whose bytes are still in the page cache only.
    On an exception the temporary file is removed and ``path`` is untouched.

    Args:
        path: the final file name.
        mode: ``"w"`` (text, UTF-8) or ``"wb"``.

    Yields:
        The open temporary file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _NEW_FILE_MODE)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Fill a temporary folder beside ``path``; on success put it in the place of ``path`` (and of what was there).

    A reader sees the old folder or the whole new one, never a part of it
    (between the two renames, for an instant, neither). On an exception the
    temporary folder is removed and ``path`` is untouched.

    Yields:
        The temporary folder, to write into.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


# mkstemp makes its files owner-only (0600); a published output gets the mode open() would give it.
_NEW_FILE_MODE = 0o666 & ~_umask()


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh name beside ``path`` that keeps its suffixes, for writers that want a file name.

    Keras insists on the ``.keras`` / ``.weights.h5`` suffix, so the
    temporary name is ``.<stem>.<random><suffixes>``; write it, then
    ``os.replace(tmp, path)``.
    """
    path = Path(path)
    stem, dot, suffixes = path.name.partition(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=dot + suffixes, dir=path.parent)
    os.fchmod(fd, _NEW_FILE_MODE)
    os.close(fd)
    return Path(tmp)


def save_model(model: Any, path: str | os.PathLike) -> None:
    """``model.save(path)`` (a Keras model, ``.keras``), atomically: a reader never sees half a file."""
    tmp = temporary_path(path)
    model.save(tmp)
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically. NumPy scalars and arrays are converted."""
    with atomic_open(path) as f:
        json.dump(obj, f, indent=2, default=_jsonable)
        f.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_open(path) as f:
        f.write(text)


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write dict rows as CSV (header from the union of keys, in first-seen order), atomically."""
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    with atomic_open(path) as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | os.PathLike) -> list[dict[str, int | float | str]]:
    """Read a CSV written by :func:`write_csv`; numeric cells become ints or floats. Missing file: ``[]``."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def default_out(*parts: str, root: str | os.PathLike = "runs") -> Path:
    """``runs/<part>-<part>-<UTC timestamp>``, with characters unsafe in file names replaced.

    Example: ``default_out("idx:data/mnist", "lecture")`` ->
    ``runs/idx-data-mnist-lecture-20260101-120000``.
    """
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "-", p).strip("-") for p in (*parts, stamp))
    return Path(root) / name


def start(out: str | os.PathLike, task: str, config: Mapping[str, Any], *, write: bool = True) -> Path:
    """Create (or reopen for resume) the run folder ``out`` and write its ``config.json``.

    Rerunning the same command with the same ``out`` resumes: the folder is
    accepted when its ``config.json`` equals the new one. A different config,
    a finished run (``metrics.json`` present) or a folder that is not ours is
    refused, so a typo in ``--out`` never overwrites another run.

    Args:
        out: the run folder; created with its parents.
        task: what kind of run this is (``"image"``, ``"speech"``, ...);
            ``evaluate``/``predict``/``export`` dispatch on it.
        config: every option of the run (JSON-serialisable), plus what is
            needed to preprocess new inputs.
        write: ``False`` on non-chief workers of a multi-worker run: the
            folder is checked but nothing is written.

    Returns:
        The run folder as a ``Path``.

    Raises:
        InputError: ``out`` is unwritable, is a file, or holds a different or
            finished run.
    """
    run_dir = Path(out)
    record = _as_recorded({"task": task, **config})
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out '{run_dir}': exists and is not a folder")
    config_path = run_dir / CONFIG
    if config_path.is_file():
        old = json.loads(config_path.read_text(encoding="utf-8"))
        changed = sorted(k for k in old.keys() | record.keys() if old.get(k) != record.get(k))
        if changed:
            raise InputError(
                f"--out '{run_dir}': holds a run with different options ({', '.join(changed)}); "
                "rerun the same command to resume it, or choose another --out"
            )
        if (run_dir / METRICS).is_file():
            raise InputError(f"--out '{run_dir}': holds a finished run; choose another --out")
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise InputError(f"--out '{run_dir}': folder is not empty and holds no run; choose another --out")
    if not write:
        return run_dir
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _remove_temporaries(run_dir)
        write_json(config_path, record)
    except OSError as error:
        raise InputError(f"--out '{run_dir}': cannot write there ({error.strerror or error})") from error
    return run_dir


def finish(run_dir: str | os.PathLike, metrics: Mapping[str, Any]) -> None:
    """Write ``metrics.json`` (which marks the run finished), then drop the resume state in ``backup/``.

    In this order, a crash in between leaves a finished run with a stale
    backup, never an unfinished run without one.
    """
    write_json(Path(run_dir) / METRICS, metrics)
    shutil.rmtree(Path(run_dir) / BACKUP, ignore_errors=True)


@dataclass(frozen=True)
class Run:
    """A finished run folder, as read back by :func:`load`.

    Attributes:
        dir: the run folder.
        task: ``config["task"]``.
        config: the parsed ``config.json``.
        metrics: the parsed ``metrics.json``.
    """

    dir: Path
    task: str
    config: dict
    metrics: dict

    @property
    def model_path(self) -> Path:
        """``RUN_DIR/model.keras``."""
        return self.dir / MODEL

    def load_model(self):
        """The run's ``model.keras`` as a ``keras.Model``, with cnnkit's own layers and losses registered for loading."""
        import keras

        import cnnkit.handgrad  # noqa: F401  (registers the hand-written-gradient layers model.keras may name)
        import cnnkit.training  # noqa: F401  (registers the label-smoothing loss a compiled model.keras may name)

        return keras.models.load_model(self.model_path)


def load(run_dir: str | os.PathLike) -> Run:
    """Read a finished run folder.

    Raises:
        InputError: the folder does not exist, or lacks a ``config.json`` with
            a ``"task"``, a ``model.keras`` or a ``metrics.json`` (i.e. it is
            not a run, or the run never finished).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"RUN_DIR '{run_dir}': no such folder")
    try:
        config = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
        task = config["task"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"RUN_DIR '{run_dir}': not a run (no {CONFIG} with a \"task\")") from None
    missing = [name for name in (MODEL, METRICS) if not (run_dir / name).is_file()]
    if missing:
        raise InputError(f"RUN_DIR '{run_dir}': unfinished run (no {' or '.join(missing)}); rerun its command to resume")
    metrics = json.loads((run_dir / METRICS).read_text(encoding="utf-8"))
    return Run(dir=run_dir, task=task, config=config, metrics=metrics)


def finished_with(run_dir: str | os.PathLike, options: Mapping[str, Any]) -> Run | None:
    """The finished run in ``run_dir`` if it was run with ``options``; None when ``run_dir`` holds no finished run.

    For callers that run many folds or seeds in their own folders and must not
    train a finished one again (``benchmarks/speech.py --runs``). Only the keys
    of ``options`` are compared, so the run may record more than its caller
    knows (``"task"``, ``"preprocessing"``).

    Raises:
        InputError: ``run_dir`` holds a finished run with other options; the
            message names each option that differs.
    """
    run_dir = Path(run_dir)
    if not (run_dir / METRICS).is_file():
        return None
    run = load(run_dir)
    wanted = _as_recorded(options)
    changed = sorted(name for name, value in wanted.items() if run.config.get(name) != value)
    if changed:
        raise InputError(f"'{run_dir}': holds a finished run with other options ({', '.join(changed)})")
    return run


def _remove_temporaries(run_dir: Path) -> None:
    """Delete the hidden temporary files a killed attempt left (``.<name>.<random>...``, see :func:`atomic_open`)."""
    for folder in (run_dir, run_dir / BACKUP):
        for path in folder.glob(".*") if folder.is_dir() else ():
            if path.is_file():
                path.unlink()


def _as_recorded(config: Mapping[str, Any]) -> dict:
    """``config`` as config.json gives it back (paths as strings, tuples as lists), so the two compare like with like."""
    return json.loads(json.dumps(dict(config), default=_jsonable))


def _jsonable(obj: Any) -> Any:
    """``json.dump`` fallback: NumPy scalars/arrays and paths."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _number(cell: str) -> int | float | str:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return cell
