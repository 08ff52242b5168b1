"""Self-contained HTML pages: one file with its style inline, pictures and sounds beside it, no scripts.

The pages :mod:`cnnkit.report` and :mod:`cnnkit.explain` write open from the
file system in any browser, offline: nothing is fetched from the network and
nothing runs. Every text that comes from a run (class names, file names,
option values) is escaped.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnkit import runs

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; font-family: monospace; white-space: pre-wrap; max-width: 50em; }
figure { display: inline-block; margin: 0.4em 1em 0.4em 0; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; max-width: 40em; }
figure audio { display: block; margin-top: 0.3em; }
img { max-width: 100%; image-rendering: pixelated; }
.worst { background: #fde2e2; } .note { color: #555; font-size: 0.9em; }
"""


def escape(value: Any) -> str:
    """``value`` as HTML text."""
    return html.escape(str(value))


def cell(value: Any) -> str:
    """A table cell's text: floats to 4 significant digits, None as a dash, containers as JSON."""
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return escape(json.dumps(value))
    return escape(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, row_class: Sequence[str] | None = None) -> str:
    """An HTML table; ``row_class`` gives each row a CSS class (e.g. ``"worst"``), or ``""``."""
    rows = list(rows)
    classes = row_class or [""] * len(rows)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        (f'<tr class="{c}">' if c else "<tr>") + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row, c in zip(rows, classes)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def settings(values: Mapping[str, Any], header: tuple[str, str] = ("option", "value")) -> str:
    """A two-column table of names and values (nested values as JSON)."""
    rows = "".join(f'<tr><td>{escape(k)}</td><td class="text">{cell(v)}</td></tr>' for k, v in values.items())
    return f"<table><tr><th>{escape(header[0])}</th><th>{escape(header[1])}</th></tr>{rows}</table>"


def figure(folder: Path, name: str, caption: str, *, width: int | None = None, below: str = "") -> str:
    """``<figure>`` of the picture ``folder/name``, referenced by its relative name, with ``below`` (HTML) under it.

    A picture that is not there is named in a note instead: a page never shows
    a broken image.
    """
    if not (folder / name).is_file():
        return _missing(name)
    size = f' width="{width}"' if width else ""
    image = f'<img src="{escape(_url(name))}" alt="{escape(caption)}"{size}>'
    return f"<figure>{image}<figcaption>{escape(caption)}</figcaption>{below}</figure>"


def audio(folder: Path, name: str) -> str:
    """An ``<audio>`` player of the WAV file ``folder/name`` (a note when it is missing)."""
    if not (folder / name).is_file():
        return _missing(name)
    return f'<audio controls preload="none" src="{escape(_url(name))}"></audio>'


def link(folder: Path, name: str) -> str:
    """``<a>`` to the file ``folder/name`` by its relative name (a note when it is missing)."""
    if not (folder / name).is_file():
        return _missing(name)
    return f'<a href="{escape(_url(name))}">{escape(name)}</a>'


def section(title: str, *parts: str) -> str:
    """``<h2>`` and its content."""
    return f"<h2>{escape(title)}</h2>\n" + "\n".join(parts)


def paragraph(text: str, *, note: bool = False) -> str:
    """``<p>`` of plain ``text``."""
    return f'<p class="note">{escape(text)}</p>' if note else f"<p>{escape(text)}</p>"


def write(path: str | os.PathLike, title: str, parts: Sequence[str]) -> Path:
    """Write the page ``path`` (atomically) with the ``<h1>`` ``title`` and its sections."""
    body = "\n".join(parts)
    text = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<h1>{escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
    runs.write_text(path, text)
    return Path(path)


def _missing(name: str) -> str:
    return f'<p class="note">({escape(name)} is missing from this folder.)</p>'


def _url(name: str) -> str:
    """A relative file name as a URL path: each part percent-quoted (spaces, ``#`` and ``?`` in names)."""
    from urllib.parse import quote

    return "/".join(quote(part) for part in Path(name).parts)
