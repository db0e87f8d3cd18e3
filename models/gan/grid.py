"""Picture grids for the GAN: rows of tiles (label map in class colors, generated, real, ...)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from models.core.classes import ClassTable
from models.core.overlay import colorize

GAP = 4


def label_tile(labels: np.ndarray, classes: ClassTable) -> np.ndarray:
    return colorize(labels, classes.color_lut(ignore_color=(40, 40, 40)))


def grid(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[str], notes: Sequence[str] = ()) -> np.ndarray:
    """Tiles (all the same size, RGB uint8) in rows, column titles above, an optional note on each row's last tile."""
    tile = rows[0][0].shape[0]
    width = len(titles) * (tile + GAP) + GAP
    head = np.full((22, width, 3), 255, np.uint8)
    for k, title in enumerate(titles):
        cv2.putText(head, title, (GAP + k * (tile + GAP) + 2, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    out = [head]
    for r, row in enumerate(rows):
        line = np.full((tile + GAP, width, 3), 255, np.uint8)
        for k, cell in enumerate(row):
            x = GAP + k * (tile + GAP)
            line[:tile, x:x + tile] = cell
        if r < len(notes) and notes[r]:
            x = GAP + (len(row) - 1) * (tile + GAP) + 3  # on the last tile
            cv2.putText(line, notes[r], (x, tile - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1,
                        cv2.LINE_AA)
        out.append(line)
    return np.vstack(out)
