"""tasks/metrics.py and GET /metrics: counters written by other processes add up, the gauges
are read at scrape time, and the text parses with prometheus-client's own parser. During and
after a real render: tests/e2e/test_ops.py."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient

from tasks import jobs, metrics
from tasks.db import session_scope
from tasks.models import JobStatus, Project
from tasks.settings import Settings
from tests.conftest import AppFactory
from tests.scrape import samples


def test_counters_from_forked_processes_add_up(tmp_path: Path) -> None:
    settings = Settings(render_storage=tmp_path, auth_token="t", redis_url="redis://127.0.0.1:1")
    metrics.setup(settings)
    children = []
    for _ in range(2):  # two pool processes of a worker
        pid = os.fork()
        if pid == 0:
            metrics.stage_finished("SCENE_BUILD", 3.0)
            metrics.job_succeeded(wall_seconds=10.0, video_seconds=20.0, output_bytes=1000)
            metrics.webhook_delivery("retry")
            metrics.clip_made("cached", 500)
            metrics.clip_made("encoded", 700)
            os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    metrics.webhook_delivery("delivered")  # this process too
    from prometheus_client import generate_latest

    found = samples(generate_latest(metrics.registry(settings)).decode())
    assert found[("render_stage_duration_seconds_count", (("stage", "SCENE_BUILD"),))] == 2
    assert found[("render_stage_duration_seconds_sum", (("stage", "SCENE_BUILD"),))] == 6.0
    assert found[("render_seconds_per_output_second_count", ())] == 2
    assert found[("render_seconds_per_output_second_bucket", (("le", "0.5"),))] == 2
    assert found[("render_output_bytes_total", ())] == 2000
    assert found[("render_webhook_deliveries_total", (("outcome", "retry"),))] == 2
    assert found[("render_webhook_deliveries_total", (("outcome", "delivered"),))] == 1
    assert found[("render_scene_clips_total", (("outcome", "cached"),))] == 2
    assert found[("render_scene_clips_total", (("outcome", "encoded"),))] == 2
    assert found[("render_cache_bytes_saved_total", ())] == 1000  # cached clips only
    # Files are named by host and pid: containers sharing the folder cannot collide.
    assert all("_" in p.stem.split("_", 1)[1] for p in settings.metrics_path.glob("*.db"))


def test_the_route_serves_gauges_read_now(make_client: AppFactory) -> None:
    client: TestClient = make_client()
    settings = client.app.state.settings  # type: ignore[attr-defined]
    with session_scope(settings.db_url) as session:
        session.add(Project(id="p1"))
        session.flush()
        for status in (JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.SUCCEEDED):
            job = jobs.create_job(
                session, project_id="p1", output_name="v.mp4", options={}, scene_count=1
            )
            if status is JobStatus.SUCCEEDED:
                jobs.transition(session, job.id, JobStatus.RUNNING)
                jobs.transition(session, job.id, status)
        jobs.worker_beat(session, "celery@a")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    assert found[("render_jobs", (("status", "QUEUED"),))] == 1
    assert found[("render_jobs", (("status", "SUCCEEDED"),))] == 2
    assert found[("render_jobs", (("status", "FAILED"),))] == 0
    assert found[("render_workers_live", ())] == 1
    assert found[("render_broker_up", ())] == 0  # the tests' broker is down: said, not a 500
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
