"""`endospine soak`: the live pipeline with the real window offscreen, sampled for leaks.

The display runs on the source at its own pace with the AI on, as `endospine run` does (video
files decoded in a child process); every `interval_s` the resident memory of this process and
of its children (inference worker, decoder process, multiprocessing's helpers), the open file
descriptors (this process and children) and this process's threads are sampled. Growth per
hour after the warm-up is the figure (app.diagnostics.reliability.soak_summary). The trust gate
over the whole run: the share of the results received that it called unsure (`gated_share`) and
their median score (`gate_score_median`); both null without a gate or an AI (app.stats.GateTally).
"""
from __future__ import annotations

import sys
import time

import psutil
from PyQt6.QtCore import QEventLoop, QTimer
from PyQt6.QtWidgets import QApplication
from tqdm import tqdm

from app.ai.supervisor import WorkerConfig
from app.compose import build_live, open_source_stage
from app.stats import GateTally
from app.ui.main_window import MainWindow
from models.core.child import single_threaded_opencv, steady_memory


def sample(proc: psutil.Process, t_s: float) -> dict:
    """One sample of this process and its children (worker, decoder, multiprocessing's helpers)."""
    children = []
    for child in proc.children(recursive=True):
        try:
            children.append((child.memory_info().rss, child.num_fds()))
        except psutil.Error:  # a child that just exited (a worker restart)
            continue
    return {"t_s": round(t_s, 2), "main_rss_mb": round(proc.memory_info().rss / 2**20, 2),
            "children_rss_mb": round(sum(r for r, _ in children) / 2**20, 2),
            "fds": proc.num_fds() + sum(f for _, f in children), "threads": proc.num_threads(),
            "children": len(children)}


def run_soak(source_spec: str, worker: WorkerConfig | None, minutes: float, interval_s: float = 5.0) -> dict:
    """Run for `minutes`; returns {"samples": [...], "frames_displayed", "ai_frames", "ai_restarts", ...}."""
    app = QApplication.instance() or QApplication(sys.argv[:1])  # kept referenced while we run
    single_threaded_opencv()  # as run_window does
    steady_memory()
    source = open_source_stage(source_spec, loop=True, isolated=True)  # as `endospine run` opens it
    window = MainWindow(build_live(source, worker))
    window.resize(1600, 900)
    window.show()
    window.start()
    proc = psutil.Process()
    samples: list[dict] = []
    t0 = time.monotonic()
    total = minutes * 60.0
    bar = tqdm(total=round(total), desc="soak", unit="s")
    loop = QEventLoop()

    def tick() -> None:
        now = time.monotonic() - t0
        samples.append(sample(proc, now))
        bar.update(round(now) - bar.n)
        if now >= total:
            loop.quit()

    gate = GateTally()
    watcher = QTimer()  # every result once, as often as the window polls
    watcher.timeout.connect(lambda: window.ai is not None and gate.see(window.ai.latest()))
    watcher.start(4)
    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(int(interval_s * 1000))
    tick()
    loop.exec()
    timer.stop()
    watcher.stop()
    bar.close()
    shown = window.display_rate.rate()
    ai = window.ai
    seconds = samples[-1]["t_s"] if samples else 0.0
    result = {"source": source_spec, "samples": samples, "display_fps_at_end": round(shown, 2),
              "frames_displayed": window.display_rate.total,
              "display_fps_mean": round(window.display_rate.total / seconds, 2) if seconds else 0.0,
              "ai_per_s_mean": round((ai.frames_done if ai else 0) / seconds, 2) if seconds else 0.0,
              "frames_captured": window.store.put_count, "frames_skipped": window.skipped,
              "ai_frames": ai.frames_done if ai else 0, "ai_restarts": ai.restarts if ai else 0,
              "ai_state_at_end": ai.state.value if ai else "none", **gate.figures()}
    window.close()
    app.processEvents()  # let the closed window's last events run before the caller goes on
    return result
