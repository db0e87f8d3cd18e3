"""`endospine bench`: the live pipeline with the real window (offscreen), then a naive loop.

Live: capture thread + inference worker process + Qt display at the source's pace, measured at
paint time by a PaintProbe. Naive: the same frames through one thread that decodes, infers,
blends and paints in sequence, with the same model. Both run in this process, one after the
other, so their figures compare on the same machine state.

The trust gate: of the results the live part received while measuring, the share the gate called
unsure (`gated_share`, the overlay hidden as AI UNSURE) and the median gate score
(`gate_score_median`); both null for a model without a gate (app.stats.GateTally).

`record`: the live part also records (raw and overlay, as the R key does, through the profile's
de-identification and, if the profile says so, encryption) for the measured seconds into a
temporary folder, deleted afterwards; `recording` reports frames written and dropped.
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
from models.core.overlay import OverlayStyle, composite, render_overlay
from models.core.runtime.backends import SegmentationRuntime
from models.core.timing import Timing


def run_bench(source_spec: str, model_dir: str, seconds: float = 20.0, warmup: float = 5.0,
              backend: str = "auto", profile: str | None = None, record: bool = False) -> dict:
    app = QApplication.instance() or QApplication(sys.argv[:1])  # kept referenced while we run
    app.setApplicationName("EndoSpine bench")
    worker = worker_config(model_dir, backend, profile=profile)
    with tempfile.TemporaryDirectory(prefix="endospine-bench-rec-") as folder:
        live = _live(source_spec, worker, seconds, warmup, timing_of(profile), Path(folder) if record else None)
    naive = _naive(source_spec, worker, seconds)
    return {**live, **naive,
            "raw_over_naive": round(live["display_fps"] / max(naive["naive_display_fps"], 1e-9), 2),
            "overlay_over_naive": round(live["overlay_fps"] / max(naive["naive_overlay_fps"], 1e-9), 2)}


def _live(source_spec: str, worker: WorkerConfig, seconds: float, warmup: float, timing: Timing,
          record_to: Path | None = None) -> dict:
    source = open_source_stage(source_spec, loop=True, timing=timing)  # decoded in this process, like render
    window = MainWindow(build_live(source, worker, timing), output_dir=record_to)
    window.resize(1600, 900)
    window.show()
    window.start()
    model_ms: list[float] = []
    gate = GateTally()
    probe = PaintProbe(timing.stale_limit_s)
    marks = {}
    loop = QEventLoop()  # a local loop: quitting it leaves the application usable afterwards

    def begin() -> None:  # after the worker has loaded and warmed up
        window.view.probe = probe
        marks["t0"] = time.monotonic()
        marks["captured0"] = window.store.put_count
        marks["inferred0"] = _inferred(window)
        gate.start_after(window.ai.latest())  # received before measuring
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
    recording = _stop_recording(window) if record_to is not None else None
    window.close()
    sampler.stop()
    watcher.stop()
    return {
        "source": source_spec, "model": window.ai.model_id, "backend": worker.settings.backend,
        "seconds": round(elapsed, 2),
        "source_fps": round(captured / elapsed, 2) if elapsed else 0.0,
        "display_fps": round(probe.frames_displayed / elapsed, 2) if elapsed else 0.0,
        "overlay_fps": round(probe.overlay_updates / elapsed, 2) if elapsed else 0.0,
        "model_ms_median": round(statistics.median(model_ms), 2) if model_ms else None,
        "raw_latency_ms": percentiles(probe.raw_latency_ms),
        "overlay_age_ms": {k: v for k, v in percentiles(probe.overlay_age_ms, (50, 95)).items()},
        "max_raw_stall_ms": round(max(probe.stalls_ms), 2) if probe.stalls_ms else None,
        "frames_captured": captured, "frames_displayed": probe.frames_displayed, "frames_inferred": inferred,
        "stale_masks_drawn": probe.stale_masks_drawn, **gate.figures(),
        **({"recording": recording} if recording is not None else {}),
    }


def _stop_recording(window: MainWindow) -> dict:
    """Stop the bench's recording; what it wrote (a recording that failed to start says why)."""
    rec = window.recorder
    if rec is None:
        return {"error": window.statusBar().currentMessage() or "not started"}
    files = sorted(p.name for p in rec.folder.iterdir())
    window.toggle_recording()
    return {"written": rec.written, "dropped": rec.dropped, "black_frames": rec.black_frames,
            "encrypted": rec.policy.key is not None, "files": files, "error": rec.error}


def _inferred(window: MainWindow) -> int:
    return window.ai.frames_done


def _naive(source_spec: str, worker: WorkerConfig, seconds: float) -> dict:
    """Decode -> infer -> blend -> paint, one frame after the other, for `seconds`."""
    runtime = SegmentationRuntime(worker.model_dir, worker.settings)
    style = OverlayStyle()
    source = open_source_stage(source_spec, loop=True, realtime=False)
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
