"""De-identification (issue 21): what leaves the OR keeps the endoscope's field of view and nothing
else, and carries no metadata but an allow-list. Qt-free; used by the recorder and snapshots
(app/recorder.py), `endospine deid` (app/deid.py) and `endospine-model extract`.

A surgical video tower burns text into its output around the circular endoscope image (patient
name, date of birth, record number, date and time, surgeon). So every pixel farther than
`margin_px` beyond the field of view's circle is set to 0 before anything is written. The circle
is, in this order: a region the user gives, the profile's fixed circle (`fov: mode fixed`, measured
on frames of this shape and not on undistorted ones), or the one models/core/optics/fov.py finds
in the frames (tracked: re-detected every few frames, held when a detection fails). Until a circle
is known the whole frame is black: a recording never holds a full frame with identifiers by
default. Keeping the full frame is an explicit choice (the profile's `deid: keep_full_frame`,
`--keep-full-frame`), and the files then say so in their metadata.

Pixels, cheap per frame:
- `KeepMask`: the kept disc for one frame size and circle, computed once (over the circle's
  bounding box only); applying it is one masked copy (cv2.copyTo) into a buffer whose outside was
  zeroed when the mask was made: no per-frame allocation, no pass over the black outside.
- `Blackout`: the current KeepMask, rebuilt only when the size or the circle changes.
- `CircleFinder`: the circle for each frame, and where it came from.

Metadata:
- `DeidPolicy.tags()`: the only tags EndoSpine writes into a file: its version, the model id, and
  whether the frames are the field of view only or the full frame. Video containers get them
  through models.core.video.VideoWriter (which also drops the muxer's and x264's own strings);
  PNG as tEXt chunks, JPEG as one COM segment (`encode_image`).
- `video_metadata`, `image_metadata`: what a file carries, read back (for reports and tests);
  `disallowed_video`, `disallowed_image`: the keys outside the allow-list.

One place for the files: every file a recording, a snapshot or a de-identified copy writes goes
through `DeidPolicy.video_writer`, `write_image` or `open_text`. Encryption at rest (issue 21,
item 3; models/core/sealed.py): a policy with a `key` (the profile's `deid: {encrypt: true}`, the
key from its key_file or ENDOSPINE_KEY) writes each of them sealed, named `<name>.enc`
(rec-0001_raw.mp4.enc, rec-0001_frames.csv.enc, snap-0001_f000123_raw.png.enc); `stored_path`
gives the name a file gets. A key file inside the folder a file is written to is refused.

Compression spreads the rim into the black band: with H.264 at the recorder's settings (crf 18)
pixels more than CODEC_BAND_PX beyond the black-out's edge stay at most 8 levels (tests measure
it); lossless files (PNG) are exactly 0 there.
"""
from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass, field, replace
from importlib import metadata as _pkg
from pathlib import Path
from typing import IO

import av
import cv2
import numpy as np

from models.core.errors import EndoSpineError
from models.core.imageio import encode_image as _encode_plain
from models.core.imageio import write_bytes_atomic
from models.core.optics.fov import Circle, FovTracker
from models.core.optics.profile import DEFAULT_DEID_MARGIN_PX, FovSection, Profile
from models.core.sealed import SealedWriter, check_key_outside, resolve_key, seal_bytes, sealed_name
from models.core.video import VideoWriter

DEFAULT_MARGIN_PX = DEFAULT_DEID_MARGIN_PX  # picture kept beyond the circle (covers the fit's error, the soft rim)
CODEC_BAND_PX = 12     # H.264 spreads the rim this far into the black band; beyond it <= 8 levels (measured)
DETECT_EVERY = 10      # frames between detections once a circle is known (FovTracker's default)

FOV_ONLY = "field-of-view"   # the `frames` tag of de-identified files
FULL_FRAME = "full-frame"    # ... of files that kept the whole frame (not de-identified)


def version() -> str:
    try:
        return _pkg.version("endospine")
    except _pkg.PackageNotFoundError:
        return "unknown"


# -- pixels --------------------------------------------------------------------------------------
class KeepMask:
    """The pixels of a width x height frame kept around `circle`: those whose center lies within
    r + margin of the circle's center (pixel (x, y) has its center at integer coordinates, as in
    models/core/optics). circle None: nothing is kept (the whole frame black)."""

    def __init__(self, size: tuple[int, int], circle: Circle | None, margin: float):
        w, h = size
        self.size, self.circle, self.margin = (w, h), circle, float(margin)
        self.keep = np.zeros((h, w), np.uint8)
        if circle is not None:
            reach = circle.r + self.margin
            x0, x1 = max(0, math.floor(circle.cx - reach)), min(w, math.ceil(circle.cx + reach) + 1)
            y0, y1 = max(0, math.floor(circle.cy - reach)), min(h, math.ceil(circle.cy + reach) + 1)
            if x1 > x0 and y1 > y0:
                dx = np.arange(x0, x1, dtype=np.float64) - circle.cx
                dy = np.arange(y0, y1, dtype=np.float64) - circle.cy
                self.keep[y0:y1, x0:x1] = (dx[None, :] ** 2 + dy[:, None] ** 2) <= reach * reach
        self.kept = int(np.count_nonzero(self.keep))
        self.black_share = 1.0 - self.kept / float(w * h)  # share of the frame's pixels set to 0
        self._buffer: np.ndarray | None = None

    def apply(self, image: np.ndarray, reuse: bool = False) -> np.ndarray:
        """`image` (HxWx3, or a view of the frame's top-left part of this size) with every pixel
        outside black, as a new array; the image itself is not touched (the display shows it).
        reuse=True writes into this mask's own buffer instead (its outside stays zero from when it
        was made, so only the inside is copied): valid until the next apply(reuse=True)."""
        h, w = image.shape[:2]
        if (w, h) != self.size:
            raise ValueError(f"KeepMask for {self.size[0]}x{self.size[1]} applied to a {w}x{h} frame")
        if reuse:
            if self._buffer is None or self._buffer.shape != image.shape:
                self._buffer = np.zeros(image.shape, np.uint8)
            out = self._buffer
        else:
            out = np.zeros(image.shape, np.uint8)
        if self.kept:
            cv2.copyTo(image, self.keep, out)
        return out


class Blackout:
    """The KeepMask for the current frame size and circle, remade only when either changes."""

    def __init__(self, margin: float = DEFAULT_MARGIN_PX):
        self.margin = float(margin)
        self.mask: KeepMask | None = None

    def mask_for(self, size: tuple[int, int], circle: Circle | None) -> KeepMask:
        m = self.mask
        if m is None or m.size != tuple(size) or m.circle != circle:
            self.mask = m = KeepMask(size, circle, self.margin)
        return m


def fixed_circle(fov: FovSection | None, width: int, height: int) -> Circle | None:
    """The profile's fixed circle in a frame of this size, if it applies to the frames as they are
    (not one measured on undistorted frames: recordings keep the frames as received)."""
    if fov is None or fov.mode != "fixed" or fov.undistorted:
        return None
    return fov.circle_for(width, height)


class CircleFinder:
    """The circle to keep, frame after frame: `region` if given, else the profile's fixed circle
    for this frame size, else detected (models.core.optics.fov): in every frame until one is
    found, then every `every` frames (small moves smoothed, big ones taken at once); a failed
    detection keeps the last circle. None until a circle is known. `source` says where the last
    one came from: region, profile, detected or none."""

    def __init__(self, fov: FovSection | None = None, region: Circle | None = None, every: int = DETECT_EVERY):
        self.fov, self.region, self.every = fov, region, max(1, every)
        self.source = "none"
        self.circle: Circle | None = None   # the detected circle held
        self.last: Circle | None = None     # the circle the last call returned (any source)
        self.detections = 0                  # detections run (each costs a few ms at 1080p)
        self._tracker = FovTracker(every=1)  # smoothing and jumps; when to detect is decided here
        self._size: tuple[int, int] | None = None
        self._count = 0

    def __call__(self, rgb: np.ndarray) -> Circle | None:
        self.last = self._find(rgb)
        return self.last

    def _find(self, rgb: np.ndarray) -> Circle | None:
        h, w = rgb.shape[:2]
        if self.region is not None:
            self.source = "region"
            return self.region
        fixed = fixed_circle(self.fov, w, h)
        if fixed is not None:
            self.source = "profile"
            return fixed
        if self._size != (w, h):  # another frame size: a circle of the old one means nothing here
            self._size, self.circle, self._count = (w, h), None, 0
            self._tracker = FovTracker(every=1)
        if self.circle is None or self._count % self.every == 0:
            self.detections += 1
            found = self._tracker.update(rgb)
            if found is not None:
                self.circle = found
        self._count += 1
        self.source = "detected" if self.circle is not None else "none"
        return self.circle


def parse_region(text: str, flag: str = "--region") -> Circle:
    """'cx,cy,r' in pixels -> Circle; EndoSpineError naming the flag otherwise."""
    try:
        cx, cy, r = (float(v) for v in text.split(","))
    except ValueError:
        raise EndoSpineError(f"{flag} {text!r}: expected cx,cy,r in pixels, e.g. 960,540,420") from None
    finite = all(math.isfinite(v) for v in (cx, cy, r))
    if not finite or not 4 < r <= 16384 or not (0 <= cx <= 16384 and 0 <= cy <= 16384):
        raise EndoSpineError(f"{flag} {text!r}: the center must lie in the frame and the radius be 4..16384 pixels")
    return Circle(cx, cy, r)


def region_in_frame(circle: Circle, width: int, height: int, where: str) -> None:
    """A given region must have its center in the frame (a typo is not a silent all-black output)."""
    if not (0 <= circle.cx < width and 0 <= circle.cy < height):
        raise EndoSpineError(f"{where}: region center ({circle.cx:g}, {circle.cy:g}) lies outside the "
                             f"{width}x{height} frame")


# -- the policy: what a written file keeps and says -------------------------------------------------
@dataclass(frozen=True)
class DeidPolicy:
    """What recordings, snapshots and de-identified copies keep, and the one place they are written."""
    keep_full_frame: bool = False
    margin_px: float = DEFAULT_MARGIN_PX
    model_id: str = ""
    fov: FovSection | None = None   # the profile's field of view (its fixed circle), None: detect
    region: Circle | None = None    # a circle given by the user: wins over the profile and detection
    # encryption at rest (models/core/sealed.py): files are written sealed with this 32-byte key
    key: bytes | None = field(default=None, repr=False, compare=False)
    key_file: str | None = None     # where the key came from (refused inside the folder written to)

    @classmethod
    def from_profile(cls, profile: Profile | None, keep_full_frame: bool = False, model_id: str = "") -> "DeidPolicy":
        """The profile's `deid` section and fixed circle; keep_full_frame=True (a flag) wins over it.
        deid.encrypt: the key from deid.key_file, else ENDOSPINE_KEY; none: EndoSpineError (never
        a silent fallback to plain files)."""
        if profile is None:
            return cls(keep_full_frame=keep_full_frame, model_id=model_id)
        key = None
        if profile.deid.encrypt:
            key = resolve_key(profile_key_file=profile.deid.key_file)
            if key is None:
                raise EndoSpineError("the profile's deid: encrypt is on but no key was given: set deid.key_file "
                                     "to a key file (endospine keygen --out FILE) or ENDOSPINE_KEY in the environment")
        return cls(keep_full_frame=keep_full_frame or profile.deid.keep_full_frame,
                   margin_px=profile.deid.margin_px, model_id=model_id, fov=profile.fov, key=key,
                   key_file=profile.deid.key_file if key is not None else None)

    @property
    def encrypted(self) -> bool:
        return self.key is not None

    def with_model(self, model_id: str) -> "DeidPolicy":
        return replace(self, model_id=model_id or "")

    def finder(self, every: int = DETECT_EVERY) -> CircleFinder:
        return CircleFinder(self.fov, self.region, every)

    def blackout(self) -> Blackout:
        return Blackout(self.margin_px)

    @property
    def frames(self) -> str:
        return FULL_FRAME if self.keep_full_frame else FOV_ONLY

    def summary(self) -> str:
        """One phrase for people: what the frames of a file keep."""
        if self.keep_full_frame:
            return ("FULL FRAME kept, not de-identified: text the video tower burns in around the image "
                    "(patient name, dates, record number) is in the pictures")
        return f"field of view only: every pixel beyond the circle + {self.margin_px:g} px is black"

    def tags(self) -> dict[str, str]:
        """The only metadata EndoSpine writes into a file (ALLOWED_TAGS)."""
        tags = {"endospine": version(), "frames": self.frames}
        if self.model_id:
            tags["model_id"] = self.model_id
        tags["comment"] = "; ".join([f"EndoSpine {version()}", self.summary()]
                                    + ([f"model {self.model_id}"] if self.model_id else []))
        return tags

    def csv_note(self) -> str:
        """The first line of a per-frame CSV (a comment: `#`), saying what the frames kept."""
        return "# " + self.tags()["comment"]

    # -- the one place files are written (sealed with `key`: models/core/sealed.py) ---------------
    def stored_path(self, path: str | Path) -> Path:
        """The name a file written as `path` gets: `path` + '.enc' when encrypted."""
        return sealed_name(path) if self.key is not None else Path(path)

    def _check(self, path: Path) -> None:
        if self.key is not None:
            check_key_outside(self.key_file, path.parent, "the folder written to")

    def video_writer(self, path: str | Path, width: int, height: int, fps: float, **options) -> VideoWriter:
        """The writer for `path` (its `.path` is the name written: + '.enc' when encrypted)."""
        self._check(Path(path))
        return VideoWriter(path, width, height, fps, metadata=self.tags(), key=self.key, **options)

    def write_image(self, path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> Path:
        """Write atomically; returns the name written (+ '.enc' when encrypted)."""
        path = Path(path)
        self._check(path)
        data = encode_image(rgb, path.suffix or ".png", self.tags(), jpeg_quality)
        if self.key is not None:
            data = seal_bytes(data, self.key)
        write_bytes_atomic(self.stored_path(path), data)
        return self.stored_path(path)

    def open_text(self, path: str | Path) -> IO[str]:
        """A UTF-8 text file for writing (CSV: newline=''), at stored_path(path)."""
        path = Path(path)
        if self.key is None:
            return path.open("w", newline="", encoding="utf-8")
        self._check(path)
        return io.TextIOWrapper(io.BufferedWriter(SealedWriter(self.stored_path(path), self.key)),
                                encoding="utf-8", newline="")


# -- metadata: the allow-list, images with tags, reading back ------------------------------------------
ALLOWED_TAGS = ("endospine", "frames", "model_id", "comment")  # what DeidPolicy.tags() writes
# What demuxers report about a file's structure (no person, place, time or device in them), and the
# value each must have where it matters: MP4/MOV's file type box; MKV's required writing application,
# "Lavf" without a version under bitexact; MPEG-TS's service, named EndoSpine by VideoWriter.
STRUCTURAL_CONTAINER = {"major_brand": None, "minor_version": None, "compatible_brands": None,
                        "encoder": "Lavf", "service_provider": "EndoSpine", "service_name": "EndoSpine"}
STRUCTURAL_STREAM = {"language": "und", "handler_name": "VideoHandler", "vendor_id": None, "duration": None}


def video_metadata(path: str | Path) -> dict:
    """A video file's tags as FFmpeg reads them: {'container': {...}, 'streams': [{'index', 'type',
    'metadata'}], 'creation_time': value or None}."""
    try:
        with av.open(str(path)) as c:
            container = dict(c.metadata)
            streams = [{"index": s.index, "type": s.type, "metadata": dict(s.metadata)} for s in c.streams]
    except av.FFmpegError as exc:
        raise EndoSpineError(f"{path}: cannot open as a video ({getattr(exc, 'strerror', None) or exc})") from None
    return {"container": container, "streams": streams}


def disallowed_video(meta: dict) -> list[str]:
    """The tags of video_metadata() outside the allow-list ('key' or 'stream N: key')."""
    bad = [k for k, v in meta["container"].items() if not _allowed(k, v, STRUCTURAL_CONTAINER)]
    for s in meta["streams"]:
        bad += [f"stream {s['index']}: {k}" for k, v in s["metadata"].items() if not _allowed(k, v, STRUCTURAL_STREAM)]
    return bad


def _allowed(key: str, value: str, structural: dict) -> bool:
    k = key.lower()
    if k in ALLOWED_TAGS:
        return True
    if k in structural:
        want = structural[k]
        return want is None or value == want
    return False


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_STRUCTURE = {"IHDR", "PLTE", "IDAT", "IEND", "tRNS", "gAMA", "cHRM", "sRGB", "sBIT", "bKGD", "pHYs"}


def encode_image(rgb: np.ndarray, suffix: str, tags: dict[str, str], jpeg_quality: int = 95) -> bytes:
    """The image encoded (OpenCV writes no metadata of its own: PNG IHDR/IDAT/IEND, JPEG a bare JFIF
    header) with `tags`: PNG tEXt chunks after IHDR, JPEG one COM segment (the comment tag)."""
    data = _encode_plain(rgb, suffix, jpeg_quality)
    if data.startswith(PNG_SIGNATURE) and tags:
        chunks = b"".join(_png_chunk(b"tEXt", k.encode("latin-1", "replace") + b"\x00" + v.encode("latin-1", "replace"))
                          for k, v in tags.items())
        ihdr_end = 8 + 8 + 13 + 4
        return data[:ihdr_end] + chunks + data[ihdr_end:]
    if data[:2] == b"\xff\xd8" and tags.get("comment"):
        at = 2
        if data[2:4] == b"\xff\xe0":  # after the JFIF header, where readers look first
            at = 4 + struct.unpack(">H", data[4:6])[0]
        text = tags["comment"].encode("utf-8")[:65000]
        return data[:at] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[at:]
    return data


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def image_metadata(data: bytes) -> dict[str, str] | None:
    """What an image file carries besides its pixels: PNG ancillary chunks ('tEXt:Author', 'tIME',
    'eXIf', ...; text values decoded), JPEG application and comment segments ('APP1:Exif',
    'APP1:http://ns.adobe.com/xap/1.0/', 'APP2:ICC_PROFILE', 'COM', ...). None: a format this does
    not read (it is re-encoded anyway)."""
    if data.startswith(PNG_SIGNATURE):
        return _png_metadata(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_metadata(data)
    return None


def _png_metadata(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    at = 8
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + size]
        name = kind.decode("latin-1")
        at += 12 + size
        if name in ("IHDR", "PLTE", "IDAT", "IEND"):
            continue
        if name in ("tEXt", "zTXt", "iTXt"):
            key, _, rest = body.partition(b"\x00")
            value = rest
            try:
                if name == "zTXt":
                    value = zlib.decompress(rest[1:])
                elif name == "iTXt":
                    compressed, rest = rest[0], rest[2:]
                    _lang, _, rest = rest.partition(b"\x00")
                    _tkey, _, value = rest.partition(b"\x00")
                    value = zlib.decompress(value) if compressed else value
            except zlib.error:
                value = b"?"
            out[f"{name}:{key.decode('latin-1')}"] = value.decode("utf-8", "replace")
        else:
            out[name] = ""
        if name == "IEND":
            break
    return out


def _jpeg_metadata(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no more headers
            break
        size = struct.unpack(">H", data[at + 2:at + 4])[0]
        body = data[at + 4:at + 2 + size]
        if 0xE0 <= marker <= 0xEF:
            ident = body.split(b"\x00", 1)[0][:40].decode("latin-1", "replace")
            key = f"APP{marker - 0xE0}:{ident}"
            out[key if key not in out else f"{key}#{sum(k.startswith(key) for k in out) + 1}"] = ""
        elif marker == 0xFE:
            out["COM" if "COM" not in out else f"COM#{sum(k.startswith('COM') for k in out) + 1}"] = \
                body.decode("utf-8", "replace")
        at += 2 + size
    return out


def disallowed_image(meta: dict[str, str]) -> list[str]:
    """The keys of image_metadata() outside the allow-list: PNG structure chunks and our tEXt tags;
    JPEG's JFIF header and one comment written by EndoSpine."""
    bad = []
    for key, value in meta.items():
        kind, _, name = key.partition(":")
        if kind == "tEXt" and name in ALLOWED_TAGS:
            continue
        if kind in PNG_STRUCTURE and not name:
            continue
        if key == "APP0:JFIF" or (key == "COM" and value.startswith("EndoSpine ")):
            continue
        bad.append(key)
    return bad
