"""Camera motion over the world: slow drift, roll and zoom as smooth functions of the frame index."""
from __future__ import annotations

import numpy as np

from models.synth.noise import Wave

ZOOM_RANGE = (0.85, 1.4)
DRIFT = 0.42          # max drift per axis, in U (the world leaves room for it at the widest zoom)


class Camera:
    """Maps world pixels to internal view pixels; pure function of t."""

    def __init__(self, rng: np.random.Generator, world_n: int, unit: float,
                 view_center: tuple[float, float]):
        self.unit = unit
        self.world_c = (world_n - 1) / 2.0
        self.view_c = view_center
        pace = rng.uniform(0.6, 1.4)          # calm or busy clip
        period = (150 / pace, 700 / pace)
        self.x = Wave(rng, DRIFT, period)
        self.y = Wave(rng, DRIFT, period)
        self.roll0 = rng.uniform(0, 2 * np.pi)
        self.roll = Wave(rng, rng.uniform(0.1, 0.4), (240 / pace, 1200 / pace))
        self.zoom0 = rng.uniform(0.95, 1.2)
        self.zoom = Wave(rng, rng.uniform(0.05, 0.18), (200 / pace, 900 / pace))

    def pose(self, t: int) -> tuple[float, float, float, float]:
        """(x, y in U, roll radians, zoom) at frame t."""
        z = float(np.clip(self.zoom0 * np.exp(self.zoom(t)), *ZOOM_RANGE))
        return self.x(t), self.y(t), self.roll0 + self.roll(t), z

    def position(self, t: int) -> tuple[float, float]:
        """Camera center over the world, in U from the world center."""
        return self.x(t), self.y(t)

    def matrix(self, t: int) -> np.ndarray:
        """2x3 affine matrix world px -> view px."""
        x, y, a, z = self.pose(t)
        c, s = np.cos(a) * z, np.sin(a) * z
        wx = self.world_c + x * self.unit
        wy = self.world_c + y * self.unit
        vx, vy = self.view_c
        return np.array([[c, -s, vx - (c * wx - s * wy)],
                         [s, c, vy - (s * wx + c * wy)]], np.float64)

    def velocity(self, t: int) -> tuple[float, float]:
        """Image motion at the view center, view px per frame."""
        _, _, a, z = self.pose(t)
        dx, dy = self.x.rate(t) * self.unit, self.y.rate(t) * self.unit
        c, s = np.cos(a) * z, np.sin(a) * z
        return -(c * dx - s * dy), -(s * dx + c * dy)
