"""Labelme JSON annotations -> label maps.

Each JSON's shapes are painted in file order (a later shape covers an earlier one) onto a
background (0) canvas the size of the image: polygons (and oriented rectangles, 4-point polygons)
with cv2.fillPoly, rectangles and circles filled, each point taken as the pixel it lies in (pixel
i spans [i, i+1), as on Labelme's canvas: fractional points are floored, which matches the label
PNGs Labelme's own scripts write to within a pixel along the edges). Masks (Labelme's AI-assisted
'mask' shapes: a base64 PNG in the shape's 'mask' field) are set where the PNG is non-zero,
placed as Labelme places them: the top-left corner at the first point rounded; when both points
are whole numbers the mask is cut to the box they span (corners included), else it keeps its own
size. Other shape types (line, linestrip, point) are an error naming the file: they carry no
area, and dropping them silently would hide annotation mistakes.

Label names map to class ids through --map, else by class name, else by Labelme's own
conventions (its labelme2voc example): '_background_' is the background (class id 0) and
'__ignore__' the ignore index. An unknown name is an error naming file and label.

The image is found as Labelme's loader finds it: the base64 imageData embedded in the JSON
first, else imagePath relative to the JSON (Windows backslashes read as '/').

Every file is read with the readers' limits (pairs.load_json_limited: size, nesting, count), and a
mask's PNG passes the image gate (imageio.decode_image). Every shape's points must be finite [x, y]
pairs lying within MARGIN image sizes beyond the image's edges (a circle's radius likewise), and no
shape may lie entirely outside the image: such a shape is an error naming the file and the shape,
never drawn clipped or dropped without a word. The check runs when the file is read (against
imageWidth x imageHeight) and again when it is painted (against the image itself).
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import decode_image
from models.datatools.masks import LabelMap, name_to_id
from models.datatools.pairs import ImportOptions, Pair, load_json_limited

AREA_SHAPES = ("polygon", "rectangle", "circle", "oriented_rectangle", "mask")
POINT_COUNTS = {"rectangle": 2, "circle": 2, "mask": 2, "oriented_rectangle": 4}   # exactly; a polygon >= 3
BACKGROUND_LABEL, IGNORE_LABEL = "_background_", "__ignore__"   # Labelme's conventional label names
MARGIN = 4   # points may lie up to 4 image widths (heights) beyond the image's edges


@dataclass(frozen=True)
class Shape:
    """One area shape of a Labelme file, its points checked finite."""
    what: str            # '<file>: shape #n ('label', kind)': how messages name it
    kind: str            # polygon, rectangle, circle, oriented_rectangle or mask
    points: np.ndarray   # (n, 2) float64 x, y
    mask: np.ndarray | None = None   # a mask shape's HxW bool patch, as decoded


def read_labelme(src: Path, opts: ImportOptions) -> tuple[list[Pair], list[str]]:
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*.json") if not p.name.startswith("."))
    base = src.parent if src.is_file() else src
    if not files:
        raise EndoSpineError(f"{src}: no Labelme .json files")
    pairs = []
    for path in files:
        doc = load_json(path)
        ids = [label_id(str(s.get("label")), opts.classes, opts.label_map, path) for s in doc["shapes"]]
        size = (doc.get("imageHeight"), doc.get("imageWidth"))
        shapes = parse_shapes(doc["shapes"], path)
        if all(type(v) is int and v > 0 for v in size):
            for s in shapes:
                check_bounds(s, *size)
        image_name = str(doc.get("imagePath") or "").replace("\\", "/")
        image = path.parent / image_name if image_name else path.with_suffix(".png")
        embedded = None
        if doc.get("imageData"):          # Labelme's loader: the embedded image first
            embedded = _embedded(path)
        elif not (image_name and image.is_file()):
            raise EndoSpineError(f"{path}: image {image_name or '(no imagePath)'} not found and no imageData")
        key = path.relative_to(base).with_suffix("").as_posix()
        pairs.append(Pair(key, path, _painter(path, shapes, ids, size), image, image_bytes=embedded))
    return pairs, []


def label_id(name: str, classes: ClassTable, label_map: LabelMap, where: Path | str) -> int:
    """A Labelme label -> class id: --map, then the class table, then Labelme's '_background_' (0)
    and '__ignore__' (the ignore index); else the unknown-label error."""
    if name not in label_map.names and name not in classes.names:
        if name == BACKGROUND_LABEL:
            return 0
        if name == IGNORE_LABEL:
            return classes.ignore_index
    return name_to_id(name, classes, label_map, where)


def load_json(path: Path) -> dict:
    doc = load_json_limited(path, "Labelme file")
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise EndoSpineError(f"{path}: not a Labelme file (no 'shapes' list)")
    for n, s in enumerate(doc["shapes"], 1):
        if not isinstance(s, dict) or "label" not in s or "points" not in s:
            raise EndoSpineError(f"{path}: shape #{n} has no 'label' or 'points'")
    return doc


def _embedded(path: Path):
    def load() -> bytes:
        try:
            return base64.b64decode(load_json(path)["imageData"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise EndoSpineError(f"{path}: imageData is not valid base64") from None
    return load


def _painter(path: Path, shapes: list[Shape], ids: list[int], size: tuple):
    def paint(h: int, w: int) -> np.ndarray:
        if all(isinstance(v, int) for v in size) and size != (h, w):
            raise EndoSpineError(f"{path}: imageWidth x imageHeight is {size[1]}x{size[0]} but the image is {w}x{h}")
        return rasterize(shapes, ids, h, w)
    return paint


def parse_shapes(shapes: list[dict], where: Path | str = "labelme") -> list[Shape]:
    """Labelme shape dicts -> Shapes: area kinds only, points finite [x, y] pairs, enough of them,
    a mask shape's PNG decoded."""
    out = []
    for n, shape in enumerate(shapes, 1):
        kind = shape.get("shape_type") or "polygon"
        what = f"{where}: shape #{n} ({_short(shape.get('label'))}, {_short(kind, quote=False)})"
        try:
            pts = np.asarray(shape["points"], dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise EndoSpineError(f"{what}: points are not [x, y] pairs") from None
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise EndoSpineError(f"{what}: points are not [x, y] pairs")
        if not np.isfinite(pts).all():
            raise EndoSpineError(f"{what}: a point is not a finite number (NaN or infinity)")
        if kind == "polygon" and len(pts) < 3:
            raise EndoSpineError(f"{what}: a polygon needs at least 3 points, has {len(pts)}")
        if kind in POINT_COUNTS and len(pts) != POINT_COUNTS[kind]:
            raise EndoSpineError(f"{what}: needs {POINT_COUNTS[kind]} points, has {len(pts)}")
        if kind not in AREA_SHAPES:
            raise EndoSpineError(f"{what}: shape type {_short(kind)} has no area (only {', '.join(AREA_SHAPES)} "
                                 "are painted); remove it or redraw it as a polygon")
        if kind == "mask" and (pts[1] < pts[0]).any():
            raise EndoSpineError(f"{what}: the second point must be the bottom-right corner of the mask's box, "
                                 f"got {pts[0].tolist()} then {pts[1].tolist()}")
        out.append(Shape(what, kind, pts, _mask(shape.get("mask"), what) if kind == "mask" else None))
    return out


def _mask(text, what: str) -> np.ndarray:
    """A mask shape's 'mask' field (a base64 PNG, as Labelme writes it) -> HxW bool (non-zero = in)."""
    if not isinstance(text, str) or not text:
        raise EndoSpineError(f"{what}: has no 'mask' (a mask shape holds its pixels as a base64 PNG)")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EndoSpineError(f"{what}: 'mask' is not valid base64") from None
    patch = decode_image(data, what, "mask PNG")      # the size gate runs before decoding
    if patch.ndim == 3:
        if patch.shape[2] == 4 or not (np.array_equal(patch[..., 0], patch[..., 1])
                                       and np.array_equal(patch[..., 1], patch[..., 2])):
            raise EndoSpineError(f"{what}: 'mask' must be a single-channel PNG, got {patch.shape[2]} channels")
        patch = patch[..., 0]
    return np.ascontiguousarray(patch != 0)


def _short(value, quote: bool = True) -> str:
    text = repr(value) if quote else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def mask_box(shape: Shape) -> tuple[float, float, int, int]:
    """(x0, y0, width, height) of the pixels a mask shape covers, before clipping to the image:
    the top-left at the first point rounded (half to even, as numpy and Labelme round); whole-number
    points cut the mask to the box they span, corners included, else the mask keeps its own size.
    x0, y0 are whole floats (the points may be absurd until check_bounds has seen them)."""
    assert shape.mask is not None
    (x0, y0), (x1, y1) = np.round(shape.points).tolist()
    ph, pw = shape.mask.shape
    if np.array_equal(shape.points, np.trunc(shape.points)):
        ph, pw = int(max(0, min(ph, y1 - y0 + 1))), int(max(0, min(pw, x1 - x0 + 1)))
    return x0, y0, pw, ph


def extent(shape: Shape) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1): the box the shape covers (a circle: its center +- its radius)."""
    pts = shape.points
    if shape.kind == "circle":
        r = float(np.hypot(*(pts[1] - pts[0])))
        (x, y) = pts[0]
        return x - r, y - r, x + r, y + r
    if shape.kind == "mask":
        x, y, w, h = mask_box(shape)
        return x, y, x + max(w, 1) - 1, y + max(h, 1) - 1
    return (*pts.min(axis=0), *pts.max(axis=0))


def check_bounds(shape: Shape, h: int, w: int) -> None:
    """Refuse a shape reaching more than MARGIN image sizes beyond the image's edges (absurd
    coordinates or radius), or lying entirely outside the image (it would paint no pixel)."""
    x0, y0, x1, y1 = extent(shape)
    if not (-MARGIN * w <= x0 and x1 <= (MARGIN + 1) * w and -MARGIN * h <= y0 and y1 <= (MARGIN + 1) * h):
        name = "its radius reaches" if shape.kind == "circle" else "its points reach"
        raise EndoSpineError(f"{shape.what}: {name} x {x0:.4g}..{x1:.4g}, y {y0:.4g}..{y1:.4g}, more than "
                             f"{MARGIN} image sizes beyond the {w}x{h} image; check its coordinates")
    if x1 < 0 or y1 < 0 or x0 >= w or y0 >= h:    # no point in a pixel of the image (pixel i spans [i, i+1))
        raise EndoSpineError(f"{shape.what}: lies entirely outside the {w}x{h} image "
                             f"(x {x0:.4g}..{x1:.4g}, y {y0:.4g}..{y1:.4g}); check its coordinates")


def rasterize(shapes: list[Shape], ids: list[int], h: int, w: int) -> np.ndarray:
    """Paint the shapes in order onto a background (0) canvas of h x w; each is bounds-checked first."""
    canvas = np.zeros((h, w), np.uint8)
    for shape, cid in zip(shapes, ids):
        check_bounds(shape, h, w)
        ipts = np.floor(shape.points).astype(np.int32)    # the pixel each point lies in: i spans [i, i+1)
        if shape.kind in ("polygon", "oriented_rectangle"):
            cv2.fillPoly(canvas, [ipts], int(cid))
        elif shape.kind == "rectangle":
            cv2.rectangle(canvas, tuple(map(int, ipts[0])), tuple(map(int, ipts[1])), int(cid), thickness=-1)
        elif shape.kind == "mask":
            _paint_mask(canvas, shape, int(cid))
        else:
            radius = int(round(float(np.hypot(*(shape.points[1] - shape.points[0])))))
            cv2.circle(canvas, tuple(map(int, ipts[0])), radius, int(cid), thickness=-1)
    return canvas


def _paint_mask(canvas: np.ndarray, shape: Shape, cid: int) -> None:
    x, y, pw, ph = mask_box(shape)
    x0, y0 = int(x), int(y)      # bounded: check_bounds has passed
    h, w = canvas.shape
    ya, yb, xa, xb = max(y0, 0), min(y0 + ph, h), max(x0, 0), min(x0 + pw, w)
    if ya < yb and xa < xb:
        assert shape.mask is not None
        patch = shape.mask[ya - y0:yb - y0, xa - x0:xb - x0]
        canvas[ya:yb, xa:xb][patch] = cid
