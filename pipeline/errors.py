"""The pipeline's exceptions: one base class that names the stage, scene and FFmpeg's last words."""

from __future__ import annotations


class PipelineError(Exception):
    """A stage failed. `str(err)` is the sentence a user sees, e.g.

    ``<STAGE> scene 2 (id 'intro'): image 'a.jpg' could not be decoded: <stderr tail>``

    Pipeline code says what went wrong; the stage and scene are filled in by whoever runs the
    stage (`registry.run_stage`), so no function below it needs to know which stage it is in.
    """

    def __init__(
        self,
        message: str,
        *,
        stage: str = "",
        scene: int | None = None,
        scene_id: str | None = None,
        stderr_tail: str = "",
    ) -> None:
        self.stage = stage
        self.scene = scene
        self.scene_id = scene_id
        self.message = message
        self.stderr_tail = stderr_tail
        super().__init__(self._render())

    def _render(self) -> str:
        where = [self.stage] if self.stage else []
        if self.scene is not None:
            where.append(f"scene {self.scene}")
            if self.scene_id is not None:
                where.append(f"(id {self.scene_id!r})")
        text = f"{' '.join(where)}: {self.message}" if where else self.message
        if self.stderr_tail:
            text += f": {self.stderr_tail}"
        return text

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields do not survive the default pickling, and Celery pickles errors.
        return (
            _rebuild,
            (type(self), self.stage, self.message, self.scene, self.scene_id, self.stderr_tail),
        )

    def with_context(
        self, *, message: str | None = None, scene_id: str | None = None
    ) -> PipelineError:
        """A copy of this error (same class) with a more specific message or the scene's id."""
        return type(self)(
            message if message is not None else self.message,
            stage=self.stage,
            scene=self.scene,
            scene_id=scene_id if scene_id is not None else self.scene_id,
            stderr_tail=self.stderr_tail,
        )

    def located(self, stage: str, scene: int | None) -> PipelineError:
        """This error (same class) with the stage and scene it happened in, where not set."""
        if self.stage and (self.scene is not None or scene is None):
            return self
        return type(self)(
            self.message,
            stage=self.stage or stage,
            scene=self.scene if self.scene is not None else scene,
            scene_id=self.scene_id,
            stderr_tail=self.stderr_tail,
        )


class InputError(PipelineError, ValueError):
    """A project's input cannot be used as named: a file name that is not a plain name, or a
    path that leaves `input/` (a symlink, say). A ValueError too, for callers that check names
    and catch that."""


class Cancelled(PipelineError):
    """`should_cancel()` returned True; the FFmpeg child was killed before this was raised."""


def _rebuild(
    cls: type[PipelineError],
    stage: str,
    message: str,
    scene: int | None,
    scene_id: str | None,
    stderr_tail: str,
) -> PipelineError:
    return cls(message, stage=stage, scene=scene, scene_id=scene_id, stderr_tail=stderr_tail)
