"""`endospine bench`: the live pipeline with the real window (offscreen), then a naive loop.

Live: the path `endospine run` uses (a file decoded in its decoder child process, a capture card
read by the capture thread; `decoder="inprocess"` decodes a file in this process instead, for
comparison) + inference worker process + Qt display at the source's pace, measured at paint time
by a PaintProbe. Frames larger than `view_max` are shown and segmented as a view of that size
(models/core/picture.py), as `run` does; None keeps every frame at its own size. Naive: the same
frames through one thread that decodes, infers, blends and paints in sequence, with the same
model. Both run in this process, one after the other, so their figures compare on the same
machine state.

Where the time goes (`stages`): per-frame stages in the process and thread that runs them, mean
wall and thread-CPU milliseconds per call (models/core/costs.py): the decoder's decode, convert
(to RGB, scaled to the view) and slot_write (into shared memory); the display's slot_read (the
copy out of it), tick (the decision), view_resize (the frame scaled to the widget), paint (the
whole paint event), overlay_render (a new mask to RGBA), overlay_resize (a mask scaled to the
widget, once per mask) and ai_send (the frame into the worker's
shared memory); the worker's preprocess, predict and postprocess (from each result's timings).
A stage's CPU is its own thread's: work a library hands to threads of its own (Qt's image pool,
swscale's slice threads before the decoder kept one context on one thread) is not in it, but is
in `process_cpu`.
`process_cpu`: each process's CPU time while measuring, in cores and in milliseconds per frame
displayed.

The trust gate: of the results the live part received while measuring, the share the gate called
unsure (`gated_share`, the overlay hidden as AI UNSURE) and the median gate score
(`gate_score_median`); both null for a model without a gate (app.stats.GateTally).

`record`: the live part also records (the raw video, the masks painted and the CSV, as the R key
does, through the profile's de-identification and, if the profile says so, encryption) for the
measured seconds into a temporary folder, deleted afterwards; `recording` reports frames written
and dropped, and masks kept.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from PyQt6.QtCore import QEventLoop, QTimer
from PyQt6.QtGui import QImage, QPainter
from PyQt6.QtWidgets import QApplication

from app.ai.supervisor import WorkerConfig, worker_config
from app.compose import build_live, open_source_stage, timing_of
from app.stats import GateTally, PaintProbe, percentiles
from app.ui.main_window import MainWindow
from app.ui.video_view import VideoView
from models.core.child import single_threaded_opencv, steady_memory
from models.core.costs import STAGES, per_call, process_cpu_s
from models.core.overlay import OverlayStyle, composite, render_overlay
from models.core.picture import DEFAULT_VIEW_MAX
from models.core.runtime.backends import SegmentationRuntime
from models.core.sources.base import Source
from models.core.sources.replay import ReplaySource
from models.core.timing import Timing

DECODERS = ("process", "inprocess")  # a file decoded in its child process (as run), or in this one


def run_bench(source_spec: str, model_dir: str, seconds: float = 20.0, warmup: float = 5.0,
              backend: str = "auto", profile: str | None = None, record: bool = False,
              decoder: str = "process", view_max: tuple[int, int] | None = DEFAULT_VIEW_MAX,
              precision: str = "fp32") -> dict:
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}")
    app = QApplication.instance() or QApplication(sys.argv[:1])  # kept referenced while we run
    single_threaded_opencv()  # as run_window does
    steady_memory()
    app.setApplicationName("EndoSpine bench")
    worker = worker_config(model_dir, backend, profile=profile, precision=precision)
    timing = timing_of(profile)
    source = open_source_stage(source_spec, loop=True, timing=timing, isolated=decoder == "process",
                               view_max=view_max)  # as `endospine run` opens it
    with tempfile.TemporaryDirectory(prefix="endospine-bench-rec-") as folder:
        live = _live(source, worker, seconds, warmup, timing, Path(folder) if record else None)
    live = {"source": source_spec, "decoder": decoder if isinstance(source, ReplaySource) else "capture thread",
            "source_size": "x".join(map(str, source.size)),
            "view_max": "x".join(map(str, view_max)) if view_max else "source", **live}
    naive = _naive(source_spec, worker, seconds, view_max)
    return {**live, **naive,
            "raw_over_naive": round(live["display_fps"] / max(naive["naive_display_fps"], 1e-9), 2),
            "overlay_over_naive": round(live["overlay_fps"] / max(naive["naive_overlay_fps"], 1e-9), 2)}


def _live(source: Source, worker: WorkerConfig, seconds: float, warmup: float, timing: Timing,
          record_to: Path | None = None) -> dict:
    window = MainWindow(build_live(source, worker, timing), output_dir=record_to)
    window.resize(1600, 900)
    window.show()
    window.start()
    model_ms: list[float] = []
    gate = GateTally()
    probe = PaintProbe(timing.stale_limit_s)
    costs = CostWatch(source, window.ai)
    marks = {}
    loop = QEventLoop()  # a local loop: quitting it leaves the application usable afterwards

    def begin() -> None:  # after the worker has loaded and warmed up
        window.view.probe = probe
        marks["t0"] = time.monotonic()
        marks["captured0"] = window.store.put_count
        marks["inferred0"] = _inferred(window)
        gate.start_after(window.ai.latest())  # received before measuring
        costs.start(window.ai.latest())
        if record_to is not None:
            window.toggle_recording()

    def sample() -> None:
        if window.ai.latest() is not None and window.view.probe is not None:
            model_ms.append(window.ai.model_ms)

    def wait_ready() -> None:
        if window.ai.state.value in ("running", "delayed") and window.ai.latest() is not None:
            QTimer.singleShot(int(warmup * 1000), begin)
            QTimer.singleShot(int((warmup + seconds) * 1000), loop.quit)
        else:
            QTimer.singleShot(100, wait_ready)

    def watch_gate() -> None:  # every result once, as often as the window polls
        if window.view.probe is not None:
            gate.see(window.ai.latest())
            costs.see(window.ai.latest())

    sampler = QTimer()
    sampler.timeout.connect(sample)
    sampler.start(50)
    watcher = QTimer()
    watcher.timeout.connect(watch_gate)
    watcher.start(4)
    wait_ready()
    loop.exec()
    elapsed = time.monotonic() - marks.get("t0", time.monotonic())
    captured = window.store.put_count - marks.get("captured0", 0)
    inferred = _inferred(window) - marks.get("inferred0", 0)
    stages, cpu = costs.figures(elapsed, probe.frames_displayed)
    drawn = window.view.device_video_size()
    recording = _stop_recording(window) if record_to is not None else None
    window.close()
    sampler.stop()
    watcher.stop()
    return {
        "model": window.ai.model_id, "backend": worker.settings.backend, "precision": worker.settings.precision,
        "seconds": round(elapsed, 2),
        "source_fps": round(captured / elapsed, 2) if elapsed else 0.0,
        "display_fps": round(probe.frames_displayed / elapsed, 2) if elapsed else 0.0,
        "overlay_fps": round(probe.overlay_updates / elapsed, 2) if elapsed else 0.0,
        "model_ms_median": round(statistics.median(model_ms), 2) if model_ms else None,
        "raw_latency_ms": percentiles(probe.raw_latency_ms),
        "overlay_age_ms": {k: v for k, v in percentiles(probe.overlay_age_ms, (50, 95)).items()},
        "overlay_shown_share": round(probe.frames_with_mask / probe.frames_displayed, 3) if probe.frames_displayed
        else None,
        "max_raw_stall_ms": round(max(probe.stalls_ms), 2) if probe.stalls_ms else None,
        "frames_captured": captured, "frames_displayed": probe.frames_displayed, "frames_inferred": inferred,
        "stale_masks_drawn": probe.stale_masks_drawn, **gate.figures(),
        **({"recording": recording} if recording is not None else {}),
        "stages": stages, "process_cpu": cpu,
        "view_drawn": "x".join(map(str, drawn)) if drawn else None,  # device pixels the frame was drawn at
    }


class CostWatch:
    """The stages' costs and the processes' CPU time between start() and figures() (module doc)."""

    def __init__(self, source: Source, ai):
        self.source, self.ai = source, ai
        self._last = None
        self._worker: dict[str, list[float]] = {}

    def _pids(self) -> dict[str, int | None]:
        return {"display": None, "decoder": getattr(self.source, "decoder_pid", None), "worker": self.ai.worker_pid}

    def _decoder_stages(self) -> dict:
        report = getattr(self.source, "stage_costs", None)  # the decoder child's latest (its CPU: /proc)
        return report.stages if report is not None else {}

    def start(self, result) -> None:
        self._last = result
        self._worker.clear()
        self._t0 = STAGES.snapshot()
        self._d0 = self._decoder_stages()
        self._pid0 = self._pids()
        self._cpu0 = {name: process_cpu_s(pid) for name, pid in self._pid0.items()
                      if pid is not None or name == "display"}

    def see(self, result) -> None:
        """A result's worker timings, once per result."""
        if result is None or result is self._last:
            return
        self._last = result
        for stage, ms in result.timings.items():
            self._worker.setdefault(stage, []).append(ms)

    def figures(self, elapsed: float, frames: int) -> tuple[dict, dict]:
        stages = {"display": per_call(STAGES.snapshot(), self._t0),
                  "decoder": per_call(self._decoder_stages(), self._d0),
                  "worker": {stage: {"calls": len(v), "wall_ms": round(statistics.fmean(v), 3)}
                             for stage, v in sorted(self._worker.items())}}
        cpu = {}
        for name, pid in self._pids().items():
            if name not in self._cpu0 or pid != self._pid0[name]:  # not running, or restarted meanwhile
                continue
            used = process_cpu_s(pid)
            if used is None or self._cpu0[name] is None:
                continue
            used -= self._cpu0[name]
            cpu[name] = {"cores": round(used / elapsed, 3) if elapsed else None,
                         "ms_per_frame": round(used / frames * 1e3, 2) if frames else None}
        return stages, cpu


def _stop_recording(window: MainWindow) -> dict:
    """Stop the bench's recording; what it wrote (a recording that failed to start says why)."""
    rec = window.recorder
    if rec is None:
        return {"error": window.statusBar().currentMessage() or "not started"}
    files = sorted(p.name for p in rec.folder.iterdir())
    window.toggle_recording()
    size = sum(p.stat().st_size for p in rec.folder.rglob("*") if p.is_file())  # closed: every byte written
    return {"written": rec.written, "dropped": rec.dropped, "masks": rec.masks, "black_frames": rec.black_frames,
            "encrypted": rec.policy.key is not None, "files": files, "error": rec.error,
            "kb_per_frame": round(size / 1024 / rec.written, 1) if rec.written else None}


def _inferred(window: MainWindow) -> int:
    return window.ai.frames_done


def _naive(source_spec: str, worker: WorkerConfig, seconds: float, view_max: tuple[int, int] | None) -> dict:
    """Decode -> infer -> blend -> paint, one frame after the other, for `seconds`."""
    runtime = SegmentationRuntime(worker.model_dir, worker.settings)
    style = OverlayStyle()
    source = open_source_stage(source_spec, loop=True, realtime=False, view_max=view_max)
    view = VideoView()
    view.resize(1280, 900)
    canvas = QImage(view.width(), view.height(), QImage.Format.Format_RGB32)
    frames = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            frame = source.read()
            if frame is None:
                break
            labels, box, _ = runtime.segment(frame.image)
            shown = composite(frame.image, render_overlay(labels, runtime.classes, style), box)
            view.set_frame(shown)
            painter = QPainter(canvas)
            view.render(painter)
            painter.end()
            frames += 1
    finally:
        source.close()
    elapsed = time.monotonic() - t0
    fps = round(frames / elapsed, 2) if elapsed else 0.0
    return {"naive_display_fps": fps, "naive_overlay_fps": fps, "naive_frames": frames}
