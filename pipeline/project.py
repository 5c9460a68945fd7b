"""A project folder's layout, and the only way to turn a user's file name into a path in it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from pipeline.assets import FOLDERS
from pipeline.errors import InputError
from pipeline.names import check_safe_name

RUN_SPEC = "scenes.json"  # a run's own spec, in its work folder


@dataclass(frozen=True)
class ProjectDir:
    """`root/input/scenes.json` and a folder per asset kind (pipeline/assets.py), `root/work/`,
    `root/output/`.

    A named run has a work folder of its own, `work/<run>/`: the service names each render after
    its job, so two jobs of one project (two sizes of the same video, say) never read each
    other's plan or clips. An unnamed run (the command line) works in `work/` itself.
    """

    root: Path
    run: str | None = None
    # The run renders a spec of its own, `work/<run>/scenes.json` (a service job's resolved
    # template, pinned at submission), not the project's `input/scenes.json`.
    own_spec: bool = False

    def for_run(self, run: str, own_spec: bool = False) -> ProjectDir:
        return dataclasses.replace(self, run=check_safe_name(run), own_spec=own_spec)

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def spec_file(self) -> Path:
        return self.work / RUN_SPEC if self.own_spec else self.input / "scenes.json"

    @property
    def work(self) -> Path:
        return self.root / "work" / self.run if self.run else self.root / "work"

    @property
    def output(self) -> Path:
        return self.root / "output"

    def input_dir(self, subdir: str) -> Path:
        try:
            return self.input / check_safe_name(subdir)
        except ValueError as exc:
            raise InputError(f"input folder {subdir!r}: {exc}") from None

    def asset(self, subdir: str, name: str) -> Path:
        """Path of an input file; both parts are checked, so the result stays inside `input/`.

        InputError (a PipelineError, so a job's error says which file) when either is not a
        plain name or the path leads out of `input/`.
        """
        folder = self.input_dir(subdir)
        try:
            path = folder / check_safe_name(name)
        except ValueError as exc:
            raise InputError(f"input file in {subdir}/: {exc}") from None
        if not path.resolve().is_relative_to(self.input.resolve()):
            raise InputError(f"{subdir}/{name} escapes the project directory")
        return path

    def create(self) -> None:
        for folder in FOLDERS:
            (self.input / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "work").mkdir(parents=True, exist_ok=True)
        self.output.mkdir(parents=True, exist_ok=True)
