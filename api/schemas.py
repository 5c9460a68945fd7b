"""What the API accepts and returns (camelCase JSON). Separate from the tables on purpose."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from pipeline.names import check_safe_name
from pipeline.options import Fit, Motion, Preset
from pipeline.spec import ProjectSpec

Subdir = Literal["images", "voiceovers", "music"]


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


class ProjectAssets(CamelModel):
    images: list[str] = []
    voiceovers: list[str] = []
    music: list[str] = []


class JobSummary(CamelModel):
    job_id: str
    status: str
    stage: str | None
    progress: float
    output_name: str
    error: str | None
    created_at: datetime | None
    finished_at: datetime | None


class ProjectView(CamelModel):
    id: str
    title: str | None
    spec: ProjectSpec | None = Field(description="input/scenes.json, or null before it is PUT")
    assets: ProjectAssets
    missing_assets: list[str]
    jobs: list[JobSummary] = Field(description="the latest jobs, newest first")


class RenderOptionsPatch(CamelModel):
    """Render options as sent: every field optional; omitted ones take the DEFAULT_* settings.

    Ranges and cross-field rules (fps 1..60, 0 < minShot ≤ maxShot, 0 ≤ xfade < minShot,
    crf 0..51) are checked on the merged `pipeline.options.RenderOptions`.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    fps: int | None = Field(None, description="frames per second, 1..60")
    min_shot: float | None = Field(None, description="shortest time one image is shown (s)")
    max_shot: float | None = Field(None, description="longest time one image is shown (s)")
    xfade: float | None = Field(None, description="cross-fade between shots (s), < minShot")
    crf: int | None = Field(None, description="x264 quality, 0..51 (lower is better)")
    preset: Preset | None = None
    resolution: str | None = Field(None, description="WIDTHxHEIGHT, even sides, e.g. 1920x1080")
    fit: Fit | None = None
    motion: Motion | None = None
    tts: str | None = None
    voice_dir: str | None = Field(None, description="input subfolder with the voiceovers")
    music: str | None = Field(None, description="a file in input/music/ to play under the voice")
    ducking: bool | None = None


class RenderRequest(CamelModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    output_name: str = Field("video.mp4", description="a plain file name ending in .mp4")
    render_options: RenderOptionsPatch | None = None

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


class SceneProgress(CamelModel):
    index: int
    status: str
    progress: float


class StageView(CamelModel):
    name: str
    status: str
    progress: float
    attempts: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None


class JobView(CamelModel):
    id: str
    project_id: str
    status: str
    stage: str | None
    progress: float = Field(description="0..1")
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    output_name: str
    options: dict[str, Any]
    cancel_requested: bool
    scenes: list[SceneProgress]
    stages: list[StageView]
    logs: list[str] = Field(description="the last 50 lines of logs/<jobId>.log")


class OutputFile(CamelModel):
    name: str
    size: int
    modified_at: datetime
