"""Labelme JSON annotations -> label maps.

Each JSON's shapes are painted in file order (a later shape covers an earlier one) onto a
background (0) canvas the size of the image: polygons with cv2.fillPoly, rectangles and circles
filled. Other shape types (line, linestrip, point, mask) are an error naming the file: they
carry no area, and dropping them silently would hide annotation mistakes. Label names map to
class ids through --map, else by class name; an unknown name is an error naming file and label.
The image is imagePath (relative to the JSON), else the base64 imageData embedded in the JSON.

Every file is read with the readers' limits (pairs.load_json_limited: size, nesting, count).
Every shape's points must be finite [x, y] pairs lying within MARGIN image sizes beyond the image's
edges (a circle's radius likewise), and no shape may lie entirely outside the image: such a shape
is an error naming the file and the shape, never drawn clipped or dropped without a word. The
check runs when the file is read (against imageWidth x imageHeight) and again when it is painted
(against the image itself).
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.core.errors import EndoSpineError
from models.datatools.masks import name_to_id
from models.datatools.pairs import ImportOptions, Pair, load_json_limited

AREA_SHAPES = ("polygon", "rectangle", "circle")
MARGIN = 4   # points may lie up to 4 image widths (heights) beyond the image's edges


@dataclass(frozen=True)
class Shape:
    """One area shape of a Labelme file, its points checked finite."""
    what: str            # '<file>: shape #n ('label', kind)': how messages name it
    kind: str            # polygon, rectangle or circle
    points: np.ndarray   # (n, 2) float64 x, y


def read_labelme(src: Path, opts: ImportOptions) -> tuple[list[Pair], list[str]]:
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*.json") if not p.name.startswith("."))
    base = src.parent if src.is_file() else src
    if not files:
        raise EndoSpineError(f"{src}: no Labelme .json files")
    pairs = []
    for path in files:
        doc = load_json(path)
        ids = [name_to_id(str(s.get("label")), opts.classes, opts.label_map, path) for s in doc["shapes"]]
        size = (doc.get("imageHeight"), doc.get("imageWidth"))
        shapes = parse_shapes(doc["shapes"], path)
        if all(type(v) is int and v > 0 for v in size):
            for s in shapes:
                check_bounds(s, *size)
        image_name = str(doc.get("imagePath") or "").replace("\\", "/")
        image = path.parent / image_name if image_name else path.with_suffix(".png")
        embedded = None
        if not (image_name and image.is_file()):
            if not doc.get("imageData"):
                raise EndoSpineError(f"{path}: image {image_name or '(no imagePath)'} not found and no imageData")
            embedded = _embedded(path)
        key = path.relative_to(base).with_suffix("").as_posix()
        pairs.append(Pair(key, path, _painter(path, shapes, ids, size), image, image_bytes=embedded))
    return pairs, []


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
    """Labelme shape dicts -> Shapes: area kinds only, points finite [x, y] pairs, enough of them."""
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
        if kind in ("rectangle", "circle") and len(pts) != 2:
            raise EndoSpineError(f"{what}: needs 2 points, has {len(pts)}")
        if kind not in AREA_SHAPES:
            raise EndoSpineError(f"{what}: shape type {_short(kind)} has no area (only {', '.join(AREA_SHAPES)} "
                                 "are painted); remove it or redraw it as a polygon")
        out.append(Shape(what, kind, pts))
    return out


def _short(value, quote: bool = True) -> str:
    text = repr(value) if quote else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def extent(shape: Shape) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1): the box the shape covers (a circle: its center +- its radius)."""
    pts = shape.points
    if shape.kind == "circle":
        r = float(np.hypot(*(pts[1] - pts[0])))
        (x, y) = pts[0]
        return x - r, y - r, x + r, y + r
    return (*pts.min(axis=0), *pts.max(axis=0))


def check_bounds(shape: Shape, h: int, w: int) -> None:
    """Refuse a shape reaching more than MARGIN image sizes beyond the image's edges (absurd
    coordinates or radius), or lying entirely outside the image (it would paint no pixel)."""
    x0, y0, x1, y1 = extent(shape)
    if not (-MARGIN * w <= x0 and x1 <= (MARGIN + 1) * w and -MARGIN * h <= y0 and y1 <= (MARGIN + 1) * h):
        name = "its radius reaches" if shape.kind == "circle" else "its points reach"
        raise EndoSpineError(f"{shape.what}: {name} x {x0:.4g}..{x1:.4g}, y {y0:.4g}..{y1:.4g}, more than "
                             f"{MARGIN} image sizes beyond the {w}x{h} image; check its coordinates")
    if x1 < -0.5 or y1 < -0.5 or x0 > w - 0.5 or y0 > h - 0.5:
        raise EndoSpineError(f"{shape.what}: lies entirely outside the {w}x{h} image "
                             f"(x {x0:.4g}..{x1:.4g}, y {y0:.4g}..{y1:.4g}); check its coordinates")


def rasterize(shapes: list[Shape], ids: list[int], h: int, w: int) -> np.ndarray:
    """Paint the shapes in order onto a background (0) canvas of h x w; each is bounds-checked first."""
    canvas = np.zeros((h, w), np.uint8)
    for shape, cid in zip(shapes, ids):
        check_bounds(shape, h, w)
        ipts = np.round(shape.points).astype(np.int32)
        if shape.kind == "polygon":
            cv2.fillPoly(canvas, [ipts], int(cid))
        elif shape.kind == "rectangle":
            cv2.rectangle(canvas, tuple(map(int, ipts[0])), tuple(map(int, ipts[1])), int(cid), thickness=-1)
        else:
            radius = int(round(float(np.hypot(*(shape.points[1] - shape.points[0])))))
            cv2.circle(canvas, tuple(map(int, ipts[0])), radius, int(cid), thickness=-1)
    return canvas
