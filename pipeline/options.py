"""Render options: the one model shared by the API, the workers and the command line."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from pipeline.names import check_safe_name

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
Preset = Literal[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
]
Fit = Literal["cover", "contain"]
Motion = Literal["kenburns", "none"]

_RESOLUTION = re.compile(r"^(\d{2,4})x(\d{2,4})$")
MAX_WIDTH, MAX_HEIGHT = 3840, 2160


def parse_resolution(value: str) -> tuple[int, int]:
    """'1920x1080' → (1920, 1080); even sides, at most 3840×2160 in either orientation."""
    match = _RESOLUTION.match(value)
    if not match:
        raise ValueError(f"{value!r} must look like WIDTHxHEIGHT, e.g. 1920x1080")
    width, height = int(match[1]), int(match[2])
    if width % 2 or height % 2:
        raise ValueError(f"{value!r} must have even width and height (H.264 4:2:0)")
    if min(width, height) < 16:
        raise ValueError(f"{value!r} is too small (at least 16 pixels a side)")
    if max(width, height) > MAX_WIDTH or min(width, height) > MAX_HEIGHT:
        raise ValueError(f"{value!r} is larger than 3840x2160")
    return width, height


class RenderOptions(BaseModel):
    """How to render. JSON uses camelCase (`minShot`), Python snake_case (`min_shot`).

    Defaults are the seed's; the service fills omitted fields from its `DEFAULT_*` settings.
    `tts`, `music` and `ducking` are accepted now and used by the sound stage (next round).
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    fps: int = Field(30, ge=1, le=60)
    min_shot: float = Field(2.5, gt=0, le=600)
    max_shot: float = Field(8.0, gt=0, le=600)
    xfade: float = Field(0.5, ge=0)
    crf: int = Field(18, ge=0, le=51)
    preset: Preset = "medium"
    resolution: str = "1920x1080"
    fit: Fit = "cover"
    motion: Motion = "kenburns"
    tts: str | None = None
    voice_dir: str = "voiceovers"
    music: str | None = None
    ducking: bool = False

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str) -> str:
        parse_resolution(value)
        return value

    @field_validator("voice_dir")
    @classmethod
    def _voice_dir(cls, value: str) -> str:
        return check_safe_name(value)

    @field_validator("music")
    @classmethod
    def _music(cls, value: str | None) -> str | None:
        return None if value is None else check_safe_name(value)

    @model_validator(mode="after")
    def _shot_bounds(self) -> RenderOptions:
        if self.min_shot > self.max_shot:
            raise ValueError(f"minShot ({self.min_shot}) must not exceed maxShot ({self.max_shot})")
        if self.xfade >= self.min_shot:
            raise ValueError(f"xfade ({self.xfade}) must be shorter than minShot ({self.min_shot})")
        return self

    @property
    def size(self) -> tuple[int, int]:
        return parse_resolution(self.resolution)
