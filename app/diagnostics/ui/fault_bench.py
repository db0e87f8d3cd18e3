"""Scripted faults against the real window, offscreen (the display side of `endospine faults`).

Everything behind the real interfaces: a CaptureSource on a scripted fake card (app.diagnostics.fake_card) feeds
the real MainWindow; the real InferenceClient supervises a worker process whose runtime is the
scripted app.diagnostics.fault_runtime. What the screen does is read from the window and the paint probe
every few milliseconds, so the figures are what a surgeon would have seen.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PyQt6.QtCore import QEventLoop, QTimer
from PyQt6.QtWidgets import QApplication

from app.ai.supervisor import WorkerConfig
from app.compose import build_live
from app.diagnostics.fake_card import FakeCard, Frames, Unplug
from app.stats import PaintProbe
from app.ui.main_window import MainWindow
from models.core.sources.capture_card import CaptureSettings, CaptureSource

FAULT_RUNTIME = "app.diagnostics.fault_runtime:FaultRuntime"
AI_FAULTS = {  # name -> FaultRuntime spec (the fault begins at the worker's 30th frame)
    "slow": "mode=ok,delay=0.3",           # a 3 fps model on a 30 fps source: DELAYED, masks stale
    "hang": "mode=hang,at=30",
    "crash": "mode=crash,at=30",           # os.abort()
    "segv": "mode=segv,at=30",
    "nan": "mode=nan,at=30,count=1",
    "wrong_shape": "mode=shape,at=30,count=1",
}


_APP: list[QApplication] = []  # keeps the application alive between calls


def _app() -> QApplication:
    if QApplication.instance() is None:
        _APP.append(QApplication(sys.argv[:1]))
    return QApplication.instance()


def _watch(window: MainWindow, step, timeout_s: float, period_ms: int = 5) -> None:
    """Run the Qt loop, calling step(now) every period until it returns True or time runs out."""
    loop = QEventLoop()
    end = time.monotonic() + timeout_s

    def tick() -> None:
        now = time.monotonic()
        if step(now) or now > end:
            loop.quit()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(period_ms)
    loop.exec()
    timer.stop()


def _window(card: FakeCard, spec: str | None, **worker) -> MainWindow:
    source = CaptureSource(CaptureSettings(0), card)
    source.open()
    cfg = WorkerConfig(model_dir=spec, runtime=FAULT_RUNTIME, **worker) if spec else None
    window = MainWindow(build_live(source, cfg))
    window.resize(960, 600)
    window.show()
    window.start()
    return window


def ai_fault(name: str, seconds: float = 6.0) -> dict:
    """One AI fault on a live 30 fps card: raw stall, overlay hidden latency, states, restart."""
    _app()
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "fault"
        card = FakeCard([], size=(320, 240), fps=30.0)  # live for ever
        once = "" if name == "slow" else f",once={marker}"  # slow all along: no fault moment to time
        window = _window(card, AI_FAULTS[name] + once)
        probe = PaintProbe()
        seen: dict = {"states": set()}

        def step(now: float) -> bool:
            ai = window.ai
            seen["states"].add(ai.state.value)
            if window.view.probe is None:  # measure from the first overlay on
                if window.view.overlay_visible or (name == "slow" and window.ai.latest() is not None):
                    window.view.probe, seen["t0"] = probe, now
                return False
            if "fault" not in seen and marker.exists():
                text = marker.read_text().split()
                if len(text) == 2:
                    seen["fault"] = float(text[1])  # the worker's time.monotonic(): one clock on Linux
            fault = seen.get("fault")
            if fault is not None and "hidden" not in seen and not window.view.overlay_visible:
                seen["hidden"] = now
            if "hidden" in seen and "back" not in seen and window.view.overlay_visible:
                seen["back"] = now
            if name == "slow":  # no single fault moment: a model slower than the source all along
                return now - seen["t0"] > seconds
            return ("back" in seen and now - seen["back"] > 1.0) or now - seen["t0"] > seconds + 10

        try:
            _watch(window, step, timeout_s=40 + seconds)
        finally:
            window.close()
            card.shutdown()
        fault, hidden, back = seen.get("fault"), seen.get("hidden"), seen.get("back")
        return {
            "fault": name,
            "max_raw_stall_ms": round(max(probe.stalls_ms), 1) if probe.stalls_ms else None,
            "frames_displayed": probe.frames_displayed,
            "overlay_hidden_ms": round((hidden - fault) * 1e3, 1) if fault and hidden else None,
            "overlay_back_s": round(back - fault, 2) if fault and back else None,
            "restarts": window.ai.restarts, "rejected_outputs": window.ai.errors,
            "ai_states": sorted(seen["states"]), "last_failure": window.ai.last_failure or window.ai.last_rejection,
            "stale_masks_drawn": probe.stale_masks_drawn,
        }


def unplug_cycles(cycles: int, live_frames: int = 20, unplugged_s: float = 1.2) -> dict:
    """Unplug/replug the fake card `cycles` times under the real window (with a running AI):
    time from unplug to the NO SIGNAL screen, from replug to the first live frame on screen,
    frames shown while unplugged (must be 0) and masks drawn stale (must be 0)."""
    _app()
    steps = []
    for _ in range(cycles):
        steps += [Frames(live_frames, size=(320, 240)), Unplug(unplugged_s)]
    card = FakeCard(steps, size=(320, 240))  # live again after the last replug
    window = _window(card, "mode=ok")
    probe = PaintProbe()
    window.view.probe = probe
    marks: dict[int, dict] = {}

    def step(now: float) -> bool:
        log = card.log
        if not log.unplugged:
            return False
        i = len(log.unplugged) - 1  # the cycle under way: recovered long before the next unplug
        m = marks.setdefault(i, {"old_frame_after_no_signal": 0, "replug": log.unplugged[i] + unplugged_s})
        if "no_signal" not in m and window.view.message == "NO SIGNAL":
            m["no_signal"] = now
        if "recovered" not in m and window.frame is not None and window.frame.capture_time >= m["replug"]:
            m["recovered"] = window.frame.capture_time
        elif "no_signal" in m and "recovered" not in m and window.frame is not None:
            m["old_frame_after_no_signal"] += 1  # a frame from before the unplug came back as live
        return len(log.unplugged) == cycles and "recovered" in m

    per_cycle = live_frames / 30.0 + unplugged_s + 1.5
    try:
        _watch(window, step, timeout_s=cycles * per_cycle + 30)
    finally:
        window.close()
        card.shutdown()
    to_no_signal = [(m["no_signal"] - card.log.unplugged[i]) * 1e3 for i, m in marks.items() if "no_signal" in m]
    to_recover = [(m["recovered"] - m["replug"]) * 1e3 for m in marks.values() if "recovered" in m]
    return {"cycles": len(card.log.unplugged), "no_signal_shown": len(to_no_signal), "recovered": len(to_recover),
            "to_no_signal_ms": to_no_signal, "to_recovery_ms": to_recover,
            "old_frame_back_after_no_signal": sum(m["old_frame_after_no_signal"] for m in marks.values()),
            "stale_masks_drawn": probe.stale_masks_drawn}
