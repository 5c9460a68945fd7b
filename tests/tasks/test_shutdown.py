"""A worker's shutdown as its pool processes see it, and a stage handed back.

The end-to-end side (SIGTERM to a real worker mid-scene) is in tests/e2e/test_ops.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import fakeredis
import pytest

from tasks import jobs, shutdown
from tasks.db import session_scope
from tasks.models import JobTask, Project, StageStatus
from tasks.progress import StageTracker
from tasks.settings import Settings
from tasks.watchdog import QUEUE_KEY, UNACKED_INDEX_KEY, UNACKED_KEY


@pytest.fixture(autouse=True)
def _running() -> Iterator[None]:
    shutdown.reset()
    yield
    shutdown.reset()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(render_storage=tmp_path, auth_token="t", shutdown_grace=5)
    with session_scope(s.db_url) as session:
        session.add(Project(id="p1"))
    return s


def test_the_instant_set_after_a_fork_is_seen_by_the_child() -> None:
    """The main process learns of SIGTERM after its pool has forked: the page is shared."""
    pid = os.fork()
    if pid == 0:  # the pool process
        deadline = time.monotonic() + 10
        while shutdown.began() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0 if shutdown.began() == 1234.5 else 1)
    shutdown.begin(at=1234.5)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_past_grace_only_after_shutdown_grace(settings: Settings) -> None:
    assert shutdown.began() is None and not shutdown.past_grace(settings)
    shutdown.begin(at=time.time() - 4)
    assert not shutdown.past_grace(settings)
    shutdown.begin(at=time.time() - 5.1)
    assert shutdown.past_grace(settings)


def _running_stage(settings: Settings) -> tuple[str, int]:
    with session_scope(settings.db_url) as session:
        job = jobs.create_job(
            session, project_id="p1", output_name="v.mp4", options={}, scene_count=2
        )
        claim = jobs.claim_stage(
            session,
            job.id,
            "SCENE_BUILD[1]",
            worker="w1",
            pid=os.getpid(),
            max_attempts=3,
            lost_after=timedelta(seconds=30),
        )
        assert claim is not None
        return job.id, claim.attempt


def test_a_tracker_past_the_grace_stops_and_says_it_hands_back(settings: Settings) -> None:
    job_id, attempt = _running_stage(settings)
    tracker = StageTracker(settings, job_id, "SCENE_BUILD[1]", attempt)
    assert not tracker.should_cancel()
    shutdown.begin(at=time.time() - 60)
    assert tracker.should_cancel() and tracker.handing_back
    assert "SHUTDOWN_GRACE" in (settings.render_storage / "logs" / f"{job_id}.log").read_text()


def test_release_puts_the_stage_back_uncounted_and_only_for_its_holder(
    settings: Settings,
) -> None:
    job_id, attempt = _running_stage(settings)
    with session_scope(settings.db_url) as session:
        assert not jobs.release_stage(session, job_id, "SCENE_BUILD[1]", attempt + 1)
        assert jobs.release_stage(session, job_id, "SCENE_BUILD[1]", attempt)
        assert not jobs.release_stage(session, job_id, "SCENE_BUILD[1]", attempt)  # once
    with session_scope(settings.db_url) as session:
        row = session.get(JobTask, (job_id, "SCENE_BUILD[1]"))
        assert row is not None
        assert (row.status, row.attempts, row.worker, row.heartbeat_at) == (
            StageStatus.PENDING,
            attempt - 1,
            None,
            None,
        )
        # The next worker claims it as the same first attempt.
        again = jobs.claim_stage(
            session,
            job_id,
            "SCENE_BUILD[1]",
            worker="w2",
            pid=os.getpid(),
            max_attempts=1,
            lost_after=timedelta(seconds=30),
        )
        assert again is not None and again.attempt == attempt


def _message(job_id: str, label: str, tag: str) -> bytes:
    payload = {
        "body": "e30=",
        "headers": {"id": f"{job_id}.{label}", "task": "render.scene_build"},
        "properties": {
            "delivery_tag": tag,
            "delivery_info": {"exchange": "", "routing_key": "celery"},
        },
    }
    return json.dumps([payload, "", "celery"]).encode()


def test_requeue_first_moves_the_message_to_the_head_with_a_tag_of_its_own(
    settings: Settings,
) -> None:
    broker = fakeredis.FakeRedis()
    broker.lpush(QUEUE_KEY, b"older-task")
    broker.hset(UNACKED_KEY, "t1", _message("j1", "SCENE_BUILD[1]", "t1"))
    broker.zadd(UNACKED_INDEX_KEY, {"t1": time.time()})
    broker.hset(UNACKED_KEY, "t2", _message("j1", "SCENE_BUILD[0]", "t2"))

    assert shutdown.requeue_first(settings, "j1", "SCENE_BUILD[1]", client=broker)
    assert set(broker.hkeys(UNACKED_KEY)) == {b"t2"}
    assert broker.zscore(UNACKED_INDEX_KEY, "t1") is None
    head = json.loads(broker.rpop(QUEUE_KEY) or b"")  # BRPOP's end: taken next
    assert head["headers"]["id"] == "j1.SCENE_BUILD[1]" and head["headers"]["redelivered"]
    assert head["properties"]["delivery_tag"] not in {"t1", "t2"}
    assert broker.rpop(QUEUE_KEY) == b"older-task"
    assert not shutdown.requeue_first(settings, "j1", "SCENE_BUILD[1]", client=broker)
