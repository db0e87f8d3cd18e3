"""Annotation masks and label names -> class ids of a class table.

The --map FILE is a YAML mapping from what the source says to a class of the table:

    polyp: lesion          # a label name (Labelme, CVAT)  -> class name
    instrument: ignore     # 'ignore' -> the table's ignore index (255)
    255: polyp             # a mask value (id masks, or 0/1 after --threshold) -> class
    "250,50,83": bone      # a mask color "R,G,B" or "#fa3253" (color masks) -> class

Targets are class names, class ids, or 'ignore'. Names not in the map are looked up in the
class table by name; mask values not in the map are taken as class ids as they are.

A mask file is read in one of three ways:
- colors: when the map has color keys (or CVAT's labelmap.txt gives them); every color must be
  known. Colors must be exact, so color masks must be lossless (PNG).
- binary: when --threshold T is given, or the mask is a JPEG (which cannot hold exact ids):
  gray >= T (default 128) is 1, else 0; then the map applies. Without a map entry for 1 the
  class table must have exactly two classes (1 is then its foreground class).
- ids: otherwise; a single-channel (or gray 3-channel) 8-bit image of values, then mapped. A
  palette PNG (PaddleSeg's pseudo-color labels) is read as its palette indices.
The importer checks the resulting ids against the class table (check_ids).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import decode_image, read_bytes
from models.core.yamlio import read_yaml

DEFAULT_THRESHOLD = 128
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
_COLOR = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$|^#([0-9a-fA-F]{6})$")


@dataclass
class LabelMap:
    names: dict[str, int] = field(default_factory=dict)                 # label name -> class id
    values: dict[int, int] = field(default_factory=dict)                # mask value -> class id
    colors: dict[tuple[int, int, int], int] = field(default_factory=dict)  # RGB -> class id
    source: str = "--map"


def parse_color(text: str) -> tuple[int, int, int] | None:
    m = _COLOR.match(text)
    if not m:
        return None
    if m.group(4):
        v = int(m.group(4), 16)
        return (v >> 16) & 255, (v >> 8) & 255, v & 255
    rgb = tuple(int(g) for g in m.groups()[:3])
    return rgb if all(0 <= c <= 255 for c in rgb) else None  # type: ignore[return-value]


def resolve_class(target, classes: ClassTable, where: str) -> int:
    """A map target (class name, class id or 'ignore') -> class id."""
    if isinstance(target, bool):
        target = str(target)
    if isinstance(target, int):
        if target in classes.valid_ids():
            return target
        raise EndoSpineError(f"{where}: class id {target} is not in the class table "
                             f"(ids 0..{len(classes) - 1}, ignore {classes.ignore_index})")
    if isinstance(target, str):
        if target == "ignore":
            return classes.ignore_index
        if target in classes.names:
            return classes.id_of(target)
    raise EndoSpineError(f"{where}: {target!r} is not a class of '{classes.name}' "
                         f"(classes: {', '.join(classes.names)}, or 'ignore')")


def load_label_map(path: str | Path | None, classes: ClassTable) -> LabelMap:
    if path is None:
        return LabelMap()
    path = Path(path)
    data = read_yaml(path, "map file")
    if not isinstance(data, dict) or not data:
        raise EndoSpineError(f"{path}: expected a YAML mapping like 'source label: class name'")
    out = LabelMap(source=str(path))
    for key, target in data.items():
        cid = resolve_class(target, classes, f"{path}: {key!r}")
        if isinstance(key, int) and not isinstance(key, bool):
            if not 0 <= key <= 255:
                raise EndoSpineError(f"{path}: mask value {key} is outside 0..255")
            out.values[key] = cid
        color = parse_color(key) if isinstance(key, str) else None
        if color is not None:
            out.colors[color] = cid
        out.names[str(key)] = cid
    return out


def name_to_id(name: str, classes: ClassTable, label_map: LabelMap, where: str | Path) -> int:
    if name in label_map.names:
        return label_map.names[name]
    if name in classes.names:
        return classes.id_of(name)
    raise EndoSpineError(f"{where}: unknown label {name!r} (classes of '{classes.name}': "
                         f"{', '.join(classes.names)}; map it with --map)")


class MaskReader:
    """Reads a mask file into HxW uint8 values, mapped to class ids (see the module docstring).

    The values are not checked against the class table here: check_ids does that.
    """

    def __init__(self, classes: ClassTable, label_map: LabelMap | None = None, threshold: int | None = None,
                 colors: dict[tuple[int, int, int], int] | None = None):
        self.classes = classes
        self.label_map = label_map or LabelMap()
        self.threshold = threshold
        self.colors = dict(colors if colors is not None else self.label_map.colors)
        if threshold is not None and not 0 < threshold <= 255:
            raise EndoSpineError(f"--threshold {threshold}: expected 1..255")
        lut = np.arange(256, dtype=np.uint8)
        for value, cid in self.label_map.values.items():
            lut[value] = cid
        self.lut = lut

    def mode(self, path: Path) -> str:
        if self.colors:
            return "colors"
        if self.threshold is not None or path.suffix.lower() in LOSSY_SUFFIXES:
            return "binary"
        return "ids"

    def __call__(self, path: Path) -> np.ndarray:
        mode = self.mode(path)
        data = read_bytes(path)
        raw = decode_image(data, path, "mask image")   # the size gate runs before decoding
        if raw.dtype != np.uint8:
            raise EndoSpineError(f"{path}: mask must be 8-bit, got {raw.dtype}")
        if mode == "colors":
            return colors_to_ids(raw, self.colors, path)
        palette = png_palette(data) if mode == "ids" else None
        if palette is not None:   # OpenCV expands palette PNGs (PaddleSeg's pseudo-color labels) to colors
            index = {}
            for i, rgb in enumerate(map(tuple, palette.tolist())):
                index.setdefault(rgb, i)   # a color listed twice reads as its first index
            gray = colors_to_ids(raw, index, path)
        else:
            gray = _gray(raw, path, strict=(mode == "ids"))
        if mode == "binary":
            if len(self.classes) != 2 and 1 not in self.label_map.values:
                raise EndoSpineError(f"{path}: a binary mask, but class table '{self.classes.name}' has "
                                     f"{len(self.classes)} classes: give a 2-class table with --classes, or say "
                                     "which class the mask's foreground is with --map (e.g. '1: bone')")
            t = self.threshold if self.threshold is not None else DEFAULT_THRESHOLD
            gray = (gray >= t).astype(np.uint8)
        return cv2.LUT(gray, self.lut) if self.label_map.values else gray


def colors_to_ids(raw: np.ndarray, colors: dict[tuple[int, int, int], int], path: Path) -> np.ndarray:
    """A BGR(A) image -> ids by exact RGB color; a color not in `colors` is an error naming the file."""
    if raw.ndim != 3 or raw.shape[2] < 3:
        raise EndoSpineError(f"{path}: expected a color mask (RGB), got a single-channel image")
    bgr = raw[..., :3].astype(np.int32)
    key = (bgr[..., 2] << 16) | (bgr[..., 1] << 8) | bgr[..., 0]
    wanted = {(r << 16) | (g << 8) | b: cid for (r, g, b), cid in colors.items()}
    if len(wanted) <= 16:      # a few colors: one pass each
        out = np.zeros(key.shape, np.uint8)
        known = np.zeros(key.shape, bool)
        for value, cid in wanted.items():
            hit = key == value
            out[hit] = cid
            known |= hit
        unknown = key[~known]
    else:                      # a long table (a 256-color palette): look up the colors present
        values, inverse = np.unique(key, return_inverse=True)
        mapped = np.array([wanted.get(int(v), -1) for v in values])[inverse.reshape(key.shape)]
        out = mapped.astype(np.uint8)
        unknown = key[mapped < 0]
    if unknown.size:
        values, counts = np.unique(unknown, return_counts=True)
        order = np.argsort(counts)[::-1][:3]
        shown = ", ".join(f"({v >> 16},{(v >> 8) & 255},{v & 255}) x{c}" for v, c in zip(values[order], counts[order]))
        more = f" and {len(values) - 3} more" if len(values) > 3 else ""
        raise EndoSpineError(f"{path}: {len(values)} unknown mask color(s): {shown}{more} (RGB x pixels)")
    return out


def png_palette(data: bytes) -> np.ndarray | None:
    """The palette (PLTE) of a palette PNG (color type 3) as (n, 3) RGB; None for any other image."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 33 or data[25] != 3:
        return None
    pos = 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        if kind == b"PLTE":
            return np.frombuffer(data[pos + 8:pos + 8 + length - length % 3], np.uint8).reshape(-1, 3)
        if kind == b"IDAT":
            return None
        pos += 12 + length
    return None


def check_ids(ids: np.ndarray, classes: ClassTable, path: Path | str, valid: np.ndarray | None = None) -> None:
    """Raise if `ids` holds a value that is neither a class id nor the ignore index."""
    if valid is None:
        valid = np.zeros(256, bool)
        valid[list(classes.valid_ids())] = True
    invalid = np.where(valid, 0, 255).astype(np.uint8)
    if cv2.countNonZero(cv2.LUT(ids, invalid)) == 0:
        return
    bad = sorted(int(v) for v in np.unique(ids) if not valid[v])
    raise EndoSpineError(f"{path}: label values {bad} are not class ids of '{classes.name}' "
                         f"(0..{len(classes) - 1}, ignore {classes.ignore_index}; map values with --map)")


def _gray(raw: np.ndarray, path: Path, strict: bool) -> np.ndarray:
    if raw.ndim == 2:
        return raw
    if strict and not (np.array_equal(raw[..., 0], raw[..., 1]) and np.array_equal(raw[..., 1], raw[..., 2])):
        raise EndoSpineError(f"{path}: a color mask; give its colors with --map ('R,G,B': class) "
                             "or --threshold T for a binary mask")
    if strict:
        return np.ascontiguousarray(raw[..., 0])
    return cv2.cvtColor(raw[..., :3], cv2.COLOR_BGR2GRAY)
