"""The inference worker process: newest frame in shared memory -> checked mask over the pipe.

Runs in its own (spawned) process because Paddle Inference holds the GIL for a whole
predictor.run(). The messages and WorkerConfig are in app/ai/protocol.py; app/ai/supervisor.py's
InferenceClient starts and supervises this process. Every output goes through the post-processing
stage (models.core.runtime.postprocess: smoothing, thresholds, mask size, output checks) before it
is sent, so a broken runtime cannot paint a misleading overlay; `endospine render` runs the same
per-frame path (segment_frame), so a rendered video shows the masks painted live.
"""
from __future__ import annotations

import importlib
import os

from app.ai.protocol import Failed, FrameError, Infer, MaskResult, Ready, Stop, WorkerConfig
from models.core.child import FrameSlots, single_threaded_opencv, steady_memory
from models.core.errors import one_line
from models.core.runtime.postprocess import PostStage, segment_frame


def worker_main(conn, cfg: WorkerConfig) -> None:
    """Entry point of the worker process (spawned)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the main process's to handle
    single_threaded_opencv()
    steady_memory()
    if cfg.nice:
        try:
            os.nice(cfg.nice)  # the raw video path first (WorkerConfig.nice)
        except OSError:
            pass  # not permitted here: run at the display's priority
    try:
        module, _, name = cfg.runtime.partition(":")
        runtime = getattr(importlib.import_module(module), name)(cfg.model_dir, cfg.settings)
        stage = PostStage.for_runtime(runtime, cfg.post)  # with the model's trust gate, if it has one
    except Exception as exc:  # noqa: BLE001 - any load failure is reported as one line
        conn.send(Failed(one_line(exc)))
        return
    conn.send(Ready(runtime.model_id))
    slots: FrameSlots | None = None
    try:
        while True:
            msg: Infer | Stop = conn.recv()
            if isinstance(msg, Stop):
                break
            frame_id, width, height = msg.frame_id, msg.width, msg.height
            if slots is None or slots.name != msg.shm_name:
                if slots is not None:
                    slots.close()
                slots = FrameSlots.attach(msg.shm_name)
            image = slots.array(0, (height, width, 3), msg.offset)  # in place: the supervisor waits for the answer
            try:
                mask, box, timings = segment_frame(runtime, stage, image, frame_id)
            except Exception as exc:  # noqa: BLE001 - a bad frame or a bad output: report, keep serving
                del image
                conn.send(FrameError(frame_id, one_line(exc)))
                continue
            del image
            conn.send(MaskResult(frame_id, mask, box, timings, stage.score, stage.unsure))
    except (EOFError, OSError):
        pass  # the main process went away
    finally:
        if slots is not None:
            slots.close()
