"""Render options: the one model shared by the API, the workers and the command line.

Each option's name, type, range, default and description are written here and only here: the
API's patch model, the `DEFAULT_*` settings and the command line's flags are derived from
`RenderOptions.model_fields`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipeline.names import check_safe_name

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

    fps: int = Field(30, ge=1, le=60, description="frames per second")
    min_shot: float = Field(
        2.5, gt=0, le=600, description="shortest time one image is shown, seconds (≤ maxShot)"
    )
    max_shot: float = Field(
        8.0, gt=0, le=600, description="longest time one image is shown, seconds"
    )
    xfade: float = Field(0.5, ge=0, description="cross-fade between shots, seconds (< minShot)")
    crf: int = Field(18, ge=0, le=51, description="x264 quality: lower is better and larger")
    preset: Preset = Field(
        "medium", description="x264 preset: slower ones make smaller files at the same crf"
    )
    resolution: str = Field(
        "1920x1080",
        description="output size WIDTHxHEIGHT, even sides, at most 3840x2160 either way round",
        # Shown in the schema only: `_resolution` checks it, with a message saying what is wrong.
        json_schema_extra={"pattern": _RESOLUTION.pattern},
    )
    fit: Fit = Field(
        "cover",
        description="how an image fills the frame unless its scene says: cover crops to fill, "
        "contain shows all of it over a blurred copy",
    )
    motion: Motion = Field(
        "kenburns",
        description="unless a scene says: kenburns zooms and pans slowly, none holds still",
    )
    tts: str | None = Field(None, description="text-to-speech voice for scenes without a voiceover")
    voice_dir: str = Field("voiceovers", description="input subfolder with the voiceovers")
    music: str | None = Field(None, description="a file in input/music/ to play under the voice")
    ducking: bool = Field(False, description="lower the music while the voice speaks")

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
            raise _field_error(
                "minShot",
                self.min_shot,
                f"minShot ({self.min_shot}) must not exceed maxShot ({self.max_shot})",
            )
        if self.xfade >= self.min_shot:
            raise _field_error(
                "xfade",
                self.xfade,
                f"xfade ({self.xfade}) must be shorter than minShot ({self.min_shot})",
            )
        return self

    @property
    def size(self) -> tuple[int, int]:
        return parse_resolution(self.resolution)


def _field_error(alias: str, value: object, message: str) -> ValidationError:
    # A cross-field rule is about one field; locating the error there (rather than on the whole
    # model) lets the API answer `renderOptions.xfade` and the settings `DEFAULT_XFADE`.
    error = PydanticCustomError("value_error", message)
    details = InitErrorDetails(type=error, loc=(alias,), input=value)
    return ValidationError.from_exception_data(RenderOptions.__name__, [details])
