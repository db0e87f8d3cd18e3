"""Video files and network streams through PyAV, decoded in the caller's process.

Files are delivered at their own pace (presentation timestamps, times a speed factor) and can
be paused, stepped, seeked frame-accurately and looped. Streams (rtsp, udp, http, ...) are
delivered as they arrive. The controls (models.core.sources.replay) come from other threads
through a command queue that read() serves, so the decoder is only ever touched by one thread:
the capture thread, or for a file the thread decoding ahead, stopped before a seek moves it. The
display decodes files in a child process instead (models.core.sources.isolated), which runs this
class there.

A file's frames are decoded 0.15 s ahead (ahead.py), so that a slow keyframe is absorbed by the
frames queued before it; a looping file starts again on that thread.

A file whose demuxer cannot seek (a raw H.264 elementary stream: no container, no timestamps)
is reopened instead: a loop starts it again, a seek decodes forward from its start, counting
frames at the frame rate. A frame that waits long for its time (a still in a variable-frame-rate
file) makes the source idle() until then: no frame is due, and the picture on screen is the file's.

An encrypted file (models/core/sealed.py: its first bytes say so, whatever its name) is demuxed
straight from a SealedReader (decrypted chunk by chunk as FFmpeg reads and seeks; no plaintext
file): with the source's `key`, else the process's (sealed.use_key: a command's --key-file or
profile), else ENDOSPINE_KEY; without one, or with another key, opening fails in one line. A
sealed recording cut short plays up to its last complete chunk (`truncated`).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import av
import numpy as np

from models.core import sealed
from models.core.costs import STAGES
from models.core.errors import EndoSpineError
from models.core.imageio import check_image_file
from models.core.picture import AvConverter, Planes, fit_size, view_from_av
from models.core.sources.ahead import DecodeAhead
from models.core.sources.file_checks import clock, mp4_layout
from models.core.sources.replay import SPEEDS, STREAM_SCHEMES, ReplaySource  # noqa: F401 - re-exported
from models.core.types import Frame

MAX_SIZE = (8192, 4352)  # wider or taller, or more pixels than this: refused before any frame is decoded
ONE_THREAD_PIXEL_RATE = 1920 * 1080 * 60.5  # pixels per second one decoding thread is asked for at most
STILL_S = 0.25  # a frame held longer than this for its time is a still in the file: the source is idle()
AHEAD_S = 0.15  # a file's frames are decoded this far ahead (models/core/sources/ahead.py), 2-8 frames
AHEAD_NICE = 2  # ... on a thread below the display's priority (and above the AI worker's, +5): it has
                # AHEAD_S of slack, the display's paint has none
_LOOPED = object()  # in the decoded frames: a looping file ended and starts again


class VideoSource(ReplaySource):
    """A video file or stream decoded with PyAV in this process."""

    def __init__(self, target: str | Path, loop: bool = False, realtime: bool = True, key: bytes | None = None):
        super().__init__(target, loop=loop, realtime=realtime)
        self.key = key                   # an encrypted file's key (None: the process's, models.core.sealed)
        self.sealed = False              # the file is encrypted (read through a SealedReader)
        self._reader: sealed.SealedReader | None = None
        self.applied_mark = 0            # the last put_mark() number served (commands before it are applied)
        self._container = None
        self._stream = None
        self._frames = None      # (av_frame, place, from_start) items and _LOOPED: _frames_from_here()
        self._ref: tuple[float, float] | None = None  # (monotonic time, pts) that pacing counts from
        self._step = 0
        self._pending: tuple[np.ndarray, float, Planes | None] | None = None  # decoded, not yet due
        self._to_rgb = AvConverter()  # one swscale context for the whole file
        self._show_now = False  # a seek result: deliver at once, even while paused
        self._seekable = True   # False once the demuxer refused a seek: reopen instead
        self._still_until = 0.0  # monotonic time the held frame is due, while a long still lasts
        self.packets = 0         # packets demuxed since open(), across loops and seeks
        self._decoded_any = False  # a frame was decoded since open(): a loop can start again
        self._loop_passed = False  # a seek ran past a looping file's end: pacing restarts after its frame
        self.read_to: float | None = None  # the file clock: timestamp of the newest packet, seconds
        # Called with the seconds until the held frame is due (0.0 while demuxing and decoding), on
        # every packet and every pacing wait: the decoder child's heartbeat (isolated.py).
        self.on_progress: Callable[[float], None] | None = None

    # -- Source ----------------------------------------------------------------------------
    def open(self) -> None:
        if not self.is_stream:
            path = Path(self.target)
            if not path.is_file():
                raise EndoSpineError(f"{path}: video file not found")
            if path.stat().st_size == 0:
                raise EndoSpineError(f"{path}: file is empty (0 bytes)")
            self.sealed = sealed.is_sealed(path)
            if self.sealed and self.key is None:
                self.key = sealed.process_key()
            if not self.sealed:
                check_image_file(path)  # a picture (any name): the image gate's size limit before FFmpeg probes it
        self._open_container()
        layout = None if self.is_stream or self.sealed else mp4_layout(self.target)
        self.truncated = bool(layout and layout.truncated) or bool(self._reader and self._reader.truncated)
        width, height = self._stream.codec_context.width, self._stream.codec_context.height
        if width > MAX_SIZE[0] or height > MAX_SIZE[1] or width * height > MAX_SIZE[0] * MAX_SIZE[1]:
            self._close_container()
            raise EndoSpineError(f"{self.target}: {width}x{height} is larger than this display decodes "
                                 f"({MAX_SIZE[0]}x{MAX_SIZE[1]}); convert it to 4K or less")
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        self.size = (self._stream.codec_context.width, self._stream.codec_context.height)
        if self._stream.duration is not None and self._stream.time_base is not None:
            self.duration = float(self._stream.duration * self._stream.time_base)
        elif self._container.duration:
            self.duration = self._container.duration / av.time_base
        self._frames = self._frames_from_here(from_start=True)
        self.opened = True

    def read(self) -> Frame | None:
        while not self._stop.is_set():
            self._serve_commands()
            if self.paused and self._step <= 0 and not self._show_now:
                self._stop.wait(0.01)
                continue
            if self._pending is None:
                self._pending = self._next_image()
                if self._pending is None:
                    return None
            image, pts, full = self._pending
            if self.realtime and not self.paused and not self._show_now and self._ref is not None:
                wait = self._ref[0] + (pts - self._ref[1]) / self.speed - time.monotonic()
                if wait > 0:
                    if wait > STILL_S and not self._still_until:
                        self._still_until = time.monotonic() + wait
                    if self.on_progress is not None:
                        self.on_progress(wait)  # waiting on the file's clock is progress, not a hang
                    self._stop.wait(min(wait, 0.02))  # short sleeps: pause and seek act promptly
                    continue
            self._pending = None
            self._still_until = 0.0
            self._show_now = False
            if self._ref is None:
                self._ref = (time.monotonic(), pts)
            if self._step > 0:
                self._step -= 1
            self.position = pts
            return self._frame(image, pts, full)  # capture time = delivery time
        return None

    def idle(self) -> bool:
        """Paused, or holding a frame whose time has not come (a still longer than STILL_S)."""
        return self.paused or time.monotonic() < self._still_until

    def put_mark(self, number: int) -> None:
        """Queue a marker behind the controls sent so far: once `applied_mark` shows it, every one
        of them has been applied (the decoder process tags its frames with it)."""
        self._commands.put(("mark", number))

    def end_note(self) -> str:
        """'file ends early at mm:ss.s' when the file was cut short, else ''."""
        if self.is_stream or self._next_id == 0:
            return ""
        short = self.duration is not None and self.position < self.duration - 1.5 / self.fps
        if not (self.truncated or short):
            return ""
        total = f" of {clock(self.duration)}" if short else ""
        return f"{self.name}: file ends early at {clock(self.position)}{total} (cut short: the part before plays)"

    def _unreadable_reason(self) -> str:
        if self.sealed:
            return "not a readable video (encrypted; decrypted with its key)"
        layout = mp4_layout(self.target)
        if layout is not None and layout.unplayable_cut:
            return ("recording cut off before it was finalized: its index (moov) is missing, "
                    "so no frame can be played")
        return "not a readable video"

    def close(self) -> None:
        super().close()
        if self._stop_ahead():
            self._close_container()

    # -- internals -------------------------------------------------------------------------
    def _serve_commands(self) -> None:
        while not self._commands.empty():
            cmd, value = self._commands.get()
            if cmd == "pause":
                self.paused = value
                self._ref = None
                self._still_until = 0.0
            elif cmd == "step":
                self._step += value
            elif cmd == "speed":
                self.speed = value
                self._ref = None
                self._still_until = 0.0
            elif cmd == "mark":
                self.applied_mark = value
            elif cmd == "seek" and not self.is_stream:
                self._pending = self._seek(value)
                self._show_now = self._pending is not None
                self._ref = None
                self._still_until = 0.0
            # "loop": already in effect (the setter stores it; _next_image reads it)

    def _open_container(self) -> None:
        """Open the file or stream and pick its first video stream; EndoSpineError if it cannot."""
        options = {"rtsp_transport": "tcp", "timeout": "5000000"} if self.is_stream else {}
        if self.sealed:  # a wrong or missing key, a damaged header: the reader's one line
            self._reader = sealed.SealedReader(self.target, self.key, allow_truncated=True)
        try:
            self._container = av.open(self._reader if self._reader is not None else self.target, options=options,
                                      timeout=10.0 if self.is_stream else None)
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, UnicodeDecodeError, OSError) as exc:
            self._close_container()
            reason = "no video stream" if isinstance(exc, IndexError) else (
                "cannot connect" if self.is_stream else self._unreadable_reason())
            raise EndoSpineError(f"{self.target}: {reason}") from None
        # One decoding thread up to 1080p60's pixel rate: frame threads cost a third more CPU per
        # frame here (1080p60: 5.8 against 4.3 ms), CPU the display and the AI need. Above it (4K)
        # FFmpeg's threads: one thread took 18-22 ms a 4K frame, too close to 33 ms with the
        # conversion and the copy into the slot after it on the same thread.
        w, h = self._stream.codec_context.width, self._stream.codec_context.height
        rate = float(self._stream.average_rate or self._stream.guessed_rate or 30)
        if w * h * rate > ONE_THREAD_PIXEL_RATE:
            self._stream.thread_type = "AUTO"
        else:
            self._stream.codec_context.thread_count = 1

    def _frames_from_here(self, from_start: bool):
        """The frames from the demuxer's position on (`from_start`: at the file's start, so a
        frame's place is a time): decoded ahead on a thread of their own for a file (ahead.py; the
        heartbeat is called while read() waits for one), as read() asks for them for a stream."""
        if self.is_stream:
            return self._decode(True, from_start)
        depth = max(2, min(8, math.ceil(AHEAD_S * self.fps)))
        return DecodeAhead(self._decode(False, from_start), depth, stop=self._stop, waiting=self._waiting_for_frame,
                           nice=AHEAD_NICE)

    def _waiting_for_frame(self) -> None:
        if self.on_progress is not None:
            self.on_progress(0.0)

    def _stop_ahead(self) -> bool:
        """Stop decoding ahead before the demuxer is moved or closed; False if the decoding thread
        is stuck in FFmpeg (then nothing may touch the container)."""
        return self._frames.close() if isinstance(self._frames, DecodeAhead) else True

    def _decode(self, progress: bool, from_start: bool):
        """(av_frame, its place since the demuxer was positioned, positioned at the start) for each
        frame; a corrupt packet is skipped and counted, never fatal. A looping file's end: _LOOPED,
        then its frames again from the start. `progress`: call on_progress on every packet (only
        from the thread that owns the pipe)."""
        index = -1
        while True:
            for packet in self._container.demux(self._stream):
                self.packets += 1
                if packet.pts is not None and packet.time_base is not None:
                    self.read_to = float(packet.pts * packet.time_base)
                if progress and self.on_progress is not None:
                    self.on_progress(0.0)
                try:
                    with STAGES.measure("decode"):
                        decoded = packet.decode()
                except av.FFmpegError:
                    self.corrupt_packets += 1
                    continue
                for av_frame in decoded:
                    index += 1
                    self._decoded_any = True
                    yield av_frame, index, from_start
            if not (self.loop and self._decoded_any):
                return
            index, from_start = -1, self._reposition(0.0)
            yield _LOOPED

    def _time(self, av_frame, index: int, from_start: bool) -> float | None:
        """The frame's timestamp; a file without any (raw H.264) read from its start: its place
        over the frame rate, which is what a loop and a seek there count by."""
        if av_frame.time is not None:
            return float(av_frame.time)
        return index / self.fps if from_start else None

    def _next_image(self) -> tuple[np.ndarray, float, Planes | None] | None:
        if self._loop_passed:  # the frame a seek showed was the file's last: the clock starts again
            self._loop_passed = False
            self._restart_pacing()
        restarted = False
        while True:
            try:
                item = next(self._frames)
            except StopIteration:
                # looping switched on after the decoding thread had passed the file's end (it
                # decides there, ahead of what is shown): start again from here, once
                if restarted or not (self.loop and self._decoded_any):
                    return None
                self._seek_raw(0.0)
                restarted = True
                continue
            except av.FFmpegError:
                self.corrupt_packets += 1
                return None
            if item is _LOOPED:  # the file's clock starts again: so does the pacing
                self._restart_pacing()
                continue
            return self._to_image(*item)

    def _to_image(self, av_frame, index: int, from_start: bool) -> tuple[np.ndarray, float, Planes | None]:
        # missing, repeated or backward timestamps: paced by the frame rate, never out of order
        t = self._time(av_frame, index, from_start)
        if av_frame.time is None and t is not None:
            self.timestamp_repairs += 1  # missing: counted as a repair, like one _rising_pts makes
        pts = self._rising_pts(t)
        with STAGES.measure("convert"):
            image, full = self._picture(av_frame)
        return image, pts, full

    def _picture(self, av_frame) -> tuple[np.ndarray, Planes | None]:
        """The frame as the display and the model take it, and its full-resolution planes when
        that is a reduced view (a frame larger than `view_max`: models/core/picture.py)."""
        w, h = av_frame.width, av_frame.height
        size = fit_size((w, h), self.view_max)
        if size == (w, h):
            return self._to_rgb(av_frame), None
        if not self.full_planes and (image := view_from_av(av_frame, size)) is not None:
            return image, None  # scaled from the decoder's own buffers: no copy of the full picture
        full = Planes.from_av(av_frame)
        if full is None and not (w % 2 or h % 2):  # 10-bit, 4:2:2, 4:4:4 ...: as 8-bit 4:2:0 planes
            full = Planes.from_av(self._to_rgb.frame(av_frame, "yuv420p"))
        if full is None:  # odd sides: the whole frame in RGB
            full = Planes("rgb24", self._to_rgb(av_frame), (w, h))
        return full.view(size), full if self.full_planes else None

    def _seek_raw(self, seconds: float) -> None:
        """Position the file at the keyframe before `seconds` (decoding ahead stopped first, then
        started again from there); the pacing starts again."""
        if not self._stop_ahead():
            raise EndoSpineError(f"{self.target}: the decoder does not answer (cannot seek)")
        self._frames = self._frames_from_here(self._reposition(seconds))
        self._restart_pacing()
        self._loop_passed = False

    def _restart_pacing(self) -> None:
        self._ref = None
        self._last_pts = None

    def _reposition(self, seconds: float) -> bool:
        """Position the demuxer at the keyframe before `seconds`. A demuxer that cannot seek (raw
        H.264 refuses with EPERM) is reopened at the start instead; _seek decodes forward from there.
        True when the demuxer is at the file's start."""
        target = int(seconds / self._stream.time_base) if self._stream.time_base else 0
        if self._seekable:
            try:
                self._container.seek(max(target, 0), stream=self._stream, backward=True, any_frame=False)
            except av.FFmpegError:
                self._seekable = False
        if not self._seekable:
            self._close_container()
            self._open_container()
        return not self._seekable or target <= 0

    def _seek(self, seconds: float) -> tuple[np.ndarray, float, Planes | None] | None:
        """Seek to the keyframe before `seconds`, then decode forward to the exact frame."""
        if self.duration is not None:
            seconds = min(max(seconds, 0.0), self.duration)
        self._seek_raw(seconds)
        half = 0.5 / self.fps
        last = None
        for item in self._frames:
            if item is _LOOPED:  # past the last frame: the last one there is, then the file again
                self._loop_passed = True
                break
            last = item
            t = self._time(*item)
            if t is not None and t >= seconds - half:
                return self._to_image(*item)
        return self._to_image(*last) if last is not None else None

    def _close_container(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
