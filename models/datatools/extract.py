"""Surgery videos -> an unlabeled frame set worth labeling.

Every `every`-th decoded frame of each video is a candidate. A candidate is dropped when it is
too dark or too bright inside the field of view, too blurry (variance of the Laplacian inside the
FOV below `min_sharpness`), or a near-duplicate of a frame already kept from the same clip (dHash
distance below `dup_threshold`; of two near-duplicates the sharper one is kept). With
`max_per_clip`, the kept frames of a clip are thinned to that many, evenly spread in time.

De-identified by default (issue 21, models/core/deid.py): every candidate keeps only the
endoscope's field of view, every pixel beyond the circle + the margin black (text burned in by the
video tower: patient name, dates, record number), before it is measured or written. The circle is
the given region (`--region`), a profile's fixed circle, or the one found in each candidate
(models/core/optics/fov.py; a failed detection keeps the clip's last circle). A candidate before
any circle of its clip is known is dropped (`no_fov`); a clip in which none is found at all (a plain
camera) is refused, so that no frame with identifiers is written. `keep_full_frame` (--keep-full-frame)
writes the frames whole; frames.yaml and every image's metadata then say so. Images carry no
metadata but EndoSpine's version and what the frames keep.

Output contract (a frame set, not a dataset: there are no labels yet)::

    images/<clip>_<frame:06d>.png     the kept frames (or .jpg with image_format="jpg")
    frames.yaml                       format endospine-frames/1: class table to label with, the
                                      settings, what the frames keep (deid), per clip the counts
                                      kept and dropped by reason and the circle used, per frame:
                                      image, clip, frame index, pts (s), measures

The clip id is the video's file stem (made file-name safe); two videos with the same stem are
an error. The frame name carries clip and frame index, so that after labeling
`endospine-model import ... --clip-from '^(.+)_(\\d+)$'` gives every labeled frame its clip and
frame index back, and splits stay by clip. The folder is written under a temporary name and
renamed when every video is done: a failure leaves nothing behind.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import av
import numpy as np
from tqdm import tqdm

from models.core.classes import ClassTable
from models.core.deid import DeidPolicy, region_in_frame
from models.core.errors import EndoSpineError
from models.core.picture import AvConverter
from models.core.yamlio import dump_yaml
from models.dataset import StagedDir
from models.datatools import quality
from models.datatools.common import check_out_free

FORMAT = "endospine-frames/1"
REASONS = ("dark", "bright", "blurry", "duplicate", "no_fov", "over_limit")


@dataclass(frozen=True)
class ExtractSettings:
    every: int = 15                   # candidate every N decoded frames
    max_per_clip: int | None = None   # keep at most N frames per clip (evenly spread)
    min_sharpness: float = 15.0       # variance of the Laplacian inside the FOV
    dup_threshold: float = 0.1        # dHash distance (share of bits) below which frames are duplicates
    max_dark: float = 0.4             # drop when more of the FOV than this is dark
    max_bright: float = 0.2           # drop when more of the FOV than this is blown out
    image_format: str = "png"

    def __post_init__(self) -> None:
        checks = [(self.every >= 1, "--every must be 1 or more"),
                  (self.max_per_clip is None or self.max_per_clip >= 1, "--max-per-clip must be 1 or more"),
                  (self.min_sharpness >= 0, "--min-sharpness must be 0 or more"),
                  (0 <= self.dup_threshold <= 1, "--dup-threshold must be in 0..1 (0 keeps duplicates)"),
                  (0 <= self.max_dark <= 1, "--max-dark must be in 0..1"),
                  (0 <= self.max_bright <= 1, "--max-bright must be in 0..1"),
                  (self.image_format in ("png", "jpg"), "--format must be png or jpg")]
        for ok, message in checks:
            if not ok:
                raise EndoSpineError(message)


@dataclass
class ClipSummary:
    clip: str
    video: str
    decoded: int = 0
    candidates: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {r: 0 for r in REASONS})
    median_sharpness: float | None = None
    fov: dict | None = None   # the circle the kept frames were cut to: median cx, cy, r, its source and spread
    black_share: float | None = None  # mean share of each kept frame's pixels set to black


@dataclass
class KeptFrame:
    image: str
    clip: str
    frame: int
    pts: float | None
    sharpness: float
    dark: float
    bright: float
    hash: np.ndarray = field(repr=False)


def clip_id(video: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", video.stem).strip("-") or "clip"


def extract_frames(videos: Sequence[str | Path], out: str | Path, settings: ExtractSettings,
                   classes: ClassTable, policy: DeidPolicy | None = None) -> list[ClipSummary]:
    """policy: what the frames keep (default: de-identified, the field of view only, the circle detected)."""
    policy = policy or DeidPolicy()
    videos = [Path(v) for v in videos]
    if not videos:
        raise EndoSpineError("extract: no videos given")
    out = Path(out)
    check_out_free(out)
    ids: dict[str, Path] = {}
    for video in videos:
        _probe(video)
        other = ids.setdefault(clip_id(video), video)
        if other is not video:
            same = other.resolve() == video.resolve()
            raise EndoSpineError(f"{video}: given twice" if same else
                                 f"{video}: same clip id {clip_id(video)!r} as {other} (rename one of them)")
    summaries: list[ClipSummary] = []
    frames: list[KeptFrame] = []
    with StagedDir(out) as tmp:
        for video in videos:
            summary, kept = _extract_clip(video, clip_id(video), tmp, settings, policy)
            summaries.append(summary)
            frames += kept
        doc = {
            "format": FORMAT,
            "name": out.name,
            "classes": classes.to_dict(),
            "settings": asdict(settings),
            "deid": {"frames": policy.frames, "margin_px": policy.margin_px, "summary": policy.summary(),
                     "region": [policy.region.cx, policy.region.cy, policy.region.r] if policy.region else None},
            "clips": [asdict(s) for s in summaries],
            "frames": [{"image": f.image, "clip": f.clip, "frame": f.frame, "pts": f.pts,
                        "sharpness": round(f.sharpness, 2), "dark": round(f.dark, 4), "bright": round(f.bright, 4)}
                       for f in frames],
        }
        (tmp / "frames.yaml").write_text(dump_yaml(doc, width=120), encoding="utf-8")
    return summaries


def _probe(video: Path) -> None:
    if not video.is_file():
        raise EndoSpineError(f"{video}: video not found")
    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise EndoSpineError(f"{video}: has no video stream")
    except av.FFmpegError as exc:
        raise EndoSpineError(f"{video}: cannot open as a video ({_why(exc)})") from None


def _why(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def judge(q: quality.FrameQuality, s: ExtractSettings) -> str | None:
    """The reason to drop a candidate on its own merits (None: good enough)."""
    if q.dark > s.max_dark:
        return "dark"
    if q.bright > s.max_bright:
        return "bright"
    if q.sharpness < s.min_sharpness:
        return "blurry"
    return None


def _extract_clip(video: Path, clip: str, tmp: Path, s: ExtractSettings,
                  policy: DeidPolicy) -> tuple[ClipSummary, list[KeptFrame]]:
    summary = ClipSummary(clip, str(video.resolve()))
    kept: list[KeptFrame] = []
    sharp: list[float] = []
    finder, blackout = policy.finder(every=1), policy.blackout()  # candidates lie frames apart: search each
    circles: dict[int, tuple[float, float, float, float]] = {}  # frame index -> (cx, cy, r, black share)
    index = -1
    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            to_rgb = AvConverter()
            with tqdm(total=stream.frames or None, desc=clip, unit="frame", disable=None, leave=False) as bar:
                for index, frame in enumerate(container.decode(stream)):
                    bar.update()
                    if index % s.every:
                        continue
                    summary.candidates += 1
                    rgb = to_rgb(frame)
                    if not policy.keep_full_frame:
                        if policy.region is not None and summary.candidates == 1:  # a typo: not all-black frames
                            region_in_frame(policy.region, rgb.shape[1], rgb.shape[0], f"{video}: --region")
                        circle = finder(rgb)
                        if circle is None:  # no field of view known yet in this clip: nothing of it is written
                            summary.dropped["no_fov"] += 1
                            continue
                        mask = blackout.mask_for((rgb.shape[1], rgb.shape[0]), circle)
                        rgb = mask.apply(rgb)
                        circles[index] = (circle.cx, circle.cy, circle.r, mask.black_share)
                    q = quality.measure(rgb)
                    sharp.append(q.sharpness)
                    reason = judge(q, s) or _dedupe(q, kept, s, tmp, summary)
                    if reason:
                        summary.dropped[reason] += 1
                        continue
                    name = f"images/{clip}_{index:06d}.{s.image_format}"
                    policy.write_image(tmp / name, rgb)
                    pts = None if frame.time is None else round(float(frame.time), 4)
                    kept.append(KeptFrame(name, clip, index, pts, q.sharpness, q.dark, q.bright, q.hash))
    except av.FFmpegError as exc:
        raise EndoSpineError(f"{video}: cannot decode frame {index + 1} ({_why(exc)})") from None
    summary.decoded = index + 1
    if summary.decoded == 0:
        raise EndoSpineError(f"{video}: no frames could be decoded")
    if not policy.keep_full_frame and summary.candidates and summary.dropped["no_fov"] == summary.candidates:
        raise EndoSpineError(f"{video}: no field of view (the endoscope's circle on a dark surround) found in any of "
                             f"{summary.candidates} candidate frames: a plain camera? Frames are not written whole, "
                             "since text burned in around the picture may identify the patient: give --region "
                             "cx,cy,r (or a --profile with a fixed circle), or --keep-full-frame")
    kept.sort(key=lambda f: f.frame)   # a sharper duplicate replaces an earlier frame at the end
    if s.max_per_clip is not None and len(kept) > s.max_per_clip:
        keep = set(np.unique(np.round(np.linspace(0, len(kept) - 1, s.max_per_clip)).astype(int)).tolist())
        for i, f in enumerate(kept):
            if i not in keep:
                (tmp / f.image).unlink()
        summary.dropped["over_limit"] += len(kept) - len(keep)
        kept = [f for i, f in enumerate(kept) if i in keep]
    summary.kept = len(kept)
    summary.median_sharpness = round(float(np.median(sharp)), 2) if sharp else None
    used = np.array([circles[f.frame] for f in kept]) if kept and circles else None
    if used is not None:
        cx, cy, r = (round(float(v), 2) for v in np.median(used[:, :3], axis=0))
        spread = float(np.max(np.hypot(used[:, 0] - cx, used[:, 1] - cy) + np.abs(used[:, 2] - r)))
        summary.fov = {"cx": cx, "cy": cy, "r": r, "source": finder.source, "spread_px": round(spread, 2)}
        summary.black_share = round(float(used[:, 3].mean()), 4)
    return summary, kept


def _dedupe(q: quality.FrameQuality, kept: list[KeptFrame], s: ExtractSettings, tmp: Path,
            summary: ClipSummary) -> str | None:
    """'duplicate' if a sharper near-duplicate is kept; else remove the blurrier kept ones (None)."""
    if s.dup_threshold <= 0 or not kept:
        return None
    dist = quality.hash_distances(q.hash, np.stack([f.hash for f in kept]))
    near = np.flatnonzero(dist < s.dup_threshold)
    if len(near) == 0:
        return None
    if max(kept[i].sharpness for i in near) >= q.sharpness:
        return "duplicate"
    for i in sorted(near, reverse=True):   # the new frame is sharper than all of them: it replaces them
        (tmp / kept[i].image).unlink()
        del kept[i]
        summary.dropped["duplicate"] += 1
    return None


def counts(summaries: Sequence[ClipSummary]) -> Counter:
    total: Counter = Counter()
    for s in summaries:
        total["decoded"] += s.decoded
        total["candidates"] += s.candidates
        total["kept"] += s.kept
        total.update(s.dropped)
    return total
