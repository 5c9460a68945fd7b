"""Captions from the narration: cue layout (pure), and the SRT, WebVTT and ASS texts.

A scene's words get their times from the TTS engine's word events when it made the speech,
else they are spread over the sound detected in its voiceover (or over the whole scene when it
has no voice), each by its length. Words are then grouped into cues of at most two lines of
about 42 characters; a cue ends at a sentence's end or a long pause, and never outlives its
scene. Cue times are frames from the scene's first frame, so the plan holds them exactly and a
scene's burnt-in captions belong to that scene alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline import fonts
from pipeline.options import CaptionPosition as Position
from pipeline.options import CaptionSize as Size
from pipeline.options import CaptionStyle as Style
from pipeline.tts import Word

MAX_LINE = 42
_TOKEN = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?…:;][\"”’)\]]*$")
_PAUSE = 0.8  # seconds of silence between two words that end a cue
_HOLD = 0.3  # a cue stays up this much after its last word, room permitting
_SHORTEST = 0.8  # and at least this long, room permitting
# ISO 639-1 → 639-2/B, which MP4's language field takes; others pass through as given.
_ISO639_2 = {
    "ar": "ara", "cs": "cze", "da": "dan", "de": "ger", "el": "gre", "en": "eng", "es": "spa",
    "fa": "per", "fi": "fin", "fr": "fre", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "ko": "kor", "nl": "dut", "no": "nor", "pl": "pol", "pt": "por",
    "ro": "rum", "ru": "rus", "sv": "swe", "th": "tha", "tr": "tur", "uk": "ukr", "vi": "vie",
    "zh": "chi",
}  # fmt: skip


@dataclass(frozen=True)
class Cue:
    start: int  # first frame shown, from the scene's first frame
    end: int  # first frame no longer shown (≤ the scene's frames)
    lines: tuple[str, ...]
    # The frame each word of `lines` is first spoken on (one a whitespace word, in order,
    # from `start` to before `end`): what the `word` and `karaoke` styles draw by. Empty in a
    # plan written before it was kept: those styles then spread the cue over its words.
    words: tuple[int, ...] = ()


def mp4_language(language: str) -> str:
    """'en' or 'en-US' → 'eng' (MP4 stores ISO 639-2); an unknown code → 'und'."""
    base = language.split("-", 1)[0].lower()
    if len(base) == 3:
        return base
    return _ISO639_2.get(base, "und")


def spread_words(text: str, spans: Sequence[tuple[float, float]]) -> tuple[Word, ...]:
    """The text's words laid end to end over `spans` (seconds), each as long as its letters."""
    tokens = list(_TOKEN.finditer(text))
    spans = [(a, b) for a, b in spans if b > a]
    if not tokens or not spans:
        return ()
    total = sum(b - a for a, b in spans)
    weights = [len(t.group()) + 1 for t in tokens]
    per_weight = total / sum(weights)
    words, at = [], 0.0  # seconds of sound used so far

    def clock(used: float) -> float:
        for a, b in spans:
            if used <= b - a + 1e-9:
                return a + used
            used -= b - a
        return spans[-1][1]

    for token, weight in zip(tokens, weights, strict=True):
        start, at = clock(at), at + weight * per_weight
        words.append(Word(start, clock(at), token.start(), len(token.group())))
    return tuple(words)


@dataclass
class _Token:
    text: str
    start: float
    end: float


def _timed_tokens(text: str, words: Sequence[Word], seconds: float) -> list[_Token]:
    """Each whitespace word of `text` with the times of the spoken words inside it (an engine
    may say "$9.99" as several words); words it said nothing for take their neighbours'."""
    tokens = [_Token(m.group(), math.nan, math.nan) for m in _TOKEN.finditer(text)]
    bounds = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    for word in words:
        for token, (a, b) in zip(tokens, bounds, strict=True):
            if word.first < b and word.first + max(word.length, 1) > a:
                token.start = (
                    word.start if math.isnan(token.start) else min(token.start, word.start)
                )
                token.end = word.end if math.isnan(token.end) else max(token.end, word.end)
    previous_end = 0.0
    for n, token in enumerate(tokens):
        if math.isnan(token.start):
            later = next((t.start for t in tokens[n + 1 :] if not math.isnan(t.start)), seconds)
            token.start, token.end = previous_end, max(previous_end, later)
        previous_end = token.end
    return tokens


def _lines(words: Sequence[str]) -> tuple[str, ...] | None:
    """The words as one line, or two balanced lines, each within MAX_LINE; None if they don't
    fit (a single over-long word is a line of its own)."""
    one = " ".join(words)
    if len(one) <= MAX_LINE or len(words) == 1:
        return (one,)
    best: tuple[str, ...] | None = None
    for cut in range(1, len(words)):
        top, bottom = " ".join(words[:cut]), " ".join(words[cut:])
        fits = len(top) <= MAX_LINE and len(bottom) <= MAX_LINE
        if fits and (best is None or max(len(top), len(bottom)) < max(map(len, best))):
            best = (top, bottom)
    return best


def scene_cues(text: str, words: Sequence[Word], frames: int, fps: int) -> tuple[Cue, ...]:
    """Cues for one scene: `words` timed in seconds from its start, `frames` long."""
    seconds = frames / fps
    tokens = _timed_tokens(text, words, seconds)
    groups: list[list[_Token]] = []
    current: list[_Token] = []
    for n, token in enumerate(tokens):
        if current and _lines([t.text for t in (*current, token)]) is None:
            groups.append(current)
            current = []
        current.append(token)
        after = tokens[n + 1] if n + 1 < len(tokens) else None
        if after is not None and (
            _SENTENCE_END.search(token.text) or after.start - token.end > _PAUSE
        ):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    cues: list[Cue] = []
    for n, group in enumerate(groups):
        start = min(max(group[0].start, 0.0), seconds)
        nxt = groups[n + 1][0].start if n + 1 < len(groups) else seconds
        end = min(max(group[-1].end + _HOLD, start + _SHORTEST), max(nxt, group[-1].end), seconds)
        first = max(round(start * fps), cues[-1].end if cues else 0)
        last = min(max(round(end * fps), first + 1), frames)
        if last <= first:
            continue
        lines = _lines([t.text for t in group]) or (" ".join(t.text for t in group),)
        cues.append(Cue(first, last, lines, _word_frames(group, first, last, fps)))
    return tuple(cues)


def _word_frames(group: Sequence[_Token], first: int, last: int, fps: int) -> tuple[int, ...]:
    """The frame each word of a cue starts on: its own time, kept inside the cue and never
    before the word before it."""
    frames: list[int] = []
    for token in group:
        frame = min(max(round(token.start * fps), first), last - 1)
        frames.append(max(frame, frames[-1]) if frames else first)
    return tuple(frames)


# --- the files -------------------------------------------------------------------------------


def _clock(frame: int, fps: int, separator: str) -> str:
    ms = frame * 1000 // fps
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


TimedCue = tuple[int, int, tuple[str, ...]]  # first frame, end frame (of the video), lines


# A zero-width space: invisible, and it breaks a markup sequence without changing what is read.
_ZWSP = "\u200b"


def _one_line(line: str) -> str:
    """The line with every run of whitespace (a line break, U+2028...) made one space: a line
    break would start another line of the cue, and a blank line would end it."""
    return " ".join(line.split())


def _srt_text(line: str) -> str:
    """A caption line as plain SRT text. SRT has no escapes, and players read it as markup:
    `<b>` as HTML-like tags, `{\\an8}` and `\\N` as ASS (FFmpeg turns SRT into ASS for the
    MP4's subtitle track), `&lt;` as an entity in some; FFmpeg even takes a line holding
    `00:00:00,000 --> 99:00:00,000` anywhere for a new cue's times. A zero-width space after
    `<` and `&` and before the `>` of `-->` defuses each; braces and backslashes go as in the
    burnt-in captions."""
    text = _ass_text(_one_line(line)).replace("<", "<" + _ZWSP).replace("&", "&" + _ZWSP)
    return text.replace("-->", "--" + _ZWSP + ">")


def _vtt_text(line: str) -> str:
    """A caption line as WebVTT cue text: `&`, `<` and `>` as character references (WebVTT
    decodes them), so no tag is read and no line holds `-->` (which would start a cue)."""
    return _one_line(line).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _texts(cues: Sequence[TimedCue], escape: Callable[[str], str]) -> list[TimedCue]:
    """The cues with their lines escaped, without empty lines, and without cues left empty."""
    escaped = [
        (a, b, tuple(text for line in lines if (text := escape(line)))) for a, b, lines in cues
    ]
    return [cue for cue in escaped if cue[2]]


def srt(cues: Sequence[TimedCue], fps: int) -> str:
    blocks = [
        f"{n}\n{_clock(a, fps, ',')} --> {_clock(b, fps, ',')}\n" + "\n".join(lines) + "\n"
        for n, (a, b, lines) in enumerate(_texts(cues, _srt_text), start=1)
    ]
    return "\n".join(blocks)


def vtt(cues: Sequence[TimedCue], fps: int) -> str:
    blocks = [
        f"{_clock(a, fps, '.')} --> {_clock(b, fps, '.')}\n" + "\n".join(lines) + "\n"
        for a, b, lines in _texts(cues, _vtt_text)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def ass_clock(frame: int, fps: int) -> str:
    # Centiseconds, rounded down: a frame's time is never before its cue's start, and the
    # frame before the end is never after it (for fps up to 100).
    cs = frame * 100 // fps
    hours, rest = divmod(cs, 360_000)
    minutes, rest = divmod(rest, 6000)
    secs, cs = divmod(rest, 100)
    return f"{hours}:{minutes:02d}:{secs:02d}.{cs:02d}"


def _ass_text(line: str) -> str:
    # Braces start override tags and a backslash an escape in ASS: keep them as plain text.
    return line.replace("\\", "\\\u200b").replace("{", "(").replace("}", ")")


FONT = fonts.DEFAULT_FAMILY


# How a caption is laid out in the picture (renderOptions.captions: style, position, size).
# Text height as a share of the frame's height (of a 16:9 frame's, for a wider one).
SIZES: dict[str, float] = {"small": 0.04, "medium": 0.052, "large": 0.068}
# ASS alignment (numpad layout): bottom centre, top centre.
ALIGNMENTS: dict[str, int] = {"bottom": 2, "top": 8}
# ASS colours are &HAABBGGRR. Karaoke: a word is drawn in the secondary colour (white) until
# it is spoken, then in the primary (yellow), so the spoken word and those before it light up.
WHITE, YELLOW, RED = "&H00FFFFFF", "&H0000FFFF", "&H000000FF"


def ass(
    cues: Sequence[Cue],
    width: int,
    height: int,
    fps: int,
    *,
    style: Style = "block",
    position: Position = "bottom",
    size: Size = "medium",
) -> str:
    """One scene's cues for libass: white text with a dark outline, centred at the bottom (or
    top) inside the title-safe area, sized to the frame (`size`: about 4, 5 or 7% of its
    height). `block` shows each cue's lines; `word` one word at a time, each from when it is
    spoken; `karaoke` the cue's lines with each word lit (ASS `\\k`) from when it is spoken."""
    font_size = max(8, round(min(height, width * 9 / 16) * SIZES[size]))
    outline = max(1, round(font_size * 0.08))
    margin_v = round(height * 0.06)
    margin_h = round(width * 0.08)
    primary, secondary = (YELLOW, WHITE) if style == "karaoke" else (WHITE, RED)
    style_line = (
        f"Style: Caption,{FONT},{font_size},{primary},{secondary},&H00101010,&H80000000,"
        f"0,0,0,0,100,100,0,0,1,{outline},{max(0, outline // 2)},{ALIGNMENTS[position]},"
        f"{margin_h},{margin_h},{margin_v},1"
    )
    events = [
        f"Dialogue: 0,{ass_clock(start, fps)},{ass_clock(end, fps)},Caption,,0,0,0,,{text}"
        for start, end, text in _ass_events(cues, fps, style)
    ]
    return ass_document(width, height, [style_line], events)


def cue_word_frames(cue: Cue) -> tuple[int, ...]:
    """The frame each word of the cue starts on: its own, or (a plan without them) the cue's
    frames shared out evenly among its words."""
    count = sum(len(line.split()) for line in cue.lines)
    if len(cue.words) == count:
        return cue.words
    return tuple(cue.start + (cue.end - cue.start) * n // max(count, 1) for n in range(count))


def _ass_events(cues: Sequence[Cue], fps: int, style: Style) -> list[tuple[int, int, str]]:
    """(first frame, end frame, ASS text) of each event the style draws."""
    events: list[tuple[int, int, str]] = []
    for cue in cues:
        if style == "block":
            events.append((cue.start, cue.end, "\\N".join(_ass_text(line) for line in cue.lines)))
            continue
        starts = cue_word_frames(cue)
        words = [word for line in cue.lines for word in line.split()]
        ends = (*starts[1:], cue.end)
        if style == "word":
            events += [
                (start, end, _ass_text(word))
                for start, end, word in zip(starts, ends, words, strict=True)
                if end > start
            ]
            continue
        events.append((cue.start, cue.end, _karaoke(cue, starts, ends, fps)))
    return events


def _karaoke(cue: Cue, starts: Sequence[int], ends: Sequence[int], fps: int) -> str:
    """The cue's lines with a `\\k` before each word: its centiseconds from when it is spoken
    to when the next word is (the last: to the cue's end), on the same clock as the event's
    times, so they add up to the event's length exactly."""

    def cs(frame: int) -> int:
        return frame * 100 // fps

    durations = iter(cs(end) - cs(start) for start, end in zip(starts, ends, strict=True))
    lead = cs(starts[0]) - cs(cue.start) if starts else 0
    lines = []
    for line in cue.lines:
        lines.append(" ".join(f"{{\\k{next(durations)}}}{_ass_text(w)}" for w in line.split()))
    text = "\\N".join(lines)
    return f"{{\\k{lead}}}{text}" if lead else text


def ass_document(width: int, height: int, styles: list[str], events: list[str]) -> str:
    """An ASS script for libass at the frame's own resolution: these styles, these events."""
    return "\n".join(
        [
            "[Script Info]",
            "ScriptType: v4.00+",
            f"PlayResX: {width}",
            f"PlayResY: {height}",
            "ScaledBorderAndShadow: yes",
            "WrapStyle: 2",
            "",
            "[V4+ Styles]",
            "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
            "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
            "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding",
            *styles,
            "",
            "[Events]",
            "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
            *events,
            "",
        ]
    )
