"""The latency loopback pattern: a frame counter and a time stamp drawn as big black and white
cells, and read back from a camera's picture of the screen.

    +--------------------------------------+   black quiet zone (1 cell)
    |  ##################################  |   white ring (1 cell): the finder
    |  ##  d d d d d d d d d d d d d d  ##  |   8 x 14 data cells = 56 bits, each bit a pair of
    |  ##  d d d d d d d d d d d d d d  ##  |   cells (white-black = 1, black-white = 0): read by
    |  ...                                 |   comparing the pair, so uneven light, blur and the
    |  ##################################  |   camera's exposure cancel out
    +--------------------------------------+
    bits: frame counter (16) | CLOCK_MONOTONIC milliseconds mod 2^32 (32) | CRC-8 (8)

A camera frame that caught the screen between two patterns (a blend, or rows of both with a
rolling shutter) has pairs that do not clearly differ or a wrong CRC: it is rejected, not
misread. Pure numpy/OpenCV: the window that shows it (app/ui) and the tool that reads it
(calibration) share this module and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DATA_ROWS, DATA_COLS = 8, 14          # 112 cells = 56 Manchester bits
GRID_ROWS, GRID_COLS = DATA_ROWS + 4, DATA_COLS + 4   # + ring + quiet zone on each side
COUNTER_BITS, TIME_BITS, CRC_BITS = 16, 32, 8
MIN_CONTRAST = 0.3                    # each pair must differ by this share of white - black


@dataclass(frozen=True)
class Code:
    counter: int     # display frame counter (mod 2^16)
    time_ms: int     # monotonic milliseconds when the pattern was drawn (mod 2^32)


def crc8(bits: list[int]) -> int:
    """CRC-8 (polynomial x^8 + x^2 + x + 1) of a bit sequence, most significant bit first."""
    crc = 0
    for bit in bits:
        top = ((crc >> 7) & 1) ^ bit
        crc = (crc << 1) & 0xFF
        if top:
            crc ^= 0x07
    return crc


def _bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def encode(counter: int, time_ms: int) -> np.ndarray:
    """The pattern as a GRID_ROWS x GRID_COLS uint8 image of cells (0 or 255); draw it scaled up
    with nearest-neighbour (each cell a square of the screen)."""
    payload = _bits(counter & 0xFFFF, COUNTER_BITS) + _bits(time_ms & 0xFFFFFFFF, TIME_BITS)
    bits = payload + _bits(crc8(payload), CRC_BITS)
    grid = np.zeros((GRID_ROWS, GRID_COLS), np.uint8)
    grid[1:-1, 1:-1] = 255               # the ring ...
    grid[2:-2, 2:-2] = 0                 # ... around the data area
    cells = np.zeros(DATA_ROWS * DATA_COLS, np.uint8)
    for i, bit in enumerate(bits):
        cells[2 * i], cells[2 * i + 1] = (255, 0) if bit else (0, 255)
    grid[2:-2, 2:-2] = cells.reshape(DATA_ROWS, DATA_COLS)
    return grid


def render(code_grid: np.ndarray, width: int, height: int) -> np.ndarray:
    """The cell grid drawn into a black width x height RGB image, as large as fits, centered."""
    cell = max(1, min(width // GRID_COLS, height // GRID_ROWS))
    big = np.repeat(np.repeat(code_grid, cell, axis=0), cell, axis=1)
    out = np.zeros((height, width, 3), np.uint8)
    y0, x0 = (height - big.shape[0]) // 2, (width - big.shape[1]) // 2
    out[y0:y0 + big.shape[0], x0:x0 + big.shape[1]] = big[..., None]
    return out


def decode(rgb: np.ndarray) -> Code | None:
    """The code in a camera's picture of the pattern (any scale, position, mild rotation and
    blur, perspective-free), or None: no pattern seen, a blend of two patterns, or a bad CRC."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    corners = _find_ring(gray)
    if corners is None:
        return None
    # the ring's outer rectangle spans grid cells 1 .. GRID-1: map grid coordinates to the picture
    src = np.float32([[1, 1], [GRID_COLS - 1, 1], [GRID_COLS - 1, GRID_ROWS - 1]])
    affine = cv2.getAffineTransform(src, corners[:3].astype(np.float32))
    levels = _cell_levels(gray, affine)
    white = float(np.median(np.concatenate([levels[1, 1:-1], levels[-2, 1:-1], levels[1:-1, 1], levels[1:-1, -2]])))
    black = float(np.median(np.concatenate([levels[0], levels[-1], levels[:, 0], levels[:, -1]])))
    if white - black < 20:
        return None
    data = levels[2:-2, 2:-2].ravel()
    first, second = data[0::2], data[1::2]
    if (np.abs(first - second) < MIN_CONTRAST * (white - black)).any():
        return None
    bits = [int(b) for b in (first > second)]
    payload, crc = bits[:COUNTER_BITS + TIME_BITS], bits[COUNTER_BITS + TIME_BITS:]
    if crc8(payload) != int("".join(map(str, crc)), 2):
        return None
    value = int("".join(map(str, payload)), 2)
    return Code(counter=value >> TIME_BITS, time_ms=value & 0xFFFFFFFF)


def _find_ring(gray: np.ndarray) -> np.ndarray | None:
    """The ring's outer corners (top-left, top-right, bottom-right, bottom-left) in the picture."""
    g = cv2.GaussianBlur(gray, (0, 0), 1.0)
    _, binary = cv2.threshold(g, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return None
    want = (GRID_COLS - 2) / (GRID_ROWS - 2)
    best, best_area = None, 0.0
    for i, c in enumerate(contours):
        if hierarchy[0][i][3] != -1 or hierarchy[0][i][2] == -1:
            continue  # the ring is an outer contour with a hole
        area = cv2.contourArea(c)
        if area < 0.01 * gray.size or area <= best_area:
            continue
        (cx, cy), (w, h), angle = cv2.minAreaRect(c)
        if w < h:
            w, h, angle = h, w, angle + 90
        if abs(w / h - want) > 0.15 * want or area < 0.85 * w * h:
            continue
        best, best_area = ((cx, cy), (w, h), angle), area
    if best is None:
        return None
    (cx, cy), (w, h), angle = best
    a = np.radians(((angle + 90) % 180) - 90)       # upright pattern: rotation within +-90 degrees
    ux, uy = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    c = np.array([cx, cy])
    return np.array([c - ux * w / 2 - uy * h / 2, c + ux * w / 2 - uy * h / 2,
                     c + ux * w / 2 + uy * h / 2, c - ux * w / 2 + uy * h / 2])


def _cell_levels(gray: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Mean level of the middle of every grid cell (3 x 3 samples over its central half)."""
    offsets = np.array([0.3, 0.5, 0.7])
    gy, gx = np.mgrid[0:GRID_ROWS, 0:GRID_COLS]
    sx = (gx[..., None, None] + offsets[None, None, None, :]).astype(np.float32)
    sy = (gy[..., None, None] + offsets[None, None, :, None]).astype(np.float32)
    sx, sy = np.broadcast_arrays(sx, sy)
    px = affine[0, 0] * sx + affine[0, 1] * sy + affine[0, 2]
    py = affine[1, 0] * sx + affine[1, 1] * sy + affine[1, 2]
    samples = cv2.remap(gray.astype(np.float32), px.reshape(GRID_ROWS, -1).astype(np.float32),
                        py.reshape(GRID_ROWS, -1).astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return samples.reshape(GRID_ROWS, GRID_COLS, 9).mean(axis=2)
