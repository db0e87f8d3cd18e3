"""Video files decoded in a child process, so that a decoder crash cannot take the display down.

FFmpeg parses hostile bytes in C: a crafted or damaged file can crash it (SIGSEGV), and a crash
in the display's own process would blank the OR monitor. IsolatedVideoSource is a VideoSource
to the rest of the app (same replay controls, same pacing, same errors) whose decoding runs in
a supervised child process:

    child:  VideoSource(file) -> each frame, paced by its timestamps -> one of SLOTS shared-memory
            slots -> ("frame", slot, w, h, pts, ...) on the pipe
    parent: read() copies the slot out (frames are immutable and outlive the slot), frees it
            ("free", slot), and forwards pause/step/seek/speed/loop as messages on the same pipe.

If the child dies, read() raises EndoSpineError naming the file, the position and the signal;
the capture thread turns that into a message on the screen and the display stays up. Only the
capture thread talks on the pipe (controls from the GUI go through the command queue), so the
GUI never waits for the decoder.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from models.core.errors import EndoSpineError
from models.core.types import Frame

from models.core.sources.file_checks import clock
from models.core.sources.video import VideoSource

SLOTS = 3
OPEN_TIMEOUT_S = 30.0
HANG_TIMEOUT_S = 5.0  # playing, and nothing from the decoder for this long (or 3 frame intervals): hung


def _signal_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class IsolatedVideoSource(VideoSource):
    """A video file played by a decoder child process (files only; streams stay in-process)."""

    def __init__(self, target: str | Path, loop: bool = False, realtime: bool = True,
                 hang_timeout: float = HANG_TIMEOUT_S):
        super().__init__(target, loop=loop, realtime=realtime)
        self.hang_timeout = hang_timeout
        self._heard = 0.0  # monotonic time of the last message from the child (or of a resume)
        if self.is_stream:
            raise ValueError("IsolatedVideoSource plays files; streams use VideoSource")
        self._proc = None
        self._conn = None
        self._shm: shared_memory.SharedMemory | None = None
        self._slot_bytes = 0
        self._end_note = ""
        self._sent = 0          # commands sent to the child, numbered
        self._valid_from = 0    # frames the child tagged with an older number predate a seek or pause
        self.decoder_pid: int | None = None

    @property
    def loop(self) -> bool:
        return self._loop

    @loop.setter
    def loop(self, on: bool) -> None:  # the replay bar sets it directly; the child must follow
        self._loop = bool(on)
        commands = getattr(self, "_commands", None)
        if commands is not None:
            commands.put(("loop", self._loop))

    def open(self) -> None:
        path = Path(self.target)
        if not path.is_file():
            raise EndoSpineError(f"{path}: video file not found")
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=decoder_main, args=(child, self.target, self._loop, self.realtime),
                                 name="endospine-decoder", daemon=True)
        self._proc.start()
        child.close()
        self.decoder_pid = self._proc.pid
        msg = self._receive(OPEN_TIMEOUT_S, "while opening the file")
        if msg is None or msg[0] != "opened":
            error = msg[1] if msg is not None and msg[0] == "error" else f"{self.target}: the decoder did not start"
            self.close()
            raise EndoSpineError(error)
        _, self.size, self.fps, self.duration, self.truncated = msg
        self._slot_bytes = max(1, self.size[0] * self.size[1] * 3)
        self._shm = shared_memory.SharedMemory(create=True, size=self._slot_bytes * SLOTS)
        self._conn.send(("shm", self._shm.name, self._slot_bytes))  # the one message that is not (cmd, value, n)
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
            kind = msg[0]
            if kind == "frame":
                _, mark, slot, w, h, pts, self.corrupt_packets, self.timestamp_repairs = msg
                image = None
                if mark >= self._valid_from:
                    view = np.ndarray((h, w, 3), np.uint8, self._shm.buf, offset=slot * self._slot_bytes)
                    image = view.copy()  # the frame outlives the slot
                    del view
                self._send(("free", slot, 0))
                if image is not None:
                    return self._delivered(image, pts)
            elif kind == "inline":  # a frame larger than a slot (the size changed mid-file)
                _, mark, image, pts, self.corrupt_packets, self.timestamp_repairs = msg
                if mark >= self._valid_from:
                    return self._delivered(image, pts)
            elif kind == "end":
                _, self._end_note, self.position = msg
                return None
            elif kind == "failed":
                raise EndoSpineError(msg[1])
        return None

    def end_note(self) -> str:
        return self._end_note

    def close(self) -> None:
        self._stop.set()
        if self._conn is not None:
            try:
                self._conn.send(("stop", None, 0))
            except (OSError, ValueError):
                pass
        if self._proc is not None:
            self._proc.join(1.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(1.0)
            self._proc = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._shm is not None:
            self._shm.close()
            self._shm.unlink()
            self._shm = None

    # -- internals (capture thread) ---------------------------------------------------------
    def _delivered(self, image: np.ndarray, pts: float) -> Frame:
        self.position = pts
        return self._frame(image, pts)

    def _check_hung(self) -> None:
        """Playing and silent too long: FFmpeg is stuck on the file. Kill the child and say so."""
        limit = max(self.hang_timeout, 3.0 / (self.fps * self.speed))
        if self.paused or time.monotonic() - self._heard < limit:
            return
        self._proc.kill()
        self._proc.join(1.0)
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
            self._send((cmd, value, self._sent))

    def _receive(self, timeout: float, when: str):
        """The next message from the child, None if none came in `timeout`; EndoSpineError if it died."""
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            pass
        else:
            if self._proc.is_alive():
                return None
        self._died(when)

    def _send(self, msg: tuple) -> None:
        try:
            self._conn.send(msg)
        except (OSError, ValueError):  # the child is gone: say how
            self._died(f"at {clock(self.position)}")

    def _died(self, when: str) -> None:
        self._proc.join(1.0)
        raise EndoSpineError(f"{self.name}: the video decoder stopped ({_signal_name(self._proc.exitcode)}) "
                             f"{when}; the display is unaffected, the file may be damaged")


def decoder_main(conn, target: str, loop: bool, realtime: bool) -> None:
    """The child process: decode `target` with VideoSource, frames into the parent's slots."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the display's to handle
    src = VideoSource(target, loop=loop, realtime=realtime)
    try:
        src.open()
    except EndoSpineError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("opened", src.size, src.fps, src.duration, src.truncated))
    kind, name, slot_bytes = conn.recv()
    shm = shared_memory.SharedMemory(name=name)
    free = threading.Condition()
    slots = set(range(SLOTS))
    listener = threading.Thread(target=_listen, args=(conn, src, free, slots), daemon=True)
    listener.start()
    try:
        while True:
            frame = src.read()
            if frame is None:
                if not src.stopping:
                    conn.send(("end", src.end_note(), src.position))
                break
            h, w = frame.image.shape[:2]
            counts = (src.corrupt_packets, src.timestamp_repairs)
            if w * h * 3 > slot_bytes:
                conn.send(("inline", src.applied_mark, frame.image, frame.pts, *counts))
                continue
            with free:
                free.wait_for(lambda: slots or src.stopping)
                if src.stopping:
                    break
                slot = slots.pop()
            np.ndarray((h, w, 3), np.uint8, shm.buf, offset=slot * slot_bytes)[:] = frame.image
            conn.send(("frame", src.applied_mark, slot, w, h, frame.pts, *counts))
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        try:
            conn.send(("failed", f"{target}: decoding failed: {type(exc).__name__}: {exc}"))
        except OSError:
            pass  # the parent is gone
    finally:
        src.interrupt()
        listener.join(2.0)
        src.close()
        shm.close()


def _listen(conn, src: VideoSource, free: threading.Condition, slots: set) -> None:
    """Child side: the parent's messages, until it says stop or goes away."""
    while True:
        try:
            cmd, value, number = conn.recv()
        except (EOFError, OSError):
            cmd, value, number = "stop", None, 0
        if cmd == "free":
            with free:
                slots.add(value)
                free.notify_all()
        elif cmd == "stop":
            src.interrupt()
            with free:
                free.notify_all()
            return
        else:
            if cmd == "loop":
                src.loop = value
            elif cmd in ("pause", "step", "seek", "speed"):
                getattr(src, "set_speed" if cmd == "speed" else cmd)(value)  # VideoSource's own controls
            src.put_mark(number)  # frames read after this carry the number
