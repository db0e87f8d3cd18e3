"""Video files decoded in a child process, so that a decoder crash cannot take the display down.

FFmpeg parses hostile bytes in C: a crafted or damaged file can crash it (SIGSEGV), and a crash
in the display's own process would blank the OR monitor. IsolatedVideoSource has the replay
controls of every video source (models.core.sources.replay), the same pacing and the same
errors as VideoSource, but a VideoSource in a supervised child process does the decoding
(models.core.child: the process, its pipe and the frame slots; the messages are in
decoder_protocol.py):

    child:  VideoSource(file) -> each frame, paced by its timestamps -> one of SLOTS shared-memory
            slots -> SlotFrame(mark, slot, w, h, pts, ...) on the pipe
    parent: read() lends the slot out as the frame's pixels (read-only, no copy: models.core.child.Loan);
            once the frame is dropped everywhere the slot goes back (Free(slot)). It also forwards
            pause/step/seek/speed/loop as Control messages on the pipe.

A slot is in use while its frame is on screen, the newest in the frame store or with the AI
worker; SLOTS leaves room for all of them and the one being written. Should the display still
hold every slot (something keeps frames: it must keep own() copies instead), the child sends the
frame through the pipe after LEND_WAIT_S rather than stall the video.

A frame larger than `view_max` (a 4K file on a smaller screen) is scaled in the child, plane by
plane, before any RGB conversion (models/core/picture.py); its slot holds the view and, after it,
the full-resolution planes, lent with it (Frame.full: recordings and snapshots keep every pixel).
The child reports what its stages cost (Costs, models/core/costs.py)
about once a second; `stage_costs` holds the latest.

If the child dies, read() raises EndoSpineError naming the file, the position and the signal;
the capture thread turns that into a message on the screen and the display stays up. A child
that makes no progress while playing for Timing.decoder_hang_after(fps) is killed and reported
the same way. Progress is judged by packets read and the file's clock, not by new pictures:
between frames the child sends a Progress heartbeat (packets demuxed, the timestamp reached, how
long the frame it holds still waits for its time), so a still of 8 s in a variable-frame-rate
file plays through (the source is idle() meanwhile: no frame is due), while a child stuck in
FFmpeg sends nothing and is killed. Only the capture thread talks on the pipe (controls from the
GUI go through the command queue), so the GUI never waits for the decoder.
"""
from __future__ import annotations

import queue
import signal
import threading
import time
from pathlib import Path

import numpy as np

from models.core import sealed
from models.core.child import Child, ChildGone, FrameSlots, Message, single_threaded_opencv, steady_memory
from models.core.costs import STAGES
from models.core.errors import EndoSpineError
from models.core.picture import Planes, fit_size, layout_shape
from models.core.sources.decoder_protocol import (
    Control,
    Costs,
    DecodeFailed,
    Ended,
    Free,
    InlineFrame,
    Opened,
    OpenFailed,
    Progress,
    SlotFrame,
    Slots,
    Stop,
)
from models.core.sources.file_checks import clock
from models.core.sources.replay import ReplaySource
from models.core.sources.video import VideoSource
from models.core.timing import DEFAULT_TIMING, Timing
from models.core.types import Frame

SLOTS = 5  # on screen, newest in the store, with the AI worker, being written, one spare
LEND_WAIT_S = 0.1  # no slot back for this long: the frame goes through the pipe instead
COSTS_EVERY_S = 1.0  # how often the child reports its stages' costs
HEARTBEAT_S = 0.25  # the child's Progress interval between frames (at most a quarter of the hang limit)


class IsolatedVideoSource(ReplaySource):
    """A video file played by a decoder child process (files only; streams stay in-process)."""

    def __init__(self, target: str | Path, loop: bool = False, realtime: bool = True,
                 timing: Timing = DEFAULT_TIMING, key: bytes | None = None):
        super().__init__(target, loop=loop, realtime=realtime)
        self.key = key  # an encrypted file's key (None: the process's, models.core.sealed.process_key)
        self.timing = timing    # decoder_open_timeout_s, decoder_hang_after(fps)
        self._heard = 0.0  # monotonic time of the child's last progress (or of a resume)
        self._packets = 0  # packets the child had read at its last Progress
        self._read_to: float | None = None  # the file clock at its last Progress (for the hang message)
        self._still_until = 0.0  # the child holds a frame for its time until then (a still): idle
        if self.is_stream:
            raise ValueError("IsolatedVideoSource plays files; streams use VideoSource")
        self._child: Child | None = None
        self._slots: FrameSlots | None = None
        self._returned: queue.SimpleQueue[int] = queue.SimpleQueue()  # slots whose frames were dropped
        self._end_note = ""
        self._sent = 0          # commands sent to the child, numbered
        self._valid_from = 0    # frames the child tagged with an older number predate a seek or pause
        self.decoder_pid: int | None = None
        self.stage_costs: Costs | None = None  # the child's latest report of its stages' costs

    def open(self) -> None:
        path = Path(self.target)
        if not path.is_file():
            raise EndoSpineError(f"{path}: video file not found")
        heartbeat = min(HEARTBEAT_S, self.timing.decoder_hang_s / 4)
        # an encrypted file's key reaches the child in its start arguments (through the spawn pipe), never a file
        key = (self.key if self.key is not None else sealed.process_key()) if sealed.is_sealed(path) else None
        self._child = Child(decoder_main, (self.target, self._loop, self.realtime, heartbeat, key, self.view_max),
                            name="endospine-decoder")
        self.decoder_pid = self._child.pid
        msg = self._receive(self.timing.decoder_open_timeout_s, "while opening the file")
        if not isinstance(msg, Opened):
            error = msg.message if isinstance(msg, OpenFailed) else f"{self.target}: the decoder did not start"
            self.close()
            raise EndoSpineError(error)
        self.size, self.fps, self.duration, self.truncated = msg.size, msg.fps, msg.duration, msg.truncated
        self._slots = FrameSlots.create(slot_bytes(self.size, self.view_max), SLOTS)
        self._send(Slots(self._slots.name, self._slots.slot_bytes), "while opening the file")
        self._heard = time.monotonic()
        self.opened = True

    def read(self) -> Frame | None:
        while not self._stop.is_set():
            self._forward_commands()
            self._give_back()
            msg = self._receive(0.02, f"at {clock(self.position)}")
            if msg is None:
                self._check_hung()
                continue
            if isinstance(msg, Progress):
                self._progressed(msg)
                continue
            if isinstance(msg, Costs):
                self.stage_costs = msg
                continue
            self._heard = time.monotonic()
            self._still_until = 0.0
            if isinstance(msg, SlotFrame):
                self.corrupt_packets, self.timestamp_repairs = msg.corrupt_packets, msg.timestamp_repairs
                if msg.mark < self._valid_from:  # decoded before a seek or pause: not shown
                    self._send(Free(msg.slot))
                    continue
                return self._delivered(*self._take(msg), msg.pts)
            elif isinstance(msg, InlineFrame):  # larger than a slot (the size changed mid-file), or no slot free
                self.corrupt_packets, self.timestamp_repairs = msg.corrupt_packets, msg.timestamp_repairs
                if msg.mark >= self._valid_from:
                    return self._delivered(msg.image, msg.full, msg.pts)
            elif isinstance(msg, Ended):
                self._end_note, self.position = msg.note, msg.position
                return None
            elif isinstance(msg, DecodeFailed):
                raise EndoSpineError(msg.message)
        return None

    def end_note(self) -> str:
        return self._end_note

    def keep_full(self, on: bool) -> None:
        """Tell the decoder child whether to ship reduced frames' full planes (frames already
        decoded come as they were)."""
        self.full_planes = on
        self._commands.put(("full", on))

    def idle(self) -> bool:
        """Paused, or the child holds the next frame for its time (a still in the file)."""
        return self.paused or time.monotonic() < self._still_until

    def close(self) -> None:
        self._stop.set()
        if self._child is not None:
            self._child.stop(Stop(), grace=1.0)
            self._child = None
        if self._slots is not None:
            self._slots.close()
            self._slots = None

    # -- internals (capture thread) ---------------------------------------------------------
    def _take(self, msg: SlotFrame) -> tuple[np.ndarray, Planes | None]:
        """The picture in a slot and the planes after it, lent (the slot goes back once both are dropped)."""
        with STAGES.measure("slot_read"):
            loan = self._slots.lend(msg.slot, self._returned.put)
            image = loan.array((msg.height, msg.width, 3))
            if msg.full_fmt is None:
                return image, None
            shape = layout_shape(msg.full_fmt, *msg.full_size)
            return image, Planes(msg.full_fmt, loan.array(shape, offset=image.nbytes), msg.full_size)

    def _give_back(self) -> None:
        """Slots whose frames were dropped (in any thread) back to the child: only this thread talks on the pipe."""
        while True:
            try:
                slot = self._returned.get_nowait()
            except queue.Empty:
                return
            if self._child is not None:
                self._send(Free(slot))

    def _delivered(self, image: np.ndarray, full: Planes | None, pts: float) -> Frame:
        self.position = pts
        return self._frame(image, pts, full)

    def _progressed(self, msg: Progress) -> None:
        """A heartbeat: more packets read, or a frame waiting for its time, is progress; the same
        count again is not (a child that only beats while going nowhere is still hung)."""
        now = time.monotonic()
        if msg.packets > self._packets or msg.due_in > 0:
            self._heard = now
        self._packets = max(self._packets, msg.packets)
        self._read_to = msg.read_to
        self._still_until = now + msg.due_in if msg.due_in > 0 and not self.paused else 0.0

    def _check_hung(self) -> None:
        """Playing and no progress too long: FFmpeg is stuck on the file. Kill the child and say so."""
        limit = self.timing.decoder_hang_after(self.fps * self.speed)
        if self.paused or time.monotonic() - self._heard < limit:
            return
        self._child.kill(wait=1.0)
        read = f" (file read to {clock(self._read_to)})" if self._read_to and self._read_to > self.position else ""
        raise EndoSpineError(f"{self.name}: the video decoder stopped answering (nothing for {limit:.3g} s) "
                             f"at {clock(self.position)}{read}; the display is unaffected, the file may be damaged")

    def _forward_commands(self) -> None:
        while not self._commands.empty():
            cmd, value = self._commands.get()
            if cmd in ("pause", "seek", "speed"):
                self._still_until = 0.0  # the held frame's time is recounted by the child
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
def slot_bytes(size: tuple[int, int], view_max: tuple[int, int] | None) -> int:
    """Bytes of a frame slot for frames of `size`: the RGB picture, and when that is a reduced
    view, room for the full-resolution planes after it (4:2:2 packed at most; a frame whose planes
    do not fit goes inline)."""
    w, h = size
    vw, vh = fit_size(size, view_max)
    return vw * vh * 3 + (w * h * 2 if (vw, vh) != (w, h) else 0)


def decoder_main(conn, target: str, loop: bool, realtime: bool, heartbeat_s: float = HEARTBEAT_S,
                 key: bytes | None = None, view_max: tuple[int, int] | None = None) -> None:
    """The child process: decode `target` with VideoSource, frames into the parent's slots."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the display's to handle
    single_threaded_opencv()
    steady_memory()
    src = VideoSource(target, loop=loop, realtime=realtime, key=key)
    src.view_max = view_max
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
    beat = _Heartbeat(conn, src, heartbeat_s)
    reported = time.monotonic()
    src.on_progress = beat  # called by src.read() on every packet and every wait for a frame's time
    try:
        while True:
            frame = src.read()
            if frame is None:
                if not src.stopping:
                    conn.send(Ended(src.end_note(), src.position))
                break
            h, w = frame.image.shape[:2]
            full = frame.full
            slot = None
            if frame.image.nbytes + (full.nbytes if full is not None else 0) <= slots.slot_bytes:
                with free:
                    free.wait_for(lambda: idle or src.stopping, timeout=LEND_WAIT_S)
                    if src.stopping:
                        break
                    slot = idle.pop() if idle else None
            if slot is None:  # larger than a slot (the size changed mid-file), or the parent holds every slot
                conn.send(InlineFrame(src.applied_mark, frame.image, frame.pts, src.corrupt_packets,
                                      src.timestamp_repairs, full))
                beat.sent()
                continue
            with STAGES.measure("slot_write"):
                slots.write(slot, frame.image)
                if full is not None:
                    slots.array(slot, full.data.shape, offset=frame.image.nbytes)[:] = full.data
            conn.send(SlotFrame(src.applied_mark, slot, w, h, frame.pts, src.corrupt_packets, src.timestamp_repairs,
                                full.fmt if full is not None else None, full.size if full is not None else None))
            beat.sent()
            if time.monotonic() - reported > COSTS_EVERY_S:
                reported = time.monotonic()
                conn.send(Costs(STAGES.snapshot()))
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


class _Heartbeat:
    """Child side: Progress on the pipe while no frame goes out - at most every `every` seconds,
    and at once when the wait for a frame's time is long (a still): the parent hears of it before
    its NO SIGNAL limit and its hang limit."""

    def __init__(self, conn, src: VideoSource, every: float):
        self.conn, self.src, self.every = conn, src, every
        self.last = time.monotonic()
        self.announced = False  # the current long wait has been told

    def sent(self) -> None:
        """A frame went out: that is progress enough."""
        self.last = time.monotonic()
        self.announced = False

    def __call__(self, due_in: float) -> None:
        now = time.monotonic()
        if not (due_in >= self.every and not self.announced) and now - self.last < self.every:
            return
        self.conn.send(Progress(self.src.packets, self.src.read_to, due_in))
        self.last = now
        self.announced = due_in > 0


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
            elif msg.command == "full":
                src.full_planes = bool(msg.value)
            elif msg.command in ("pause", "step", "seek", "speed"):
                getattr(src, "set_speed" if msg.command == "speed" else msg.command)(msg.value)  # VideoSource's own
            src.put_mark(msg.number)  # frames read after this carry the number
