"""Render a page in headless Chromium (Debian's ``chromium`` package) and say what it showed.

The pages cnnkit writes hold no scripts; to learn whether every picture
loaded, :func:`render` opens a copy of the page, beside it so that its
relative paths resolve, with one inline script added that marks each ``<img>``
with its ``naturalWidth`` and each ``<audio>`` with whether its file could be
read, and reads the marks back from ``--dump-dom``. A screenshot of the page
shows whether anything is drawn at all.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# A fresh profile each time, nothing fetched or synced in the background.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--allow-file-access-from-files",
)
_MARK = """<script>
window.addEventListener("load", () => {
  for (const img of document.images) img.setAttribute("data-width", img.complete ? img.naturalWidth : -1);
  for (const a of document.querySelectorAll("audio")) {
    a.setAttribute("data-audio", "pending");
    a.addEventListener("loadedmetadata", () => a.setAttribute("data-audio", "ok"));
    a.addEventListener("error", () => a.setAttribute("data-audio", "error"));
    a.preload = "metadata"; a.load();
  }
  document.body.setAttribute("data-text", document.body.innerText.trim().length);
});
</script>"""


@dataclass(frozen=True)
class Rendering:
    """What Chromium showed of a page.

    Attributes:
        images: ``(src, naturalWidth)`` of every ``<img>``; 0 means it did not load.
        audio: ``(src, "ok" | "error" | "pending")`` of every ``<audio>``.
        text_length: characters of visible text.
        screenshot: ``(height, width, 3)`` uint8 of the top of the page.
    """

    images: list[tuple[str, int]]
    audio: list[tuple[str, str]]
    text_length: int
    screenshot: np.ndarray


def require_chromium() -> str:
    """Chromium's path; skips the test, saying why, where it is not installed."""
    if CHROMIUM is None:
        pytest.skip("headless Chromium is absent (Debian: apt-get install chromium, as .ci/run does); the page was not rendered")
    return CHROMIUM


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="cnnkit-chromium-") as profile:
        command = [require_chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def screenshot(page: Path, png: Path, width: int = 1100, height: int = 1400) -> None:
    """Save a ``width`` x ``height`` screenshot of the top of ``page`` as ``png``."""
    _chromium(f"--screenshot={png}", f"--window-size={width},{height}", "--hide-scrollbars", page.resolve().as_uri())


def render(page: Path) -> Rendering:
    """Open ``page`` in headless Chromium; the marks of its pictures and sounds, and a screenshot."""
    page = page.resolve()
    marked = page.with_name(f".rendered-{page.name}")
    marked.write_text(page.read_text(encoding="utf-8").replace("</body>", _MARK + "</body>"), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="cnnkit-shot-") as folder:
        shot = Path(folder) / "page.png"
        try:
            dom = _chromium("--virtual-time-budget=20000", f"--screenshot={shot}", "--window-size=1100,1400", "--dump-dom", marked.as_uri()).stdout
        finally:
            marked.unlink()
        with Image.open(shot) as image:
            pixels = np.asarray(image.convert("RGB"))
    images = [(src, int(width)) for src, width in re.findall(r'<img src="([^"]*)"[^>]*?data-width="(-?\d+)"', dom)]
    if len(images) != dom.count("<img "):
        raise AssertionError(f"{page}: some <img> were not marked; did the page load?")
    audio = re.findall(r'<audio[^>]*?src="([^"]*)"[^>]*?data-audio="(\w+)"', dom)
    text = re.search(r'<body[^>]*data-text="(\d+)"', dom)
    return Rendering(images, audio, int(text[1]) if text else 0, pixels)


def assert_shows_everything(page: Path) -> Rendering:
    """Render ``page`` and check that it has pictures, each of them loaded, its sounds open, and it is not blank."""
    shown = render(page)
    assert shown.images, f"{page}: no pictures"
    assert not [src for src, width in shown.images if width <= 0], f"{page}: pictures that did not load"
    assert not [src for src, state in shown.audio if state != "ok"], f"{page}: sounds that did not open: {shown.audio}"
    assert shown.text_length > 100, f"{page}: almost no text"
    colours = shown.screenshot.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], np.uint32)
    assert len(np.unique(colours)) > 16, f"{page}: the screenshot is (nearly) one colour"
    return shown
