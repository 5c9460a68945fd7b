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
from pipeline.template import Variable
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
        description="'ok' or what is wrong, for each of database, broker, storage, ffmpeg and fonts"
    )
    fonts: list[str] = Field(
        default_factory=list,
        description="the font families every render has (the packaged default); a project's "
        "uploaded fonts (subdir=fonts) come on top, named by family (docs/text.md)",
    )


class SpecResponse(BaseModel):
    """The stored spec as stored (a template keeps its placeholders and `variables`), plus
    the version it made and the referenced files not uploaded yet ('images/a.jpg')."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    missing_assets: list[str] = Field(
        description="files the spec names that are not uploaded (a file named by a "
        "placeholder is checked when a render gives its value)"
    )
    version: int = Field(description="the version this PUT made: 1, 2, ...")
    sha256: str = Field(description="sha256 of the spec's canonical JSON")
    variables: dict[str, Variable] = Field(
        default_factory=dict,
        description="every variable of the template: the declared ones and each undeclared "
        "placeholder (text); empty for a spec without placeholders",
    )


class VersionSummary(CamelModel):
    number: int
    sha256: str
    created_at: DbTime


class VersionList(CamelModel):
    versions: list[VersionSummary] = Field(description="oldest first")


class VersionView(VersionSummary):
    spec: dict[str, Any] = Field(description="the spec (or template) as this version stored it")


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
    spec: ProjectSpec | None = Field(
        description="input/scenes.json, or null before it is PUT and for a template"
    )
    template: dict[str, Any] | None = Field(
        None, description="the latest version when it is a template (placeholders kept)"
    )
    version: int | None = Field(None, description="the latest version's number")
    variables: dict[str, Variable] = Field(
        default_factory=dict, description="the template's variables (empty without any)"
    )
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


def with_defaults(document: dict[str, Any], defaults: RenderOptions) -> dict[str, Any]:
    """The OpenAPI `document` with each render option's default as this service applies it
    (the options model's, under any DEFAULT_* setting), so a client building a form from the
    schema (the console) shows what an omitted option becomes."""
    patch = document.get("components", {}).get("schemas", {}).get("RenderOptionsPatch")
    if patch is None:
        return document
    values = defaults.model_dump(mode="json", by_alias=True)
    for name, schema in patch["properties"].items():
        if values.get(name) is not None:
            schema["default"] = values[name]
    return document


class RenderRequest(CamelModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    output_name: str = Field("video.mp4", description="a plain file name ending in .mp4")
    render_options: RenderOptionsPatch | None = None
    data: dict[str, Any] | None = Field(
        None,
        description="the template's variables' values (docs/templates.md); an unknown name, "
        "a wrong type or a placeholder left without a value is a 422 naming the variable",
    )
    version: int | None = Field(
        None, ge=1, description="the project version to render (default: the latest)"
    )
    callback_url: str | None = Field(
        None,
        max_length=2048,
        description="http(s) URL POSTed the signed job document when the job ends "
        '(docs/api.md "Webhooks"); public addresses only unless WEBHOOK_ALLOW_PRIVATE',
    )

    @field_validator("output_name")
    @classmethod
    def _mp4(cls, name: str) -> str:
        return mp4_name(name)


def mp4_name(name: str) -> str:
    """A plain file name ending in .mp4, else ValueError saying why."""
    check_safe_name(name)
    if not name.lower().endswith(".mp4"):
        raise ValueError(f"{name!r} must end with .mp4")
    return name


class RerenderRequest(CamelModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    output_name: str | None = Field(
        None, description="a plain file name ending in .mp4 (default: the job's own)"
    )

    @field_validator("output_name")
    @classmethod
    def _mp4(cls, name: str | None) -> str | None:
        return None if name is None else mp4_name(name)


class RenderAccepted(CamelModel):
    job_id: str
    status: str = "QUEUED"


_CLIP = (
    "how the scene's clip came to be: 'encoded', 'cached' (from the render cache, no "
    "FFmpeg), 'skipped' (not in a part-of-the-timeline render); null until built"
)


class SceneProgress(CamelModel):
    """A scene's build: its one SCENE_BUILD[i] stage, or its chunks' SCENE_BUILD[i/c], with
    the halves of the transitions over its edges (SCENE_BUILD[~i], SCENE_BUILD[i~]), taken
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
    version: int | None = Field(None, description="the project version it renders")
    data: dict[str, Any] | None = Field(
        None, description="the variables' values it was resolved with, defaults included"
    )
    spec_sha256: str | None = Field(
        None,
        description="sha256 of the spec it renders (its version's template resolved with "
        "data; GET /v1/jobs/{id}/spec returns it)",
    )
    assets: dict[str, str] | None = Field(
        None, description="the sha256 of every file it reads ('images/a.jpg' → digest)"
    )
    batch_id: str | None = Field(None, description="the batch it is a row of")
    batch_row: int | None = None
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
    logs: list[str] = Field(
        description="the job's last 50 log lines (logs/<jobId>.log; with an object store, "
        "every host's, as each stage attempt ends)"
    )
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


class BatchRequest(CamelModel):
    """A batch: one render of the project's template per row of data."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    rows: list[dict[str, Any]] | None = Field(
        None,
        description="each row's data (the template's variables); or send a CSV instead "
        "(multipart: a `csv` file, these fields as JSON in a `batch` field)",
    )
    output_name: str = Field(
        "row-{{_row}}.mp4",
        description="each row's file: a pattern of the template's variables and {{_row}} "
        "(the row's number from 1); must give a plain .mp4 name, a different one per row",
    )
    render_options: RenderOptionsPatch | None = None
    callback_url: str | None = Field(
        None,
        max_length=2048,
        description="POSTed the signed batch document once, when every job of it has ended",
    )
    version: int | None = Field(None, ge=1, description="the project version (default latest)")
    atomic: bool = Field(
        False, description="refuse the whole batch if any row is invalid (default: queue the rest)"
    )


class RowError(CamelModel):
    index: int = Field(description="the row's index in `rows` or the CSV's data lines, from 0")
    code: str
    field: str | None
    message: str


class BatchAccepted(CamelModel):
    batch_id: str
    queued: int = Field(description="jobs queued, one per valid row")
    invalid: list[RowError] = Field(description="the rows refused, each with its reason")


class BatchRowView(CamelModel):
    index: int
    job_id: str | None = Field(None, description="null for a row refused at submission")
    status: str = Field(description="the job's status, or INVALID")
    output_name: str | None = None
    error: str | None = None


class BatchView(CamelModel):
    id: str
    project_id: str
    version: int | None
    status: str = Field(
        description="RUNNING until every job has ended; then SUCCEEDED (every job did), "
        "FAILED (some failed) or CANCELLED"
    )
    rows: int = Field(description="rows sent")
    counts: dict[str, int] = Field(description="jobs by status, and INVALID rows")
    progress: float = Field(description="the jobs' mean progress, 0..1")
    cancel_requested: bool
    created_at: DbTime
    finished_at: DbTime
    cache: CacheSummary = Field(description="scene clips encoded and taken from the cache")
    encodes_per_row: float = Field(description="scene clips encoded per job")
    offset: int
    limit: int
    items: list[BatchRowView] = Field(description="the rows from `offset`, at most `limit`")


class BatchOutput(CamelModel):
    index: int
    job_id: str
    name: str
    size: int
    url: str = Field(description="where to download it (needs the token)")
