"""The live path's CPU priorities: the display's short time slice, and work that can wait asking
for the kernel's default back (models/core/sched.py). Linux 6.12+ keeps a slice per thread;
elsewhere the functions say they did nothing."""
from __future__ import annotations

import os
import threading

import pytest

from models.core import sched

SUPPORTED = sched._calls() is not None and bool(sched.slice_of())  # a kernel that keeps per-thread slices
needs_slices = pytest.mark.skipif(not SUPPORTED, reason="no per-thread time slices here (Linux 6.12+)")


def _in_thread(fn):
    """fn() run on a fresh thread (a slice or nice value set there stays there); its return value."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@needs_slices
@pytest.mark.unit
def test_a_thread_gets_the_slice_it_asks_for_and_the_default_back():
    default = _in_thread(sched.slice_of)

    def ask():
        asked = sched.thread_slice(700_000), sched.slice_of()
        back = sched.thread_slice(None), sched.slice_of()
        return asked, back

    assert _in_thread(ask) == ((True, 700_000), (True, default))


@needs_slices
@pytest.mark.unit
def test_asking_for_a_slice_keeps_the_threads_nice_value():
    def ask():
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, _nice() + 3))
        before = _nice()
        return before, sched.thread_slice(sched.DISPLAY_SLICE_NS), _nice(), sched.slice_of()

    before, took, after, got = _in_thread(ask)
    assert took and after == before and got == sched.DISPLAY_SLICE_NS


@needs_slices
@pytest.mark.unit
def test_a_thread_inherits_its_starters_slice_until_it_goes_to_the_background():
    default = _in_thread(sched.slice_of)

    def starter():
        sched.thread_slice(sched.DISPLAY_SLICE_NS)
        mine = _nice()
        inherited = _in_thread(sched.slice_of)
        return mine, inherited, _in_thread(lambda: (sched.background(2), _nice(), sched.slice_of()))

    mine, inherited, (niced, nice, after) = _in_thread(starter)
    assert inherited == sched.DISPLAY_SLICE_NS
    assert niced and nice == min(19, mine + 2) and after == default


@pytest.mark.unit
def test_background_of_nothing_changes_nothing():
    assert _in_thread(lambda: (sched.background(0), _nice())) == (False, _nice())


@needs_slices
@pytest.mark.slow
def test_the_decoder_child_takes_the_default_slice_back(small_video):
    from models.core.sources.isolated import IsolatedVideoSource

    default = _in_thread(sched.slice_of)

    def open_from_a_short_slice():
        sched.thread_slice(sched.DISPLAY_SLICE_NS)  # as the display's GUI thread runs
        with IsolatedVideoSource(small_video, realtime=False) as src:
            assert src.read() is not None
            return sched.slice_of(src.decoder_pid)

    assert _in_thread(open_from_a_short_slice) == default
