"""Holding a job at an exact instant on a real stack (Redis, Celery workers, API, FFmpeg):
the test hooks of `tests/gates.py` make a stage's task or an FFmpeg run wait until the test
lets it go. Shared by the recovery and operations tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imageio_ffmpeg

from api.launch import Stack
from pipeline.fixtures import ImageFixture, SceneFixture, VoiceFixture
from tests import gates
from tests.e2e import Api, running_stack

FPS = 25
RECOVERY = {
    "HEARTBEAT_INTERVAL": "0.5",
    "STAGE_LOST_AFTER": "5",
    "WATCHDOG_INTERVAL": "1",
    "WORKER_CONCURRENCY": "1",
}


def scenes(tag: str, count: int = 3, seconds: float = 1.0) -> list[SceneFixture]:
    # Pictures of different sizes: no scene may be a cached clip of another, or the stage
    # would not run the FFmpeg a test waits for.
    return [
        SceneFixture(
            (ImageFixture(f"{tag}{i}.jpg", 480 + 16 * i, 360, "testsrc2"),),
            VoiceFixture(f"{tag}{i}.wav", seconds, 300 + 50 * i),
        )
        for i in range(count)
    ]


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def ffmpeg_running_in(path: Path) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return any("ffmpeg" in line and str(path) in line for line in out.splitlines())


def hook_env(gate_dir: Path, match: str) -> dict[str, str]:
    return {
        "GATE_DIR": str(gate_dir),
        "GATE_MATCH": match,
        "REAL_FFMPEG": imageio_ffmpeg.get_ffmpeg_exe(),
    }


# Scene 1's encode (its output is scenes/.scene_001.<temp>.mp4; its stills go elsewhere), or
# that of chunk 1 of scene 1 when the scenes are built in chunks.
SCENE_1_ENCODE = "scenes/.scene_001."
CHUNK_1_ENCODE = "scenes/.scene_001_part001."


@contextmanager
def held_at_scene_1(
    tmp_path: Path,
    project_id: str,
    workers: int,
    scene_count: int,
    chunked: bool = False,
    cache: bool = True,
    **settings: str,
) -> Iterator[tuple[Stack, Api, str]]:
    """A stack rendering a project whose scene 1 encode (with `chunked`, its chunk 1's) is
    held at its start (the stage is claimed and beating; its FFmpeg waits), until
    `release(stack)`; `cache=False` renders with the render cache bypassed."""
    gate_dir = tmp_path / "gates"
    gate_dir.mkdir()
    with running_stack(
        tmp_path / "storage",
        workers=workers,
        env_extra=hook_env(gate_dir, CHUNK_1_ENCODE if chunked else SCENE_1_ENCODE),
        FFMPEG_BINARY=str(gates.gated_ffmpeg(gate_dir)),
        **{**RECOVERY, **settings},
    ) as stack:
        api = Api(stack.base_url)
        api.upload_project(project_id, scenes(project_id, count=scene_count), tmp_path)
        gates.hold(gate_dir, "ffmpeg")
        # 1 s scenes: two chunks of half a second each when chunked, else one unit.
        chunks = 0.5 if chunked else 0
        job_id = api.render(
            project_id, fps=FPS, minShot=0.5, xfade=0.2, chunkSeconds=chunks, cache=cache
        )
        wait_for(lambda: gates.reached(gate_dir, "ffmpeg"), 60, "scene 1's encode")
        yield stack, api, job_id


def release(stack: Stack) -> None:
    (Path(stack.env["GATE_DIR"]) / "hold-ffmpeg").unlink()


def worker_of(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    return stack.workers[int(name.split("@")[0].removeprefix("worker")) - 1]
