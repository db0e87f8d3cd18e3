"""Decoding ahead: a file's frames decoded on a thread of their own, a few frames before they are due.

A file is decoded one frame before its time, on the thread that then waits for that time and
delivers it. Most frames decode in a few milliseconds, but a keyframe costs many times a frame's
interval: in the 4K30 scene-engine clip one decoded in 113 ms (its other frames: median 6 ms)
and the picture froze for 98-123 ms at each one (`endospine bench`, longest raw stall). Decoded
`depth` frames ahead, a slow frame is absorbed by the ones queued before it. A file's frames are
there to be read ahead (a live stream's are not: they arrive when they arrive), so only files
are decoded this way.

    frames = DecodeAhead(source_items(), depth=5, stop=stop_event, waiting=heartbeat)
    for item in frames: ...        # the items in order; an exception the producer met, re-raised
    frames.close()                 # before anyone else touches what the producer reads

With `nice` the producer thread runs below its process's priority (Linux gives each thread its
own nice value). A file source uses +2 (video.AHEAD_NICE): below the display, above the AI worker
(+5). Decoding has the queue's slack; the display's paint has none. At 1080p60 on two cores, 3
rounds alternating against the same code without it: display 59.8 against 59.0 fps, raw latency
p99 28 against 35 ms, overlay age p95 69 against 80 ms (`endospine bench`).

The producer owns what it reads (the demuxer and decoder) until `close()` returns: a seek or a
reopen stops it first. While the consumer waits for an item, `waiting()` is called every `poll_s`
(the decoder child's heartbeat: its thread alone writes to the pipe).
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

from models.core.sched import background

_END = object()


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


class DecodeAhead:
    def __init__(self, items: Iterator, depth: int, stop: threading.Event | None = None,
                 waiting: Callable[[], None] | None = None, poll_s: float = 0.02, nice: int = 0):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._items = items
        self._queue: queue.Queue = queue.Queue(depth)
        self._halt = threading.Event()      # close(): the producer stops
        self._stop = stop                   # the consumer's own stop: a waiting next() ends
        self._waiting = waiting
        self._poll_s = poll_s
        self._nice = nice                   # the producer thread's CPU priority below its process's
        self.niced = False                  # whether that took effect (Linux: a thread has its own nice)
        self._ended = False
        self._thread = threading.Thread(target=self._produce, name="decode-ahead", daemon=True)
        self._thread.start()

    def __iter__(self) -> "DecodeAhead":
        return self

    def __next__(self):
        while not self._ended:
            if self._stop is not None and self._stop.is_set():
                raise StopIteration
            try:
                item = self._queue.get(timeout=self._poll_s)
            except queue.Empty:
                if self._waiting is not None:
                    self._waiting()
                continue
            if item is _END:
                self._ended = True
                break
            if isinstance(item, _Raised):
                self._ended = True
                raise item.exc
            return item
        raise StopIteration

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the producer and wait for it; False if it did not stop within `timeout` (stuck in
        a library call: what it reads must then not be touched)."""
        self._halt.set()
        self._ended = True
        while True:  # a producer blocked on a full queue sees the halt within its put timeout
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _produce(self) -> None:
        self.niced = background(self._nice)  # False for 0: nothing asked
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(_Raised(exc))
            return
        self._put(_END)

    def _put(self, item) -> bool:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
