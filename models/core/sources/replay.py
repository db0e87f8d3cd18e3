"""The replay controls of a video source, whoever decodes it.

ReplaySource is what the display's replay bar and the capture thread see of a video file or
stream: pause, step, seek, speed and loop, callable from any thread, and the state they read
(position, duration, paused, speed, ...). Two sources implement it: VideoSource decodes in the
caller's process (models.core.sources.video), IsolatedVideoSource in a child process
(models.core.sources.isolated). A control only queues a command; the thread that calls read()
applies it (or forwards it to the child), so only that thread ever touches the decoder.
"""
from __future__ import annotations

import queue
from pathlib import Path

from models.core.sources.base import Source

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "udp://", "tcp://", "srt://", "http://", "https://")
SPEEDS = (0.25, 4.0)


class ReplaySource(Source):
    """A video file (replayable) or network stream (is_stream: shown as it arrives)."""

    def __init__(self, target: str | Path, loop: bool = False, realtime: bool = True):
        super().__init__()
        self.target = str(target)
        self.is_stream = self.target.startswith(STREAM_SCHEMES)
        self.name = self.target if self.is_stream else Path(self.target).name
        self._loop = loop and not self.is_stream
        self.realtime = realtime and not self.is_stream  # a stream paces itself
        self.duration: float | None = None
        self.position = 0.0              # pts of the last delivered frame, seconds
        self.paused = False
        self.speed = 1.0
        self.corrupt_packets = 0
        self.truncated = False           # the file is cut short (a recording that was not finalized)
        self._commands: queue.SimpleQueue = queue.SimpleQueue()

    # -- controls (any thread) -------------------------------------------------------------
    def pause(self, on: bool = True) -> None:
        self._commands.put(("pause", on))

    def step(self, frames: int = 1) -> None:
        """Deliver the next frame(s) while paused."""
        self._commands.put(("step", frames))

    def seek(self, seconds: float) -> None:
        """Jump to the first frame at or after `seconds` (frame-accurate)."""
        self._commands.put(("seek", float(seconds)))

    def set_speed(self, speed: float) -> None:
        self._commands.put(("speed", min(max(float(speed), SPEEDS[0]), SPEEDS[1])))

    @property
    def loop(self) -> bool:
        """Start again from the beginning at the end (files only)."""
        return self._loop

    @loop.setter
    def loop(self, on: bool) -> None:
        self._loop = bool(on)
        self._commands.put(("loop", self._loop))  # a decoder in another process must follow

    # -- what the display asks ---------------------------------------------------------------
    def idle(self) -> bool:
        return self.paused
