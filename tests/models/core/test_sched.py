"""Work that can wait runs at a lower priority on its own thread (models/core/sched.py)."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from models.core import sched


def _in_thread(fn):
    """fn() run on a fresh thread (a nice value set there stays there); its return value."""
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
@pytest.mark.unit
def test_background_lowers_its_own_thread_and_what_that_thread_starts():
    mine = _nice()

    def lowered():
        took = sched.background(3)
        return took, _nice(), _in_thread(_nice)

    assert _in_thread(lowered) == (True, min(19, mine + 3), min(19, mine + 3))
    assert _nice() == mine  # the calling thread keeps its own


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
@pytest.mark.unit
def test_background_stops_at_the_lowest_priority():
    assert _in_thread(lambda: (sched.background(40), _nice())) == (True, 19)


@pytest.mark.unit
def test_background_of_nothing_changes_nothing():
    assert _in_thread(lambda: (sched.background(0), _nice())) == (False, _nice())
