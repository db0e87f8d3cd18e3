"""Appearance statistics of endoscopic frames inside the circular field of view (`frame-stats`).

Made to compare synthetic frames with real ones: the method below is the one the real reference
ranges (REFERENCE) were measured with, so the numbers are comparable only as long as it stays
exactly so. Pure functions of the pixels, Qt-free.

Field of view (`interior`): gray (BGR2GRAY) > 25, a morphological open with a 15x15 kernel of ones,
then an erosion with a 25x25 kernel of ones: the interior away from the rim (a frame whose
interior has fewer than 1000 pixels has no field of view and is skipped).

Per frame (`frame_stats`), over the interior pixels of the BGR image as OpenCV reads it:
    R, G, B      the channel means; R/G and B/G the ratios of those means
    hue_deg      median of OpenCV's HSV H channel (0..179), times 2
    saturation   median S / 255;  value: median V / 255
    white%       share of interior pixels whose smallest channel is above 230, times 100
    detail512    variance of cv2.Laplacian (CV_32F) of the gray image scaled by
                 s = 512 / max(ptp(ys), ptp(xs), 1) of the interior's pixel coordinates (INTER_AREA),
                 over the interior mask scaled to the same size (INTER_NEAREST): texture at a
                 field of view about 512 px across, whatever the frame's resolution

Over frames (`summarize`): per statistic the median, min and max; and (`compare`) against the real
reference ranges: whether the median lies inside the real [min, max], and the share of frames that do.

Inputs (`collect_inputs`, `read_frames`): image files (through the image gate,
models.core.imageio), folders (their images, recursively; a dataset folder with an images/
sub-folder: only those), video files (every N-th decoded frame, read with the project's
VideoSource as fast as it decodes).
"""
from __future__ import annotations

import json
import math
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from models.core.errors import EndoSpineError
from models.core.imageio import IMAGE_SUFFIXES, read_image, write_bytes_atomic
from models.core.sources.video import VideoSource

FORMAT = "endospine-frame-stats/1"
DEFAULT_EVERY = 30
FOV_GRAY = 25             # gray levels above this are the field of view
OPEN_KERNEL = 15          # morphological open: removes specks outside the circle
ERODE_KERNEL = 25         # erosion: keeps the statistics off the rim
MIN_INTERIOR_PX = 1000    # fewer interior pixels: the frame has no field of view
WHITE_LEVEL = 230         # a pixel whose smallest channel is above this is white (glare)
DETAIL_SPAN = 512         # detail512: the interior scaled to this many pixels across
DETAIL_MAX_PIXELS = 4096 * 4096   # a scaled frame larger than this is scaled as a crop (see _detail)

STATS = ("R", "G", "B", "R/G", "B/G", "hue_deg", "saturation", "value", "white%", "detail512")
DIGITS = {"R": 0, "G": 0, "B": 0, "R/G": 2, "B/G": 2, "hue_deg": 0, "saturation": 2, "value": 2,
          "white%": 2, "detail512": 0}   # how the table shows each statistic (the reference's precision)

# The REAL REFERENCE RANGES, median (min, max) per statistic, measured with frame_stats below on
# 4 public sample frames of full-endoscopic lumbar surgery, 1050-1090 px square crops of the
# circular view, from the sample set of a 2026 PLOS ONE study of YOLO-v11 instance segmentation in
# spine endoscopy; median [min, max]. G and B have no reference range.
REFERENCE_SOURCE = ("4 public sample frames of full-endoscopic lumbar surgery, 1050-1090 px square crops of the "
                    "circular view, from the sample set of a 2026 PLOS ONE study of YOLO-v11 instance segmentation "
                    "in spine endoscopy; median [min, max]")
REFERENCE: dict[str, tuple[float, float, float]] = {
    "R": (195, 128, 201),
    "R/G": (1.46, 1.35, 1.59),
    "B/G": (0.77, 0.73, 1.00),
    "hue_deg": (20, 16, 24),
    "saturation": (0.47, 0.33, 0.53),
    "value": (0.78, 0.51, 0.80),
    "white%": (0.00, 0.00, 0.01),
    "detail512": (83, 65, 111),
}


# -- one frame ---------------------------------------------------------------------------------
def interior(bgr: np.ndarray) -> np.ndarray:
    """HxW uint8 mask (1 inside) of the field of view's rim-safe interior of a BGR uint8 frame."""
    gray = cv2.cvtColor(_check_bgr(bgr), cv2.COLOR_BGR2GRAY)
    return _interior_of_gray(gray)


def _interior_of_gray(gray: np.ndarray) -> np.ndarray:
    mask = (gray > FOV_GRAY).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((OPEN_KERNEL, OPEN_KERNEL), np.uint8))
    return cv2.erode(mask, np.ones((ERODE_KERNEL, ERODE_KERNEL), np.uint8))


def frame_stats(bgr: np.ndarray) -> dict[str, float | None] | None:
    """The statistics of one BGR uint8 frame (keys STATS), None when its interior has fewer than
    MIN_INTERIOR_PX pixels. A ratio whose G mean is 0 is None."""
    gray = cv2.cvtColor(_check_bgr(bgr), cv2.COLOR_BGR2GRAY)
    mask = _interior_of_gray(gray)
    inside = mask > 0
    if int(np.count_nonzero(inside)) < MIN_INTERIOR_PX:
        return None
    px = bgr[inside].astype(np.float64)             # N x 3, B G R
    b, g, r = (float(v) for v in px.mean(axis=0))
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)[inside]
    return {
        "R": r, "G": g, "B": b,
        "R/G": r / g if g > 0 else None,
        "B/G": b / g if g > 0 else None,
        "hue_deg": float(np.median(hsv[:, 0])) * 2,
        "saturation": float(np.median(hsv[:, 1])) / 255,
        "value": float(np.median(hsv[:, 2])) / 255,
        "white%": float(np.mean(bgr[inside].min(axis=1) > WHITE_LEVEL)) * 100,
        "detail512": _detail(gray, mask),
    }


def _detail(gray: np.ndarray, mask: np.ndarray) -> float | None:
    """detail512: variance of the Laplacian over the interior, the frame scaled so that the
    interior spans DETAIL_SPAN px. A scaled frame above DETAIL_MAX_PIXELS (only when the interior
    is a small part of a large frame: under 180 px across in 1920x1080) is scaled as a crop of the
    interior's bounding box, which can move the sampling grid by a fraction of a pixel."""
    ys, xs = np.nonzero(mask)
    s = DETAIL_SPAN / max(int(np.ptp(ys)), int(np.ptp(xs)), 1)
    h, w = gray.shape
    if round(h * s) * round(w * s) > DETAIL_MAX_PIXELS:
        margin = 2 + math.ceil(1 / s)
        y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, h)
        x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, w)
        gray, mask = gray[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        h, w = gray.shape
    if round(h * s) < 1 or round(w * s) < 1:
        return None
    small = cv2.resize(gray, (0, 0), fx=s, fy=s, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
    values = cv2.Laplacian(small, cv2.CV_32F)[small_mask > 0]
    return float(values.astype(np.float64).var()) if values.size else None


def _check_bgr(bgr: np.ndarray) -> np.ndarray:
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 BGR frame, got {bgr.dtype} {bgr.shape}")
    return bgr


# -- over frames -------------------------------------------------------------------------------
def summarize(rows: Sequence[dict]) -> dict:
    """{'frames': n, 'stats': {stat: {'median', 'min', 'max', 'frames', 'values'}}} over the
    frames' statistics (rows from frame_stats; values that are None are left out)."""
    stats = {}
    for key in STATS:
        values = [float(r[key]) for r in rows if r.get(key) is not None]
        if values:
            stats[key] = {"median": float(np.median(values)), "min": min(values), "max": max(values),
                          "frames": len(values), "values": values}
    return {"frames": len(rows), "stats": stats}


def compare(summary: dict, reference: dict[str, tuple[float, float, float]] = REFERENCE) -> dict:
    """Per statistic with a reference range and measured values: the real median and range,
    whether the measured median lies inside [min, max] (bounds included), and the number and
    share of frames whose value does."""
    out = {}
    for key, (real_median, lo, hi) in reference.items():
        measured = summary["stats"].get(key)
        if measured is None:
            continue
        inside = sum(lo <= v <= hi for v in measured["values"])
        out[key] = {"real": {"median": real_median, "min": lo, "max": hi},
                    "median_inside": bool(lo <= measured["median"] <= hi),
                    "frames_inside": inside, "frames": measured["frames"],
                    "share_inside": inside / measured["frames"]}
    return out


# -- inputs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    path: Path
    kind: str   # "image" or "video"


def collect_inputs(paths: Sequence[str | Path]) -> list[Input]:
    """The frames' sources, in the order given (a folder's images in name order); EndoSpineError
    naming the path for a missing path or a folder without images. Nothing is decoded here."""
    if not paths:
        raise EndoSpineError("frame-stats: no input given")
    found: list[Input] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            root = path / "images" if (path / "images").is_dir() else path   # a dataset: only its images
            images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(root).parts))
            if not images:
                raise EndoSpineError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder or below")
            found += [Input(p, "image") for p in images]
        elif path.is_file():
            found.append(Input(path, "image" if path.suffix.lower() in IMAGE_SUFFIXES else "video"))
        elif path.exists():
            raise EndoSpineError(f"{path}: not a file or folder")
        else:
            raise EndoSpineError(f"{path}: not found")
    return found


@dataclass(frozen=True)
class SampledFrame:
    source: Path
    frame: int | None     # decoded frame index in a video; None for an image
    pts: float | None
    bgr: np.ndarray


def read_frames(inputs: Sequence[Input], every: int = DEFAULT_EVERY, notes: list[str] | None = None
                ) -> Iterator[SampledFrame]:
    """Every image, and every `every`-th decoded frame of each video (0, every, 2*every, ...), as
    BGR uint8. A video's end note (a file cut short, corrupt packets skipped) goes to `notes`."""
    if every < 1:
        raise EndoSpineError("--every must be 1 or more")
    for item in inputs:
        if item.kind == "image":
            yield SampledFrame(item.path, None, None, cv2.cvtColor(read_image(item.path), cv2.COLOR_RGB2BGR))
        else:
            yield from _video_frames(item.path, every, notes)


def _video_frames(path: Path, every: int, notes: list[str] | None) -> Iterator[SampledFrame]:
    source = VideoSource(path, realtime=False)   # as fast as it decodes: not at the file's pace
    source.open()
    decoded = 0
    try:
        while (frame := source.read()) is not None:
            decoded += 1
            if frame.frame_id % every == 0:
                yield SampledFrame(path, frame.frame_id, frame.pts, cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        if decoded == 0:
            raise EndoSpineError(f"{path}: no frame could be decoded (not a readable video)")
        if notes is not None:
            if source.corrupt_packets:
                notes.append(f"{path}: {source.corrupt_packets} corrupt packet(s) skipped")
            if source.end_note():
                notes.append(source.end_note())
    finally:
        source.close()


# -- the whole measurement ---------------------------------------------------------------------
def measure(paths: Sequence[str | Path], every: int = DEFAULT_EVERY, max_frames: int | None = None) -> dict:
    """Measure the frames of `paths`: the document the table, the markdown and the JSON are made
    from. At most `max_frames` frames are read (with or without a field of view). EndoSpineError
    when an input is bad, or when no frame has a field of view."""
    if max_frames is not None and max_frames < 1:
        raise EndoSpineError("--max-frames must be 1 or more")
    inputs = collect_inputs(paths)
    notes: list[str] = []
    rows: list[dict] = []
    no_fov: list[dict] = []
    read = 0
    images = sum(i.kind == "image" for i in inputs)
    total = images if images == len(inputs) else None   # videos: frame counts are not known up front
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    with closing(read_frames(inputs, every, notes)) as frames, \
            tqdm(total=total, desc="frame-stats", unit="frame", disable=None, leave=False) as bar:
        for sampled in frames:
            read += 1
            bar.update()
            where = {"source": str(sampled.source), "frame": sampled.frame, "pts": sampled.pts}
            stats = frame_stats(sampled.bgr)
            if stats is None:
                no_fov.append(where)
            else:
                rows.append({**where, **stats})
            if max_frames is not None and read >= max_frames:
                break
    names = ", ".join(str(p) for p in paths)
    if not rows:
        raise EndoSpineError(f"{names}: no frame has a field of view (an interior of {MIN_INTERIOR_PX} px or more "
                             f"brighter than gray {FOV_GRAY}) in {read} frame(s) read")
    summary = summarize(rows)
    return {
        "format": FORMAT,
        "inputs": [str(p) for p in paths],
        "settings": {"every": every, "max_frames": max_frames},
        "frames_read": read,
        "frames": len(rows),
        "frames_without_fov": no_fov,
        "notes": notes,
        "summary": summary,
        "comparison": compare(summary),
        "reference": {"source": REFERENCE_SOURCE,
                      "stats": {k: {"median": m, "min": lo, "max": hi} for k, (m, lo, hi) in REFERENCE.items()}},
        "per_frame": rows,
    }


# -- output ------------------------------------------------------------------------------------
def _num(key: str, value: float | None) -> str:
    return "-" if value is None else f"{value:.{DIGITS[key]}f}"


def _range(key: str, median, lo, hi) -> str:
    return f"{_num(key, median)} [{_num(key, lo)}, {_num(key, hi)}]"


def table_rows(doc: dict) -> list[list[str]]:
    """The table's rows: statistic, measured median [min, max], real median [min, max], median
    inside, frames inside."""
    rows = []
    for key in STATS:
        m = doc["summary"]["stats"].get(key)
        c = doc["comparison"].get(key)
        measured = _range(key, m["median"], m["min"], m["max"]) if m else "-"
        if c:
            real = _range(key, c["real"]["median"], c["real"]["min"], c["real"]["max"])
            inside = "yes" if c["median_inside"] else "no"
            share = f"{100 * c['share_inside']:.0f}% ({c['frames_inside']}/{c['frames']})"
        else:
            real, inside, share = "-", "-", "-"
        rows.append([key, measured, real, inside, share])
    return rows


HEADER = ["statistic", "measured median [min, max]", "real median [min, max]", "median inside", "frames inside"]


def headline(doc: dict) -> str:
    skipped = len(doc["frames_without_fov"])
    return (f"{doc['frames']} frame(s) with a field of view of {doc['frames_read']} read"
            f"{f' ({skipped} without one, skipped)' if skipped else ''} from {', '.join(doc['inputs'])}")


def format_table(doc: dict) -> str:
    """The readable table printed on stdout."""
    rows = [HEADER] + table_rows(doc)
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = [headline(doc), ""]
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", f"real: {REFERENCE_SOURCE}"]
    lines += [f"note: {note}" for note in doc["notes"]]
    return "\n".join(lines)


def format_markdown(doc: dict) -> str:
    """The table as markdown (for the README)."""
    lines = [f"{headline(doc)}.", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(doc)]
    lines += ["", f"Real: {REFERENCE_SOURCE}."]
    return "\n".join(lines) + "\n"


def to_json(doc: dict) -> str:
    """Everything, machine-readable: the per-frame values are in 'per_frame' (and not repeated
    in the summary)."""
    summary = {"frames": doc["summary"]["frames"],
               "stats": {k: {f: v for f, v in s.items() if f != "values"} for k, s in doc["summary"]["stats"].items()}}
    return json.dumps({**doc, "summary": summary}, indent=2, allow_nan=False) + "\n"


def write_json(doc: dict, path: str | Path) -> None:
    write_bytes_atomic(Path(path), to_json(doc).encode("utf-8"))


def write_markdown(doc: dict, path: str | Path) -> None:
    write_bytes_atomic(Path(path), format_markdown(doc).encode("utf-8"))
