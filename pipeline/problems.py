"""Problems a render request can have, found before it is queued and again by VALIDATE.

Each check here is one function, called by the API (which answers the problem as a 422 naming
its field) and by the pipeline (which raises it as a `PipelineError`), so the two never word
the same problem differently.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.options import RenderOptions


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    field: str  # e.g. "renderOptions.tts.engine", "scenes[2].narration"

    @property
    def sentence(self) -> str:
        """Its message, led by its field."""
        if self.message.startswith(self.field):
            return self.message
        return f"{self.field}: {self.message}"

    def error(self) -> PipelineError:
        """The problem as the pipeline raises it."""
        return PipelineError(self.sentence)


def unknown_scenes(options: RenderOptions, scene_count: int) -> Problem | None:
    """renderOptions.scenes naming a scene the spec does not have."""
    beyond = [index for index in options.scenes or () if index >= scene_count]
    if not beyond:
        return None
    return Problem(
        "validation_error",
        f"renderOptions.scenes: no scene {beyond[0]} (the project has {scene_count}, "
        "numbered from 0)",
        "renderOptions.scenes",
    )
