"""What a render needs from FFmpeg, listed once, and the check that a binary has all of it.

The bundled imageio-ffmpeg binary has everything; a build named in FFMPEG_BINARY may not (an
older release, a distribution's build without libx264). The service checks the binary before it
starts and VALIDATE checks it before planning, so a missing part is named up front rather than
surfacing as a filter-graph error in the middle of a scene.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

from pipeline import layers, transitions, visuals
from pipeline.probe import VIDEO_CONTAINERS

# Everything the pipeline's FFmpeg commands use (scene.py, visuals/, layers/, audio.py, mux.py).
# A test (tests/pipeline/test_capabilities.py) builds those commands for a plan using every
# feature and checks they use exactly this, so a new filter in a graph fails there until it
# is listed here.
NEEDS: Mapping[str, tuple[str, ...]] = {
    "encoder": ("libx264", "aac", "pcm_s16le", "rawvideo", "pcm_f32le", "mov_text"),
    "filter": tuple(
        dict.fromkeys(
            (
                # what each kind of visual draws with (pipeline/visuals/: fitting, EXIF
                # rotation, motion) and each kind of layer (pipeline/layers/: captions)
                *visuals.filters(),
                *layers.filters(),
                # a scene's pieces, cross-faded and joined (scene.py)
                *("split", "setsar", "setparams", "xfade", "concat", "format"),
                # a span cut out of a cross-fade; transitions between scenes (transitions.py)
                *("trim", "setpts"),
                *transitions.FILTERS,
                # sound: the master track and each scene's cut of it (audio.py)
                *("anullsrc", "aresample", "aformat", "apad", "atrim", "asetpts"),
                # the music bed, looped, faded and ducked; the mix; its loudness and gain
                *("acrossfade", "aloop", "volume", "afade", "asetnsamples", "amix"),
                *("ebur128", "ametadata", "alimiter"),
                # video clips' own sound, placed where their shots start (audio.py)
                "adelay",
            )
        )
    ),
    # raw stills between the two steps of a scene's build; clips joined by the concat demuxer;
    # the captions' SRT muxed as the soft subtitle track
    # and the video clips' containers, each read by its own demuxer (pipeline/visuals/clip.py)
    "demuxer": ("concat", "rawvideo", "srt", *VIDEO_CONTAINERS),
    "muxer": ("mp4", "wav", "rawvideo", "null"),
}

HINT = "set FFMPEG_BINARY to a full build, or leave it unset to use the bundled one"
_TIMEOUT = 20.0


class UnfitFFmpeg(RuntimeError):
    """The FFmpeg binary cannot run or lacks something renders use; the message names both."""


@dataclass(frozen=True)
class FFmpegReport:
    """What one binary is and what of NEEDS it lacks."""

    binary: str
    version: str  # the first line of `ffmpeg -version`
    missing: tuple[tuple[str, tuple[str, ...]], ...]  # (kind, names) for each kind short of some

    @property
    def release(self) -> str:
        """The version's third word ("ffmpeg version 5.1.6-0+deb12u1 Copyright ..." gives
        5.1.6-0+deb12u1); "unknown" when the first line is not FFmpeg's."""
        words = self.version.split()
        if len(words) >= 3 and words[:2] == ["ffmpeg", "version"]:
            return words[2]
        return "unknown"

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def problem(self) -> str:
        """The one-line refusal ('' when nothing is missing)."""
        if self.ok:
            return ""
        lacks = "; ".join(f"{kind}(s) {', '.join(names)}" for kind, names in self.missing)
        return f"FFmpeg {self.binary} (version {self.release}) lacks {lacks}; {HINT}"


def _after_rule(listing: str) -> Iterator[list[str]]:
    """The words of each line after the legend's closing rule (" ------", " --")."""
    lines = iter(listing.splitlines())
    for line in lines:
        if line.strip() and not line.strip("- "):
            break
    for line in lines:
        if words := line.split():
            yield words


def _codecs(listing: str) -> set[str]:
    # " V....D libx264   libx264 H.264 / AVC ...": the flags are always one word.
    return {words[1] for words in _after_rule(listing) if len(words) > 1}


def _filters(listing: str) -> set[str]:
    # " TSC xfade   VV->V   Cross fade ...": 5.1 prints no rule under the legend and three
    # flag columns, newer releases a rule and two; the "in->out" column marks a filter line.
    return {
        words[1]
        for words in (line.split() for line in listing.splitlines())
        if len(words) > 2 and "->" in words[2]
    }


def _formats(listing: str) -> set[str]:
    # " D  concat", "  E mp4" (5.1), " D d lavfi" (7.0+): the flags are letters or blanks in
    # fixed columns, so split into words of their own; one entry may name several formats
    # ("mov,mp4,m4a,3gp,3g2,mj2").
    names: set[str] = set()
    for words in _after_rule(listing):
        named = [word for word in words if word.strip("DEd.")]
        if named:
            names.update(named[0].split(","))
    return names


_LISTINGS: Mapping[str, tuple[str, Callable[[str], set[str]]]] = {
    "encoder": ("-encoders", _codecs),
    "filter": ("-filters", _filters),
    "demuxer": ("-demuxers", _formats),
    "muxer": ("-muxers", _formats),
}


def _run(binary: str, option: str) -> str:
    try:
        done = subprocess.run(
            [binary, "-hide_banner", option],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UnfitFFmpeg(f"FFmpeg {binary} cannot run: {exc}; {HINT}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        raise UnfitFFmpeg(
            f"FFmpeg {binary} {option} exited with status {done.returncode}: {last}; {HINT}"
        )
    return done.stdout


@lru_cache(maxsize=16)
def _inspect(binary: str, identity: tuple[int, int, int]) -> FFmpegReport:
    # `identity` (inode, size, mtime) is only part of the cache key: a binary replaced in
    # place is inspected again.
    version = (_run(binary, "-version").splitlines() or [""])[0].strip()
    missing = []
    for kind, (option, names_in) in _LISTINGS.items():
        present = names_in(_run(binary, option))
        lacking = tuple(name for name in NEEDS[kind] if name not in present)
        if lacking:
            missing.append((kind, lacking))
    return FFmpegReport(binary, version, tuple(missing))


def inspect_ffmpeg(binary: str) -> FFmpegReport:
    """Ask `binary` for its version, encoders, filters, demuxers and muxers (once per binary in
    this process) and report what of NEEDS it lacks; UnfitFFmpeg if it cannot be run."""
    path = shutil.which(binary) or binary
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise UnfitFFmpeg(f"FFmpeg {binary} cannot run: {exc}; {HINT}") from None
    return _inspect(path, (stat.st_ino, stat.st_size, stat.st_mtime_ns))


def require_ffmpeg(binary: str) -> FFmpegReport:
    """`inspect_ffmpeg(binary)`, raising UnfitFFmpeg naming every missing part, e.g.

    ``FFmpeg /usr/bin/ffmpeg (version 4.2.7) lacks filter(s) setparams, xfade; set
    FFMPEG_BINARY to a full build, or leave it unset to use the bundled one``
    """
    report = inspect_ffmpeg(binary)
    if not report.ok:
        raise UnfitFFmpeg(report.problem)
    return report
