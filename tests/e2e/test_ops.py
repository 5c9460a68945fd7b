"""Operations end to end: a worker stopped mid-scene (`docker stop`), the API stopped
mid-upload. Real stacks; the instant is exact through tests/gates.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.fixtures import ImageFixture, make_image
from tasks.settings import Settings
from tests.deploy import ROOT, SETTING_NAMES, answers, local, service, with_option
from tests.e2e import free_port
from tests.held import SCENE_1_ENCODE, held_at_scene_1, release, wait_for, worker_of
from tests.scrape import parse_lines, samples

pytestmark = pytest.mark.e2e


def stage(job: dict, name: str) -> dict:
    found: dict = next(s for s in job["stages"] if s["name"] == name)
    return found


def test_sigterm_mid_scene_lets_the_scene_finish_within_the_grace(tmp_path: Path) -> None:
    """`docker stop` on the worker encoding scene 1: a warm shutdown. The scene finishes on
    it (the stopping worker takes nothing new), the worker exits cleanly, and the other
    worker does the rest of the job."""
    with held_at_scene_1(tmp_path, "term", 2, 3, cache=False, SHUTDOWN_GRACE="60") as (
        stack,
        api,
        job_id,
    ):
        running = stage(api.job(job_id), "SCENE_BUILD[1]")
        victim = worker_of(stack, running["worker"])
        victim.send_signal(signal.SIGTERM)
        log = (
            stack.settings.render_storage
            / "process-logs"
            / f"{running['worker'].split('@')[0]}.log"
        )
        wait_for(lambda: b"shutdown (SIGTERM)" in log.read_bytes(), 30, "the warm shutdown")
        release(stack)
        assert victim.wait(60) == 0
        job = api.wait(job_id, timeout=90)
        assert job["status"] == "SUCCEEDED", job
        scene = stage(job, "SCENE_BUILD[1]")
        assert (scene["worker"], scene["attempts"]) == (running["worker"], 1)
        assert stage(job, "FINALIZE")["worker"] != running["worker"]


def test_sigterm_past_the_grace_hands_the_scene_back_at_once(tmp_path: Path) -> None:
    """The scene outlasts SHUTDOWN_GRACE: its FFmpeg is stopped, the stage goes back to the
    head of the queue and the other worker takes it over, long before the watchdog would
    (STAGE_LOST_AFTER is far away); the hand-back is not counted as an attempt."""
    with held_at_scene_1(
        tmp_path, "back", 2, 3, cache=False, SHUTDOWN_GRACE="1", STAGE_LOST_AFTER="600"
    ) as (
        stack,
        api,
        job_id,
    ):
        running = stage(api.job(job_id), "SCENE_BUILD[1]")
        victim = worker_of(stack, running["worker"])
        victim.send_signal(signal.SIGTERM)
        assert victim.wait(60) == 0  # the held FFmpeg was stopped, not waited for
        taken = api.wait(
            job_id,
            lambda j: stage(j, "SCENE_BUILD[1]")["worker"] not in (None, running["worker"]),
            timeout=30,
        )
        assert stage(taken, "SCENE_BUILD[1]")["status"] == "RUNNING"
        release(stack)
        job = api.wait(job_id, timeout=90)
        assert job["status"] == "SUCCEEDED", job
        assert stage(job, "SCENE_BUILD[1]")["attempts"] == 1
        log = (stack.settings.render_storage / "logs" / f"{job_id}.log").read_text()
        assert "handed back: first in the queue" in log


def test_sigterm_to_the_api_mid_upload_leaves_no_partial_file(tmp_path: Path) -> None:
    """compose.yaml's API command; a client sends half of a 3 MB image and stalls. SIGTERM:
    uvicorn waits its graceful timeout, ends the request, and exits; nothing of the upload
    is left in the storage (nor a project folder)."""
    storage = tmp_path / "storage"
    port = free_port()
    argv = with_option(local(service("api")["command"]), "--host", "127.0.0.1")
    argv = with_option(with_option(argv, "--port", str(port)), "--timeout-graceful-shutdown", "2")
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env.update(RENDER_STORAGE=str(storage), AUTH_TOKEN="t", REDIS_URL="redis://127.0.0.1:1")
    api = subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 30, "the API answering")
        image = tmp_path / "big.jpg"
        make_image(image, ImageFixture("big.jpg", 2400, 1800, "testsrc2"))
        payload = image.read_bytes()
        boundary = "b0undary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="big.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        length = len(head) + len(payload) + len(tail)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                (
                    f"POST /v1/projects/half/assets HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer t\r\nContent-Length: {length}\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
                ).encode()
                + head
                + payload[: len(payload) // 2]
            )
            api.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once it has shut down: a clean exit by SIGTERM.
            assert api.wait(timeout=30) in (0, -signal.SIGTERM)
            assert b"Finished server process" in (api.stderr.read() if api.stderr else b"")
        assert not (storage / "projects" / "half").exists()
        leftovers = [
            p.name for p in storage.rglob("*") if "upload" in p.name or p.suffix == ".part"
        ]
        assert leftovers == []
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()


def read_events(response: httpx.Response, until: Any = None) -> list[dict[str, str]]:
    """SSE frames off a live stream, until `until(frame)` holds or the server closes it."""
    return parse_lines(response.iter_lines(), until)


def test_the_event_stream_follows_a_render_to_its_end_across_a_reconnect(
    tmp_path: Path,
) -> None:
    """Scene 1 is held: the stream goes quiet and sends keep-alive comments; the client
    drops it there and reconnects with Last-Event-ID once the render goes on, and reads to
    the server's end of the stream: the SUCCEEDED document."""
    with held_at_scene_1(tmp_path, "live", 2, 3, cache=False, EVENTS_KEEPALIVE="0.5") as (
        stack,
        api,
        job_id,
    ):
        url = f"/v1/jobs/{job_id}/events"
        with api.http.stream("GET", url, timeout=30) as first:
            assert first.headers["x-accel-buffering"] == "no"
            before = read_events(first, until=lambda f: "comment" in f)
        jobs_before = [json.loads(f["data"]) for f in before if f.get("event") == "job"]
        assert jobs_before and jobs_before[-1]["status"] == "RUNNING"
        assert stage(jobs_before[-1], "SCENE_BUILD[1]")["status"] == "RUNNING"
        last_id = next(f["id"] for f in reversed(before) if f.get("event") == "job")
        release(stack)
        # A browser's EventSource reconnects with the same URL and its token.
        token = api.http.post(f"/v1/jobs/{job_id}/events-token").json()["token"]
        browser = httpx.Client(base_url=stack.base_url, timeout=60)
        with browser.stream(
            "GET", f"{url}?token={token}", headers={"Last-Event-ID": last_id}
        ) as second:
            after = read_events(second)  # to the end: the server closes it
        jobs_after = [json.loads(f["data"]) for f in after if f.get("event") == "job"]
        ids_after = [f["id"] for f in after if f.get("event") == "job"]
        assert last_id not in ids_after  # nothing resent that the client had
        assert jobs_after[-1]["status"] == "SUCCEEDED" and jobs_after[-1]["progress"] == 1.0
        progress = [j["progress"] for j in jobs_before + jobs_after]
        assert progress == sorted(progress)
        # The job's `stage` is the stage claimed last: scene 2's while scene 1 is held.
        stages = {j["stage"] for j in jobs_before + jobs_after}
        assert {"CONCAT", "FINALIZE"} <= stages
        assert any(name.startswith("SCENE_BUILD[") for name in stages)


def test_metrics_during_and_after_a_render(tmp_path: Path) -> None:
    """GET /metrics parsed with prometheus-client's parser: the workers' pool processes wrote
    the histograms and counters, the API reads the gauges now."""
    nice = str(Settings.model_fields["ffmpeg_nice"].default)
    with held_at_scene_1(tmp_path, "prom", 2, 3, cache=False, FFMPEG_NICE=nice) as (
        stack,
        api,
        job_id,
    ):
        # Each worker beats from its main process once it is ready, which the stack's start
        # (the API answering) does not wait for.
        def live_workers() -> float:
            return samples(api.http.get("/metrics").text).get(("render_workers_live", ()), 0)

        wait_for(lambda: live_workers() == 2, 30, "both workers beating")
        during = samples(api.http.get("/metrics").text)
        assert during[("render_jobs", (("status", "RUNNING"),))] == 1
        assert during[("render_broker_up", ())] == 1
        assert ("render_queue_depth", ()) in during
        assert during[("render_stage_duration_seconds_count", (("stage", "VALIDATE"),))] == 1
        assert ("render_stage_duration_seconds_count", (("stage", "FINALIZE"),)) not in during
        # The held scene's FFmpeg (the gate script, exec'ed into FFmpeg once released) runs
        # FFMPEG_NICE (10) below its worker.
        # Only this stack's: another test file's held encode may be running beside this one.
        held = [
            p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_held_encode(p, tmp_path)
        ]
        assert held, "the held FFmpeg process"
        worker_nice = os.getpriority(os.PRIO_PROCESS, stack.workers[0].pid)
        assert {int((p / "stat").read_text().rsplit(")", 1)[1].split()[16]) for p in held} == {
            worker_nice + 10
        }
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
            # In a session of its own, it is lowered with its session's group too.
            groups = {(p / "autogroup").read_text().split()[-1] for p in held}
            assert groups == {str(worker_nice + 10)}
        release(stack)
        job = api.wait(job_id, timeout=90)
        assert job["status"] == "SUCCEEDED", job
        # The last stage's worker writes its figures just after the job shows it ended, the
        # job's own last of all.
        last = ("render_seconds_per_output_second_count", ())
        wait_for(
            lambda: samples(api.http.get("/metrics").text).get(last, 0) >= 1, 30, "its figures"
        )
        after = samples(api.http.get("/metrics").text)
    assert after[("render_jobs", (("status", "SUCCEEDED"),))] == 1
    assert after[("render_jobs", (("status", "RUNNING"),))] == 0
    assert after[("render_stage_duration_seconds_count", (("stage", "SCENE_BUILD"),))] == 3
    assert after[("render_stage_duration_seconds_count", (("stage", "FINALIZE"),))] == 1
    assert after[("render_seconds_per_output_second_count", ())] == 1
    video = stack.settings.render_storage / "projects" / "prom" / "output" / "video.mp4"
    assert after[("render_output_bytes_total", ())] == video.stat().st_size


def _is_held_encode(proc: Path, under: Path) -> bool:
    try:
        args = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    ours = [a for a in args if SCENE_1_ENCODE.encode() in a and str(under).encode() in a]
    return bool(ours) and args[0] != b"sleep"
