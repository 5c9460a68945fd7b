"""`make serve`: Redis, a worker and the API start together and all stop on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tasks.app import worker_argv
from tests.conftest import DEAD_BROKER, make_settings
from tests.e2e import TOKEN, free_port
from tests.pipeline_fixtures import fake_ffmpeg

pytestmark = pytest.mark.e2e


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, pending = set(), [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_serve_starts_everything_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DB_URL", "RENDER_STORAGE"}
    }
    env.update(RENDER_STORAGE=str(tmp_path), AUTH_TOKEN=TOKEN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.launch", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # a process group of its own, like a terminal's foreground job
    )
    try:
        assert proc.stdout is not None
        # The launcher prints this line once Redis, the worker and the API all answer (the
        # worker's own banner shares the stream, so skip to it; EOF means serve died).
        banner = f"Render API on http://127.0.0.1:{port}"
        assert any(line.startswith(banner) for line in proc.stdout), "serve ended before ready"
        ready = httpx.get(
            f"http://127.0.0.1:{port}/readyz", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert ready.status_code == 200, ready.text
        children = _descendants(proc.pid)
        assert len(children) >= 3  # redis-server, the Celery worker (and its pool), uvicorn

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C at the terminal sends
        assert proc.wait(timeout=60) == 0
        leftovers = [pid for pid in children if _alive(pid)]
        assert leftovers == []
    finally:
        if proc.poll() is None:
            proc.kill()


def _serve(storage: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`make serve`'s command on this storage with these variables, run until it gives up."""
    return subprocess.run(
        [sys.executable, "-m", "api.launch", "serve"],
        env=dict(os.environ, RENDER_STORAGE=str(storage), **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_invalid_settings_stop_the_launcher_naming_the_variable(tmp_path: Path) -> None:
    done = _serve(tmp_path, DEFAULT_FPS="99")
    assert done.returncode != 0
    assert "DEFAULT_FPS" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was started or written


def test_an_ffmpeg_lacking_a_filter_stops_the_launcher_naming_it(tmp_path: Path) -> None:
    fake = fake_ffmpeg(tmp_path / "bin", lacking={"xfade"})
    storage = tmp_path / "storage"
    done = _serve(storage, FFMPEG_BINARY=str(fake))
    assert done.returncode != 0
    assert f"error: FFmpeg {fake} (version 5.1.6-0+deb12u1) lacks filter(s) xfade;" in done.stderr
    assert "Traceback" not in done.stderr
    assert not storage.exists()  # no Redis, worker or API was started


def test_a_worker_refuses_an_ffmpeg_lacking_a_filter(tmp_path: Path) -> None:
    fake = fake_ffmpeg(tmp_path / "bin", lacking={"xfade"})
    env = dict(
        os.environ, RENDER_STORAGE=str(tmp_path), FFMPEG_BINARY=str(fake), REDIS_URL=DEAD_BROKER
    )
    done = subprocess.run(
        [sys.executable, *worker_argv(make_settings(tmp_path))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Celery would log an Exception from worker_init and start anyway: this one stops it.
    assert done.returncode != 0
    assert f"error: FFmpeg {fake} (version 5.1.6-0+deb12u1) lacks filter(s) xfade;" in done.stderr
    assert "Traceback" not in done.stderr
    assert "ready." not in done.stderr


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_serve_without_a_token_makes_one_for_the_session_and_prints_it(tmp_path: Path) -> None:
    """A fresh clone's `make serve`: no AUTH_TOKEN anywhere, yet no known default either."""
    port = free_port()
    ours = {"REDIS_URL", "DB_URL", "RENDER_STORAGE", "AUTH_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update(RENDER_STORAGE=str(tmp_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.launch", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        # Started as a shell starts a background job (`make serve &`): with SIGINT ignored,
        # which the launcher would inherit and then never stop on Ctrl-C, its children would.
        preexec_fn=_ignore_sigint,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(f"Render API on http://127.0.0.1:{port}"):
                break
        else:
            raise AssertionError(f"serve ended before ready: {lines}")
        said = "".join(lines)
        match = re.search(r"AUTH_TOKEN is not set: this session's token is (\S+)", said)
        assert match is not None, said
        token = match[1]
        assert len(token) >= 32 and token != "change-me"
        assert f"curl -H 'Authorization: Bearer {token}'" in said
        url = f"http://127.0.0.1:{port}/readyz"
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
        for wrong in ("change-me", "e2e-token"):
            got = httpx.get(url, headers={"Authorization": f"Bearer {wrong}"})
            assert got.status_code == 401
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize("value", ["change-me", ""])
def test_a_default_or_empty_token_stops_the_launcher_naming_it(tmp_path: Path, value: str) -> None:
    done = _serve(tmp_path, AUTH_TOKEN=value)
    assert done.returncode != 0
    assert done.stderr.startswith("error: ") and "AUTH_TOKEN" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was started or written
