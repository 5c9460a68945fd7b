"""Untrusted media stays inert: every open of a user's file, in-process (PyAV) or by an FFmpeg
command, allows the file protocol only and names its demuxer; crafted files (an HLS playlist,
a concat script, a lying header) are refused with nothing they reference read; FFmpeg runs
under a memory cap."""

from __future__ import annotations

import socket
from pathlib import Path

import av
import pytest

from pipeline import audio, scene
from pipeline.errors import PipelineError
from pipeline.ffmpeg import Runner
from pipeline.plan import make_plan
from pipeline.probe import (
    AUDIO_DEMUXERS,
    UnsafeMedia,
    open_user_media,
    scan_audio,
    video_container,
)
from pipeline.project import ProjectDir
from tests import clips, untrusted
from tests import pipeline_fixtures as fx

ffmpeg_bin = fx.ffmpeg_bin


def test_the_observers_see_an_unguarded_read(tmp_path: Path) -> None:
    # The controls: what the tests below rely on does see a read when one happens.
    with untrusted.watched_fifo(tmp_path / "secret.wav") as secret, untrusted.loopback() as port:
        script = tmp_path / "script.mp4"
        script.write_bytes(untrusted.concat_script("secret.wav"))
        # Probed by its bytes (what FFmpeg does when not told the demuxer), the script is read
        # as one, and the file it names is opened.
        with pytest.raises(av.FFmpegError), av.open(str(script)) as container:
            for _ in container.demux():
                pass
        assert secret.opened.wait(10)
        with socket.create_connection(port.sock.getsockname()):
            pass
        assert port.connected()


@pytest.mark.parametrize("crafted", ["playlist", "script"])
def test_guarded_opens_refuse_crafted_files_and_read_nothing_they_name(
    tmp_path: Path, crafted: str
) -> None:
    with untrusted.watched_fifo(tmp_path / "secret.wav") as secret, untrusted.loopback() as port:
        path = tmp_path / f"{crafted}.mp4"
        made = {
            "playlist": untrusted.hls_playlist(secret.path, port.url),
            "script": untrusted.concat_script("secret.wav"),
        }
        path.write_bytes(made[crafted])
        with pytest.raises(UnsafeMedia, match="is not an MP4, MOV, MKV or WebM"):
            video_container(path, path.name)
        with pytest.raises(av.FFmpegError):
            open_user_media(path, "mov").close()
        with pytest.raises((av.FFmpegError, ValueError)):
            scan_audio(path)  # a voiceover's or a bed's: the audio demuxers only
        with pytest.raises(av.FFmpegError):
            open_user_media(path, formats=AUDIO_DEMUXERS).close()
        assert not port.connected()
    assert not secret.opened.is_set()


def test_a_lying_header_is_refused_before_any_demuxer(tmp_path: Path, ffmpeg_bin: str) -> None:
    real = clips.counting(ffmpeg_bin, tmp_path / "r.mp4", seconds=1)
    liar = tmp_path / "liar.mp4"
    liar.write_bytes(untrusted.lying_mp4(real.read_bytes()))
    with pytest.raises(UnsafeMedia, match="past the end of the file"):
        video_container(liar, liar.name)
    mkv = clips.counting(ffmpeg_bin, tmp_path / "r.mkv", seconds=1)
    data = bytearray(mkv.read_bytes())
    segment = data.find(b"\x18\x53\x80\x67")
    data[segment + 4 : segment + 12] = b"\x01\x00\x00\x00\x7f\xff\xff\xff"  # 8-byte size
    lying_mkv = tmp_path / "liar.mkv"
    lying_mkv.write_bytes(bytes(data))
    with pytest.raises(UnsafeMedia, match="declares a Matroska segment of"):
        video_container(lying_mkv, lying_mkv.name)
    assert video_container(mkv, mkv.name) == "matroska"
    assert video_container(real, real.name) == "mov"


def _project(tmp_path: Path, ffmpeg: str) -> tuple[Path, ProjectDir]:
    source = clips.counting(ffmpeg, tmp_path / "c.mp4", seconds=2, sound=True)
    image = tmp_path / "a.png"
    clips.run(ffmpeg, "-f", "lavfi", "-i", "testsrc2=s=64x36", "-frames:v", "1", str(image))
    tone = tmp_path / "v.wav"
    clips.run(ffmpeg, "-f", "lavfi", "-i", "sine=d=1", str(tone))
    project = clips.project_with(
        tmp_path / "p",
        [{"images": ["a.png", {"video": "c.mp4", "audio": {"volume": -6}}], "voiceover": "v.wav"}],
        {
            "videos/c.mp4": source,
            "images/a.png": image,
            "voiceovers/v.wav": tone,
            "music/bed.wav": tone,
        },
    )
    return source, project


def test_every_ffmpeg_input_of_user_media_is_guarded(tmp_path: Path, ffmpeg_bin: str) -> None:
    _, project = _project(tmp_path, ffmpeg_bin)
    plan = make_plan(project, clips.small_options(music="bed.wav"), ffmpeg_bin)
    root = project.root
    s = plan.scenes[0]
    commands = [
        scene.stills_args(root, plan, s, [tmp_path / "s.yuv"]),
        scene.scene_args(plan, s, [tmp_path / "s.yuv"], tmp_path / "o.mp4", root=root),
        audio.master_track_args(root, plan, tmp_path / "a.wav"),
    ]
    checked = 0
    for args in commands:
        for at, arg in enumerate(args):
            if arg != "-i" or not args[at + 1].startswith(str(root / "input")):
                continue
            options = args[max(0, at - 12) : at]
            assert "-protocol_whitelist" in options, args[at + 1]
            assert options[options.index("-protocol_whitelist") + 1] == "file,pipe"
            if "/videos/" in args[at + 1]:
                assert options[options.index("-f") + 1] == "mov"  # its demuxer, by its bytes
            elif "/images/" not in args[at + 1]:
                assert "-format_whitelist" in options  # voice, bed, clip sound: audio demuxers
            checked += 1
    assert checked >= 5  # the image, the clip (picture and sound), the voice, the bed


def test_a_clip_swapped_for_a_script_after_upload_reads_nothing(
    tmp_path: Path, ffmpeg_bin: str
) -> None:
    _, project = _project(tmp_path, ffmpeg_bin)
    plan = make_plan(project, clips.small_options(), ffmpeg_bin)
    clip = project.asset("videos", "c.mp4")
    with untrusted.watched_fifo(clip.parent / "secret.wav") as secret, untrusted.loopback() as port:
        clip.write_bytes(untrusted.concat_script("secret.wav"))
        # VALIDATE sniffs it again and refuses it, naming it.
        with pytest.raises(PipelineError, match=r"video 'c\.mp4' cannot be used: is not an MP4"):
            make_plan(project, clips.small_options(), ffmpeg_bin)
        # A build from a plan made before the swap reads it as an MP4 and nothing else.
        s = plan.scenes[0]
        still = tmp_path / "s.yuv"
        Runner(ffmpeg_bin).run(
            scene.stills_args(project.root, plan, s, [still]),
            expected_seconds=0,
        )
        args = scene.scene_args(plan, s, [still], tmp_path / "o.mp4", root=project.root)
        with pytest.raises(PipelineError):
            Runner(ffmpeg_bin).run(args, expected_seconds=1)
        assert not port.connected()
    assert not secret.opened.is_set()


def test_ffmpeg_runs_under_its_memory_cap(tmp_path: Path, ffmpeg_bin: str) -> None:
    # 1000 frames of 1024×1024 held by the loop filter: 1.5 GB (1.6 GB peak RSS uncapped). Under
    # a 1 GiB cap the source runs out of memory after about 340 frames, and FFmpeg takes that
    # for the end of its input and exits 0; the runner fails it all the same. (Under 512 MiB
    # FFmpeg fails before any of that, starting its threads: that tested the threads.)
    greedy = [
        *("-f", "lavfi", "-i", "testsrc2=s=1024x1024:r=25:d=40"),
        *("-vf", "loop=loop=1:size=1000", "-f", "null", "-"),
    ]
    with pytest.raises(PipelineError, match=r"ran out of memory \(its cap: 1024 MiB\)") as caught:
        Runner(ffmpeg_bin, max_memory_mb=1024).run(greedy, expected_seconds=40)
    assert "Cannot allocate memory" in caught.value.stderr_tail
    # The same command under a cap it fits in, and a small one under the first, run.
    Runner(ffmpeg_bin, max_memory_mb=4096).run(greedy, expected_seconds=40)
    small = ["-f", "lavfi", "-i", "color=s=64x64:d=1", "-f", "null", "-"]
    Runner(ffmpeg_bin, max_memory_mb=1024).run(small, expected_seconds=1)
