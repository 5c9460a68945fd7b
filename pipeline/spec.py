"""The project spec (`input/scenes.json`): what the user says the video is made of."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from pipeline import layers, visuals
from pipeline.assets import (
    IMAGES,
    MUSIC,
    VOICEOVERS,
    AssetKind,
    Reference,
    Refers,
    marked_fields,
)
from pipeline.errors import PipelineError
from pipeline.names import check_safe_name
from pipeline.options import Fit, Motion, RenderOptions
from pipeline.transitions import CUT, DEFAULT_SECONDS, LAST_SCENE, MAX_SECONDS, TransitionType

MAX_SCENES = 500
MAX_IMAGES_PER_SCENE = 3
# Characters of one scene's narration the spec can hold (MAX_NARRATION_CHARS may lower what
# is spoken).
MAX_NARRATION = 20_000


class Transition(BaseModel):
    """How a scene passes into the next (pipeline/transitions.py): drawn over the cut,
    centred on it, never shortening the video or moving the narration."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    type: TransitionType = Field(
        "cut", description="cut (none), or the xfade transition drawn over the cut"
    )
    duration: float = Field(
        DEFAULT_SECONDS,
        gt=0,
        le=MAX_SECONDS,
        description="seconds, centred on the cut; at most half of either scene it joins",
    )


# An entry of `images`: an image's file name, or the object of a kind of visual that has one
# (`pipeline.visuals`), told apart by their shape, so an error in either names its own field.
Entry = visuals.SpecEntry


# What a scene shows and says; SceneSpec adds what is drawn over it and how it ends.
class _SceneContent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str | None = Field(None, max_length=64)
    # An entry is an image's file name, or a visual's object: a video clip (docs/clips.md).
    images: Annotated[list[Entry], Refers(IMAGES)] = Field(
        min_length=1, max_length=MAX_IMAGES_PER_SCENE
    )
    voiceover: Annotated[str | None, Refers(VOICEOVERS)] = None
    narration: str | None = Field(None, max_length=MAX_NARRATION)
    # Seconds, or "clip": as long as the scene's one clip (its trimmed length).
    duration: float | Literal["clip"] | None = Field(
        None, description='seconds (0 < duration <= 3600), or "clip"', union_mode="left_to_right"
    )
    # Per-scene overrides of the render options' `fit` and `motion` (motion: of its images).
    fit: Fit | None = None
    motion: Motion | None = None


# One scene of the spec. The fields kinds of layer read (a text layer's `text`) come from
# `layers.SceneFields`; a base's fields come before its subclass's, so the request's fields read
# in this order: the content's, the layers', the transition. (No docstring: it would be the
# schema's description.)
class SceneSpec(layers.SceneFields, _SceneContent):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Into the next scene; None or type "cut": a hard cut.
    transition: Transition | None = None

    @field_validator("images")
    @classmethod
    def _images(cls, entries: list[Any]) -> list[Any]:
        return [check_safe_name(e) if isinstance(e, str) else e for e in entries]

    @field_validator("duration", mode="wrap")
    @classmethod
    def _duration(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> float | str | None:
        # Checked here rather than by constraints on the union's number: an error then names
        # `duration`, not the branch of the union it failed in.
        try:
            found = handler(value)
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"]) from None
        if isinstance(found, float | int) and not 0 < found <= 3600:
            raise ValueError("must be greater than 0 and at most 3600 seconds")
        return found

    @model_validator(mode="after")
    def _clip_duration(self) -> SceneSpec:
        if self.duration == "clip" and not (
            len(self.images) == 1 and visuals.entry_timed(self.images[0])
        ):
            raise ValueError('duration "clip" needs a scene whose one visual is a video clip')
        return self

    @property
    def seconds(self) -> float | None:
        """The duration given in seconds (None for none, or for "clip")."""
        return self.duration if isinstance(self.duration, float | int) else None

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
        last = self.scenes[-1].transition
        if last is not None and last.type != CUT:
            # Raised with its own place, so the answer names scenes[N].transition.
            where = ("scenes", len(self.scenes) - 1, "transition")
            error = PydanticCustomError("last_scene_transition", LAST_SCENE)
            raise ValidationError.from_exception_data(
                "ProjectSpec", [InitErrorDetails(type=error, loc=where, input=last.type)]
            )
        return self

    def references(self) -> list[Reference]:
        """Every file the spec names, with its field path (`scenes[2].images[0]`), in order.

        Read off the fields marked `Refers(kind)`: a field naming a new kind of file is
        listed here by its marker alone.
        """
        refs = []
        for index, scene in enumerate(self.scenes):
            for name, key, kind in marked_fields(SceneSpec):
                where = f"scenes[{index}].{key}"
                value: Any = getattr(scene, name)
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        refs += _item_references(f"{where}[{i}]", kind, item)
                elif value is not None:
                    refs.append(Reference(where, kind, value))
        return refs


def _item_references(where: str, kind: AssetKind, item: Any) -> list[Reference]:
    """An item of a list of files: a file name of that list's kind, or an object (a video
    clip in `images`) naming its files by fields of its own marked `Refers(kind)`."""
    if not isinstance(item, BaseModel):
        return [Reference(where, kind, item)]
    return [
        Reference(f"{where}.{key}", marked, getattr(item, name))
        for name, key, marked in marked_fields(type(item))
        if getattr(item, name) is not None
    ]


def render_references(spec: ProjectSpec, options: RenderOptions) -> list[Reference]:
    """The files a render of `spec` with `options` reads: the spec's, then the music bed."""
    refs = spec.references()
    if options.music is not None:
        refs.append(Reference("renderOptions.music", MUSIC, options.music.file))
    return refs


SPEC_NAME = "input/scenes.json"


class InvalidSpec(PipelineError):
    """`input/scenes.json` is there but is not a valid spec; the message names the first field
    at fault."""


def read_spec(path: Path) -> ProjectSpec | None:
    """The spec stored at `path`, or None when there is none.

    The one reader of a stored spec (the API's project view and render, and VALIDATE), so a
    hand-edited bad file is worded the same everywhere: by the first field at fault.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return ProjectSpec.model_validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "scenes.json"
        raise InvalidSpec(f"{SPEC_NAME} is not valid: {where}: {err['msg']}") from None
