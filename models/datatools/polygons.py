"""A label map -> polygons that paint it back: what `prelabel` writes into Labelme files.

Labelme polygons have no holes, and the Labelme importer (labelme.py) paints shapes in file order,
a later shape covering an earlier one, onto a background (0) canvas. So every connected region
(8-connected) of a class becomes one polygon: its outer boundary only (cv2.RETR_EXTERNAL), which
also covers the region's holes. What lies in a hole comes back as later polygons:
- a region of another class inside it is its own polygon, drawn after (shapes are ordered by the
  area their outline encloses, largest first, and a region inside another's hole always encloses
  less);
- a hole of background (or of unlabelled 255 pixels), i.e. a non-class region that does not touch
  the image's edge, becomes a polygon of the background class.
Each outline is simplified with cv2.approxPolyDP (epsilon 0.5 px by default: every vertex dropped lies within
0.5 px of the kept outline). Regions of fewer than `min_area` pixels are dropped: a dropped class
region comes back as what was painted under it (the region around it, else background), a dropped
hole is filled by the region around it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

EPSILON = 0.5      # px: approxPolyDP tolerance (within 1 px; 0.5 keeps thin regions: see prelabel.py)
DEFAULT_MIN_AREA = 16


@dataclass(frozen=True)
class Polygon:
    class_id: int
    points: np.ndarray   # (n, 2) int32 x, y (pixel centers), n >= 3 (a dot's point repeated)
    enclosed: float      # area the unsimplified outline encloses (px): the painting order


def mask_polygons(labels: np.ndarray, class_ids: Iterable[int], background: int = 0,
                  min_area: int = DEFAULT_MIN_AREA, epsilon: float = EPSILON) -> list[Polygon]:
    """HxW uint8 label map -> polygons in painting order (largest enclosed area first).

    class_ids: the classes drawn as regions (not the background). Every other value (background,
    255, anything else) is 'not a class': its enclosed regions come back as `background` polygons.
    """
    ids = sorted(set(int(c) for c in class_ids) - {background})
    out: list[Polygon] = []
    for cid in ids:
        out += _regions(labels == cid, cid, min_area, epsilon, holes_only=False)
    others = ~np.isin(labels, ids) if ids else np.ones(labels.shape, bool)
    out += _regions(others, background, min_area, epsilon, holes_only=True)
    out.sort(key=lambda p: -p.enclosed)   # stable: equal areas keep class order
    return out


def _regions(mask: np.ndarray, cid: int, min_area: int, epsilon: float, holes_only: bool) -> list[Polygon]:
    """One polygon per 8-connected region of mask with at least min_area pixels (holes_only: only
    regions that do not touch the image's edge)."""
    if not mask.any():
        return []
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    h, w = mask.shape
    out = []
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        if area < min_area:
            continue
        if holes_only and (x == 0 or y == 0 or x + bw == w or y + bh == h):
            continue
        sub = (comp[y:y + bh, x:x + bw] == k).astype(np.uint8)
        contours, _ = cv2.findContours(sub, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE, offset=(x, y))
        outline = max(contours, key=len)   # one region: one outer outline
        enclosed = float(cv2.contourArea(outline)) + area * 1e-9   # a tie-break that keeps containment
        points = (cv2.approxPolyDP(outline, epsilon, True) if epsilon > 0 else outline).reshape(-1, 2)
        if len(points) < 3:   # a dot or a 1 px line: Labelme wants 3 points; repeats paint the same pixels
            points = np.concatenate([points, np.repeat(points[-1:], 3 - len(points), axis=0)])
        out.append(Polygon(cid, points.astype(np.int32), enclosed))
    return out

