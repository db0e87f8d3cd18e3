"""`endospine deid IN --out OUT`: a de-identified copy of a video, an image or a folder of images
(issue 21). No Qt; the pixels and the metadata rules are models/core/deid.py's.

- Pixels: every pixel beyond the field of view's circle + the margin is set to 0. The circle is
  `--region cx,cy,r`, else a profile's fixed circle, else detected (models/core/optics/fov.py): in a
  video, tracked frame by frame (re-detected every 10 frames, held when a detection fails; frames
  before the first detection use the first circle found, searched in the first PROBE_SECONDS); in
  a folder, found in each image. A video with no circle in that time, or an image without one (a
  plain camera, whose burned-in text cannot be told from the picture), is refused unless a region
  or a profile's circle is given: nothing is written.
- Metadata: nothing is copied. A video is re-encoded (H.264, crf 18, the input's size trimmed to
  even sides and its mean frame rate) with only EndoSpine's tags (models.core.video.VideoWriter
  drops FFmpeg's and x264's own strings); its audio, subtitle and data streams are left out.
  Images are re-encoded from their pixels: PNG and JPEG keep their format, other formats become
  PNG; EXIF, XMP, ICC, text chunks and comments are gone.
- Report: a JSON file (default OUT.deid.json beside a file, OUT/deid.json in a folder) with, per
  file, the circle used, the share of pixels blacked out and the metadata keys dropped, and one
  summary line on stdout. The report names the input files: if their names identify patients,
  keep it with the originals, not with the copy.
The output is written under a temporary name and renamed when complete; a refusal or a failure
leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.deid import (
    DeidPolicy,
    KeepMask,
    disallowed_video,
    image_metadata,
    region_in_frame,
    version,
    video_metadata,
)
from models.core.errors import EndoSpineError
from models.core.imageio import IMAGE_SUFFIXES, folder_images, read_bytes, read_image, write_bytes_atomic
from models.core.optics.fov import Circle
from models.core.outputs import IMAGE, VIDEO, check_file, check_folder
from models.core.sources.video import VideoSource

FORMAT = "endospine-deid/1"
PROBE_SECONDS = 120.0   # a video's first circle is searched this far in (frames before it use it too)
KEEP_SUFFIXES = (".png", ".jpg", ".jpeg")  # image formats written as they came; others become PNG


def deidentify(inp: str | Path, out: str | Path, policy: DeidPolicy, report: str | Path | None = None,
               progress: bool = True) -> dict:
    """De-identify a video, an image or a folder of images into `out`; write the JSON report and
    return it. policy.keep_full_frame is ignored: this command always keeps the field of view only."""
    inp, out = Path(inp), Path(out)
    policy = DeidPolicy(margin_px=policy.margin_px, fov=policy.fov, region=policy.region)
    if not inp.exists():
        raise EndoSpineError(f"{inp}: not found")
    if inp.is_dir():
        check_folder(out, "--out", inputs=[inp])
        if out.exists() and any(out.iterdir()):
            raise EndoSpineError(f"--out {out}: folder is not empty (choose a new or empty folder)")
        files = _folder(inp, out, policy, progress)
        report_path = Path(report) if report else out / "deid.json"
    elif inp.suffix.lower() in IMAGE_SUFFIXES:
        check_file(out, IMAGE, "--out", inputs=[inp])
        files = [_image_file(inp, out, policy)]
        report_path = Path(report) if report else out.with_name(out.stem + ".deid.json")
    else:
        check_file(out, VIDEO, "--out", inputs=[inp])
        files = [_video(inp, out, policy, progress)]
        report_path = Path(report) if report else out.with_name(out.stem + ".deid.json")
    doc = {"format": FORMAT, "endospine": version(), "input": str(inp), "output": str(out),
           "frames": policy.summary(), "margin_px": policy.margin_px, "files": files, "totals": _totals(files)}
    write_bytes_atomic(report_path, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))
    doc["report"] = str(report_path)
    return doc


def _totals(files: list[dict]) -> dict:
    pixels = sum(f["pixels"] for f in files)
    dropped = sorted({k for f in files for k in f["metadata_dropped"]})
    return {"files": len(files), "frames": sum(f["frames"] for f in files),
            "black_share": round(sum(f["black_share"] * f["pixels"] for f in files) / pixels, 4) if pixels else 0.0,
            "metadata_dropped": dropped,
            "streams_dropped": sorted({s for f in files for s in f.get("streams_dropped", [])})}


def summary_line(doc: dict) -> str:
    """One line: what was written, the circle(s), the share blacked out, the metadata dropped."""
    t = doc["totals"]
    files = doc["files"]
    if len(files) == 1:
        c = files[0]["circle"]
        where = f"circle ({c['cx']:.1f}, {c['cy']:.1f}) r {c['r']:.1f} ({c['source']})"
        what = f"{t['frames']} frame{'s' * (t['frames'] != 1)}"
    else:
        sources = sorted({f["circle"]["source"] for f in files})
        where = f"a circle per image ({', '.join(sources)})"
        what = f"{t['files']} images"
    keys = t["metadata_dropped"]
    dropped = f"{len(keys)} metadata key{'s' * (len(keys) != 1)} dropped"
    if keys:
        dropped += f" ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})"
    streams = f", {len(t['streams_dropped'])} other stream(s) left out" if t["streams_dropped"] else ""
    return (f"deid: {what} -> {doc['output']}: {where}, {t['black_share']:.1%} of pixels blacked out, "
            f"{dropped}{streams}; report {doc['report']}")


# -- one image ---------------------------------------------------------------------------------------
def _circle_entry(circle: Circle, source: str, spread: float = 0.0) -> dict:
    return {"cx": round(circle.cx, 2), "cy": round(circle.cy, 2), "r": round(circle.r, 2), "source": source,
            "spread_px": round(spread, 2)}


def _image_file(src: Path, dst: Path, policy: DeidPolicy) -> dict:
    data = read_bytes(src)
    rgb = read_image(src)
    h, w = rgb.shape[:2]
    if policy.region is not None:
        region_in_frame(policy.region, w, h, str(src))
    finder = policy.finder(every=1)
    circle = finder(rgb)
    if circle is None:
        raise EndoSpineError(f"{src}: no field of view (the endoscope's circle on a dark surround) found: a plain "
                             "camera? Not written, since text burned in around the picture may identify the "
                             "patient; give --region cx,cy,r or a --profile with a fixed circle")
    mask = KeepMask((w, h), circle, policy.margin_px)
    policy.write_image(dst, mask.apply(rgb))
    before, after = image_metadata(data), image_metadata(dst.read_bytes()) or {}
    dropped = sorted(k for k, v in before.items() if after.get(k) != v) if before is not None \
        else [f"(all: {src.suffix} re-encoded from its pixels)"]
    return {"input": str(src), "output": str(dst), "kind": "image", "frames": 1, "pixels": w * h,
            "size": [w, h], "circle": _circle_entry(circle, finder.source), "black_share": round(mask.black_share, 4),
            "metadata_dropped": dropped, "converted": dst.suffix.lower() != src.suffix.lower()}


def _folder(src: Path, out: Path, policy: DeidPolicy, progress: bool) -> list[dict]:
    files = folder_images(src, "IN")
    staged = out.with_name(f".{out.name}.partial{os.getpid()}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    entries, refused = [], []
    try:
        for f in tqdm(files, desc="deid", unit="image", disable=not progress):
            name = f.name if f.suffix.lower() in KEEP_SUFFIXES else f.stem + ".png"
            try:
                entry = _image_file(f, staged / name, policy)
            except EndoSpineError as exc:
                if "no field of view" not in str(exc):
                    raise
                refused.append(f)
                continue
            entry["output"] = str(out / name)
            entries.append(entry)
        if refused:
            raise EndoSpineError(f"{refused[0]}: no field of view (the endoscope's circle on a dark surround) found in "
                                 f"{len(refused)} of {len(files)} images (this one first): a plain camera? Nothing "
                                 "written, since text burned in around the picture may identify the patient; give "
                                 "--region cx,cy,r or a --profile with a fixed circle")
        if len({Path(e["output"]).name for e in entries}) != len(entries):
            raise EndoSpineError(f"{src}: two images would get the same name once converted to PNG (e.g. a.tif and "
                                 "a.png); rename one")
        if out.exists():
            out.rmdir()  # checked empty above
        os.replace(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return entries


# -- a video -----------------------------------------------------------------------------------------
def _first_circle(src: Path, policy: DeidPolicy, fps: float) -> tuple[Circle, str]:
    """The circle for the frames before the first detection: the region or the profile's, else the
    first one detected within PROBE_SECONDS; refused without one."""
    source = VideoSource(src, realtime=False)
    source.open()
    searched = 0
    try:
        finder = policy.finder(every=1)
        while searched < max(1, int(PROBE_SECONDS * fps)) and (frame := source.read()) is not None:
            searched += 1
            if (circle := finder(frame.image)) is not None:
                return circle, finder.source
    finally:
        source.close()
    raise EndoSpineError(f"{src}: no field of view (the endoscope's circle on a dark surround) found in "
                         f"{'its' if searched < PROBE_SECONDS * fps else 'the first'} {searched} frames: a plain "
                         "camera? Not written, since text burned in around the picture may identify the patient; "
                         "give --region cx,cy,r or a --profile with a fixed circle")


def _video(src: Path, dst: Path, policy: DeidPolicy, progress: bool) -> dict:
    before = video_metadata(src)
    source = VideoSource(src, realtime=False)
    source.open()
    try:
        (w0, h0), fps = source.size, source.fps
        if policy.region is not None:
            region_in_frame(policy.region, w0, h0, str(src))
        first, first_source = _first_circle(src, policy, fps)
        w, h = w0 - w0 % 2, h0 - h0 % 2  # H.264 4:2:0 wants even sides
        finder, blackout = policy.finder(), policy.blackout()
        shares, circles, skipped = [], [], 0
        with policy.video_writer(dst, w, h, fps, crf=18, preset="veryfast") as writer:
            bar = tqdm(total=round(source.duration * fps) if source.duration else None, desc="deid", unit="frame",
                       disable=not progress)
            while (frame := source.read()) is not None:
                if frame.size != (w0, h0):
                    skipped += 1  # another size mid-stream: left out rather than scaled (counted)
                    continue
                circle = finder(frame.image) or first  # before the first detection: the first circle found
                mask = blackout.mask_for((w, h), circle)
                writer.write(mask.apply(frame.image[:h, :w], reuse=True))
                shares.append(mask.black_share)
                circles.append((circle.cx, circle.cy, circle.r))
                bar.update()
            bar.close()
            if not circles:
                raise EndoSpineError(f"{src}: no frames could be decoded")
        note = source.end_note()
    finally:
        source.close()
    if note:
        tqdm.write(f"endospine deid: warning: {note}", file=sys.stderr)
    after = video_metadata(dst)
    used = np.array(circles)
    med = np.median(used, axis=0)
    spread = float(np.max(np.hypot(used[:, 0] - med[0], used[:, 1] - med[1]) + np.abs(used[:, 2] - med[2])))
    video = [s for s in before["streams"] if s["type"] == "video"]
    kept_tags = after["streams"][0]["metadata"] if after["streams"] else {}
    dropped = [k for k, v in before["container"].items() if after["container"].get(k) != v]
    for s in before["streams"]:
        same = kept_tags if s is video[0] else {}
        dropped += [f"stream {s['index']}: {k}" for k, v in s["metadata"].items() if same.get(k) != v]
    others = [f"stream {s['index']} ({s['type']})" for s in before["streams"] if s is not video[0]]
    return {"input": str(src), "output": str(dst), "kind": "video", "frames": len(circles),
            "pixels": len(circles) * w * h, "size": [w, h], "fps": round(fps, 3), "skipped_other_size": skipped,
            "circle": _circle_entry(Circle(*med), finder.source if finder.source != "none" else first_source, spread),
            "black_share": round(float(np.mean(shares)), 4), "metadata_dropped": dropped, "streams_dropped": others,
            "metadata_written": after["container"], "metadata_outside_allow_list": disallowed_video(after)}
