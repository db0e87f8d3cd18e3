"""A runtime for the inference worker that misbehaves on cue (imported by the spawned worker).

Used by the tests and by `endospine faults` to inject faults behind the real worker interface
(WorkerConfig(runtime="app.diagnostics.fault_runtime:FaultRuntime")); the app never loads it otherwise.

model_dir is a spec string: "mode=crash,at=3,delay=0.01,once=/tmp/marker,count=2". Modes:
  ok        well-formed output
  crash     os.abort() in probabilities()
  segv      SIGSEGV sent to itself
  hang      sleeps for an hour in probabilities()
  nan       returns probabilities containing NaN (the worker must catch it, not the fake)
  inf       returns probabilities containing +inf
  shape     returns probabilities with the wrong number of classes
  box       returns a crop box reaching outside the frame
  mask      reports a view whose lens maps onto a grid of the wrong size: the labels come out
            of the wrong size (the worker's post-processing stage must refuse them)
  failload  refuses to load
The fault starts at call `at` (1-based). count=N: only N faulty calls, then well-formed again.
With once=PATH the fault happens in one worker process only (the marker file remembers it and
records when the fault happened, time.monotonic() of the faulting process: the same clock as the
test's on Linux), so a restarted worker behaves.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np

from models.core.classes import default_classes
from models.core.errors import EndoSpineError
from models.core.runtime.frameview import View


class FaultRuntime:
    """Same interface as models.core.runtime.backends.SegmentationRuntime as the worker uses it:
    classes, model_id, probabilities(image) and view (where the last frame's input came from)."""

    def __init__(self, spec: str, settings=None):
        opts = dict(kv.split("=") for kv in spec.split(",") if kv)
        self.mode = opts.get("mode", "ok")
        self.at = int(opts.get("at", 0))
        self.count = int(opts["count"]) if "count" in opts else None
        self.delay = float(opts.get("delay", 0.0))
        self.once = opts.get("once")
        if self.mode == "failload":
            raise EndoSpineError(f"{spec}: SHA-256 mismatch (refusing a modified model)")
        self.classes = default_classes()
        self.view: View | None = None
        self.model_id = f"fake-{self.mode}"
        self.calls = 0
        self._faulty = False  # the current call is a faulty one

    def probabilities(self, image: np.ndarray):
        self.calls += 1
        in_window = self.calls >= self.at and (self.count is None or self.calls < self.at + self.count)
        self._faulty = in_window and self._may_fault()
        if self._faulty:
            if self.mode == "crash":
                os.abort()
            if self.mode == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            if self.mode == "hang":
                time.sleep(3600)
        if self.delay:
            time.sleep(self.delay)
        h, w = image.shape[:2]
        # class = mean brightness quartile, so a test can check the mask belongs to its frame
        cls = min(3, int(image.mean()) // 64)
        n = len(self.classes) + (1 if self._faulty and self.mode == "shape" else 0)
        probs = np.zeros((n, 8, 8), np.float32)
        probs[cls] = 1.0
        box = (0, 0, w, h)
        if self._faulty:
            if self.mode == "nan":
                probs[cls, 2:5, 2:5] = np.nan
            elif self.mode == "inf":
                probs[cls, 0, 0] = np.inf
            elif self.mode == "box":
                box = (w // 2, 0, w, h)
        self.view = View(box, box, None, _WrongGridLens()) if self._faulty and self.mode == "mask" else None
        return probs, box, {"preprocess": 0.1, "predict": self.delay * 1e3, "postprocess": 0.0}

    def _may_fault(self) -> bool:
        if not self.once:
            return True
        if os.path.exists(self.once):
            return False
        with open(self.once, "w") as f:
            f.write(f"{os.getpid()} {time.monotonic():.6f}\n")
        return True


class _WrongGridLens:
    """A lens (models.core.optics.lens.Undistorter, as far as the post-processing uses one) whose
    sampling grid has the wrong size."""

    def grid_to_undistorted(self, box, size):
        h, w = max(1, size[1] // 2), size[0] + 3
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        return xs, ys
