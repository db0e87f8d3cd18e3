"""A supervised child process with shared-memory frames: the mechanism that the video decoder
(models.core.sources.isolated) and the inference worker (app.ai) share.

    child = Child(entry, (arg, ...), name)   spawns entry(conn, arg, ...) with a pipe to it
    child.send(msg); child.receive(timeout)  typed messages (subclasses of Message) both ways;
                                             ChildGone once the child has exited or the pipe closed
    child.kill(); child.stop(Stop())         end it; child.stopped("the video decoder") says how it ended
    FrameSlots.create(nbytes, count)         equal shared-memory slots for HxWx3 uint8 frames, which
    FrameSlots.attach(name, ...)             the other process attaches by name: write() copies a
                                             frame in, read() copies one out, view() lends it;
    slots.lend(slot, give_back)              a slot's bytes as read-only arrays without a copy; when
                                             the last of them is dropped, give_back(slot) is called

Only the mechanism lives here. What a supervisor does about a child that died, hung or failed
to load (backoff, restarts, what the screen says) stays in its own module.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import weakref
from dataclasses import fields
from multiprocessing import shared_memory
from typing import Any, Callable

import numpy as np


class Message:
    """Base of the messages on a child's pipe (frozen dataclasses): pickled as the class and its
    field values, so a message costs the pipe about what a plain tuple did."""

    __slots__ = ()

    def __reduce__(self):
        return type(self), tuple(getattr(self, f.name) for f in fields(self))


class ChildGone(Exception):
    """The child process has exited, or its pipe is closed."""


def exit_description(exitcode: int | None) -> str:
    """'SIGSEGV' for a process killed by a signal, else 'exit code N'."""
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class Child:
    """A spawned child process and the parent's end of the pipe to it."""

    def __init__(self, entry: Callable[..., None], args: tuple = (), name: str = "endospine-child"):
        """Start entry(conn, *args) in a new (spawned, daemon) process; conn is its end of the pipe."""
        ctx = mp.get_context("spawn")
        self._conn, child_end = ctx.Pipe()
        self._process = ctx.Process(target=entry, args=(child_end, *args), name=name, daemon=True)
        self._process.start()
        child_end.close()
        self.pid: int | None = self._process.pid

    def alive(self) -> bool:
        return self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        """None while running; negative: the signal that ended it."""
        return self._process.exitcode

    def send(self, message: Any) -> None:
        try:
            self._conn.send(message)
        except (OSError, ValueError):  # the pipe is closed: the child is gone
            raise ChildGone from None

    def receive(self, timeout: float) -> Any | None:
        """The next message, None if none came within `timeout`. ChildGone if the pipe is closed,
        or if nothing came and the child is no longer alive."""
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            raise ChildGone from None
        if not self._process.is_alive():
            raise ChildGone
        return None

    def wait(self, timeout: float) -> None:
        """Wait up to `timeout` for the child to exit (and reap it)."""
        self._process.join(timeout)

    def kill(self, wait: float) -> None:
        """SIGKILL if still running, then reap it (waiting at most `wait` seconds)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(wait)

    def stop(self, message: Any, grace: float) -> None:
        """Ask the child to stop with `message`; kill it if it has not exited within `grace`
        seconds; close the pipe."""
        try:
            self.send(message)
        except ChildGone:
            pass
        self._process.join(grace)
        if self._process.is_alive():
            self.kill(grace)
        self._conn.close()

    def stopped(self, what: str) -> str:
        """'the video decoder stopped (SIGSEGV)': how it ended, for a one-line message."""
        return f"{what} stopped ({exit_description(self.exitcode)})"


class FrameSlots:
    """`count` equal slots of shared memory for HxWx3 uint8 frames.

    One process creates them (and unlinks them on close), the other attaches by `name`. Which
    slot may be written or read when is the protocol's business: nothing here locks.
    """

    def __init__(self, shm: shared_memory.SharedMemory, slot_bytes: int, count: int, owner: bool):
        self._shm = shm
        self.slot_bytes = slot_bytes
        self.count = count
        self._owner = owner

    @classmethod
    def create(cls, slot_bytes: int, count: int = 1) -> "FrameSlots":
        slot_bytes = max(1, slot_bytes)
        return cls(shared_memory.SharedMemory(create=True, size=slot_bytes * count), slot_bytes, count, owner=True)

    @classmethod
    def attach(cls, name: str, slot_bytes: int | None = None, count: int = 1) -> "FrameSlots":
        """Slots another process created (slot_bytes None: the whole segment is one slot)."""
        shm = shared_memory.SharedMemory(name=name)
        return cls(shm, slot_bytes if slot_bytes is not None else shm.size // count, count, owner=False)

    @property
    def name(self) -> str:
        return self._shm.name

    def fits(self, width: int, height: int) -> bool:
        return width * height * 3 <= self.slot_bytes

    def view(self, slot: int, width: int, height: int) -> np.ndarray:
        """The frame in `slot`, without a copy: drop it before the slot is rewritten or closed."""
        return self.array(slot, (height, width, 3))

    def array(self, slot: int, shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
        """uint8 `shape` at byte `offset` of `slot`, without a copy (e.g. a frame's planes after
        its picture); it must lie inside the slot."""
        if offset < 0 or offset + int(np.prod(shape)) > self.slot_bytes:
            raise ValueError(f"{shape} at {offset} does not fit a slot of {self.slot_bytes} bytes")
        return np.ndarray(shape, np.uint8, self._shm.buf, offset=slot * self.slot_bytes + offset)

    def lend(self, slot: int, give_back: Callable[[int], None]) -> "Loan":
        """`slot`'s bytes lent out without a copy (see Loan)."""
        return Loan(self, slot, give_back)

    def write(self, slot: int, image: np.ndarray) -> None:
        """Copy an HxWx3 uint8 frame into `slot` (it must fit)."""
        h, w = image.shape[:2]
        self.view(slot, w, h)[:] = image

    def read(self, slot: int, width: int, height: int) -> np.ndarray:
        """A copy of the frame in `slot`, which outlives the slot."""
        return self.view(slot, width, height).copy()

    def close(self) -> None:
        """Detach; the creating process also removes the memory's name. Memory that lent arrays
        still use stays mapped until the last of them is dropped."""
        try:
            self._shm.close()
        except BufferError:  # loans outstanding: unmapped once their arrays are gone (SharedMemory.__del__)
            pass
        if self._owner:
            self._shm.unlink()


class Loan:
    """A slot's bytes lent out: read-only arrays over the shared memory, no copy. Every array made
    by `array()` keeps the loan alive (its numpy base); once the last is dropped, in whatever
    thread, `give_back(slot)` is called (it must only queue the slot: the owner of the pipe sends
    it back). The mapping stays while any of the arrays lives, even after the slots are closed,
    so a frame still on screen never points at unmapped memory.

    Why: copying each 1080p frame out of its slot cost the display 1.5 ms of CPU a frame (6 MB),
    the whole slot protocol's cost at 60 fps; the frame is only read, and soon dropped.
    """

    lent = True  # what Frame.own() looks for on an array's base

    def __init__(self, slots: FrameSlots, slot: int, give_back: Callable[[int], None]):
        self.slot = slot
        start = slot * slots.slot_bytes
        # a memoryview of the slot holds an export of the mapping, which then cannot be unmapped
        # (numpy alone would not: it lets go of a buffer's export once it has the address)
        self.name, self.start = slots.name, start  # the segment, and where the slot begins in it
        self._memory = slots._shm.buf[start:start + slots.slot_bytes]
        self._whole = np.frombuffer(self._memory, np.uint8)
        # and the SharedMemory object, released after the two above (attributes go in this order),
        # so that its own close() at garbage collection finds no export left
        self._shm = slots._shm
        weakref.finalize(self, give_back, slot)

    def array(self, shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
        """Read-only uint8 `shape` at byte `offset` of the slot, without a copy."""
        n = int(np.prod(shape))
        if offset < 0 or offset + n > self._whole.size:
            raise ValueError(f"{shape} at {offset} does not fit a slot of {self._whole.size} bytes")
        return np.asarray(_Lent(self, self._whole.ctypes.data + offset, shape))


def lent_from(array: np.ndarray) -> tuple[str, int] | None:
    """(shared-memory name, byte offset in it) of a C-contiguous array lent from frame slots, so
    that a third process can read it in place (attach the name, read at the offset); None for
    any other array. The loan stays out while `array` lives."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    if not isinstance(base, _Lent) or not array.flags.c_contiguous:
        return None
    loan = base.loan
    return loan.name, loan.start + array.ctypes.data - loan._whole.ctypes.data


class _Lent:
    """What a lent array's numpy base is: the loan (kept alive) and the address of its bytes."""

    lent = True

    def __init__(self, loan: Loan, address: int, shape: tuple[int, ...]):
        self.loan = loan
        self.__array_interface__ = {"version": 3, "shape": tuple(shape), "typestr": "|u1",
                                    "data": (address, True)}  # True: read-only


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # the largest glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
_TRIM_THRESHOLD = 256 << 20


def steady_memory() -> bool:
    """Let freed frame-sized buffers be reused instead of handed back to the kernel (glibc only).

    By default glibc maps large allocations on their own and unmaps them when freed (above a
    threshold that follows the largest freed), and gives the heap's free top back to the kernel
    once it exceeds twice that: when a few pictures are alive at once and then freed, their
    pages go back, and the next pictures fault in fresh ones, a fault per 4 KB. Measured at
    1080p60: the decoder child took 65,500 minor faults a second (about 4.5 MB of fresh pages a
    frame; its colour conversion 4.7 ms of CPU a frame, 1.5 ms without) and the display's GUI
    thread 26,300. With the mapping threshold at its largest (32 MB: a 4K RGB picture is 25 MB)
    and trimming only above 256 MB, those buffers come from the heap and are reused; the memory
    kept is what the process's busiest moment needed. Returns False where this is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def single_threaded_opencv() -> None:
    """OpenCV on one thread in this process (the display and its children). Its thread pool hands
    each resize to threads that then wait for work: with the display, the decoder and the AI worker
    sharing two cores, that costs more than it saves (a 1080p frame resized to the view: 3.5 ms of
    CPU on one thread against 4.6 ms on two, measured; the worker's frame: 23.7 against 26.8 ms)."""
    import cv2

    cv2.setNumThreads(1)
