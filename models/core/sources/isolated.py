"""Video files decoded in a child process, so that a decoder crash cannot take the display down.

FFmpeg parses hostile bytes in C: a crafted or damaged file can crash it (SIGSEGV), and a crash
in the display's own process would blank the OR monitor. IsolatedVideoSource has the replay
controls of every video source (models.core.sources.replay), the same pacing and the same
errors as VideoSource, but a VideoSource in a supervised child process does the decoding
(models.core.child: the process, its pipe and the frame slots; the messages are in
decoder_protocol.py):

    child:  VideoSource(file) -> each frame, paced by its timestamps -> one of SLOTS shared-memory
            slots -> SlotFrame(mark, slot, w, h, pts, ...) on the pipe
    parent: read() copies the slot out (frames are immutable and outlive the slot), frees it
            (Free(slot)), and forwards pause/step/seek/speed/loop as Control messages on the pipe.

If the child dies, read() raises EndoSpineError naming the file, the position and the signal;
the capture thread turns that into a message on the screen and the display stays up. A child
that sends nothing while playing for Timing.decoder_hang_after(fps) is killed and reported the
same way. Only the capture thread talks on the pipe (controls from the GUI go through the
command queue), so the GUI never waits for the decoder.
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import numpy as np

from models.core.child import Child, ChildGone, FrameSlots, Message
from models.core.errors import EndoSpineError
from models.core.sources.decoder_protocol import (
    Control,
    DecodeFailed,
    Ended,
    Free,
    InlineFrame,
    Opened,
    OpenFailed,
    SlotFrame,
    Slots,
    Stop,
)
from models.core.sources.file_checks import clock
from models.core.sources.replay import ReplaySource
from models.core.sources.video import VideoSource
from models.core.timing import DEFAULT_TIMING, Timing
from models.core.types import Frame

SLOTS = 3


class IsolatedVideoSource(ReplaySource):
    """A video file played by a decoder child process (files only; streams stay in-process)."""

    def __init__(self, target: str | Path, loop: bool = False, realtime: bool = True,
                 timing: Timing = DEFAULT_TIMING):
        super().__init__(target, loop=loop, realtime=realtime)
        self.timing = timing    # decoder_open_timeout_s, decoder_hang_after(fps)
        self._heard = 0.0  # monotonic time of the last message from the child (or of a resume)
        if self.is_stream:
            raise ValueError("IsolatedVideoSource plays files; streams use VideoSource")
        self._child: Child | None = None
        self._slots: FrameSlots | None = None
        self._end_note = ""
        self._sent = 0          # commands sent to the child, numbered
        self._valid_from = 0    # frames the child tagged with an older number predate a seek or pause
        self.decoder_pid: int | None = None

    def open(self) -> None:
        path = Path(self.target)
        if not path.is_file():
            raise EndoSpineError(f"{path}: video file not found")
        self._child = Child(decoder_main, (self.target, self._loop, self.realtime), name="endospine-decoder")
        self.decoder_pid = self._child.pid
        msg = self._receive(self.timing.decoder_open_timeout_s, "while opening the file")
        if not isinstance(msg, Opened):
            error = msg.message if isinstance(msg, OpenFailed) else f"{self.target}: the decoder did not start"
            self.close()
            raise EndoSpineError(error)
        self.size, self.fps, self.duration, self.truncated = msg.size, msg.fps, msg.duration, msg.truncated
        self._slots = FrameSlots.create(self.size[0] * self.size[1] * 3, SLOTS)
        self._send(Slots(self._slots.name, self._slots.slot_bytes), "while opening the file")
        self._heard = time.monotonic()
        self.opened = True

    def read(self) -> Frame | None:
        while not self._stop.is_set():
            self._forward_commands()
            msg = self._receive(0.02, f"at {clock(self.position)}")
            if msg is None:
                self._check_hung()
                continue
            self._heard = time.monotonic()
            if isinstance(msg, SlotFrame):
                self.corrupt_packets, self.timestamp_repairs = msg.corrupt_packets, msg.timestamp_repairs
                image = None
                if msg.mark >= self._valid_from:
                    image = self._slots.read(msg.slot, msg.width, msg.height)  # the frame outlives the slot
                self._send(Free(msg.slot))
                if image is not None:
                    return self._delivered(image, msg.pts)
            elif isinstance(msg, InlineFrame):  # a frame larger than a slot (the size changed mid-file)
                self.corrupt_packets, self.timestamp_repairs = msg.corrupt_packets, msg.timestamp_repairs
                if msg.mark >= self._valid_from:
                    return self._delivered(msg.image, msg.pts)
            elif isinstance(msg, Ended):
                self._end_note, self.position = msg.note, msg.position
                return None
            elif isinstance(msg, DecodeFailed):
                raise EndoSpineError(msg.message)
        return None

    def end_note(self) -> str:
        return self._end_note

    def close(self) -> None:
        self._stop.set()
        if self._child is not None:
            self._child.stop(Stop(), grace=1.0)
            self._child = None
        if self._slots is not None:
            self._slots.close()
            self._slots = None

    # -- internals (capture thread) ---------------------------------------------------------
    def _delivered(self, image: np.ndarray, pts: float) -> Frame:
        self.position = pts
        return self._frame(image, pts)

    def _check_hung(self) -> None:
        """Playing and silent too long: FFmpeg is stuck on the file. Kill the child and say so."""
        limit = self.timing.decoder_hang_after(self.fps * self.speed)
        if self.paused or time.monotonic() - self._heard < limit:
            return
        self._child.kill(wait=1.0)
        raise EndoSpineError(f"{self.name}: the video decoder stopped answering (nothing for {limit:.0f} s) "
                             f"at {clock(self.position)}; the display is unaffected, the file may be damaged")

    def _forward_commands(self) -> None:
        while not self._commands.empty():
            cmd, value = self._commands.get()
            if cmd == "pause":
                self.paused = value
                self._heard = time.monotonic()  # resuming starts the silence count afresh
            elif cmd == "speed":
                self.speed = value
            self._sent += 1
            if cmd in ("seek", "pause"):  # frames decoded before these must not be shown after them
                self._valid_from = self._sent
            self._send(Control(cmd, value, self._sent))

    def _receive(self, timeout: float, when: str) -> Message | None:
        """The next message from the child, None if none came in `timeout`; EndoSpineError if it died."""
        try:
            return self._child.receive(timeout)
        except ChildGone:
            self._died(when)

    def _send(self, msg: Message, when: str | None = None) -> None:
        try:
            self._child.send(msg)
        except ChildGone:  # say how
            self._died(when or f"at {clock(self.position)}")

    def _died(self, when: str) -> None:
        self._child.wait(1.0)
        raise EndoSpineError(f"{self.name}: {self._child.stopped('the video decoder')} "
                             f"{when}; the display is unaffected, the file may be damaged")


# -- the child process ---------------------------------------------------------------------------
def decoder_main(conn, target: str, loop: bool, realtime: bool) -> None:
    """The child process: decode `target` with VideoSource, frames into the parent's slots."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the display's to handle
    src = VideoSource(target, loop=loop, realtime=realtime)
    try:
        src.open()
    except EndoSpineError as exc:
        conn.send(OpenFailed(str(exc)))
        return
    conn.send(Opened(src.size, src.fps, src.duration, src.truncated))
    setup: Slots = conn.recv()
    slots = FrameSlots.attach(setup.name, setup.slot_bytes, SLOTS)
    free = threading.Condition()
    idle = set(range(SLOTS))
    listener = threading.Thread(target=_listen, args=(conn, src, free, idle), daemon=True)
    listener.start()
    try:
        while True:
            frame = src.read()
            if frame is None:
                if not src.stopping:
                    conn.send(Ended(src.end_note(), src.position))
                break
            h, w = frame.image.shape[:2]
            if not slots.fits(w, h):
                conn.send(InlineFrame(src.applied_mark, frame.image, frame.pts, src.corrupt_packets,
                                      src.timestamp_repairs))
                continue
            with free:
                free.wait_for(lambda: idle or src.stopping)
                if src.stopping:
                    break
                slot = idle.pop()
            slots.write(slot, frame.image)
            conn.send(SlotFrame(src.applied_mark, slot, w, h, frame.pts, src.corrupt_packets, src.timestamp_repairs))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        try:
            conn.send(DecodeFailed(f"{target}: decoding failed: {type(exc).__name__}: {exc}"))
        except OSError:
            pass  # the parent is gone
    finally:
        src.interrupt()
        listener.join(2.0)
        src.close()
        slots.close()


def _listen(conn, src: VideoSource, free: threading.Condition, idle: set) -> None:
    """Child side: the parent's messages, until it says stop or goes away."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = Stop()
        if isinstance(msg, Free):
            with free:
                idle.add(msg.slot)
                free.notify_all()
        elif isinstance(msg, Stop):
            src.interrupt()
            with free:
                free.notify_all()
            return
        elif isinstance(msg, Control):
            if msg.command == "loop":
                src.loop = msg.value
            elif msg.command in ("pause", "step", "seek", "speed"):
                getattr(src, "set_speed" if msg.command == "speed" else msg.command)(msg.value)  # VideoSource's own
            src.put_mark(msg.number)  # frames read after this carry the number
