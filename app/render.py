"""`endospine render`: a source through the model, frame-exact, into an overlay video + CSV.

Offline, no frame is ever dropped: a reader thread decodes ahead into a bounded queue, the main
thread segments and composites, a writer thread encodes. Each output frame carries the mask
computed from that very frame, by the live display's own per-frame path (segment_frame and a
PostStage with the live settings: temporal smoothing, mask size cap, output checks), so the
video shows what `endospine run --review` would have painted.

A refused output (NaN, wrong class count, crop box outside the frame, ...) is what the live
display shows as AI OUTPUT REJECTED: no overlay on that frame. Render does the same: the frame
is written as it came, without overlay, one warning line names the frame and the reason, its
CSV row says `refused`, and the summary counts the refused frames. The video keeps every frame
and its timing, so a surgeon reviewing it can still line it up with the original recording, and
a missing overlay is never passed off silently. The trust gate likewise: a frame the stage calls
unsure (the scene unlike the model's training data; live shows AI UNSURE, no overlay) is written
without overlay, its CSV row says `ai_unsure` 1 and `overlay_shown` 0 (its areas and time are still
the model's), a warning line names the first frame of each such run, and the summary counts them
(`unsure`). Every row carries the gate's score (`gate_score`, blank without a gate or for a
refused output) and the summary its median. A runtime that keeps failing is broken, not
unlucky: after as many refused outputs in a row as make the live display restart its worker
(WorkerConfig.max_bad_outputs), render stops with one line and writes no video, rather than
an overlay video with no overlay in it.

The outputs are checked before the model loads (models.core.outputs: a video and a CSV name, a
folder that can be written, not the input). The video has the first frame's size; a source whose
frames change size mid-stream (a capture switched resolution, two recordings joined) has each
frame of another size scaled to fit it, aspect kept, black borders: never cropped. One warning
names the first such frame and the summary counts them (`resized`). A failing disk (full, I/O
error) stops the render at once with one line naming the file, and leaves no partial video.

De-identified by default (issue 21), as the recorder's files (app/deidframes.py, the same rule):
the video keeps only the endoscope's field of view, every pixel beyond the circle + the policy's
margin black; the circle is the profile's fixed circle or is found in the frames (detected every
10 frames and held), and frames before any circle is known are written all black (counted,
`black_frames`, with a warning). The model still sees the whole frame: only the pixels written are
masked, after the overlay is painted. The CSV gets the recorder's first line, a `#` comment saying
what the frames keep, and its columns frame_region, fov_cx, fov_cy, fov_r (the circle in the
video's pixels). The profile's `deid: keep_full_frame` or --keep-full-frame keep whole frames; the
files say so. The video and the CSV are written through the policy (DeidPolicy.video_writer,
open_text): its allow-listed metadata only.
"""
from __future__ import annotations

import csv
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from app.ai.supervisor import worker_config
from app.compose import open_source_stage
from app.deidframes import FOV_COLUMNS, FrameKeeper, Kept
from models.core.deid import DeidPolicy
from models.core.errors import EndoSpineError, one_line
from models.core.optics.fov import Circle
from models.core.outputs import CSV, VIDEO, WriteFailed, check_file, write_failed
from models.core.overlay import OverlayStyle, composite, render_overlay
from models.core.picture import DEFAULT_VIEW_MAX
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.core.runtime.postprocess import PostSettings, PostStage, segment_frame
from models.core.types import UNSURE_BIT
from models.core.video import VideoWriter

_END = object()


def render_video(source_spec: str, out: str | Path, model_dir: str | Path, frames_csv: str | Path | None = None,
                 max_frames: int | None = None, settings: RuntimeSettings | None = None,
                 style: OverlayStyle | None = None, progress: bool = True, post: PostSettings | None = None,
                 refused_in_a_row: int | None = None, policy: DeidPolicy | None = None,
                 view_max: tuple[int, int] | None = DEFAULT_VIEW_MAX) -> dict:
    """Render and return the summary. settings, post, refused_in_a_row: the runtime and
    post-processing settings and how many refused outputs in a row stop the render; by default
    what `endospine run` uses for this model (worker_config: backend, smoothing, thresholds, mask
    size, refused outputs in a row before a restart). policy: what the written frames keep
    (default: de-identified, the field of view only; DeidPolicy.from_profile for a profile's).
    view_max: the size the model's frames are reduced to, as `run` does (None: the source's own);
    the written video keeps the source's resolution."""
    out = check_file(out, VIDEO, "--out", inputs=[source_spec])
    if frames_csv:
        frames_csv = check_file(frames_csv, CSV, "--frames-csv", inputs=[source_spec])
    live = worker_config(str(model_dir))
    runtime = SegmentationRuntime(model_dir, settings or live.settings)
    stage = PostStage.for_runtime(runtime, post or live.post)  # the trust gate too, as the worker's stage
    refused_in_a_row = refused_in_a_row or live.max_bad_outputs
    style = style or OverlayStyle()
    policy = (policy or DeidPolicy()).with_model(runtime.model_id)
    keeper = FrameKeeper(policy)
    fitted_blackout = policy.blackout()  # for frames of another size, scaled to fit the video
    # as fast as we can, not at the source's pace; the model sees the view live sees (a 4K frame
    # at view_max, as models/core/picture.py makes it), the video gets every pixel
    source = open_source_stage(source_spec, realtime=False, view_max=view_max)
    w, h = source.size
    w2, h2 = w - w % 2, h - h % 2  # H.264 4:2:0 wants even sides
    frames_q: queue.Queue = queue.Queue(maxsize=8)
    out_q: queue.Queue = queue.Queue(maxsize=8)
    errors: list[BaseException] = []
    stop = threading.Event()

    notes: list[str] = []  # the source's own word on how it ended ('' for a clean end)

    def read() -> None:
        try:
            n = 0
            while (max_frames is None or n < max_frames) and not stop.is_set():
                frame = source.read()
                if frame is None:  # the source's end: its own word on how it ended (a cut file,
                    notes.append(source.end_note())  # a folder's images skipped) - not when we stop early
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

    def written(image: np.ndarray, frame, full: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The picture (the frame, or the overlay painted over it) as written, and the frame's
        FOV_COLUMNS: trimmed to even sides, or scaled to fit if the frame's size changed; the field
        of view only (the circle found in `full`, the frame as decoded, in the video's pixels)."""
        nonlocal resized
        ih, iw = image.shape[:2]
        if (iw, ih) == (w, h):
            kept = keeper(full, (w2, h2))
            return kept.apply(image[:h2, :w2]), kept.columns()  # a new array: the writer thread holds it
        if not resized:
            tqdm.write(f"endospine render: warning: frame {frame.frame_id} is {iw}x{ih}, the video {w2}x{h2}: "
                       "frames of another size are scaled to fit it (aspect kept, black borders), counted in the "
                       "summary's 'resized'", file=sys.stderr)
        resized += 1
        kept = keeper(full)  # the circle found in the frame as decoded, mapped into the video
        circle = fitted_circle(kept, iw, ih, w2, h2)
        picture = fit(image, w2, h2)
        if kept.mask is not None:  # not a full frame: the field of view only, at the video's size
            picture = fitted_blackout.mask_for((w2, h2), circle).apply(picture, reuse=False)
        return picture, kept.columns(circle)

    rows = []
    refused, in_a_row, reason, resized, unsure, scores = 0, 0, "", 0, 0, []
    t0 = time.monotonic()
    names = [c.name for c in runtime.classes.foreground]
    with policy.video_writer(out, w2, h2, fps=source.fps, crf=20, preset="veryfast") as writer:
        reader = threading.Thread(target=read, name="render-read", daemon=True)
        writer_thread = threading.Thread(target=write, args=(writer,), name="render-write", daemon=True)
        reader.start()
        writer_thread.start()
        bar = tqdm(total=max_frames, unit="frame", desc="render", disable=not progress)
        try:
            while (frame := frames_q.get()) is not _END and not errors:  # a failed write stops at once
                full = frame.full_rgb()  # the written video's pixels: the source's, whatever the model saw
                try:
                    labels, box, timings = segment_frame(runtime, stage, frame.image, frame.frame_id)
                except Exception as exc:  # noqa: BLE001 - as the live worker: a refused output, no overlay
                    refused, in_a_row, reason = refused + 1, in_a_row + 1, one_line(exc)
                    if in_a_row >= refused_in_a_row:
                        raise EndoSpineError(f"{source_spec}: render stopped at frame {frame.frame_id}: "
                                             f"{in_a_row} AI outputs refused in a row, last: {reason}") from None
                    tqdm.write(f"endospine render: warning: frame {frame.frame_id}: AI output refused ({reason}); "
                               "written without overlay", file=sys.stderr)
                    picture, fov = written(full, frame, full)
                    out_q.put(picture)
                    rows.append(_row(frame, None, names, runtime, None, reason) | dict(zip(FOV_COLUMNS, fov)))
                    bar.update(1)
                    continue
                in_a_row = 0
                score, gated = stage.score, stage.unsure  # this frame's, through the stage's hysteresis
                if score is not None:
                    scores.append(score)
                if gated:  # as live: AI UNSURE, the overlay hidden; the stage decides, as in the worker
                    if not (rows and rows[-1]["ai_unsure"]):
                        tqdm.write(f"endospine render: warning: frame {frame.frame_id}: AI UNSURE (scene unlike "
                                   "its training data); written without overlay until the gate clears",
                                   file=sys.stderr)
                    unsure += 1
                    image = full
                else:
                    image = composite(full, render_overlay(labels, runtime.classes, style), frame.to_full(box))
                picture, fov = written(image, frame, full)
                out_q.put(picture)
                rows.append(_row(frame, labels, names, runtime, timings, gate=(score, gated))
                            | dict(zip(FOV_COLUMNS, fov)))
                bar.update(1)
        finally:
            stop.set()
            while reader.is_alive():  # a reader blocked on the full queue must get to close the source
                try:
                    frames_q.get(timeout=0.1)
                except queue.Empty:
                    pass
            out_q.put(_END)
            writer_thread.join()
            bar.close()
        if errors:
            if isinstance(errors[0], WriteFailed):  # the output's disk: its own line names the file
                raise errors[0]
            raise EndoSpineError(f"{source_spec}: render stopped ({one_line(errors[0])})")
        if not rows:
            raise EndoSpineError(f"{source_spec}: no frames to render")
    source_note = next((n for n in notes if n), "")
    if source_note:
        tqdm.write(f"endospine render: warning: {source_note}", file=sys.stderr)
    if keeper.black_frames:
        tqdm.write(f"endospine render: warning: {keeper.black_frames} of {len(rows)} frames written all black: no "
                   "field of view (the endoscope's circle) known yet, and the frame may show text burned in by "
                   "the video tower (a --profile with a fixed circle, or --keep-full-frame, changes this)",
                   file=sys.stderr)
    if frames_csv:
        frames_csv = write_frames_csv(frames_csv, rows, policy)
    elapsed = time.monotonic() - t0
    ms = [r["inference_ms"] for r in rows if not r["refused"]]
    return {"frames": len(rows), "out": str(writer.path), "model": runtime.model_id, "seconds": round(elapsed, 2),
            "fps": round(len(rows) / elapsed, 2),
            "inference_ms_median": round(float(np.median(ms)), 2) if ms else None,
            "refused": refused, "refused_last": reason or None, "unsure": unsure,
            "gate_score_median": float(f"{np.median(scores):.6g}") if scores else None,
            "resized": resized, "frames_kept": policy.frames, "black_frames": keeper.black_frames,
            "source_note": source_note or None, "csv": str(frames_csv) if frames_csv else None}


def write_frames_csv(path: Path, rows: list[dict], policy: DeidPolicy) -> Path:
    """The per-frame CSV as the recorder's: a first `#` line saying what the frames keep, then the
    header and the rows; through the policy (DeidPolicy.open_text), under a temporary name renamed
    when complete. Returns the name written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial{os.getpid()}")

    def made() -> list[Path]:  # the policy may store a file under a longer name (e.g. + '.enc' when encrypted)
        return [p for p in path.parent.iterdir() if p.name.startswith(tmp.name)]

    try:
        with policy.open_text(tmp) as f:
            f.write(policy.csv_note() + "\n")
            table = csv.DictWriter(f, fieldnames=list(rows[0]))
            table.writeheader()
            table.writerows(rows)
        final = path
        for p in made():  # the same ending on the final name
            final = path.with_name(path.name + p.name[len(tmp.name):])
            os.replace(p, final)
        return final
    except OSError as exc:
        for p in made():
            p.unlink(missing_ok=True)
        raise write_failed(path, exc) from None


def fitted_circle(kept: Kept, iw: int, ih: int, width: int, height: int) -> Circle | None:
    """The circle kept in an iw x ih frame, in the pixels of that frame scaled by fit()."""
    c = kept.circle
    if c is None:
        return None
    _, nw, nh, x, y = _fit_geometry(iw, ih, width, height)
    sx, sy = nw / iw, nh / ih  # as cv2.resize maps pixel centers
    return Circle((c.cx + 0.5) * sx - 0.5 + x, (c.cy + 0.5) * sy - 0.5 + y, c.r * max(sx, sy))


def _row(frame, labels, names, runtime, timings, refused: str = "",
         gate: tuple[float | None, bool] = (None, False)) -> dict:
    """The frame's CSV row: area share of each tissue among the labeled pixels, inference ms, why
    its output was refused (then no areas and no time), whether an overlay was painted, and the
    gate's score and verdict (ai_unsure 1: the overlay hidden as live hides it)."""
    score, gated = gate
    row = {"frame": frame.frame_id, "pts": round(frame.pts, 4) if frame.pts is not None else ""}
    if labels is None:
        row.update({f"{name}_area": "" for name in names}, inference_ms="", refused=refused, overlay_shown=0,
                   gate_score="", ai_unsure=0)
        return row
    valid = labels != runtime.classes.ignore_index
    n = max(int(valid.sum()), 1)
    classes = labels[valid] & np.uint8(0xFF ^ UNSURE_BIT)  # a pixel the model is unsure of keeps its class id
    counts = np.bincount(classes.ravel(), minlength=len(runtime.classes))
    for i, name in enumerate(names, start=1):
        row[f"{name}_area"] = round(counts[i] / n, 5)
    row["inference_ms"] = round(sum(timings.values()), 2)
    row["refused"] = ""
    row["overlay_shown"] = int(not gated)
    row["gate_score"] = float(f"{score:.6g}") if score is not None else ""
    row["ai_unsure"] = int(bool(gated))
    return row


def fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled to fit width x height with its aspect kept, centred on black."""
    ih, iw = image.shape[:2]
    scale, nw, nh, x, y = _fit_geometry(iw, ih, width, height)
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[y:y + nh, x:x + nw] = small
    return canvas


def _fit_geometry(iw: int, ih: int, width: int, height: int) -> tuple[float, int, int, int, int]:
    """fit()'s scale, scaled size (nw, nh) and offset (x, y) of an iw x ih picture."""
    scale = min(width / iw, height / ih)
    nw, nh = max(1, min(width, round(iw * scale))), max(1, min(height, round(ih * scale)))
    return scale, nw, nh, (width - nw) // 2, (height - nh) // 2


def summary_line(summary: dict) -> str:
    return json.dumps(summary)
