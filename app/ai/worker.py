"""The inference worker process: newest frame in shared memory -> checked mask over the pipe.

Runs in its own (spawned) process because Paddle Inference holds the GIL for a whole
predictor.run() (DESIGN.md). The protocol is in app/ai/supervisor.py, whose InferenceClient starts
and supervises this process. Every output is checked here (models.core.runtime.checks) before it is sent,
so a broken runtime cannot paint a misleading overlay.
"""
from __future__ import annotations

import importlib
import time
from multiprocessing import shared_memory
from typing import TYPE_CHECKING

import numpy as np

from models.core.runtime.checks import check_mask, check_probabilities

if TYPE_CHECKING:
    from app.ai.supervisor import WorkerConfig


def mask_size(box: tuple[int, int, int, int], max_side: int) -> tuple[int, int]:
    """(w, h) of the mask for a crop box: the box's size, scaled down to at most max_side."""
    _, _, w, h = box
    s = min(1.0, max_side / max(w, h))
    return max(1, round(w * s)), max(1, round(h * s))


class TemporalSmoother:
    """Exponential smoothing of class probabilities over consecutive frames.

    Restarts when frames are not consecutive enough (a seek, a stall, a new source) or the crop
    changes, so a mask never carries another scene's probabilities.
    """

    def __init__(self, weight: float, max_gap: int = 5):
        self.weight = weight
        self.max_gap = max_gap
        self._prev: np.ndarray | None = None
        self._key: tuple | None = None
        self._last_id = -(1 << 30)

    def __call__(self, frame_id: int, probs: np.ndarray, box) -> np.ndarray:
        key = (probs.shape, tuple(box))
        fresh = (self.weight <= 0 or self._prev is None or key != self._key
                 or not 0 < frame_id - self._last_id <= self.max_gap)
        out = probs if fresh else (1 - self.weight) * probs + self.weight * self._prev
        self._prev, self._key, self._last_id = out, key, frame_id
        return out


def worker_main(conn, cfg: WorkerConfig) -> None:
    """Entry point of the worker process (spawned)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the main process's to handle
    try:
        module, _, name = cfg.runtime.partition(":")
        runtime = getattr(importlib.import_module(module), name)(cfg.model_dir, cfg.settings)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported as one line
        conn.send(("failed", _one_line(exc)))
        return
    conn.send(("ready", runtime.model_id))
    smoother = TemporalSmoother(cfg.smoothing)
    post = runtime.post
    n_classes = len(runtime.classes)
    if cfg.thresholds:
        from models.core.runtime.preprocess import Postprocess

        post = Postprocess(ignore_index=post.ignore_index, thresholds=dict(cfg.thresholds))
    shm = None
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "stop":
                break
            _, shm_name, frame_id, width, height = msg
            if shm is None or shm.name != shm_name:
                if shm is not None:
                    shm.close()
                shm = shared_memory.SharedMemory(name=shm_name)
            image = np.ndarray((height, width, 3), np.uint8, shm.buf)
            try:
                probs, box, timings = runtime.probabilities(image)
                check_probabilities(probs, box, n_classes, (width, height))  # before the smoother keeps it
                t0 = time.perf_counter()
                probs = smoother(frame_id, probs, box)
                size = mask_size(box, cfg.mask_max_side)
                mask = runtime.labels(probs, box, size, post)
                check_mask(mask, size, n_classes, post.ignore_index)
                timings["postprocess"] = (time.perf_counter() - t0) * 1e3
            except Exception as exc:  # noqa: BLE001 - a bad frame or a bad output: report, keep serving
                del image
                conn.send(("error", frame_id, _one_line(exc)))
                continue
            del image
            conn.send(("result", frame_id, mask, box, timings))
    except (EOFError, OSError):
        pass  # the main process went away
    finally:
        if shm is not None:
            shm.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
