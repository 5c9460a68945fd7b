"""Finding FFmpeg and running it as a well-behaved child: progress, cancel, no orphans."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import queue
import resource
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from pipeline.errors import Cancelled, PipelineError

STDERR_TAIL_LINES = 20
# FFmpeg's words for ENOMEM. A demuxer that runs out of memory (under FFMPEG_MAX_MEMORY_MB, say)
# ends its input as if the file ended there, and FFmpeg exits 0 with a short output.
_OUT_OF_MEMORY = os.strerror(errno.ENOMEM)
# How often `should_cancel` is polled when FFmpeg prints nothing (decoding a huge image, say).
_POLL_SECONDS = 0.25
_PR_SET_PDEATHSIG = 1


def find_ffmpeg(explicit: str | None = None) -> str:
    """`explicit`, else `$FFMPEG_BINARY`, else the imageio-ffmpeg wheel's binary.

    An `ffmpeg` on PATH is used only when named (FFMPEG_BINARY=ffmpeg): a distribution's build
    (Debian 12 ships 5.1) has another x264 and other filters, so the same request would render
    other bytes on every machine, or fail.
    """
    for candidate in (explicit, os.environ.get("FFMPEG_BINARY")):
        if candidate:
            found = shutil.which(candidate)
            if found is None:
                raise FileNotFoundError(f"FFmpeg binary {candidate!r} not found or not executable")
            return found
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise FileNotFoundError("imageio-ffmpeg is not installed; set FFMPEG_BINARY") from exc
    try:
        bundled = str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        bundled = ""
    # With no binary of its own for this platform imageio-ffmpeg answers a bare "ffmpeg" (the
    # one on PATH): that would be the silent swap this function exists to prevent.
    if os.path.basename(bundled) == bundled:
        raise FileNotFoundError(
            "imageio-ffmpeg has no FFmpeg for this platform; set FFMPEG_BINARY "
            "(FFMPEG_BINARY=ffmpeg uses the one on PATH)"
        )
    return bundled


def _load_prctl() -> Callable[..., int] | None:
    # Loaded once in the parent: the child between fork and exec should do as little as possible.
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    return getattr(libc, "prctl", None)


_PRCTL = _load_prctl()

# glibc's malloc asked to back FFmpeg's large buffers with transparent huge pages (used where
# the kernel's THP mode is `madvise`, the usual default): each x264 run faults in some 120 MB
# of frame buffers, which in 4 KiB pages cost 0.25 s of system time a run here, and a render
# starts one per scene chunk. Other C libraries ignore the variable; so does a kernel with THP
# off. One already set by the user is kept as it is.
_HUGE_PAGES = "glibc.malloc.hugetlb=1"


def child_env(parent: dict[str, str] | None = None) -> dict[str, str]:
    """The environment FFmpeg runs with: this process's, with `_HUGE_PAGES` added."""
    env = dict(os.environ if parent is None else parent)
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        env["GLIBC_TUNABLES"] = f"{tunables}:{_HUGE_PAGES}" if tunables else _HUGE_PAGES
    return env


def _child_setup(parent_pid: int, nice: int = 0, max_memory_mb: int = 0) -> Callable[[], None]:
    def setup() -> None:
        # Its address space capped: a crafted input (a header promising a huge frame, a
        # decoder bug) makes FFmpeg fail instead of taking the host's memory.
        if max_memory_mb:
            limit = max_memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        # Below the service's own processes: on a host where x264 fills every core, the API
        # and the workers' bookkeeping (heartbeats, progress, cancels) still get the CPU.
        if nice:
            _lower(nice)
        # The kernel SIGKILLs the child when the *thread* that forked it ends; Runner.run waits
        # for the child on that thread, so this only fires if the whole worker dies.
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # parent died before prctl took effect
            os._exit(1)

    return setup


def _lower(nice: int) -> None:
    """Run `nice` steps below the caller. FFmpeg starts a session of its own, and where the
    kernel groups processes by session (autogroup, on by default on desktop and most server
    kernels) it shares the CPU between groups first: a process's niceness then only weighs
    against its own group's, so the group is lowered too."""
    lowered = os.nice(nice)
    # No autogroup: a container's /proc, another kernel.
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
        group.write(str(lowered))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


@dataclass
class Runner:
    """Everything a stage needs to run FFmpeg and report on it."""

    ffmpeg: str
    on_progress: Callable[[float], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    log: Callable[[str], None] | None = None
    # The stage (and scene) this runner works for, bound by the orchestrator: its errors say so.
    stage: str = ""
    scene: int | None = None
    # Added to FFmpeg's niceness (0..19): how far below its caller it runs (FFMPEG_NICE).
    nice: int = 0
    # Each process's address space, MiB (FFMPEG_MAX_MEMORY_MB); 0: no cap.
    max_memory_mb: int = 0

    def _log(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    def _failure(self, returncode: int, out_of_memory: bool) -> str:
        if not out_of_memory:
            return f"ffmpeg exited with status {returncode}"
        cap = f" (its cap: {self.max_memory_mb} MiB)" if self.max_memory_mb else ""
        return f"ffmpeg ran out of memory{cap}"

    def command(self, args: list[str]) -> list[str]:
        return [
            self.ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-y",
            "-progress",
            "pipe:1",
            "-nostats",
            *args,
        ]

    def run(
        self,
        args: list[str],
        *,
        expected_seconds: float,
        scene: int | None = None,
    ) -> None:
        """Run FFmpeg with `args`; report progress of the current stage as a fraction 0..1.

        Raises Cancelled when `should_cancel()` says so, PipelineError on a non-zero exit; any
        BaseException while waiting (KeyboardInterrupt, a Celery soft time limit) kills the
        child's process group first and is then re-raised.
        """
        stage = self.stage
        scene = scene if scene is not None else self.scene
        cmd = self.command(args)
        self._log(shlex.join(cmd))
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=child_env(),
            preexec_fn=_child_setup(os.getpid(), self.nice, self.max_memory_mb),
        )
        assert proc.stdout is not None and proc.stderr is not None
        self._log(f"{stage}: ffmpeg pid {proc.pid} started")
        stderr_lines: deque[str] = deque(maxlen=200)
        out_of_memory: list[str] = []

        def on_stderr(line: str) -> None:
            stderr_lines.append(line)
            if _OUT_OF_MEMORY in line:
                out_of_memory.append(line)

        progress_lines: queue.Queue[str | None] = queue.Queue()
        readers = [
            threading.Thread(
                target=_pump,
                args=(proc.stdout, progress_lines.put, lambda: progress_lines.put(None)),
                daemon=True,
            ),
            threading.Thread(target=_pump, args=(proc.stderr, on_stderr, None), daemon=True),
        ]
        for reader in readers:
            reader.start()
        expected_us = max(expected_seconds, 1e-6) * 1e6
        reported = 0.0
        try:
            stdout_open = True
            while stdout_open or proc.poll() is None:
                if self.should_cancel is not None and self.should_cancel():
                    _kill_group(proc)
                    proc.wait()
                    self._log(f"{stage}: cancelled, ffmpeg pid {proc.pid} killed")
                    raise Cancelled("cancelled", stage=stage, scene=scene)
                try:
                    line = progress_lines.get(timeout=_POLL_SECONDS)
                except queue.Empty:
                    continue
                if line is None:
                    stdout_open = False
                    continue
                fraction = _fraction(line, expected_us)
                if fraction is not None and fraction > reported:
                    reported = fraction
                    if self.on_progress is not None:
                        self.on_progress(reported)
            returncode = proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            for reader in readers:
                reader.join(timeout=5)
        elapsed = time.monotonic() - started
        tail = "\n".join(list(stderr_lines)[-STDERR_TAIL_LINES:])
        if returncode != 0 or out_of_memory:
            self._log(f"{stage}: ffmpeg exited with {returncode} after {elapsed:.2f}s\n{tail}")
            raise PipelineError(
                self._failure(returncode, bool(out_of_memory)),
                stage=stage,
                scene=scene,
                stderr_tail="\n".join([*out_of_memory[:1], tail]) if out_of_memory else tail,
            )
        self._log(f"{stage}: ffmpeg done in {elapsed:.2f}s")
        if reported < 1.0 and self.on_progress is not None:
            self.on_progress(1.0)


def _pump(
    stream: IO[bytes], sink: Callable[[str], object], on_end: Callable[[], object] | None
) -> None:
    # A thread per pipe: FFmpeg blocks if a pipe it writes to fills up, so both are always read.
    for raw in stream:
        sink(raw.decode("utf-8", "replace").rstrip())
    stream.close()
    if on_end is not None:
        on_end()


def _fraction(line: str, expected_us: float) -> float | None:
    key, _, value = line.partition("=")
    if key == "progress" and value == "end":
        return 1.0
    if key == "out_time_us":
        try:
            micros = int(value)
        except ValueError:  # "N/A" before the first frame
            return None
        return min(max(micros / expected_us, 0.0), 1.0)
    return None
