"""`endospine render`: a source through the model, frame-exact, into an overlay video + CSV.

Offline, no frame is ever dropped: a reader thread decodes ahead into a bounded queue, the main
thread segments and composites, a writer thread encodes. Each output frame carries the mask
computed from that very frame.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.overlay import OverlayStyle, composite, render_overlay
from models.core.sources.registry import open_source
from models.core.errors import EndoSpineError
from models.core.imageio import write_csv_atomic
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.core.video import VideoWriter

_END = object()


def render_video(source_spec: str, out: str | Path, model_dir: str | Path, frames_csv: str | Path | None = None,
                 max_frames: int | None = None, settings: RuntimeSettings | None = None,
                 style: OverlayStyle | None = None, progress: bool = True) -> dict:
    runtime = SegmentationRuntime(model_dir, settings)
    style = style or OverlayStyle()
    source = open_source(source_spec)
    source.realtime = False  # as fast as we can, not at the source's pace
    source.open()
    w, h = source.size
    w2, h2 = w - w % 2, h - h % 2  # H.264 4:2:0 wants even sides
    frames_q: queue.Queue = queue.Queue(maxsize=8)
    out_q: queue.Queue = queue.Queue(maxsize=8)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            n = 0
            while max_frames is None or n < max_frames:
                frame = source.read()
                if frame is None:
                    break
                frames_q.put(frame)
                n += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            source.close()
            frames_q.put(_END)

    def write(writer: VideoWriter) -> None:
        try:
            while (img := out_q.get()) is not _END:
                writer.write(img)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            while out_q.get() is not _END:  # keep draining so the producer never blocks
                pass

    rows = []
    t0 = time.monotonic()
    names = [c.name for c in runtime.classes.foreground]
    with VideoWriter(out, w2, h2, fps=source.fps, crf=20, preset="veryfast") as writer:
        reader = threading.Thread(target=read, name="render-read", daemon=True)
        writer_thread = threading.Thread(target=write, args=(writer,), name="render-write", daemon=True)
        reader.start()
        writer_thread.start()
        bar = tqdm(total=max_frames, unit="frame", desc="render", disable=not progress)
        try:
            while (frame := frames_q.get()) is not _END:
                labels, box, timings = runtime.segment(frame.image)
                image = composite(frame.image, render_overlay(labels, runtime.classes, style), box)
                out_q.put(np.ascontiguousarray(image[:h2, :w2]))
                rows.append(_row(frame.frame_id, frame.pts, labels, names, runtime, timings))
                bar.update(1)
        finally:
            out_q.put(_END)
            writer_thread.join()
            bar.close()
        if errors:
            raise EndoSpineError(f"{source_spec}: render stopped ({type(errors[0]).__name__}: {errors[0]})")
        if not rows:
            raise EndoSpineError(f"{source_spec}: no frames to render")
    if frames_csv:
        write_csv_atomic(frames_csv, rows)
    elapsed = time.monotonic() - t0
    ms = [r["inference_ms"] for r in rows]
    return {"frames": len(rows), "out": str(out), "model": runtime.model_id, "seconds": round(elapsed, 2),
            "fps": round(len(rows) / elapsed, 2), "inference_ms_median": round(float(np.median(ms)), 2),
            "csv": str(frames_csv) if frames_csv else None}


def _row(frame_id, pts, labels, names, runtime, timings) -> dict:
    valid = labels != runtime.classes.ignore_index
    n = max(int(valid.sum()), 1)
    counts = np.bincount(labels[valid].ravel(), minlength=len(runtime.classes))
    row = {"frame": frame_id, "pts": round(pts, 4) if pts is not None else ""}
    for i, name in enumerate(names, start=1):
        row[f"{name}_area"] = round(counts[i] / n, 5)
    row["inference_ms"] = round(sum(timings.values()), 2)
    return row


def summary_line(summary: dict) -> str:
    return json.dumps(summary)
