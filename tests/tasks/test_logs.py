"""LOG_FORMAT=json: one JSON object a line, tagged with the running stage's job and worker."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from tasks import logs
from tasks.settings import Settings, SettingsError, load_settings


def _logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    sink = io.StringIO()
    logger = logging.getLogger(name)
    logger.handlers = [logging.StreamHandler(sink)]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, sink


def test_json_lines_carry_the_stage_context() -> None:
    logger, sink = _logger("test.logs.json")
    logs.configure("json", logger)
    with logs.stage_context("job1", "SCENE_BUILD[2]", "w1@host"):
        logger.info("encoded %d frames", 150)
    logger.warning("outside")
    first, second = (json.loads(line) for line in sink.getvalue().splitlines())
    assert first["message"] == "encoded 150 frames" and first["level"] == "INFO"
    assert (first["jobId"], first["stage"], first["worker"]) == (
        "job1",
        "SCENE_BUILD[2]",
        "w1@host",
    )
    assert second["message"] == "outside" and "jobId" not in second


def test_text_format_leaves_handlers_alone() -> None:
    logger, sink = _logger("test.logs.text")
    logs.configure("text", logger)
    logger.info("plain")
    assert sink.getvalue() == "plain\n"


def test_an_unknown_log_format_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RENDER_STORAGE", str(tmp_path))
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        load_settings()
    assert Settings(render_storage=tmp_path, log_format="json").log_format == "json"
