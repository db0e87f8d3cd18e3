"""Labelme JSON annotations -> label maps.

Each JSON's shapes are painted in file order (a later shape covers an earlier one) onto a
background (0) canvas the size of the image: polygons with cv2.fillPoly, rectangles and circles
filled. Other shape types (line, linestrip, point, mask) are an error naming the file: they
carry no area, and dropping them silently would hide annotation mistakes. Label names map to
class ids through --map, else by class name; an unknown name is an error naming file and label.
The image is imagePath (relative to the JSON), else the base64 imageData embedded in the JSON.
"""
from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

import cv2
import numpy as np

from models.core.errors import EndoSpineError
from models.datatools.masks import name_to_id
from models.datatools.pairs import ImportOptions, Pair

AREA_SHAPES = ("polygon", "rectangle", "circle")


def read_labelme(src: Path, opts: ImportOptions) -> tuple[list[Pair], list[str]]:
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*.json") if not p.name.startswith("."))
    base = src.parent if src.is_file() else src
    if not files:
        raise EndoSpineError(f"{src}: no Labelme .json files")
    pairs = []
    for path in files:
        doc = load_json(path)
        shapes = doc["shapes"]
        ids = [name_to_id(str(s.get("label")), opts.classes, opts.label_map, path) for s in shapes]
        image_name = str(doc.get("imagePath") or "").replace("\\", "/")
        image = path.parent / image_name if image_name else path.with_suffix(".png")
        embedded = None
        if not (image_name and image.is_file()):
            if not doc.get("imageData"):
                raise EndoSpineError(f"{path}: image {image_name or '(no imagePath)'} not found and no imageData")
            embedded = _embedded(path)
        size = (doc.get("imageHeight"), doc.get("imageWidth"))
        key = path.relative_to(base).with_suffix("").as_posix()
        pairs.append(Pair(key, path, _painter(path, shapes, ids, size), image, image_bytes=embedded))
    return pairs, []


def load_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise EndoSpineError(f"{path}: cannot read ({type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise EndoSpineError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
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


def _painter(path: Path, shapes: list[dict], ids: list[int], size: tuple):
    def paint(h: int, w: int) -> np.ndarray:
        if all(isinstance(v, int) for v in size) and size != (h, w):
            raise EndoSpineError(f"{path}: imageWidth x imageHeight is {size[1]}x{size[0]} but the image is {w}x{h}")
        return rasterize(shapes, ids, h, w, path)
    return paint


def rasterize(shapes: list[dict], ids: list[int], h: int, w: int, where: Path | str = "labelme") -> np.ndarray:
    canvas = np.zeros((h, w), np.uint8)
    for n, (shape, cid) in enumerate(zip(shapes, ids), 1):
        kind = shape.get("shape_type") or "polygon"
        what = f"{where}: shape #{n} ({shape.get('label')!r}, {kind})"
        try:
            pts = np.asarray(shape["points"], dtype=np.float64)
        except (TypeError, ValueError):
            raise EndoSpineError(f"{what}: points are not [x, y] pairs") from None
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
            raise EndoSpineError(f"{what}: points are not [x, y] pairs")
        ipts = np.round(pts).astype(np.int32)
        if kind == "polygon":
            if len(ipts) < 3:
                raise EndoSpineError(f"{what}: a polygon needs at least 3 points, has {len(ipts)}")
            cv2.fillPoly(canvas, [ipts], int(cid))
        elif kind == "rectangle" and len(ipts) == 2:
            cv2.rectangle(canvas, tuple(map(int, ipts[0])), tuple(map(int, ipts[1])), int(cid), thickness=-1)
        elif kind == "circle" and len(ipts) == 2:
            radius = int(round(float(np.hypot(*(pts[1] - pts[0])))))
            cv2.circle(canvas, tuple(map(int, ipts[0])), radius, int(cid), thickness=-1)
        elif kind in ("rectangle", "circle"):
            raise EndoSpineError(f"{what}: needs 2 points, has {len(ipts)}")
        else:
            raise EndoSpineError(f"{what}: shape type {kind!r} has no area (only {', '.join(AREA_SHAPES)} "
                                 "are painted); remove it or redraw it as a polygon")
    return canvas
