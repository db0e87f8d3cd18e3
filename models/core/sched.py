"""Who waits when two cores run short: the CPU priority of the live path's threads (Linux).

Nice values set each thread's share of the CPU: the display at 0, a file's decode-ahead thread
at +2, the AI worker and the recorder's writer at +5. A share does not say how soon a thread runs
when it wakes. Linux 6.12 and later (the EEVDF scheduler) also take a time slice requested per
thread (`sched_setattr`'s `sched_runtime` for an ordinary thread): a thread that asks for a shorter
slice than the running one's preempts it when it wakes, and its share stays its nice value's. The
display's GUI thread asks for DISPLAY_SLICE_NS (`thread_slice`), so the paint of a frame starts when
the frame's timer fires rather than after the AI worker's or the decoder's slice (measured in
docs/PERFORMANCE.md: 1080p60 display 58.9 against 58.4 fps, raw latency p99 32 against 34 ms,
medians of 8 runs each, alternating).

A thread or process inherits the slice of the thread that starts it, across exec too, so work
that may wait asks for the kernel's default back: the AI worker and the decoder child at their
start, the recorder's writer and the decode-ahead thread with their nice value (`background`).

Elsewhere (other systems, other architectures, kernels before 6.12, which accept the request and
ignore it) nothing changes and the functions return False.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading

DISPLAY_SLICE_NS = 500_000   # the display's GUI thread; the kernel's default was 1.4 ms here
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}  # (sched_setattr, sched_getattr)
_ORDINARY = {0, 3}  # SCHED_OTHER, SCHED_BATCH: the policies a slice request applies to


class _SchedAttr(ctypes.Structure):  # struct sched_attr, its first version (48 bytes)
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
                ("nice", ctypes.c_int32), ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64)]


def _calls():
    """(libc, setattr number, getattr number), or None where there is no such call."""
    numbers = _SYSCALLS.get(platform.machine()) if sys.platform.startswith("linux") else None
    if numbers is None:
        return None
    try:
        return ctypes.CDLL(None, use_errno=True), *numbers
    except OSError:
        return None


def _get(libc, getattr_nr: int, tid: int = 0) -> _SchedAttr | None:
    attr = _SchedAttr()
    if libc.syscall(getattr_nr, tid, ctypes.byref(attr), ctypes.sizeof(attr), 0) != 0:
        return None
    return attr


def slice_of(tid: int = 0) -> int | None:
    """The time slice a thread (0: the calling one) runs with, in nanoseconds; None where it
    cannot be read (0 on kernels that keep none for ordinary threads)."""
    calls = _calls()
    attr = _get(calls[0], calls[2], tid) if calls else None
    return attr.runtime if attr is not None else None


def thread_slice(ns: int | None) -> bool:
    """Ask for a time slice of `ns` nanoseconds for the calling thread (None: the kernel's
    default), keeping its policy and nice value. True if the kernel took it; False where it cannot
    (see the module doc), or for a thread under a real-time policy, which is left as it is."""
    calls = _calls()
    if calls is None:
        return False
    libc, set_nr, get_nr = calls
    attr = _get(libc, get_nr)
    if attr is None or attr.policy not in _ORDINARY:
        return False
    attr.size, attr.flags, attr.runtime = ctypes.sizeof(attr), 0, ns or 0
    if libc.syscall(set_nr, 0, ctypes.byref(attr), 0) != 0:
        return False
    if ns is None:
        return True
    after = _get(libc, get_nr)
    return after is not None and after.runtime == ns  # older kernels accept the request and ignore it


def background(by: int) -> bool:
    """The calling thread's nice value raised by `by` (at most 19) and its slice the kernel's
    default: work that can wait (Linux gives each thread its own nice value; elsewhere this would
    lower the whole process, so it is not done). True if the nice value took effect."""
    if by <= 0 or not sys.platform.startswith("linux"):
        return False
    thread_slice(None)
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
        return True
    except (OSError, AttributeError):
        return False
