"""Recording what the surgeon sees, and snapshots. No Qt.

The GUI hands each displayed frame (with the mask it showed, if any) to `Recorder.offer`, which
never blocks: a writer thread encodes from a bounded queue, and frames it has no room for are
counted, not queued without end. A recording is one H.264 video of the raw frames, fragmented MP4
(playable up to the last fragment if the process dies), plus what was painted over them as data
(app/recording.py): each mask the display painted, once, as a label-map PNG in rec-NNNN_masks/,
and a per-frame CSV: index, frame_id, pts, capture_time, mask_frame_id and overlay_shown (the
mask painted over the frame, if any), gate_score and ai_unsure (the trust gate's score and verdict
for the result whose mask was shown with the frame, or was withheld because the gate called the
scene unlike the training data; gate_score blank without such a result or without a gate,
models.core.types.Result), frame_region and fov_cx, fov_cy, fov_r (what the recorded frame kept,
below), mask_file, mask_box and overlay_style (which mask, where, how). `endospine overlay-video`
makes the overlay video from them afterwards: a second encoder and the compositing of every frame
live kept the recorder to about a fifth of the frames at 1080p30 on two cores.

De-identified by default (issue 21, models/core/deid.py): recordings and snapshots keep only the
endoscope's field of view; every pixel beyond the circle + the margin is black. The
display itself still shows the whole frame. The writer thread finds the circle in the frames it
records (the profile's fixed circle, or detected every 10 frames and held; a few ms per detection
at 1080p) and applies a mask computed once per circle (one masked copy per frame). Until a circle
is known the frames are recorded all black (frame_region `black`, counted in `black_frames`): never
a full frame with identifiers by default. The profile's `deid: keep_full_frame` keeps the whole
frame (frame_region `full`); the files then say so in their metadata and in the CSV's first line,
a `#` comment. File names carry a session number, never a time or a patient field:
rec-0001_raw.mp4, rec-0001_frames.csv, rec-0001_masks/m000001.png, snap-0001_f000123_raw.png.
With an encrypting policy (the profile's `deid: {encrypt: true}`, models/core/sealed.py) every
one of them is written sealed, named with `.enc` appended (rec-0001_raw.mp4.enc, ...): the writer
thread encrypts as it writes, nothing is in clear on the disk at any time.

A recording never fills the disk: it refuses to start, or stops cleanly (closing its files so they
stay playable), when the free space falls below a reserve, and a write error (disk full, the
drive pulled) stops it the same way with the reason in `error`.
"""
from __future__ import annotations

import csv
import errno
import queue
import re
import shutil
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from app import recording
from app.deidframes import FrameKeeper, Kept
from models.core.classes import ClassTable
from models.core.deid import DeidPolicy
from models.core.errors import EndoSpineError
from models.core.optics.fov import Circle
from models.core.overlay import OverlayStyle, composite, render_overlay
from models.core.sched import background
from models.core.types import Frame, Result


def next_number(folder: Path, prefix: str) -> int:
    """The session number for the next `<prefix>-NNNN*` file in `folder`: one more than the highest
    there (numbers survive restarts; no clock, no patient field in a name)."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)")
    numbers = [int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else ()) if (m := pattern.match(p.name))]
    return max(numbers, default=0) + 1


def snapshot(folder: Path, frame: Frame, result: Result | None, classes: ClassTable, style: OverlayStyle,
             policy: DeidPolicy | None = None, held: Circle | None = None) -> list[Path]:
    """Write snap-NNNN_f<frame>_raw.png and, with a mask, ..._overlay.png, de-identified as `policy`
    says (default: the field of view only). The circle: the policy's, else found in this frame,
    else `held` (a running recording's); none: EndoSpineError, nothing written. Returns the paths."""
    policy = policy or DeidPolicy()
    image = frame.full_rgb()  # every pixel of the source (a 4K frame's planes, not the screen's view)
    mask = None
    if not policy.keep_full_frame:
        circle = policy.finder()(image) or held
        if circle is None:
            raise EndoSpineError("no field of view (circle) found in this frame; not saved, since the frame may "
                                 "show text burned in by the video tower (a profile with a fixed circle, or "
                                 "deid: keep_full_frame, changes this)")
        mask = policy.blackout().mask_for(frame.full_size, circle)
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"snap-{next_number(folder, 'snap'):04d}_f{frame.frame_id:06d}"
    paths = [policy.write_image(base.with_name(base.name + "_raw.png"),
                                mask.apply(image) if mask is not None else image)]
    if result is not None:
        shown = composite(image, render_overlay(result.mask, classes, style), frame.to_full(result.box))
        paths.append(policy.write_image(base.with_name(base.name + "_overlay.png"),
                                        mask.apply(shown) if mask is not None else shown))
    return paths  # as written: + '.enc' when the policy encrypts


# x264's preset for recordings: the one that keeps every 1080p30 frame beside the display and the
# AI on two cores (README, Recording); crf 18 and a keyframe a second go with it
PRESET = "ultrafast"
# The writer thread's (and its encoder threads') CPU priority: below the display's, level with the
# AI worker's (WorkerConfig.nice): when two cores run short, the live picture keeps its rate and the
# overlay and the recording share what is left (measured against 0 and 10, README "Recording")
NICE = 5
RESERVE_BYTES = 2 * 1024 ** 3   # free space a recording leaves on the disk (other software needs it)


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


class Recorder:
    """Records the raw video of displayed frames, the masks painted over them and a CSV row per
    frame (app/recording.py). policy: what the files keep (default: de-identified, the field of
    view only). preset: x264's (default PRESET); nice: the writer thread's priority (NICE)."""

    def __init__(self, folder: Path, size: tuple[int, int], fps: float, classes: ClassTable,
                 queue_size: int = 16, reserve_bytes: int = RESERVE_BYTES,
                 disk_free: Callable[[Path], int] = free_bytes, policy: DeidPolicy | None = None,
                 preset: str = PRESET, nice: int = NICE):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.reserve_bytes = reserve_bytes
        self._disk_free = disk_free
        self._check_every = max(1, round(fps))  # frames between free-space checks (about a second)
        if (free := disk_free(self.folder)) < reserve_bytes:
            raise EndoSpineError(f"{self.folder}: only {free / 1e6:.0f} MB free, below the "
                                 f"{reserve_bytes / 1e6:.0f} MB reserve; not recording")
        self.classes = classes
        self.policy = policy = policy or DeidPolicy()
        self._keeper = FrameKeeper(policy)  # the circle and the mask per frame (app/deidframes.py)
        self.source_size = size
        w, h = size[0] - size[0] % 2, size[1] - size[1] % 2  # H.264 4:2:0 wants even sides
        self.size = (w, h)
        name = f"rec-{next_number(self.folder, 'rec'):04d}"
        self.masks_dir = self.folder / f"{name}_masks"
        self.masks_dir.mkdir()
        with policy.open_text(self.masks_dir / recording.SIDECAR) as f:
            f.write(recording.sidecar(classes, policy, (w, h), fps))
        self.writer = policy.video_writer(self.folder / f"{name}_raw.mp4", w, h, fps, preset=preset, crf=18,
                                          fragmented=True, gop=int(fps), atomic=False)
        self.csv_path = policy.stored_path(self.folder / f"{name}_frames.csv")  # + '.enc' when encrypted
        self._csv_file = policy.open_text(self.folder / f"{name}_frames.csv")
        self._csv_file.write(policy.csv_note() + "\n")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(recording.COLUMNS)
        self._mask: tuple[Result, str] | None = None  # the last mask written and its file's name
        self.masks = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.written = 0
        self.dropped = 0
        self.error = ""
        self.nice = nice
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def offer(self, frame: Frame, result: Result | None, style: OverlayStyle,
              withheld: Result | None = None) -> None:
        """Record `frame` as displayed with `result`'s mask over it (None: no mask). withheld: the
        result whose mask would have been shown had the gate not called it unsure (the display
        showed AI UNSURE instead); its gate score and verdict go in the row. A result marked
        unsure is never painted here either: it counts as withheld, as the display hides it."""
        if result is not None and result.unsure:
            result, withheld = None, result
        if withheld is not None and not withheld.unsure:
            withheld = None  # not withheld by the gate (stale, AI off, ...): no gate figures for this frame
        if self._queue.full():  # only this thread puts: no room now means none for this frame
            self.dropped += 1
            return
        # own(): a file's frames are lent from its decoder's slots, which must not wait in this queue
        self._queue.put_nowait((frame.own(), result, withheld, style))

    @property
    def circle(self) -> Circle | None:
        """The field of view the recording keeps now (for a snapshot taken while recording)."""
        return self._keeper.circle

    @property
    def black_frames(self) -> int:
        """Frames recorded all black: no field of view known yet."""
        return self._keeper.black_frames

    def stop(self, timeout: float = 10.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:  # the writer thread is stuck in the encoder or the disk; do not hang the UI
            self.error = self.error or "the writer did not finish; the files hold what was written"
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        background(self.nice)  # before the first frame: the encoder starts its threads then
        try:
            while (item := self._queue.get()) is not None:
                frame, result, withheld, style = item
                if frame.full_size != self.source_size:
                    self.dropped += 1  # the source changed size mid-recording: skip rather than corrupt
                    continue
                if self.written % self._check_every == 0 and (free := self._disk_free(self.folder)) < self.reserve_bytes:
                    self.error = (f"disk space below the reserve ({free / 1e6:.0f} MB free): recording stopped "
                                  f"after {self.written} frames")
                    break
                image = frame.full_rgb()  # the source's every pixel (a 4K frame's planes converted here)
                kept = self._keeper(image, self.size)  # the mask made once per circle, not per frame
                self.writer.write(self._kept(image, kept))
                painted = self._painted(frame, result, style)
                gated = result if result is not None else withheld
                score = gated.score if gated is not None else None
                self._csv.writerow([self.written, frame.frame_id, frame.pts, f"{frame.capture_time:.6f}",
                                    result.frame_id if result else "", int(result is not None),
                                    f"{score:.6g}" if score is not None else "",
                                    int(gated is not None and gated.unsure), *kept.columns(), *painted])
                self.written += 1
        except Exception as exc:  # noqa: BLE001 - a failing disk must not take the display down
            full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
            self.error = "disk full: recording stopped" if full else f"{type(exc).__name__}: {exc}"
        finally:
            self._close_files()
        if self.error:  # take (and drop) what the display still offers until it calls stop()
            while self._queue.get() is not None:
                self.dropped += 1

    def _painted(self, frame: Frame, result: Result | None, style: OverlayStyle) -> list[str]:
        """The row's mask_file, mask_box and overlay_style; the mask written the first time it is shown."""
        if result is None:
            return ["", "", ""]
        if self._mask is None or self._mask[0] is not result:
            self.masks += 1
            name = f"m{self.masks:06d}.png"
            self.policy.write_image(self.masks_dir / name, result.mask)  # + '.enc' when encrypted
            self._mask = (result, f"{self.masks_dir.name}/{name}")
        return [self._mask[1], recording.box_text(frame.to_full(result.box)), recording.style_text(style, self.classes)]

    def _kept(self, image: np.ndarray, kept: Kept) -> np.ndarray:
        """The frame as written: the field of view only (copied into the mask's own buffer, whose
        outside stays black; written at once), or the whole frame; trimmed to the video's even size."""
        w, h = self.size
        return kept.apply(image[:h, :w], reuse=True)

    def _close_files(self) -> None:
        """Close every file, each on its own: one failing must not leave the others open."""
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - the fragments already written stay playable
            self.writer.abort()
        try:
            self._csv_file.close()
        except OSError:
            pass
