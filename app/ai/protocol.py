"""What the inference supervisor (app/ai/supervisor.py) and its worker process (app/ai/worker.py)
exchange: the worker's configuration, given at spawn, and the messages on their pipe.

    worker -> main   Ready(model_id) | Failed(message)        once, after loading the model
    main   -> worker Infer(shm_name, frame_id, width, height, offset)  the frame is in shared memory:
                     the supervisor's own slot, or, for a frame lent from the decoder child's slots,
                     that slot itself (read in place; the supervisor holds the frame until the answer)
    worker -> main   MaskResult(frame_id, mask, box, timings, score, unsure) | FrameError(frame_id, message)
                     every output is checked in the worker before it is sent
    main   -> worker Stop()

Only the supervisor touches the shared frame while no Infer is outstanding, and the worker only
while one is, so no frame is ever read half-written. The worker imports this module and no
other of app.ai, so the supervisor can import the worker's entry point without a cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.core.child import Message
from models.core.runtime.backends import RuntimeSettings
from models.core.runtime.postprocess import PostSettings
from models.core.timing import DEFAULT_TIMING, Timing


@dataclass(frozen=True)
class WorkerConfig:
    model_dir: str
    settings: RuntimeSettings = field(default_factory=RuntimeSettings)
    runtime: str = "models.core.runtime.backends:SegmentationRuntime"  # "module:Class"; tests inject faulty ones
    post: PostSettings = field(default_factory=PostSettings)  # smoothing, thresholds, mask size
    max_bad_outputs: int = 10        # rejected outputs in a row: restart the worker like a crash
    timing: Timing = DEFAULT_TIMING  # load and hang timeouts, DELAYED, failure window, backoff (ai_*)
    nice: int = 5                    # the worker's CPU priority below the display's and the decoder's: when
                                     # the cores run short, the raw video keeps its rate and the overlay slows


# -- worker -> main ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Ready(Message):
    model_id: str


@dataclass(frozen=True)
class Failed(Message):
    message: str                 # why the model could not be loaded, one line


@dataclass(frozen=True)
class MaskResult(Message):
    frame_id: int
    mask: np.ndarray             # HxW uint8 class ids at mask size (models.core.types.Result.mask)
    box: tuple[int, int, int, int]
    timings: dict[str, float]    # ms: preprocess, predict, postprocess
    score: float | None = None   # the gate's frame score (None: the model has no gate)
    unsure: bool = False         # the gate's verdict after hysteresis (models.core.types.Result)


@dataclass(frozen=True)
class FrameError(Message):
    frame_id: int
    message: str                 # the runtime failed on this frame, or its output was refused


# -- main -> worker ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Infer(Message):
    shm_name: str
    frame_id: int
    width: int
    height: int
    offset: int = 0              # where the HxWx3 frame starts in the shared memory


@dataclass(frozen=True)
class Stop(Message):
    pass
