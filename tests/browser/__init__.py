"""The browser tier: Playwright driving Debian's Chromium (never a browser Playwright
downloads) against a real stack, axe-core's accessibility scan on each screen, and the
screenshots docs/console.md shows.

Whether the tier runs is decided when tests are collected (tests/conftest.py): without a
Chromium, tests/browser is not collected and `make test` prints one line saying so, with the
command that installs one.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tests/conftest.py imports this module: no browser library at import
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "console"
VIEWPORT = {"width": 1280, "height": 800}
# As root (CI, containers) Chromium's sandbox cannot start; no GPU here.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
INSTALL = "apt-get install -y chromium"


def find_chromium() -> str | None:
    """CHROMIUM if set, else Debian's chromium on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def skipped_line() -> str:
    return (
        "browser tier skipped: no Chromium found (set CHROMIUM, or install Debian's: "
        f"sudo {INSTALL})"
    )


def accessible(page: Page, screen: str) -> None:
    """axe-core's scan of the page as it stands: no violation of any rule."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, f"{screen}: {results.generate_report()}"


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


_DROP = """([target, files]) => {
  const data = new DataTransfer();
  for (const [name, type, b64] of files) {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    data.items.add(new File([bytes], name, { type }));
  }
  const zone = document.querySelector(target);
  for (const kind of ["dragenter", "dragover", "drop"]) {
    const init = { bubbles: true, cancelable: true, dataTransfer: data };
    zone.dispatchEvent(new DragEvent(kind, init));
  }
}"""


def drop_files(page: Page, target: str, files: list[tuple[Path, str]]) -> None:
    """Drop `files` (path, MIME type) on `target` as a person dragging them from a file
    manager does: one DataTransfer holding them all."""
    encoded = [(p.name, kind, base64.b64encode(p.read_bytes()).decode()) for p, kind in files]
    page.evaluate(_DROP, [target, encoded])
