"""Render options: the one model shared by the API, the workers and the command line.

Each option's name, type, range, default and description are written here and only here: the
API's patch model, the `DEFAULT_*` settings and the command line's flags are derived from
`RenderOptions.model_fields`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipeline import timeline
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
CaptionStyle = Literal["block", "word", "karaoke"]
CaptionPosition = Literal["bottom", "top"]
CaptionSize = Literal["small", "medium", "large"]

_RESOLUTION = re.compile(r"^(\d{2,4})x(\d{2,4})$")
MAX_WIDTH, MAX_HEIGHT = 3840, 2160


def parse_resolution(value: str) -> tuple[int, int]:
    """'1920x1080' → (1920, 1080); even sides, at most 3840×2160 in either orientation."""
    match = _RESOLUTION.fullmatch(value)
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


class TimeRange(BaseModel):
    """Part of the timeline, in seconds: `{"from": 10, "to": 20}`."""

    model_config = ConfigDict(
        populate_by_name=True, extra="forbid", frozen=True, allow_inf_nan=False
    )

    start: float = Field(alias="from", ge=0, description="seconds from the start of the video")
    end: float = Field(alias="to", gt=0, description="seconds from the start, after `from`")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError(f"to ({self.end}) must be after from ({self.start})")
        return self


_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
DUCKING_DB = 12.0
MIN_CHUNK_SECONDS = 0.5
LOUDNESS_LUFS = -16.0


# Every model of the options (and the spec's) refuses NaN and ±Infinity, which Python's JSON
# parser accepts: a number that is not finite is never a length, a level or a time.
FINITE = ConfigDict(
    alias_generator=to_camel,
    populate_by_name=True,
    extra="forbid",
    frozen=True,
    allow_inf_nan=False,
)


class _Nested(BaseModel):
    model_config = FINITE


# The engine a bare narration is spoken with: built in, no extra to install.
DEFAULT_ENGINE = "espeak-ng"


class Tts(_Nested):
    """Text to speech: `"espeak-ng"` or `{"engine": "espeak-ng", "voice": "en-us", "rate": 170}`."""

    engine: str = Field(
        DEFAULT_ENGINE,
        max_length=40,
        description="espeak-ng (built in) or hibari (pip install .[neural])",
    )
    voice: str | None = Field(
        None, max_length=80, description="a voice of the engine; null: its default"
    )
    rate: int | None = Field(
        None, ge=80, le=450, description="speaking rate, words per minute; null: the engine's own"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"engine": value} if isinstance(value, str) else value


class Music(_Nested):
    """A music bed: `"bed.mp3"` or `{"file": "bed.mp3", "volume": -18, ...}`."""

    file: str = Field(description="a file uploaded with subdir=music")
    volume: float = Field(-18.0, ge=-60, le=0, description="the bed's gain, dB")
    fade_in: float = Field(1.0, ge=0, le=60, description="fade in at the start, seconds")
    fade_out: float = Field(2.0, ge=0, le=60, description="fade out at the end, seconds")
    loop: bool = Field(True, description="repeat a bed shorter than the video (false: it ends)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"file": value} if isinstance(value, str) else value

    @field_validator("file")
    @classmethod
    def _file(cls, value: str) -> str:
        return check_safe_name(value)


class Ducking(_Nested):
    """The bed dips under speech: `true` (12 dB), `false`, or `{"amount": 12}`."""

    amount: float = Field(0.0, ge=0, le=40, description="dB the bed dips under speech; 0: none")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"amount": DUCKING_DB if value else 0.0}
        if isinstance(value, int | float):
            return {"amount": value}
        return value

    @model_serializer
    def _dump(self) -> bool | dict[str, float]:
        return {"amount": self.amount} if self.amount else False

    @property
    def on(self) -> bool:
        return self.amount > 0


class Loudness(_Nested):
    """The mix's integrated loudness: a target in LUFS (−30…−5), or `false` to leave it."""

    target: float | None = Field(LOUDNESS_LUFS, ge=-30, le=-5, description="LUFS; null: off")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value is True:
            return {"target": LOUDNESS_LUFS}
        if value is False or value is None:
            return {"target": None}
        if isinstance(value, int | float):
            if not -30 <= value <= -5:
                raise ValueError(f"loudness must be from -30 to -5 LUFS, or false (not {value})")
            return {"target": value}
        return value

    @model_serializer
    def _dump(self) -> float | bool:
        return self.target if self.target is not None else False


class Captions(_Nested):
    """Captions from the narration: `true`, `false`, or `{"burnIn": true, "language": "en"}`."""

    enabled: bool = Field(False, description="write captions (an object form turns them on)")
    burn_in: bool = Field(False, description="also draw them into the picture")
    language: str = Field("en", description="ISO 639 language code of the narration")
    # How burnt-in captions look (pipeline/captions.py `ass`); the .srt/.vtt are the same.
    style: CaptionStyle = Field(
        "block",
        description="burnt-in: block (a cue's lines at a time), word (one word at a time) or "
        "karaoke (the cue's lines, each word lit as it is spoken)",
    )
    position: CaptionPosition = Field(
        "bottom", description="burnt-in: bottom or top centre, inside the title-safe area"
    )
    size: CaptionSize = Field(
        "medium", description="burnt-in text height: small (4%), medium (5%) or large (7%)"
    )
    transcribe: bool = Field(
        False,
        description="a scene with a voiceover and no narration gets captions from offline "
        'speech recognition (needs pip install "render-api[asr]")',
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"enabled": value}
        if isinstance(value, dict):
            return {"enabled": True, **value}
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not _LANGUAGE.fullmatch(value):
            raise ValueError(f"{value!r} is not a language code such as en, de or pt-BR")
        return value

    @model_serializer
    def _dump(self) -> bool | dict[str, Any]:
        if not self.enabled:
            return False
        looks = {"style": self.style, "position": self.position, "size": self.size}
        defaults = {"style": "block", "position": "bottom", "size": "medium"}
        changed: dict[str, Any] = {k: v for k, v in looks.items() if v != defaults[k]}
        if self.transcribe:
            changed["transcribe"] = True
        return {"burnIn": self.burn_in, "language": self.language, **changed}


class RenderOptions(BaseModel):
    """How to render. JSON uses camelCase (`minShot`), Python snake_case (`min_shot`).

    Defaults are the seed's; the service fills omitted fields from its `DEFAULT_*` settings.
    """

    model_config = FINITE

    fps: int = Field(30, ge=1, le=60, description="frames per second")
    min_shot: float = Field(
        2.5,
        gt=0,
        le=600,
        description="shortest time one image is shown, seconds (≤ maxShot; at least a frame "
        "and the service's MIN_SHOT_SECONDS)",
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
    # Sound and captions (pipeline/tts/, pipeline/audio.py, pipeline/captions.py;
    # docs/sound-and-captions.md). Each takes a shorthand (a name, a bool, a number) or an object.
    tts: Tts | None = Field(
        None,
        description="speak each scene's narration that has no voiceover: an engine name "
        '("espeak-ng") or {"engine", "voice", "rate"}',
    )
    voice_dir: str = Field("voiceovers", description="input subfolder with the voiceovers")
    music: Music | None = Field(
        None,
        description='a music bed from input/music/: "bed.mp3" or {"file", "volume", "fadeIn", '
        '"fadeOut", "loop"}',
    )
    ducking: Ducking = Field(
        Ducking(),
        description='dip the music under speech: true (12 dB), false, or {"amount": dB}',
    )
    loudness: Loudness = Field(
        Loudness(),
        description="normalise the mix to this integrated loudness, LUFS (-30 to -5), true peak "
        "at most -1 dBTP; false leaves levels alone",
    )
    captions: Captions = Field(
        Captions(enabled=False),
        description="captions from the narration (.srt, .vtt, a subtitle track): true, false, or "
        '{"burnIn": bool, "language": "en", "style": "block"|"word"|"karaoke", '
        '"position": "bottom"|"top", "size": "small"|"medium"|"large"}',
    )
    # Scale-out (pipeline/chunks.py, docs/scaling.md).
    chunk_seconds: float = Field(
        2.5,
        ge=0,
        le=600,
        description="a scene longer than this is encoded in chunks of about this length, each "
        "its own task on any worker (0: one task per scene)",
    )
    # The render cache and drafts (pipeline/cache.py, docs/cache-and-previews.md).
    cache: bool = Field(
        True, description="reuse scene clips rendered before (false: encode every scene afresh)"
    )
    preview: bool = Field(
        False,
        description="a fast draft: at most 640 pixels a side, a fast preset, same timeline "
        "and audio",
    )
    range: TimeRange | None = Field(
        None,
        description="render only the scenes overlapping this part of the timeline, seconds",
    )
    scenes: list[int] | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="render only these scenes (indices from 0, played in timeline order)",
    )
    poster_time: float | None = Field(
        None,
        ge=0,
        description="second of the video the poster <name>.jpg shows (default: a frame of "
        "the first scene's first shot)",
    )

    @field_validator("chunk_seconds")
    @classmethod
    def _chunk_seconds(cls, value: float) -> float:
        # Every chunk is a task and an x264 start: shorter ones cost more than they spread.
        if 0 < value < MIN_CHUNK_SECONDS:
            raise ValueError(f"must be 0 (off) or at least {MIN_CHUNK_SECONDS} s, not {value}")
        return value

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str) -> str:
        parse_resolution(value)
        return value

    @field_validator("voice_dir")
    @classmethod
    def _voice_dir(cls, value: str) -> str:
        return check_safe_name(value)

    @field_validator("tts", "music", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        # `--no-tts` on the command line: off, like null.
        return None if value is False else value

    @field_validator("scenes")
    @classmethod
    def _scenes(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if any(index < 0 for index in value):
            raise ValueError("scene indices start at 0")
        return sorted(set(value))

    @model_validator(mode="after")
    def _shot_bounds(self) -> RenderOptions:
        if self.range is not None and self.scenes is not None:
            raise _field_error("range", self.range, "give range or scenes, not both")
        if self.min_shot > self.max_shot:
            raise _field_error(
                "minShot",
                self.min_shot,
                f"minShot ({self.min_shot}) must not exceed maxShot ({self.max_shot})",
            )
        for alias, value in (("maxShot", self.max_shot), ("minShot", self.min_shot)):
            # A shot shorter than a frame has no frame to show (and one of 0 s divides by 0).
            if timeline.exact(value) * self.fps < 1:
                raise _field_error(
                    alias,
                    value,
                    f"{alias} ({value:g} s) must be at least one frame (1/{self.fps} s at "
                    f"fps {self.fps})",
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
