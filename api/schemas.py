"""What the API accepts and returns (camelCase JSON). Separate from the tables on purpose."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.alias_generators import to_camel

from pipeline import assets
from pipeline.names import check_safe_name
from pipeline.options import RenderOptions
from pipeline.spec import ProjectSpec
from tasks.jobs import as_utc

# The asset kinds' names (pipeline/assets.py): an upload's `subdir`.
if TYPE_CHECKING:
    Subdir = str
else:
    Subdir = Literal[assets.NAMES]


# A time read from the database: SQLite hands it back naive, and every one we store is UTC.
DbTime = Annotated[datetime | None, AfterValidator(as_utc)]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class HealthResponse(CamelModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(CamelModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(
        description="'ok' or what is wrong, for each of database, broker and storage"
    )


class SpecResponse(ProjectSpec):
    """The stored spec, plus the referenced files not uploaded yet ('images/a.jpg')."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    missing_assets: list[str]


class StoredAsset(CamelModel):
    name: str
    subdir: Subdir
    size: int
    sha256: str


def _asset_lists() -> type[BaseModel]:
    """A list of file names per asset kind (pipeline/assets.py), by the kind's name."""
    lists: dict[str, Any] = {kind.name: (list[str], []) for kind in assets.KINDS}
    return create_model("ProjectAssetsFields", __base__=CamelModel, **lists)


class ProjectAssets(_asset_lists()):  # type: ignore[misc]
    pass


class JobSummary(CamelModel):
    # Built from a `Job` row, whose `id` is the job id.
    job_id: str = Field(validation_alias="id")
    status: str
    stage: str | None
    progress: float
    output_name: str
    error: str | None
    created_at: DbTime
    finished_at: DbTime


class ProjectView(CamelModel):
    id: str
    title: str | None
    spec: ProjectSpec | None = Field(description="input/scenes.json, or null before it is PUT")
    assets: ProjectAssets
    missing_assets: list[str]
    jobs: list[JobSummary] = Field(description="the latest jobs, newest first")


class ProjectSummary(CamelModel):
    """A line of the project list (GET /v1/projects)."""

    id: str
    title: str | None
    scene_count: int
    updated_at: DbTime
    last_job: JobSummary | None = Field(description="the newest job, whatever its status")
    poster: str | None = Field(
        description="the poster of the last succeeded job's video (GET .../outputs/poster?name=)"
    )


# JSON-schema keywords of an option's range, copied to the patch's schema for the docs only.
_RANGE_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern")


def _all_optional(model: type[BaseModel]) -> type[BaseModel]:
    """`model` with every field optional (default None) and checked for its type only.

    Each field keeps its description, and its range in the JSON schema, so `/openapi.json`
    documents every option; the merged `model` is what checks ranges and cross-field rules.
    """
    properties = model.model_json_schema(by_alias=True)["properties"]
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        schema = properties[info.alias or name]
        documented = {key: schema[key] for key in _RANGE_KEYWORDS if key in schema}
        fields[name] = (
            Optional[info.annotation],  # noqa: UP045 (a value, and mypy lets it be None)
            Field(None, description=info.description, json_schema_extra=documented or None),
        )
    config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", allow_inf_nan=False
    )
    return create_model(f"{model.__name__}Fields", __config__=config, **fields)


class RenderOptionsPatch(_all_optional(RenderOptions)):  # type: ignore[misc]
    """Render options as sent: every field optional; omitted ones take the DEFAULT_* settings.

    Ranges and cross-field rules are checked on the merged `pipeline.options.RenderOptions`.
    """


class RenderRequest(CamelModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    output_name: str = Field("video.mp4", description="a plain file name ending in .mp4")
    render_options: RenderOptionsPatch | None = None
    callback_url: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL POSTed the signed job document when the job ends "
        '(docs/api.md "Webhooks"); public addresses only unless WEBHOOK_ALLOW_PRIVATE',
    )

    @field_validator("output_name")
    @classmethod
    def _mp4(cls, name: str) -> str:
        check_safe_name(name)
        if not name.lower().endswith(".mp4"):
            raise ValueError(f"{name!r} must end with .mp4")
        return name


class RenderAccepted(CamelModel):
    job_id: str
    status: str = "QUEUED"


_CLIP = (
    "how the scene's clip came to be: 'encoded', 'cached' (from the render cache, no "
    "FFmpeg), 'skipped' (not in a part-of-the-timeline render); null until built"
)


class SceneProgress(CamelModel):
    """A scene's build: its one SCENE_BUILD[i] stage, or its chunks' SCENE_BUILD[i/c] taken
    together."""

    index: int
    status: str
    progress: float
    cached: bool = Field(False, description="the clip came from the render cache")
    clip: str | None = Field(None, description=_CLIP)
    chunks: int = Field(1, description="the units its clip is built in, each a task of its own")


class StageView(CamelModel):
    name: str
    status: str
    progress: float
    attempts: int
    worker: str | None
    started_at: DbTime
    finished_at: DbTime
    cached: bool = Field(False, description="a scene build whose clip came from the cache")
    clip: str | None = Field(None, description=_CLIP)


class StageCount(CamelModel):
    """How the runs of one stage stand: how many there are, and how many in each state."""

    name: str
    units: int = Field(description="its runs: one, one per scene, or one per chunk")
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0


class StagePage(CamelModel):
    """Some of a job's stage runs, in running order (GET /v1/jobs/{id}/stages)."""

    total: int = Field(description="the job's stage runs in all")
    offset: int
    limit: int
    stages: list[StageView]


class WebhookView(CamelModel):
    """How the job's `callbackUrl` delivery went."""

    url: str = Field(
        description="the callbackUrl with its credentials, query string and fragment shown as "
        "[redacted]: the document never echoes a receiver's secret"
    )
    status: str = Field(
        description="PENDING (until the job ends, or between attempts), DELIVERED or FAILED"
    )
    event: str | None = Field(description="the job status the delivery reports")
    attempts: int
    status_codes: list[int | None] = Field(
        description="each attempt's HTTP status; null where no answer came"
    )
    last_error: str | None
    delivered_at: DbTime


class CacheSummary(CamelModel):
    hits: int = Field(0, description="scene clips taken from the render cache")
    encoded: int = Field(0, description="scene clips encoded by this job")
    bytes_saved: int = Field(0, description="bytes of the clips taken from the cache")


class JobView(CamelModel):
    id: str
    project_id: str
    status: str
    stage: str | None
    progress: float = Field(description="0..1")
    error: str | None
    created_at: DbTime
    started_at: DbTime
    finished_at: DbTime
    output_name: str
    options: dict[str, Any]
    cancel_requested: bool
    scenes: list[SceneProgress]
    stages: list[StageView] = Field(
        description="every stage run, up to JOB_STAGES_INLINE of them; past that, only the "
        "stages that run once and the runs running or failed (stageCounts counts them all; "
        "GET /v1/jobs/{id}/stages pages through every one)"
    )
    stages_total: int = Field(0, description="the job's stage runs in all")
    stage_counts: list[StageCount] = Field(
        default_factory=list, description="each stage's runs, counted by state"
    )
    logs: list[str] = Field(description="the last 50 lines of logs/<jobId>.log")
    waiting: str | None = Field(
        None, description="why an unfinished job is not running now (no worker, or queued)"
    )
    cache: CacheSummary = Field(
        default_factory=CacheSummary, description="what the render cache saved this job"
    )
    webhook: WebhookView | None = Field(
        None, description="the callbackUrl's delivery; null without a callbackUrl"
    )


class OutputFile(CamelModel):
    name: str
    size: int
    modified_at: datetime
    content_type: str = Field(
        "application/octet-stream",
        description="video/mp4 for videos, image/jpeg for posters, text/vtt and "
        "application/x-subrip for captions",
    )
    poster: str | None = Field(
        None, description="for a video, its poster frame's file (GET .../outputs/poster)"
    )
