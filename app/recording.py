"""A recording's files, and its overlay video made from them afterwards. No Qt.

The live recorder (app/recorder.py) encodes one video, the raw frames, and keeps what the surgeon
saw over them as data: each mask the display painted, once, as a label-map PNG in
`rec-NNNN_masks/`, and per frame in `rec-NNNN_frames.csv` which mask was painted where
(`mask_file`, `mask_box` in the video's pixels) and how (`overlay_style`: mode, opacity, contour
width and the classes shown, as the user had toggled them). `rec-NNNN_masks/recording.json` holds
the class table and what the frames keep (the de-identification policy). A second H.264 encoder
for an overlay video, and the compositing of every frame, do not fit beside the display and the AI
on two cores: with them the recorder kept about a fifth of the frames at 1080p30.

`overlay_video(csv, out)` composes the overlay video afterwards, exactly as the display painted it
(models.core.overlay: render_overlay, composite), on the decoded raw frames, with the same
de-identification of each frame (the CSV's circle) and, for an encrypted recording, encrypted with
its key. The masks are the model's own output at mask size (lossless): better material for review
and for pre-labels than an overlay burnt into a lossy video.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

from models.core import sealed
from models.core.classes import ClassTable
from models.core.deid import DeidPolicy
from models.core.errors import EndoSpineError
from models.core.imageio import decode_image, read_bytes
from models.core.optics.fov import Circle
from models.core.overlay import MODES, OverlayStyle, composite, render_overlay
from models.core.picture import AvConverter

COLUMNS = ("index", "frame_id", "pts", "capture_time", "mask_frame_id", "overlay_shown", "gate_score", "ai_unsure",
           "frame_region", "fov_cx", "fov_cy", "fov_r", "mask_file", "mask_box", "overlay_style")
SIDECAR = "recording.json"


def masks_folder(csv_path: Path) -> Path:
    """rec-0001_frames.csv -> rec-0001_masks (beside it; the same for rec-0001_frames.csv.enc)."""
    return csv_path.with_name(_stem(csv_path) + "_masks")


def raw_video(csv_path: Path) -> Path:
    return csv_path.with_name(_stem(csv_path) + "_raw.mp4")


def _stem(csv_path: Path) -> str:
    name = csv_path.name.removesuffix(".enc")
    if not name.endswith("_frames.csv"):
        raise EndoSpineError(f"{csv_path}: not a recording's CSV (expected rec-NNNN_frames.csv)")
    return name.removesuffix("_frames.csv")


def style_text(style: OverlayStyle, classes: ClassTable) -> str:
    """The overlay_style cell: 'mode=fill opacity=0.45 contour=3 classes=1,2,3'."""
    shown = ",".join(str(c) for c in sorted(style.shown(classes)))
    return f"mode={style.mode} opacity={style.opacity:g} contour={style.contour_px} classes={shown}"


def parse_style(text: str, where: str) -> OverlayStyle:
    try:
        fields = dict(part.split("=", 1) for part in text.split())
        classes = frozenset(int(c) for c in fields["classes"].split(",") if c)
        if fields["mode"] not in MODES:
            raise ValueError(f"mode {fields['mode']!r}")
        return OverlayStyle(opacity=float(fields["opacity"]), mode=fields["mode"], visible=classes,
                            contour_px=int(fields["contour"]))
    except (KeyError, ValueError) as exc:
        raise EndoSpineError(f"{where}: overlay_style {text!r} is not valid ({exc})") from None


def box_text(box: tuple[int, int, int, int]) -> str:
    return " ".join(str(int(v)) for v in box)


def sidecar(classes: ClassTable, policy: DeidPolicy, size: tuple[int, int], fps: float) -> str:
    """recording.json: what the overlay video needs besides the frames and the masks."""
    return json.dumps({"classes": classes.to_dict(), "size": list(size), "fps": fps,
                       "keep_full_frame": policy.keep_full_frame, "margin_px": policy.margin_px,
                       "model_id": policy.model_id}, indent=1)


# -- reading a recording back ------------------------------------------------------------------------
@dataclass
class Recording:
    csv_path: Path
    rows: list[dict[str, str]]
    classes: ClassTable
    size: tuple[int, int]
    fps: float
    policy: DeidPolicy          # what the files keep, with the key of an encrypted recording
    key: bytes | None

    @classmethod
    def open(cls, csv_path: str | Path, key: bytes | None = None) -> "Recording":
        path = Path(csv_path)
        side = masks_folder(path) / SIDECAR  # refuses a name that is not a recording's
        if not path.is_file():
            raise EndoSpineError(f"{path}: no such file")
        encrypted = sealed.is_sealed(path)
        if encrypted and key is None:
            raise EndoSpineError(f"{path}: encrypted; give its key (--key-file FILE or {sealed.ENV})")
        text = _read(path, key if encrypted else None).decode("utf-8")
        reader = csv.DictReader((line for line in io.StringIO(text) if not line.startswith("#")), restval="")
        rows = list(reader)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            old = {"mask_file", "mask_box", "overlay_style"} >= set(missing)
            raise EndoSpineError(f"{path}: no {', '.join(missing)} column" + (
                " (recorded before masks were kept; its overlay video is rec-NNNN_overlay.mp4 beside it)" if old
                else " (not a recording's CSV)"))
        side = sealed.sealed_name(side) if encrypted else side
        if not side.is_file():
            raise EndoSpineError(f"{side}: missing (the recording's class table and de-identification)")
        try:
            meta = json.loads(_read(side, key if encrypted else None))
            size = (int(meta["size"][0]), int(meta["size"][1]))
            classes = ClassTable.from_dict(meta["classes"], source=str(side))
            policy = DeidPolicy(keep_full_frame=bool(meta["keep_full_frame"]), margin_px=float(meta["margin_px"]),
                                model_id=str(meta.get("model_id", "")), key=key if encrypted else None)
            fps = float(meta["fps"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise EndoSpineError(f"{side}: not a valid recording sidecar ({exc})") from None
        return cls(path, rows, classes, size, fps, policy, key if encrypted else None)

    def mask(self, name: str, where: str) -> np.ndarray:
        path = self.policy.stored_path(self.csv_path.parent / name)
        if not path.is_file():
            raise EndoSpineError(f"{where}: mask {path} is missing")
        labels = decode_image(_read(path, self.key), path, "mask")
        if labels.ndim != 2:
            raise EndoSpineError(f"{path}: a mask is a one-channel label map, got shape {labels.shape}")
        return labels

    def frames(self) -> Iterator[np.ndarray]:
        """The raw video's frames, decoded in order (an encrypted one up to its last whole chunk)."""
        path = self.policy.stored_path(raw_video(self.csv_path))
        if not path.is_file():
            raise EndoSpineError(f"{path}: missing (the overlay is painted on the raw video)")
        reader = sealed.SealedReader(path, self.key, allow_truncated=True) if self.key is not None else None
        try:
            with av.open(reader if reader is not None else str(path)) as container:
                to_rgb = AvConverter()
                for frame in container.decode(video=0):
                    yield to_rgb(frame)
        except av.FFmpegError as exc:
            raise EndoSpineError(f"{path}: cannot decode ({getattr(exc, 'strerror', None) or exc})") from None
        finally:
            if reader is not None:
                reader.close()


def _read(path: Path, key: bytes | None) -> bytes:
    """A whole file's bytes (decrypted and authenticated with `key`); one-line errors naming it."""
    data = read_bytes(path)
    return sealed.open_bytes(data, key, name=str(path)) if key is not None else data


def overlay_video(csv_path: str | Path, out: str | Path, key: bytes | None = None,
                  progress: Callable[[Iterator], Iterator] | None = None) -> dict:
    """The recording's overlay video at `out` (+ '.enc' for an encrypted recording, sealed with its
    key): each raw frame with the mask the display painted over it, as it painted it."""
    rec = Recording.open(csv_path, key)
    w, h = rec.size
    blackout = rec.policy.blackout()
    writer = rec.policy.video_writer(out, w, h, rec.fps, preset="veryfast", crf=18)
    drawn: tuple[str, str, np.ndarray | None] | None = None  # (mask file, style, RGBA): as the display, once
    painted = written = 0
    try:
        pairs = zip(rec.rows, rec.frames())
        for row, image in (progress(pairs) if progress is not None else pairs):
            where = f"{rec.csv_path} row {row['index']}"
            if image.shape[:2] != (h, w):
                raise EndoSpineError(f"{where}: frame {image.shape[1]}x{image.shape[0]}, the recording is {w}x{h}")
            shown, region = image, row["frame_region"]
            if row["overlay_shown"] == "1" and region != "black":
                name, style = row["mask_file"], row["overlay_style"]
                if drawn is None or drawn[:2] != (name, style):  # a mask stays up over several frames
                    rgba = render_overlay(rec.mask(name, where), rec.classes, parse_style(style, where))
                    drawn = (name, style, rgba)
                shown = _composite(image, drawn[2], _box(row["mask_box"], where))
                painted += 1
            if region != "full":  # kept as the recording kept it (the decoded raw spreads its rim a little)
                writer.write(blackout.mask_for((w, h), _circle(row, where)).apply(shown, reuse=True))
            else:
                writer.write(shown)
            written += 1
        writer.close()
    except BaseException:
        writer.abort()
        raise
    if written < len(rec.rows):
        cut = f"; the raw video ends after {written} of the CSV's {len(rec.rows)} frames (the recording was cut short)"
    else:
        cut = ""
    return {"frames": written, "painted": painted, "path": str(writer.path), "note": cut}


def _composite(image: np.ndarray, rgba: np.ndarray | None, box: tuple[int, int, int, int]) -> np.ndarray:
    """composite(), also for a box over the last row or column that an odd-sized source loses in
    the video (4:2:0 wants even sides): painted on the frame as received, then trimmed, as live."""
    h, w = image.shape[:2]
    x, y, bw, bh = box
    if x + bw <= w and y + bh <= h:
        return composite(image, rgba, box)
    canvas = np.zeros((max(h, y + bh), max(w, x + bw), 3), np.uint8)
    canvas[:h, :w] = image
    return np.ascontiguousarray(composite(canvas, rgba, box)[:h, :w])


def _circle(row: dict[str, str], where: str) -> Circle | None:
    """The field of view the row's frame kept (None: a black frame, nothing kept)."""
    if row["frame_region"] == "black":
        return None
    try:
        return Circle(float(row["fov_cx"]), float(row["fov_cy"]), float(row["fov_r"]))
    except ValueError:
        raise EndoSpineError(f"{where}: frame_region {row['frame_region']!r} without a valid circle") from None


def _box(text: str, where: str) -> tuple[int, int, int, int]:
    try:
        x, y, bw, bh = (int(v) for v in text.split())
        return x, y, bw, bh
    except ValueError:
        raise EndoSpineError(f"{where}: mask_box {text!r} is not 'x y w h'") from None
