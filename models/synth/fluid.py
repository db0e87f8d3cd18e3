"""The irrigation fluid: blood clouds, milky haze, bubbles and floating debris. They tint the
image, never the labels.

Blood clouds are anchored in the world (they move with the tissue), grow, drift and fade; haze
is a slowly drifting milky veil with irrigation surges. Both are evaluated on a coarse grid,
combined with vignetting and white balance into one per-pixel multiply-add, and upsampled.
"""
from __future__ import annotations

import cv2
import numpy as np

from models.synth.noise import Wave, rng_for, slot_envelope, smoothstep, value_noise
from models.synth.optics import View


class Fluid:
    BLEED_PERIOD = 240
    WASH_PERIOD = 300

    def __init__(self, rng: np.random.Generator, key: tuple):
        self.key = key
        tex = value_noise(rng, (64, 64), (6, 6)) + 0.5 * value_noise(rng, (64, 64), (14, 14))
        self.tex = (tex - tex.mean()).astype(np.float32)
        self.bleed_p = rng.uniform(0.2, 0.75)
        self.tint = np.array([0.78, 0.16, 0.12]) * np.exp(rng.normal(0, 0.08, 3))
        self.haze0 = rng.uniform(0.06, 0.18)
        self.haze_wave = Wave(rng, 0.05, (120, 600))
        self.wash_p = rng.uniform(0.2, 0.6)
        self.milk = np.array([1.0, 0.88, 0.76]) * rng.uniform(0.85, 1.0)
        self.drift = rng.normal(0, 0.4, 2)
        self.scatter = np.array([0.12, 0.012, 0.01]) * rng.uniform(0.5, 1.2)

    def _bleeds(self, t: int, camera_at):
        """Active bleeds: (strength, world center in U, size in U, noise offset)."""
        for k in (t // self.BLEED_PERIOD - 1, t // self.BLEED_PERIOD):
            rng = rng_for(*self.key, "bleed", k)
            if rng.random() >= self.bleed_p:
                continue
            start = k * self.BLEED_PERIOD + rng.uniform(0, self.BLEED_PERIOD)
            env = slot_envelope(t, start, rng.uniform(90, 240), 50)
            # the bleeding point is somewhere in view when it starts
            src = np.asarray(camera_at(int(start))) + rng.uniform(-0.5, 0.5, 2)
            flow = rng.normal(0, 0.003, 2)
            size = rng.uniform(0.35, 0.9)
            amount = rng.uniform(0.55, 0.95)
            offset = rng.uniform(0, 64, 2)
            if env > 0:
                age = t - start
                grow = 0.5 + 0.5 * min(1.0, age / 60.0)
                yield env * amount, src + flow * age, size * grow, offset

    def _wash(self, t: int) -> float:
        total = 0.0
        for k in (t // self.WASH_PERIOD - 1, t // self.WASH_PERIOD):
            rng = rng_for(*self.key, "wash", k)
            if rng.random() < self.wash_p:
                start = k * self.WASH_PERIOD + rng.uniform(0, self.WASH_PERIOD)
                amount = rng.uniform(0.1, 0.3)
                total += amount * slot_envelope(t, start, rng.uniform(60, 280), 40)
        return total

    def fields(self, t: int, view: View, inv: np.ndarray, unit: float, world_c: float, camera_at):
        """Coarse (blood, haze) in 0..1; inv maps view px -> world px."""
        a = (inv / unit).astype(np.float32)
        c = np.float32(world_c / unit)
        wx = a[0, 0] * view.coarse_px + a[0, 1] * view.coarse_py + (a[0, 2] - c)
        wy = a[1, 0] * view.coarse_px + a[1, 1] * view.coarse_py + (a[1, 2] - c)
        blood = np.zeros_like(wx)
        for amount, center, size, off in self._bleeds(t, camera_at):
            rx = (wx - np.float32(center[0])) / np.float32(size)
            ry = (wy - np.float32(center[1])) / np.float32(size)
            n = cv2.remap(self.tex, rx * 10 + np.float32(off[0]), ry * 10 + np.float32(off[1]),
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            wisp = cv2.remap(self.tex, rx * 34 + np.float32(off[1]), ry * 34 + np.float32(off[0]),
                             cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
            shape = np.sqrt(rx * rx + ry * ry) + 1.3 * n + 0.6 * wisp
            blood += smoothstep(1.0, 0.35, shape) * np.float32(amount)
        level = self.haze0 + self.haze_wave(t) + self._wash(t)
        sx = (wx * 1.5 + np.float32(self.drift[0] * t / 600.0)) % 64
        sy = (wy * 1.5 + np.float32(self.drift[1] * t / 600.0)) % 64
        hn = cv2.remap(self.tex, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        haze = np.clip(np.float32(level) * (1.0 + 1.2 * hn), 0.0, 0.75)
        return np.minimum(blood, 0.92), haze

    def modulation(self, t: int, view: View, inv: np.ndarray, unit: float, world_c: float,
                   camera_at, vignette: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full-size (mul, add), float32 (h, w, 3): image -> image * mul + add.

        camera_at(t) -> (x, y) camera position in U (bleeds start in view); vignette is
        (3, gh, gw) on the coarse grid."""
        blood, haze = self.fields(t, view, inv, unit, world_c, camera_at)
        keep = 1.0 - haze
        mul = cv2.merge([(1.0 - blood * np.float32(1 - self.tint[i])) * keep * vignette[i] * np.float32(gain[i])
                         for i in range(3)])
        lit = 1.0 - 0.5 * haze   # blood scatters light: a red glow
        add = cv2.merge([(haze * np.float32(self.milk[i]) + blood * lit * np.float32(self.scatter[i]))
                         * vignette[i] * np.float32(gain[i]) for i in range(3)])
        size = (view.w, view.h)
        return (cv2.resize(mul, size, interpolation=cv2.INTER_LINEAR),
                cv2.resize(add, size, interpolation=cv2.INTER_LINEAR))


class Bubbles:
    """Bubbles with bright rims drifting across the view (view coordinates)."""

    PERIOD = 40

    def __init__(self, rng: np.random.Generator, key: tuple):
        self.key = key
        self.rate = 0.0 if rng.random() < 0.3 else rng.uniform(0.3, 2.5)
        self.up = rng.uniform(0, 2 * np.pi)

    def _alive(self, t: int):
        k = t // self.PERIOD
        for kk in range(k - 4, k + 1):
            rng = rng_for(*self.key, "bubbles", kk)
            for _ in range(rng.poisson(self.rate)):
                birth = kk * self.PERIOD + rng.uniform(0, self.PERIOD)
                life = rng.uniform(40, 4 * self.PERIOD)
                pos = rng.uniform(-0.9, 0.9, 2)
                rad = 0.008 + 0.045 * rng.random() ** 2.5
                ang = self.up + rng.normal(0, 0.6)
                speed = rng.uniform(0.001, 0.008)
                age = t - birth
                if 0 <= age <= life:
                    p = pos + age * speed * np.array([np.cos(ang), np.sin(ang)])
                    yield p, rad, slot_envelope(t, birth, life, 8)

    def apply(self, img: np.ndarray, view: View, t: int) -> None:
        for p, rad, fade in self._alive(t):
            if np.hypot(*p) > 1.0 + rad:
                continue
            x0, y0 = view.to_px(p - rad * 1.3)
            x1, y1 = view.to_px(p + rad * 1.3)
            x0, y0 = max(0, int(x0)), max(0, int(y0))
            x1, y1 = min(view.w, int(x1) + 2), min(view.h, int(y1) + 2)
            if x1 <= x0 or y1 <= y0:
                continue
            dx = (view.x[y0:y1, x0:x1] - np.float32(p[0])) / np.float32(rad)
            dy = (view.y[y0:y1, x0:x1] - np.float32(p[1])) / np.float32(rad)
            d = np.sqrt(dx * dx + dy * dy)
            px_w = max(0.08, 1.2 / (rad * view.r))     # ring at least ~1 px wide
            ring = np.exp(-((d - 0.93) / px_w) ** 2) * 0.55
            glint = np.exp(-((dx + 0.38) ** 2 + (dy + 0.42) ** 2) * 40.0) * 0.6
            inner = np.where(d < 0.9, 0.05, 0.0) - np.exp(-((d - 0.75) / (px_w * 1.5)) ** 2) * 0.08
            add = ((ring + glint + inner) * fade).astype(np.float32)
            img[y0:y1, x0:x1] += cv2.merge([add, add * np.float32(0.88), add * np.float32(0.72)])


class Debris:
    """Floating fibres and tissue crumbs in the saline: thin curved strands drifting slowly."""

    def __init__(self, rng: np.random.Generator, key: tuple):
        count = int(rng.integers(0, 9))
        self.strands = []
        for _ in range(count):
            start = rng.uniform(-0.9, 0.9, 2)
            heading = rng.uniform(0, 2 * np.pi)
            bend = rng.normal(0, 0.5)
            length = rng.uniform(0.04, 0.25)
            steps = np.linspace(0, 1, 8)[:, None]
            ang = heading + bend * steps
            pts = np.cumsum(np.hstack([np.cos(ang), np.sin(ang)]) * (length / 8), axis=0)
            color = (np.array([236, 220, 196]) if rng.random() < 0.5 else np.array([120, 30, 24])) / 255.0
            drift = rng.normal(0, 0.0012, 2)
            self.strands.append((start + pts, color.astype(np.float32), drift, rng.uniform(0.4, 0.8)))

    def apply(self, img: np.ndarray, view: View, t: int) -> None:
        for pts, color, drift, opacity in self.strands:
            p = pts + drift * t
            p = (p + 1.0) % 2.0 - 1.0 if np.abs(p).max() > 1.05 else p   # wrap around the view
            px = np.stack([view.cx + p[:, 0] * view.r, view.cy + p[:, 1] * view.r], 1)
            x0, y0 = np.floor(px.min(0)).astype(int) - 3
            x1, y1 = np.ceil(px.max(0)).astype(int) + 3
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(view.w, x1), min(view.h, y1)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            pts_i = np.round((px - [x0, y0]) * 16).astype(np.int32)
            cv2.polylines(mask, [pts_i], False, 255, 1, cv2.LINE_AA, shift=4)
            a = mask.astype(np.float32) * np.float32(opacity / 255.0)
            region = img[y0:y1, x0:x1]
            region += (cv2.merge([np.full_like(a, c) for c in color]) - region) * cv2.merge([a, a, a])
