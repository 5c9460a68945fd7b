"""What a render shows while it runs: a bar redrawn on a terminal, a line per stage in a log.

A bar redrawn with carriage returns is one endless line once it is not on a terminal (a 120 s
render piped to a file wrote one 30 kB line), so off a terminal (CI, nohup, a redirect) each
stage gets one line when it ends, with how long it took, and nothing is redrawn.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

BAR = 30


class ConsoleProgress:
    """Progress on `stream`: a bar when it is a terminal (or `bar` says so), else stage lines.

    `enter` names the stage now running and times the one before; `stage_done` reports a
    stage whose time is known elsewhere (a job's rows, for the demo). Safe to update from
    several threads (the command line's parallel scene builds report at once).
    """

    def __init__(self, stream: TextIO, *, bar: bool | None = None, indent: str = "") -> None:
        self.stream = stream
        self.bar = _is_terminal(stream) if bar is None else bar
        self.indent = indent
        self.fraction = 0.0
        self.text = ""
        self._stage: str | None = None
        self._started = 0.0
        self._lock = threading.Lock()

    def update(self, fraction: float, text: str | None = None) -> None:
        """The overall fraction done (it never goes back) and, optionally, what the bar says."""
        with self._lock:
            self.fraction = max(self.fraction, fraction)
            if text is not None:
                self.text = text
            if self.bar:
                self._draw()

    def enter(self, stage: str) -> None:
        """`stage` starts now: the stage before it ends here."""
        with self._lock:
            now = time.monotonic()
            if self._stage is not None:
                self._line(self._stage, now - self._started)
            self._stage, self._started, self.text = stage, now, stage
            if self.bar:
                self._draw()

    def stage_done(self, stage: str, seconds: float) -> None:
        """A stage that took `seconds`: its line in a log (the bar already shows the total)."""
        with self._lock:
            self._line(stage, seconds)

    def close(self, completed: bool = True) -> None:
        """The end: the running stage's line if it completed; the bar's line is ended."""
        with self._lock:
            if self._stage is not None and completed:
                self._line(self._stage, time.monotonic() - self._started)
            self._stage = None
            if self.bar:
                self.stream.write("\n")
                self.stream.flush()

    def _line(self, stage: str, seconds: float) -> None:
        if self.bar:
            return
        self.stream.write(
            f"{self.indent}{stage:<12} {seconds:7.1f} s  {self.fraction * 100:5.1f}% done\n"
        )
        self.stream.flush()

    def _draw(self) -> None:
        filled = int(self.fraction * BAR)
        bar = "#" * filled + "-" * (BAR - filled)
        self.stream.write(f"\r{self.indent}[{bar}] {self.fraction * 100:5.1f}% {self.text:<12}")
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # a closed stream
        return False
