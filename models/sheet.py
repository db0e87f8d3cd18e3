"""Contact sheets: a grid of dataset images beside their label maps, to look at, not to read."""
from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np

from models.core.errors import EndoSpineError
from models.core.imageio import read_image, read_label, write_image
from models.core.overlay import blend, colorize
from models.dataset import Dataset, load_dataset


def contact_sheet(dataset: Dataset, n: int = 12, split: str = "all", tile: int = 256, seed: int = 0) -> np.ndarray:
    """Rows of (image | label map | overlay) triples, two triples per row, with a legend."""
    items = dataset.split(split)
    if not items:
        raise EndoSpineError(f"{dataset.root}: split {split!r} has no images")
    chosen = random.Random(seed).sample(items, min(n, len(items)))
    lut = dataset.classes.color_lut(ignore_color=(40, 40, 40))
    cells = []
    for item in chosen:
        img = _fit(read_image(dataset.path(item.image)), tile, cv2.INTER_AREA)
        lab = _fit(read_label(dataset.path(item.label)), tile, cv2.INTER_NEAREST)
        triple = np.hstack([img, colorize(lab, lut), blend(img, lab, lut, 0.4)])
        cv2.putText(triple, f"{item.clip} #{item.frame}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
        cells.append(triple)
    if len(cells) % 2:
        cells.append(np.zeros_like(cells[0]))
    rows = [np.hstack([a, np.full((tile, 8, 3), 255, np.uint8), b]) for a, b in zip(cells[::2], cells[1::2])]
    sheet = np.vstack([np.vstack([r, np.full((8, r.shape[1], 3), 255, np.uint8)]) for r in rows])
    return np.vstack([_legend(dataset, sheet.shape[1]), sheet])


def _fit(img: np.ndarray, tile: int, interp: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = tile / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=interp)
    pad_value = 255 if img.ndim == 2 else 0
    out = np.full((tile, tile) + img.shape[2:], pad_value, img.dtype)
    y, x = (tile - small.shape[0]) // 2, (tile - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out


def _legend(dataset: Dataset, width: int) -> np.ndarray:
    bar = np.full((30, width, 3), 255, np.uint8)
    x = 8
    for c in dataset.classes.classes:
        cv2.rectangle(bar, (x, 8), (x + 16, 24), tuple(int(v) for v in c.color), -1)
        cv2.putText(bar, c.name, (x + 22, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        x += 30 + 10 * len(c.name)
    return bar


def write_contact_sheet(data_dir: str | Path, out: str | Path, n: int = 12, split: str = "all", seed: int = 0) -> Path:
    sheet = contact_sheet(load_dataset(data_dir), n=n, split=split, seed=seed)
    write_image(Path(out), sheet)
    return Path(out)
