"""Who waits when two cores run short: the CPU priority of the live path's threads (Linux).

Nice values set each thread's share of the CPU: the display at 0, a file's decode-ahead thread at
+2, the AI worker and the recorder's writer at +5 (the worker's whole process, `WorkerConfig.nice`;
the other two as threads, with `background`). Tried and not kept: the display's GUI thread asking
Linux 6.12+ for a shorter time slice, and the worker under SCHED_BATCH (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import os
import sys
import threading


def background(by: int) -> bool:
    """The calling thread's nice value raised by `by` (at most 19): work that can wait. Linux
    gives each thread its own nice value, and the threads it starts inherit it; elsewhere this
    would lower the whole process, so it is not done. True if it took effect."""
    if by <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
        return True
    except (OSError, AttributeError):
        return False
