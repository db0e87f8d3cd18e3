"""The best and worst images of a split, kept as small thumbnails in bounded heaps.

Only the N best and N worst images (by mean IoU over the tissue classes) are ever held, as
thumbnails of about 200 px, so memory stays flat however many images are evaluated. A row shows
the image, the reference overlay, the prediction overlay and the errors (wrong pixels in red).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from models.core.classes import ClassTable
from models.core.overlay import blend

ERROR_COLOR = (255, 40, 40)
HEADERS = ("image", "reference", "prediction", "errors (red)")


@dataclass(frozen=True)
class GalleryEntry:
    score: float
    clip: str
    caption: str
    tiles: np.ndarray  # one RGB row: image | reference | prediction | errors


class Gallery:
    """Keeps the `n` highest- and `n` lowest-scoring images offered to it, at most one per clip
    (neighbouring frames of one clip look alike; a gallery should show n different scenes)."""

    def __init__(self, classes: ClassTable, n: int = 6, tile: int = 200):
        self.classes, self.n, self.tile = classes, n, tile
        self.lut = classes.color_lut(ignore_color=(40, 40, 40))
        self._best: list[GalleryEntry] = []
        self._worst: list[GalleryEntry] = []

    def offer(self, score: float, clip: str, caption: str,
              pictures: Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """`pictures()` -> (RGB image, reference labels, answer labels); called only if the image is kept."""
        if self.n <= 0 or not np.isfinite(score):
            return
        slots = [(kept, _slot(kept, self.n, clip, sign * score, sign)) for kept, sign in ((self._best, 1),
                                                                                        (self._worst, -1))]
        if all(slot is None for _, slot in slots):
            return
        entry = GalleryEntry(score, clip, caption, self._row(*pictures()))
        for kept, slot in slots:
            if slot is None:
                continue
            if slot < len(kept):
                kept[slot] = entry
            else:
                kept.append(entry)

    def best(self) -> list[GalleryEntry]:
        return sorted(self._best, key=lambda e: -e.score)

    def worst(self) -> list[GalleryEntry]:
        return sorted(self._worst, key=lambda e: e.score)

    def _row(self, image: np.ndarray, truth: np.ndarray, answer: np.ndarray) -> np.ndarray:
        h, w = truth.shape
        s = self.tile / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        img = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        t = cv2.resize(truth, size, interpolation=cv2.INTER_NEAREST)
        a = cv2.resize(answer, size, interpolation=cv2.INTER_NEAREST)
        wrong = (t != self.classes.ignore_index) & (t != a)
        errors = (img * 0.35).astype(np.uint8)
        errors[wrong] = ERROR_COLOR
        tiles = [img, blend(img, t, self.lut, 0.5), blend(img, a, self.lut, 0.5), errors]
        return np.hstack([_pad(x, self.tile) for x in tiles])


def _slot(kept: list[GalleryEntry], n: int, clip: str, key: float, sign: int) -> int | None:
    """Where a new entry of `clip` with rank key `key` (higher is kept) goes in `kept`: the index it
    replaces, len(kept) to append, or None when it does not make the list."""
    for i, e in enumerate(kept):
        if e.clip == clip:
            return i if key > sign * e.score else None
    if len(kept) < n:
        return len(kept)
    weakest = min(range(len(kept)), key=lambda i: sign * kept[i].score)
    return weakest if key > sign * kept[weakest].score else None


def compose(entries: list[GalleryEntry], classes: ClassTable, tile: int = 200) -> np.ndarray:
    """Rows of gallery entries with a caption over each, column headers and a class legend on top."""
    width = 4 * tile
    parts = [_legend(classes, width), _strip(width, 22, [(i * tile + 6, h) for i, h in enumerate(HEADERS)])]
    for e in entries:
        parts.append(_strip(width, 22, [(6, e.caption)]))
        parts.append(e.tiles)
    if not entries:
        parts.append(_strip(width, 30, [(6, "no image with tissue to rank")]))
    return np.vstack(parts)


def _pad(img: np.ndarray, tile: int) -> np.ndarray:
    out = np.zeros((tile, tile, 3), np.uint8)
    y, x = (tile - img.shape[0]) // 2, (tile - img.shape[1]) // 2
    out[y:y + img.shape[0], x:x + img.shape[1]] = img
    return out


def _strip(width: int, height: int, texts: list[tuple[int, str]]) -> np.ndarray:
    bar = np.full((height, width, 3), 255, np.uint8)
    for x, text in texts:
        cv2.putText(bar, text, (x, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def _legend(classes: ClassTable, width: int) -> np.ndarray:
    bar = np.full((28, width, 3), 255, np.uint8)
    x = 6
    for c in classes.foreground:
        cv2.rectangle(bar, (x, 7), (x + 14, 21), tuple(int(v) for v in c.color), -1)
        cv2.putText(bar, c.name, (x + 20, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += 34 + 9 * len(c.name)
    return bar
