"""Runtimes for the inference worker that misbehave on cue (imported by the spawned worker).

model_dir is a spec string: "mode=crash,at=3,delay=0.01,once=/tmp/marker". Modes: ok, crash
(os.abort), segv, hang, nan (raises like the real runtime on non-finite output), failload.
With once=PATH the fault happens in one worker process only (the marker file remembers it), so
a restarted worker behaves.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np

from models.classes import default_classes
from models.errors import EndoSpineError
from models.preprocess import Postprocess


class FakeRuntime:
    def __init__(self, spec: str, settings=None):
        opts = dict(kv.split("=") for kv in spec.split(",") if kv)
        self.mode = opts.get("mode", "ok")
        self.at = int(opts.get("at", 0))
        self.delay = float(opts.get("delay", 0.0))
        self.once = opts.get("once")
        if self.mode == "failload":
            raise EndoSpineError(f"{spec}: SHA-256 mismatch (refusing a modified model)")
        self.classes = default_classes()
        self.post = Postprocess()
        self.model_id = f"fake-{self.mode}"
        self.calls = 0

    def labels(self, probs, box, size, post=None):
        return (post or self.post).labels(probs, size)

    def probabilities(self, image: np.ndarray):
        self.calls += 1
        if self.calls >= self.at and self._may_fault():
            if self.mode == "crash":
                os.abort()
            if self.mode == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            if self.mode == "hang":
                time.sleep(3600)
            if self.mode == "nan":
                raise EndoSpineError("model produced non-finite probabilities")
        if self.delay:
            time.sleep(self.delay)
        h, w = image.shape[:2]
        # class = mean brightness quartile, so a test can check the mask belongs to its frame
        cls = min(3, int(image.mean()) // 64)
        probs = np.zeros((4, 8, 8), np.float32)
        probs[cls] = 1.0
        return probs, (0, 0, w, h), {"preprocess": 0.1, "predict": self.delay * 1e3, "postprocess": 0.0}

    def _may_fault(self) -> bool:
        if not self.once:
            return True
        if os.path.exists(self.once):
            return False
        with open(self.once, "w") as f:
            f.write(str(os.getpid()))
        return True
