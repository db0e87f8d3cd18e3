"""The latency pattern: read back through a simulated camera, never misread."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.core.optics.loopback import crc8, decode, encode, render

pytestmark = pytest.mark.unit


def _camera(screen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A camera's picture of the screen: smaller, tilted, placed anywhere, dim, blurred, noisy."""
    angle, scale = rng.uniform(-10, 10), rng.uniform(0.15, 0.4)
    half = np.array([640, 360]) * scale * 1.2
    m = cv2.getRotationMatrix2D((640, 360), angle, scale)
    m[:, 2] += [rng.uniform(half[0], 640 - half[0]) - 640, rng.uniform(half[1], 480 - half[1]) - 360]
    cam = cv2.warpAffine(screen, m, (640, 480), borderValue=(30, 30, 30)).astype(np.float32)
    cam = 40 + cam * rng.uniform(0.5, 0.8)
    cam = cv2.GaussianBlur(cam, (0, 0), rng.uniform(0.5, 2.5)) + rng.normal(0, 4, cam.shape)
    return np.clip(cam, 0, 255).astype(np.uint8)


def test_codes_survive_the_camera():
    rng = np.random.default_rng(0)
    for _ in range(25):
        counter, ms = int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 32))
        code = decode(_camera(render(encode(counter, ms), 1280, 720), rng))
        assert code is not None and (code.counter, code.time_ms) == (counter, ms)


def test_blended_or_torn_frames_are_rejected_or_read_as_one_of_the_two():
    rng = np.random.default_rng(1)
    accepted = 0
    for k in range(40):
        a, b = (render(encode(k + i, 1000 + 17 * (k + i)), 640, 400) for i in (0, 1))
        if k % 2:
            mix = np.clip(a * (w := rng.uniform()) + b * (1 - w), 0, 255).astype(np.uint8)   # exposure over a refresh
        else:
            mix = a.copy()
            row = int(rng.uniform(0, 400))
            mix[row:] = b[row:]                                   # rolling shutter: lower rows from b
        code = decode(mix)
        if code is not None:
            accepted += 1
            assert (code.counter, code.time_ms) in ((k, 1000 + 17 * k), (k + 1, 1000 + 17 * (k + 1)))
    assert accepted > 10


def test_nothing_to_read():
    rng = np.random.default_rng(2)
    assert decode(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) is None
    assert decode(np.zeros((480, 640, 3), np.uint8)) is None
    flipped = render(encode(5, 1234), 640, 400)
    grid = encode(5, 1234)
    grid[2, 2], grid[2, 3] = grid[2, 3], grid[2, 2]            # one bit flipped: the CRC catches it
    assert decode(render(grid, 640, 400)) is None
    assert decode(flipped) is not None


def test_crc8_check_value():
    bits = [int(b) for byte in b"123456789" for b in f"{byte:08b}"]
    assert crc8(bits) == 0xF4   # the catalogued check value of CRC-8 (polynomial 0x07, init 0)
