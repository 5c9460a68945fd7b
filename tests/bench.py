"""`make bench`: the command line against two baselines, on a deterministic 6-scene 1080p project.

The pipeline runs as a user runs it: `python -m pipeline` with its own defaults (how many scene
builds at once, x264 threads) unless `--jobs`/`--threads`/`--lookahead` are given. Each figure is
the median of `--rounds` runs, interleaved with its baselines so load on the machine falls on all.
Baselines, run in the same command: (1) the encode floor — libx264 alone encoding the very frames
the pipeline encodes (same size, crf, preset), written raw by the scene graphs beforehand; (2) a
monolithic single FFmpeg command rendering the same slideshow the way people usually hand-write
it (`-loop 1` stills cover-scaled on every frame, zoompan on the looped input, xfades, amix).
Peak RSS is the largest sum of the resident sizes of this process's descendants (the command
line's Python process and every FFmpeg it starts), polled from /proc every 50 ms; the largest of
the rounds.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.encoder import video_codec_args
from pipeline.ffmpeg import Runner, child_env, find_ffmpeg
from pipeline.fixtures import (
    ImageFixture,
    MusicFixture,
    VoiceFixture,
    bench_scenes,
    make_bench_project,
    make_image,
    make_music,
    make_tone,
)
from pipeline.graph import Filter, Graph, Stream
from pipeline.motion import ZOOM
from pipeline.options import RenderOptions
from pipeline.plan import Plan, make_plan
from pipeline.probe import probe
from pipeline.project import ProjectDir
from pipeline.scene import scene_source_args
from pipeline.stages import prepare_stills
from tasks.settings import Settings
from tests import bench_sound

ROOT = Path(".bench")


_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree_rss_kb(root: int) -> int:
    """The resident size of every descendant of `root`, from one pass over /proc (each
    process's stat read once: its parent and its resident pages)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * _PAGE_KB
    total, pending = 0, list(children.get(root, ()))
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending += children.get(pid, ())
    return total


class PeakRSS:
    """Polls the resident size of all descendants of this process; keeps the largest sum.

    One pass over /proc per poll, whatever the tree: a pass per process found (as this did
    once) cost the command line, with its Python parent and two or three FFmpeg at a time,
    some 40% of a core at this rate against some 20% for the floor's single FFmpeg, and
    showed up in its ratio."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.05):
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(me))

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    name: str
    preset: str
    wall: float
    peak_mb: float
    frames: int
    cpu: float  # seconds of CPU, user and system, of every process it started
    walls: tuple[float, ...] = ()  # each round's, in order


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every descendant waited for
    return usage.ru_utime + usage.ru_stime


def measure(name: str, preset: str, frames: int, action: Callable[[], object]) -> Result:
    cpu = _children_cpu()
    with PeakRSS() as rss:
        started = time.monotonic()
        action()
        wall = time.monotonic() - started
    return Result(name, preset, wall, rss.peak_kb / 1024, frames, _children_cpu() - cpu, (wall,))


def _ffmpeg(ffmpeg: str, args: list[str]) -> None:
    # In the environment the pipeline gives its FFmpeg (huge pages for malloc): the baselines'
    # encodes are timed as ours are, so a ratio measures the pipeline, not that setting.
    subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args],
        check=True,
        env=child_env(),
    )


def command_line(
    project: ProjectDir, output: str, options: RenderOptions, extra: list[str]
) -> None:
    """`python -m pipeline` on the project, as a user types it: the options, then `extra`."""
    subprocess.run(
        [
            *(sys.executable, "-m", "pipeline", str(project.root), "-o", output),
            *("--preset", options.preset, "--resolution", options.resolution),
            *extra,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def median_result(runs: list[Result]) -> Result:
    """The median wall and CPU of the rounds, with the largest peak RSS any of them reached."""
    return dataclasses.replace(
        runs[0],
        wall=statistics.median(r.wall for r in runs),
        cpu=statistics.median(r.cpu for r in runs),
        peak_mb=max(r.peak_mb for r in runs),
        walls=tuple(r.wall for r in runs),
    )


def prepare_raw(ffmpeg: str, project: ProjectDir, plan: Plan, raw: Path) -> None:
    """The frames the pipeline hands libx264, as raw yuv420p: the encode floor encodes these.

    They come from the scene graphs themselves, not from decoding the rendered MP4: frames that
    already went through libx264 once are measurably cheaper to encode again (about a quarter
    less x264 CPU here), which would make the floor too low.
    """
    with open(raw, "wb") as sink:
        for scene in plan.scenes:
            stills = prepare_stills(project, plan, scene.index, Runner(ffmpeg))
            subprocess.run(
                [
                    *(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"),
                    *scene_source_args(plan, scene, stills, work=project.work),
                    *("-frames:v", str(scene.frames), "-f", "rawvideo", "-pix_fmt", "yuv420p"),
                    "pipe:1",
                ],
                stdout=sink,
                check=True,
            )


def encode_floor(ffmpeg: str, plan: Plan, raw: Path, out: Path) -> None:
    """libx264 alone, with the plan's own encoder (preset, crf, threads, lookahead)."""
    _ffmpeg(
        ffmpeg,
        [
            *("-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{plan.width}x{plan.height}"),
            *("-framerate", str(plan.fps), "-i", str(raw)),
            *video_codec_args(plan.encoder),
            str(out),
        ],
    )


def monolithic_args(project: ProjectDir, plan: Plan, out: Path) -> list[str]:
    """One hand-written-style command: a `-loop 1` input per shot, everything in one graph.

    It encodes with the plan's preset, crf and lookahead, so speeds compare like for like.
    """
    w, h, fps = plan.width, plan.height, plan.fps
    inputs: list[str] = []
    graph = Graph()
    scenes: list[Stream] = []
    n = 0
    for scene in plan.scenes:
        shots: list[Stream] = []
        for shot in scene.shots:
            length = shot.frames + shot.overlap
            inputs += ["-loop", "1", "-framerate", str(fps), "-t", f"{length / fps:.4f}"]
            inputs += ["-i", str(project.root / scene.visual(shot).path)]
            # d=1 on a looped input: zoompan starts afresh on every input frame, so the zoom
            # must be a function of the input frame number `in` (an accumulating
            # `zoom+0.0008` never moves).
            travel = f"{ZOOM}*in/{max(length - 1, 1)}"
            zoom = f"1+{travel}" if n % 2 == 0 else f"{1 + ZOOM}-{travel}"
            drawn = (
                Filter.of("scale", w, h, force_original_aspect_ratio="increase"),
                Filter.of("crop", w, h),
                Filter.of(
                    "zoompan",
                    z=zoom,
                    x="iw/2-(iw/zoom/2)",
                    y="ih/2-(ih/zoom/2)",
                    d=1,
                    s=f"{w}x{h}",
                    fps=fps,
                ),
                Filter.of("format", "yuv420p"),
                Filter.of("setsar", 1),
            )
            shots.append(graph.chain(graph.input(n, "v"), drawn))
            n += 1
        current = shots[0]
        elapsed = 0
        for i, stream in enumerate(shots[1:], start=1):
            elapsed += scene.shots[i - 1].frames
            fade = Filter.of(
                "xfade", transition="fade", duration=plan.xfade_frames / fps, offset=elapsed / fps
            )
            current = graph.apply(fade, current, stream)
        scenes.append(current)
    graph.output(graph.apply(Filter.of("concat", n=len(scenes), v=1, a=0), *scenes))
    voices: list[Stream] = []
    for scene in plan.scenes:
        if scene.voiceover is None:
            continue
        inputs += ["-i", str(project.root / scene.voiceover)]
        delay = round(scene.start_frame / fps * 1000)
        voices.append(graph.apply(Filter.of("adelay", delay, all=1), graph.input(n, "a")))
        n += 1
    mixed = graph.apply(Filter.of("amix", inputs=len(voices), normalize=0), *voices)
    graph.output(
        graph.chain(mixed, (Filter.of("apad"), Filter.of("atrim", end=plan.duration_seconds)))
    )
    compiled = graph.compile()
    video, audio = compiled.maps
    encoder = plan.encoder
    return [
        *inputs,
        *("-filter_complex", compiled.text, "-map", video, "-map", audio),
        *("-c:v", "libx264", "-preset", encoder.preset, "-crf", str(encoder.crf)),
        *("-pix_fmt", "yuv420p"),
        *(("-rc-lookahead", str(encoder.lookahead)) if encoder.lookahead else ()),
        *("-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-movflags", "+faststart", str(out)),
    ]


# --- the render cache: what a change costs against a full render, through the API ---------

CACHE_PROJECT = "bench"


@dataclass
class CacheCase:
    name: str
    wall: float  # POST to the job's own finish time
    encoded: int  # scene clips the job encoded
    scenes: int
    encoding: float  # seconds its SCENE_BUILD stages that encoded took, summed
    target: str
    met: Callable[[CacheCase, float], bool]


def _post_to_done(api: Any, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """POST a render and wait for it; seconds from the POST to the job's finish time."""
    posted = time.time()
    response = api.http.post(f"/v1/projects/{CACHE_PROJECT}/render", json=body)
    assert response.status_code == 202, response.text
    job = api.wait(response.json()["jobId"], timeout=3600, poll=0.02)
    assert job["status"] == "SUCCEEDED", job
    finished = datetime.fromisoformat(job["finishedAt"]).timestamp()
    return finished - posted, job


def _upload(api: Any, subdir: str, *files: Path) -> None:
    with ExitStack() as stack:
        parts = [("files", (f.name, stack.enter_context(f.open("rb")))) for f in files]
        response = api.http.post(
            f"/v1/projects/{CACHE_PROJECT}/assets", files=parts, data={"subdir": subdir}
        )
    assert response.status_code == 201, response.text


def cache_bench(preset: str, resolution: str) -> list[CacheCase]:
    """The bench fixture through the API and a worker (one process per core, the service's
    defaults), first with a cold cache (the full render every ratio is against), then after
    each change a user makes while iterating on a video."""
    from tests.e2e import Api, running_stack  # the stack is only needed here

    root = Path(tempfile.mkdtemp(prefix="render-bench-cache-"))
    options = {"preset": preset, "resolution": resolution}
    ffmpeg = find_ffmpeg()
    cases: list[CacheCase] = []
    try:
        with running_stack(
            root / "storage",
            workers=1,
            DEFAULT_RESOLUTION=resolution,
            DEFAULT_FPS="30",
            DEFAULT_PRESET=preset,
            WORKER_CONCURRENCY=str(os.cpu_count() or 1),
            PROGRESS_INTERVAL=str(Settings.model_fields["progress_interval"].default),
        ) as stack:
            api = Api(stack.base_url)
            api.upload_project(CACHE_PROJECT, bench_scenes(), root / "staging")
            made = root / "made"

            def run(
                name: str, target: str, met: Callable[[CacheCase, float], bool], **extra: Any
            ) -> CacheCase:
                wall, job = _post_to_done(api, {"renderOptions": {**options, **extra}})
                encoding = sum(
                    datetime.fromisoformat(s["finishedAt"]).timestamp()
                    - datetime.fromisoformat(s["startedAt"]).timestamp()
                    for s in job["stages"]
                    if s["clip"] == "encoded"
                )
                # Scenes, not stage rows: a chunked scene's chunks are rows of their own.
                encoded = sum(scene["clip"] == "encoded" for scene in job["scenes"])
                counts = encoded, len(job["scenes"])
                return CacheCase(name, wall, *counts, encoding, target, met)

            cases.append(
                run("full render (cold cache)", "baseline", lambda c, full: c.encoded == c.scenes)
            )
            # Three times: the median (the first may find the images' sizes unknown to the
            # worker process that validates it).
            again = [run("identical resubmission", "< 1 s", lambda c, f: c.wall < 1.0)]
            again += [run("identical resubmission", "< 1 s", lambda c, f: c.wall < 1.0)]
            again += [run("identical resubmission", "< 1 s", lambda c, f: c.wall < 1.0)]
            median = sorted(again, key=lambda c: c.wall)[1]
            cases.append(dataclasses.replace(median, name="identical resubmission (median/3)"))
            # One image replaced (same name, other picture): in a scene of typical length,
            # then in the longest one (12 of 40.5 s: its encode alone is a third of the render).
            for scene, name, size in ((1, "b1a.jpg", (1920, 1080)), (2, "b2a.jpg", (4000, 3000))):
                image = made / name
                make_image(image, ImageFixture(name, *size, "smptehdbars"), ffmpeg)
                _upload(api, "images", image)
                length = bench_scenes()[scene].voiceover.seconds  # type: ignore[union-attr]
                cases.append(
                    run(
                        f"image replaced, scene {scene} ({length:g} s)",
                        "≤ 0.25×" if scene == 1 else "1 encoded",
                        (lambda c, full: c.wall <= 0.25 * full)
                        if scene == 1
                        else (lambda c, full: c.encoded == 1),
                    )
                )
            # A seventh scene inserted in the middle.
            spec = api.http.get(f"/v1/projects/{CACHE_PROJECT}").json()["spec"]
            new_image, new_voice = made / "inserted.jpg", made / "inserted.wav"
            make_image(new_image, ImageFixture(new_image.name, 1600, 1200, "testsrc2"), ffmpeg)
            make_tone(new_voice, VoiceFixture(new_voice.name, 4.0, 500), ffmpeg)
            _upload(api, "images", new_image)
            _upload(api, "voiceovers", new_voice)
            spec["scenes"].insert(
                3, {"id": "inserted", "images": [new_image.name], "voiceover": new_voice.name}
            )
            response = api.http.put(f"/v1/projects/{CACHE_PROJECT}/scenes", json=spec)
            assert response.status_code == 200, response.text
            cases.append(
                run("scene inserted (4 s) mid-way", "1 encoded", lambda c, f: c.encoded == 1)
            )
            # A music bed under the voice: the mix changes, no picture does.
            bed = made / "bed.mp3"
            make_music(bed, MusicFixture(bed.name, 30.0), ffmpeg)
            _upload(api, "music", bed)
            cases.append(
                run(
                    "music bed changed",
                    "0 encoded, ≤ 0.1×",
                    lambda c, full: c.encoded == 0 and c.wall <= 0.1 * full,
                    music=bed.name,
                )
            )
            cases.append(
                run(
                    "preview, whole video",
                    "≤ 0.15×",
                    lambda c, full: c.wall <= 0.15 * full,
                    preview=True,
                )
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return cases


def _print_cache_table(cases: list[CacheCase], preset: str, resolution: str) -> None:
    full = cases[0].wall
    print(
        f"\nrender cache: bench fixture through the API, {resolution} preset {preset}, "
        f"{os.cpu_count()} cores; ratios against the full render above them, same run\n"
    )
    header = (
        f"{'case':<34} {'wall s':>7} {'/ full':>7} {'encoded':>8} {'encoding s':>10}  "
        f"{'target':<18} met"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        encoded = f"{case.encoded}/{case.scenes}"
        print(
            f"{case.name:<34} {case.wall:7.2f} {case.wall / full:7.3f} {encoded:>8} "
            f"{case.encoding:10.2f}  {case.target:<18} {'yes' if case.met(case, full) else 'NO'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--presets", default="veryfast,medium")
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each, interleaved; the median is shown"
    )
    parser.add_argument(
        "--jobs", type=int, default=0, help="the command line's --jobs (0: its default)"
    )
    parser.add_argument("--threads", type=int, default=0, help="x264 threads (0: the default)")
    parser.add_argument(
        "--lookahead", type=int, default=0, help="x264 rc-lookahead, pipeline and floor alike"
    )
    parser.add_argument("--skip-monolithic", action="store_true")
    parser.add_argument(
        "--cache-preset", default="medium", help="preset of the render-cache section's renders"
    )
    parser.add_argument("--skip-cache", action="store_true", help="no render-cache section")
    parser.add_argument("--cache-only", action="store_true", help="only the render-cache section")
    bench_sound.add_arguments(parser)
    args = parser.parse_args()
    if args.sound_only:
        bench_sound.main(args)
        return
    if not args.cache_only:
        pipeline_bench(args)
    if not args.skip_cache:
        cases = cache_bench(args.cache_preset, args.resolution)
        _print_cache_table(cases, args.cache_preset, args.resolution)
    if not args.skip_sound and not args.cache_only:
        bench_sound.main(args)


def pipeline_bench(args: argparse.Namespace) -> None:
    ffmpeg = find_ffmpeg()
    ROOT.mkdir(exist_ok=True)
    project_root = ROOT / "project"
    if not (project_root / "input" / "scenes.json").exists():
        make_bench_project(project_root, ffmpeg)
    project = ProjectDir(project_root.resolve())
    results: list[Result] = []
    raw = ROOT / "frames.yuv"
    raw.unlink(missing_ok=True)
    extra = [
        *(("--jobs", str(args.jobs)) if args.jobs else ()),
        *(("--threads", str(args.threads)) if args.threads else ()),
        *(("--lookahead", str(args.lookahead)) if args.lookahead else ()),
    ]
    cli_name = f"command line {' '.join(extra) or '(defaults)'}"
    for preset in args.presets.split(","):
        options = RenderOptions(preset=preset, resolution=args.resolution)
        plan = make_plan(project, options, ffmpeg, threads=args.threads, lookahead=args.lookahead)
        frames = plan.total_frames
        output = f"bench-{preset}.mp4"
        if not raw.exists():  # the same frames at every preset
            prepare_raw(ffmpeg, project, plan, raw)
        floor_out = ROOT / f"floor-{preset}.mp4"
        mono_out = ROOT / f"monolithic-{preset}.mp4"
        mono = monolithic_args(project, plan, mono_out)
        runs: dict[str, list[Result]] = {}
        for _ in range(args.rounds):
            cli = partial(command_line, project, output, options, extra)
            runs.setdefault(cli_name, []).append(measure(cli_name, preset, frames, cli))
            info = probe(project.output / output)
            assert info.video is not None and info.video.frames == frames, info
            floor = partial(encode_floor, ffmpeg, plan, raw, floor_out)
            runs.setdefault("encode floor", []).append(
                measure("encode floor", preset, frames, floor)
            )
            if not args.skip_monolithic:
                command = partial(_ffmpeg, ffmpeg, mono)
                runs.setdefault("monolithic command", []).append(
                    measure("monolithic command", preset, frames, command)
                )
        results += [median_result(found) for found in runs.values()]
    raw.unlink(missing_ok=True)
    _print_table(results, plan, args)
    for folder in ("scenes", "stills"):
        shutil.rmtree(project.work / folder, ignore_errors=True)


def _print_table(results: list[Result], plan: Plan, args: argparse.Namespace) -> None:
    print(
        f"\nproject: {len(plan.scenes)} scenes, {plan.total_frames} frames, "
        f"{plan.duration_seconds:.1f}s at {plan.width}x{plan.height} {plan.fps} fps, "
        f"crf {plan.encoder.crf}, x264 threads {args.threads or 'auto'}, "
        f"rc-lookahead {args.lookahead or 'preset'}, {os.cpu_count()} cores; "
        f"median of {args.rounds} interleaved rounds, peak RSS the largest\n"
    )
    header = (
        f"{'preset':<9} {'run':<30} {'wall s':>7} {'x real':>7} {'fps':>6} "
        f"{'peak RSS MB':>12} {'/ floor':>8} {'/ mono':>7} {'CPU / floor':>11}  each round / floor"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        floor = next(x for x in results if x.preset == r.preset and x.name == "encode floor")
        mono = next(
            (x for x in results if x.preset == r.preset and x.name.startswith("mono")), None
        )
        ratio_mono = f"{r.wall / mono.wall:7.2f}" if mono else "      -"
        print(
            f"{r.preset:<9} {r.name:<30} {r.wall:7.1f} {plan.duration_seconds / r.wall:7.2f} "
            f"{r.frames / r.wall:6.1f} {r.peak_mb:12.0f} {r.wall / floor.wall:8.2f} {ratio_mono} "
            f"{r.cpu / floor.cpu:11.2f}  "
            + " ".join(f"{a / b:.3f}" for a, b in zip(r.walls, floor.walls, strict=True))
        )
    print(
        "\ntargets: the command line's defaults ≤ 1.05× the encode floor at medium, faster than "
        "monolithic; its peak RSS is the price (see `--jobs`, `--lookahead`)"
    )


if __name__ == "__main__":
    main()
