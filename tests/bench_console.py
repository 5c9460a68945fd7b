"""Web console benchmark (`make bench`, when a Chromium is found): on the demo project, the time
from clicking Preview to the draft playing in the console, against the same draft rendered
through the API by the demo's client (the baseline, measured in the same run: the ratio is
what the browser, the event stream and the player add); and the console's first load, the
bytes of every response the login page needs (uncompressed, and gzipped as a compressing
proxy would send them).

Run standalone: `.venv/bin/python -m tests.bench_console`.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Response, expect, sync_playwright

from api.demo import PROJECT_ID
from pipeline.fixtures import sample_music, sample_scenes
from pipeline.options import DEFAULT_ENGINE
from tests.browser import ARGS, VIEWPORT, find_chromium
from tests.e2e import TOKEN, Api, running_stack

DRAFT = {"preview": True, "cache": False, "tts": DEFAULT_ENGINE, "music": {"file": "bed.mp3"}}


def main() -> None:
    chromium = find_chromium()
    if chromium is None:
        print("bench_console: no Chromium found; skipped", file=sys.stderr)
        return
    with (
        tempfile.TemporaryDirectory(prefix="bench-console-") as tmp,
        running_stack(Path(tmp) / "storage", workers=1, DEFAULT_RESOLUTION="1280x720") as stack,
    ):
        api = Api(stack.base_url)
        api.upload_project(PROJECT_ID, sample_scenes(), Path(tmp), sample_music())
        # Once to warm what outlives a render (the speech, the processes' imports), then the
        # baseline: both the console and the API client start from the same state.
        for _ in range(2):
            started = time.monotonic()
            job = api.wait(api.render(PROJECT_ID, "preview.mp4", **DRAFT), timeout=900, poll=0.1)
            baseline = time.monotonic() - started
            assert job["status"] == "SUCCEEDED", job

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport=VIEWPORT, base_url=stack.base_url)
            bodies: list[bytes] = []

            def keep(response: Response) -> None:
                bodies.append(response.body())

            page.on("response", keep)
            page.goto("/")
            expect(page.get_by_label("Token")).to_be_visible()
            page.wait_for_load_state("networkidle")
            page.remove_listener("response", keep)
            raw = sum(len(b) for b in bodies)
            packed = sum(len(gzip.compress(b)) for b in bodies)

            page.get_by_label("Token").fill(TOKEN)
            page.get_by_role("button", name="Log in").click()
            page.goto(f"/#/projects/{PROJECT_ID}")
            # The form starts from the baseline's options: the same draft, encoded afresh.
            expect(page.get_by_role("button", name="Preview")).to_be_visible()
            clicked = time.monotonic()
            page.get_by_role("button", name="Preview").click()
            player = page.locator("#player")
            player.wait_for(timeout=900_000)
            page.evaluate("v => { v.muted = true; return v.play(); }", player.element_handle())
            page.wait_for_function("v => v.currentTime > 0", arg=player.element_handle())
            console = time.monotonic() - clicked
            browser.close()
    print(
        f"console first load: {len(bodies)} responses, {raw / 1024:.1f} KiB "
        f"({packed / 1024:.1f} KiB gzipped)\n"
        f"demo preview: API client {baseline:.2f} s to SUCCEEDED; console {console:.2f} s from "
        f"the click to the draft playing (x{console / baseline:.2f})"
    )


if __name__ == "__main__":
    main()
