import io
import re

from pipeline.console import ConsoleProgress

LINE = re.compile(r"^(\w+) +\d+\.\d s +(\d+\.\d)% done$")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(text: str) -> list[tuple[str, str]]:
    found = [LINE.match(line) for line in text.splitlines()]
    assert all(found), text
    return [(m[1], m[2]) for m in found if m]


def test_off_a_terminal_each_stage_gets_one_line_with_its_time_and_nothing_is_redrawn() -> None:
    log = io.StringIO()
    progress = ConsoleProgress(log)
    progress.enter("VALIDATE")
    progress.update(0.1)
    progress.enter("SCENE_BUILD")
    for fraction in (0.2, 0.5, 0.9):
        progress.update(fraction)
    progress.enter("FINALIZE")
    progress.update(1.0)
    progress.close()
    assert "\r" not in log.getvalue()
    assert _lines(log.getvalue()) == [
        ("VALIDATE", "10.0"),
        ("SCENE_BUILD", "90.0"),
        ("FINALIZE", "100.0"),
    ]


def test_a_stage_that_did_not_complete_gets_no_line() -> None:
    log = io.StringIO()
    progress = ConsoleProgress(log)
    progress.enter("VALIDATE")
    progress.enter("AUDIO_PREP")
    progress.close(completed=False)
    assert [name for name, _ in _lines(log.getvalue())] == ["VALIDATE"]


def test_stage_done_reports_a_time_measured_elsewhere() -> None:
    log = io.StringIO()
    progress = ConsoleProgress(log, indent="  ")
    progress.update(0.25)
    progress.stage_done("SPEECH", 12.34)
    assert log.getvalue() == "  SPEECH          12.3 s   25.0% done\n"


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    tty = _Terminal()
    progress = ConsoleProgress(tty)
    progress.enter("VALIDATE")
    progress.update(0.5)
    progress.enter("SCENE_BUILD")
    progress.update(0.3)  # a late report from a stage before never moves the bar back
    progress.update(1.0)
    progress.stage_done("SPEECH", 1.0)
    progress.close()
    text = tty.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, ended once at the close
    draws = text.rstrip("\n").split("\r")[1:]
    assert draws[1] == "[###############---------------]  50.0% VALIDATE    "
    assert draws[2].rstrip().endswith(" 50.0% SCENE_BUILD")
    assert draws[-1].rstrip() == "[" + "#" * 30 + "] 100.0% SCENE_BUILD"
    assert LINE.search(text) is None
