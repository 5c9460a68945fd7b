"""The project spec (`input/scenes.json`): what the user says the video is made of."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.names import check_safe_name
from pipeline.options import Fit, Motion

MAX_SCENES = 500
MAX_IMAGES_PER_SCENE = 3
# Characters of one scene's narration the spec can hold (MAX_NARRATION_CHARS may lower what
# is spoken).
MAX_NARRATION = 20_000


class SceneSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str | None = Field(None, max_length=64)
    images: list[str] = Field(min_length=1, max_length=MAX_IMAGES_PER_SCENE)
    voiceover: str | None = None
    narration: str | None = Field(None, max_length=MAX_NARRATION)
    duration: float | None = Field(None, gt=0, le=3600)
    # Per-scene overrides of the render options' `fit` and `motion`.
    fit: Fit | None = None
    motion: Motion | None = None

    @field_validator("images")
    @classmethod
    def _images(cls, names: list[str]) -> list[str]:
        return [check_safe_name(name) for name in names]

    @field_validator("voiceover")
    @classmethod
    def _voiceover(cls, name: str | None) -> str | None:
        return None if name is None else check_safe_name(name)


class ProjectSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    title: str | None = Field(None, max_length=500)
    scenes: list[SceneSpec] = Field(min_length=1, max_length=MAX_SCENES)

    @model_validator(mode="after")
    def _unique_ids(self) -> ProjectSpec:
        seen: set[str] = set()
        for scene in self.scenes:
            if scene.id is not None:
                if scene.id in seen:
                    raise ValueError(f"scene id {scene.id!r} is used twice")
                seen.add(scene.id)
        return self

    def referenced_assets(self, voice_dir: str = "voiceovers") -> list[tuple[str, str]]:
        """(subdir, name) of every file the spec refers to, in order, without repeats."""
        refs: dict[tuple[str, str], None] = {}
        for scene in self.scenes:
            for image in scene.images:
                refs[("images", image)] = None
            if scene.voiceover:
                refs[(voice_dir, scene.voiceover)] = None
        return list(refs)
