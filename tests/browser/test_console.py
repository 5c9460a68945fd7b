"""The console in Chromium against a real stack (Redis, a Celery worker, the API under
uvicorn, FFmpeg): the path a person takes from login to a downloaded video, a failed job's
error, a cancel, and a reload re-attaching to a running job. Every screen passes axe-core
and is photographed for docs/console.md."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from api.launch import Stack
from pipeline.fixtures import ImageFixture, VoiceFixture, make_image, make_tone
from pipeline.probe import probe
from tests import gates
from tests.browser import ARGS, VIEWPORT, accessible, drop_files, find_chromium, screenshot
from tests.e2e import TOKEN, running_stack
from tests.held import SCENE_1_ENCODE, hook_env, wait_for

pytestmark = pytest.mark.e2e

PROJECT = "harbour"
# A render may take a while on a shared machine; nothing here waits on a clock otherwise.
RENDER = 180_000


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    return {
        "a": make_image(folder / "a.png", ImageFixture("a.png", 320, 180, "testsrc2")),
        "b": make_image(folder / "b.png", ImageFixture("b.png", 320, 180, "gradients")),
        "v": make_tone(folder / "v.wav", VoiceFixture("v.wav", 1.0, 440)),
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose FFmpeg can be held at scene 1's encode (tests/gates.py) while
    `hold-ffmpeg` exists in its gate folder; it runs freely otherwise."""
    tmp = tmp_path_factory.mktemp("console")
    gate_dir = tmp / "gates"
    gate_dir.mkdir()
    with running_stack(
        tmp / "storage",
        env_extra=hook_env(gate_dir, SCENE_1_ENCODE),
        FFMPEG_BINARY=str(gates.gated_ffmpeg(gate_dir)),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=find_chromium(), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, base_url=stack.base_url, accept_downloads=True)
    opened = context.new_page()
    yield opened
    context.close()


def streams(page: Page) -> list[str]:
    """The event streams the page opens from now on (their URLs)."""
    opened: list[str] = []
    page.on(
        "response",
        lambda r: (
            opened.append(r.url)
            if r.url.endswith("/events")
            and r.headers.get("content-type", "").startswith("text/event-stream")
            else None
        ),
    )
    return opened


def field(page: Page, path: str) -> object:
    return page.locator(f'[data-field="{path}"]')


def job_ends(page: Page, status: str) -> None:
    try:
        expect(page.locator("#job-live")).to_contain_text(status, timeout=RENDER)
    except AssertionError as exc:
        # What the service says of the job, beside what the page showed: a page that missed
        # an event and a job that never ended fail alike here.
        job_id = page.url.rsplit("/", 1)[-1]
        base = page.url.split("#", 1)[0].rstrip("/")
        request = urllib.request.Request(
            f"{base}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            doc = json.load(answer)
        seen = {k: doc.get(k) for k in ("status", "stage", "progress", "cancelRequested")}
        logs = "\n".join(doc.get("logs", [])[-15:])
        raise AssertionError(f"{exc}\nthe service says: {seen}\n{logs}") from None


def test_a_person_renders_a_project_from_login_to_download(
    page: Page, stack: Stack, media: dict[str, Path], tmp_path: Path
) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    accessible(page, "login")
    screenshot(page, "login")
    page.get_by_label("Token").fill("not the token")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_contain_text("not the service's token")
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Projects", exact=True)).to_be_visible()
    # Nothing of the token is left where a script could read it.
    assert page.evaluate("() => document.cookie + JSON.stringify(localStorage)") == "{}"

    page.get_by_label("Project id").fill(PROJECT)
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Assets")).to_be_visible()
    drop_files(
        page,
        "#dropzone",
        [(media["a"], "image/png"), (media["b"], "image/png"), (media["v"], "audio/wav")],
    )
    expect(page.locator(".upload-state.ok")).to_have_count(3, timeout=60_000)
    expect(page.locator(".uploads")).to_contain_text("stored in voiceovers/")

    field(page, "scenes[0].images").fill("a.png")  # type: ignore[attr-defined]
    field(page, "scenes[0].voiceover").fill("v.wav")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Add scene").click()
    field(page, "scenes[1].images").fill("b.png")  # type: ignore[attr-defined]
    field(page, "scenes[1].narration").fill("The harbour at dusk.")  # type: ignore[attr-defined]
    # The API's refusal lands on the field it names.
    field(page, "scenes[1].duration").fill("-1")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save scenes").click()
    expect(field(page, "scenes[1].duration")).to_have_attribute("aria-invalid", "true")  # type: ignore[arg-type]
    expect(page.locator(".field-error:visible")).to_contain_text("greater than 0")
    field(page, "scenes[1].duration").fill("")  # type: ignore[attr-defined]
    # Reordered by dragging, then by the keyboard's path (back, and forth again): the
    # narrated scene ends first.
    narrated = field(page, "scenes[0].narration")
    # By its grip (the middle of a scene is a form field, where a drag selects text), in a
    # window tall enough to show both scenes: a drag cannot scroll the page.
    page.set_viewport_size({"width": 1280, "height": 2400})
    page.get_by_role("listitem", name="Scene 2").locator(".grip").drag_to(
        page.get_by_role("listitem", name="Scene 1").locator(".scene-head")
    )
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(narrated).to_have_value("The harbour at dusk.")  # type: ignore[arg-type]
    page.get_by_role("listitem", name="Scene 1").get_by_role("button", name="Move down").click()
    expect(narrated).to_have_value("")  # type: ignore[arg-type]
    page.get_by_role("listitem", name="Scene 2").get_by_role("button", name="Move up").click()
    expect(narrated).to_have_value("The harbour at dusk.")  # type: ignore[arg-type]
    page.get_by_role("tab", name="JSON").click()
    expect(page.locator("#spec-json")).to_contain_text('"narration": "The harbour at dusk."')
    page.get_by_role("tab", name="Scenes").click()
    page.get_by_text("Render options").click()
    page.locator('input[type=checkbox][data-field="renderOptions.tts"]').check()
    page.get_by_role("button", name="Save scenes").click()
    expect(page.locator(".library")).to_contain_text("Every referenced file is uploaded.")
    accessible(page, "project")
    screenshot(page, "project")
    # Each screen shows the requests it made as curl, the token as $TOKEN.
    page.get_by_role("button", name="Copy as curl").click()
    commands = page.get_by_label("Commands")
    expect(commands).to_have_value(re.compile("-X PUT"))
    text = commands.input_value()
    assert '"$BASE/v1/projects/harbour/scenes"' in text
    assert "-F 'files=@v.wav'" in text
    assert TOKEN not in text
    accessible(page, "copy as curl")
    page.get_by_role("button", name="Close").click()

    opened = streams(page)
    page.get_by_role("button", name="Preview").click()

    expect(page).to_have_url(re.compile(r"#/jobs/"), timeout=30_000)
    job_ends(page, "SUCCEEDED 100%")
    assert opened, "the progress came over an event stream"
    video = page.locator("#player")
    expect(video).to_have_attribute("poster", re.compile("preview.mp4"))
    page.evaluate("v => { v.muted = true; return v.play(); }", video.element_handle())
    page.wait_for_function("v => v.currentTime >= 1", arg=video.element_handle(), timeout=30_000)
    page.evaluate("v => v.pause()", video.element_handle())
    accessible(page, "job")

    page.get_by_role("link", name=re.compile("project harbour")).click()
    # The form starts from the preview's options: tts is on again. Without it the render is
    # refused (the narration cannot be spoken), on the field the API names.
    tts = page.locator('input[type=checkbox][data-field="renderOptions.tts"]')
    expect(tts).to_be_checked()
    page.get_by_text("Render options").click()
    tts.uncheck()
    page.get_by_role("button", name="Render", exact=True).click()
    expect(tts).to_have_attribute("aria-invalid", "true")
    refusal = page.locator("fieldset.object .field-error:visible")
    expect(refusal).to_contain_text("renderOptions.tts")
    tts.check()
    page.get_by_role("button", name="Render", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/jobs/"), timeout=30_000)
    job_ends(page, "SUCCEEDED 100%")
    expect(page.locator(".jump")).to_have_count(2)
    accessible(page, "result")
    screenshot(page, "job")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download video.mp4").click()
    saved = tmp_path / "video.mp4"
    download.value.save_as(saved)
    info = probe(saved)
    assert info.video is not None and info.duration > 1.5

    page.get_by_role("link", name="Projects").first.click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text("SUCCEEDED")
    expect(page.get_by_role("img", name=re.compile("poster of"))).to_be_visible()
    accessible(page, "projects")
    screenshot(page, "projects")


def test_a_refused_upload_shows_the_apis_message(page: Page, tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("not a picture")
    page.goto(f"/#/projects/{PROJECT}")
    # The keyboard's path: the file input itself, reached by its label.
    page.get_by_label("Choose files").set_input_files(str(fake))
    refusal = page.locator(".upload-state.error")
    expect(refusal).to_have_text(
        "refused: 'notes.png' is not an image, a video, audio that FFmpeg can read or a font"
    )
    expect(page.locator(".library")).not_to_contain_text("notes.png")


def test_a_failed_job_shows_its_error_in_full(page: Page, stack: Stack) -> None:
    # The second image broken behind the API's back: VALIDATE refuses it.
    image = stack.settings.render_storage / "projects" / PROJECT / "input" / "images" / "b.png"
    good = image.read_bytes()
    image.write_bytes(b"\x89PNG not really")
    try:
        page.goto(f"/#/projects/{PROJECT}")
        page.get_by_role("button", name="Render", exact=True).click()
        job_ends(page, "FAILED")
        error = page.locator("#job-error")
        expect(error).to_contain_text("VALIDATE")
        expect(error).to_contain_text("b.png")
        accessible(page, "failed job")
        screenshot(page, "job-failed")
    finally:
        image.write_bytes(good)


def test_a_reload_reattaches_to_a_running_job_and_cancel_stops_one(
    page: Page, stack: Stack
) -> None:
    gate_dir = Path(stack.env["GATE_DIR"])
    for run in ("reload", "cancel"):
        gates.reached_file(gate_dir, "ffmpeg").unlink(missing_ok=True)
        hold = gates.hold(gate_dir, "ffmpeg")
        try:
            page.goto(f"/#/projects/{PROJECT}")
            # Encoded afresh, not taken from the render cache: scene 1's FFmpeg runs (held).
            page.get_by_text("Render options").click()
            page.locator('[data-field="renderOptions.cache"]').select_option("false")
            page.get_by_role("button", name="Render", exact=True).click()
            expect(page).to_have_url(re.compile(r"#/jobs/"), timeout=30_000)
            wait_for(lambda: gates.reached(gate_dir, "ffmpeg"), 120, "scene 1's encode")
            expect(page.locator("#job-live")).to_contain_text("RUNNING")
            if run == "reload":
                opened = streams(page)
                page.reload()
                expect(page.locator("#job-live")).to_contain_text("RUNNING")
                expect(page.get_by_role("button", name="Cancel")).to_be_visible()
                screenshot(page, "job-running")
                hold.unlink()
                job_ends(page, "SUCCEEDED 100%")
                assert opened, "the reloaded page attached to the event stream"
            else:
                page.get_by_role("button", name="Cancel").click()
                job_ends(page, "CANCELLED")
                expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
        finally:
            hold.unlink(missing_ok=True)
