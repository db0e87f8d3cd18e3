"""Surgical instruments: gold or steel shafts entering from the rim, with a forceps, burr, probe or
radiofrequency (white ceramic) tip, and the working cannula's edge seen as a dark arc at the rim.

Instruments ride with the scope (view coordinates, normalized so the field of view has radius 1),
move in and out on a per-clip schedule, and are labeled INSTRUMENT (6) where they cover tissue.
Each part is a tapered capsule shaded like a metal cylinder with a highlight stripe.
"""
from __future__ import annotations

import cv2
import numpy as np

from models.synth.layout import INSTRUMENT
from models.synth.noise import Wave, rng_for, smoothstep

GOLD = np.array([200, 160, 80], np.float32) / 255.0
STEEL = np.array([170, 175, 180], np.float32) / 255.0
CERAMIC = np.array([224, 214, 196], np.float32) / 255.0   # the RF probe's tip (warm under the light)


class Instrument:
    def __init__(self, rng: np.random.Generator, key: tuple, entry: float):
        self.key = key
        self.kind = str(rng.choice(["forceps", "burr", "probe", "rf"], p=[0.38, 0.24, 0.16, 0.22]))
        base = GOLD if rng.random() < 0.5 else STEEL
        self.color = base * np.exp(rng.normal(0, 0.04, 3)).astype(np.float32)
        self.entry = entry
        self.tilt = rng.uniform(-0.35, 0.35)
        self.hw = rng.uniform(0.08, 0.16)
        self.flare = rng.uniform(1.1, 1.6)
        self.stripe = rng.uniform(0.1, 0.45) * rng.choice([-1, 1])
        self.tip_len = self.hw * rng.uniform(1.4, 2.2)
        self.burr_r = self.hw * rng.uniform(0.9, 1.3)
        self.hook = rng.random() < 0.4
        self.period = int(rng.integers(90, 260))
        self.p_in = rng.uniform(0.55, 0.9)
        self.wob_angle = Wave(rng, 0.06, (40, 200))
        self.wob_depth = Wave(rng, 0.06, (30, 160))
        self.jaw = Wave(rng, 0.35, (25, 90))

    def _state(self, k: int) -> float:
        rng = rng_for(*self.key, k)
        return rng.uniform(0.45, 1.25) if rng.random() < self.p_in else -0.3

    def depth(self, t: int) -> float:
        """How far the tip reaches into the view (0 = at the rim), smooth in t."""
        k, f = divmod(t, self.period)
        a, b = self._state(k), self._state(k + 1)
        mix = float(smoothstep(0.7, 1.0, np.float32(f / self.period)))
        return a + (b - a) * mix + self.wob_depth(t)

    def parts(self, t: int) -> list[tuple]:
        """Capsules (A, B, r0, r1, kind) in normalized view coordinates, drawn in order."""
        depth = self.depth(t)
        if depth < 0.02:
            return []
        ang = self.entry + self.tilt + self.wob_angle(t)
        axis = -np.array([np.cos(ang), np.sin(ang)])
        normal = np.array([-axis[1], axis[0]])
        entry = np.array([np.cos(self.entry), np.sin(self.entry)])
        # start well outside the circle so the shaft always crosses the rim
        start = entry - axis * 0.4
        tip = start + axis * (0.4 + depth)
        neck = tip - axis * self.tip_len
        wide = self.hw * self.flare
        parts = [(start, neck, wide, self.hw, "shaft")]
        if self.kind == "forceps":
            opening = 0.28 + self.jaw(t)
            jaw_len = self.tip_len * 1.15
            for side in (-1.0, 1.0):
                c, s = np.cos(side * opening), np.sin(side * opening)
                d = np.array([axis[0] * c - axis[1] * s, axis[0] * s + axis[1] * c])
                hinge = neck + normal * side * self.hw * 0.3 - axis * self.hw * 0.3
                parts.append((hinge, hinge + d * jaw_len, self.hw * 0.62, self.hw * 0.3, "jaw"))
        elif self.kind == "burr":
            parts.append((neck - axis * self.hw, tip, self.hw * 0.38, self.hw * 0.38, "neck"))
            parts.append((tip, tip, self.burr_r, self.burr_r, "burr"))
        elif self.kind == "rf":
            parts.append((neck - axis * self.hw * 0.5, tip, self.hw * 0.8, self.hw * 0.55, "ceramic"))
            if self.hook:
                parts.append((tip, tip + normal * self.hw * 0.7, self.hw * 0.4, self.hw * 0.3, "ceramic"))
        else:
            parts.append((neck - axis * self.hw * 0.5, tip, self.hw * 0.9, self.hw * 0.42, "probe"))
            if self.hook:
                parts.append((tip, tip + normal * self.hw * 0.9, self.hw * 0.36, self.hw * 0.3, "probe"))
        return parts


class Cannula:
    """The working cannula's end: a dark crescent along one side of the rim (static per clip)."""

    def __init__(self, rng: np.random.Generator):
        self.angle = rng.uniform(0, 2 * np.pi)
        self.depth = rng.uniform(0.05, 0.12)         # thickest part, in view radii
        self.radius = rng.uniform(1.8, 2.6)          # curvature of its inner edge (spans 60-85 degrees)
        self.wobble = Wave(rng, 0.01, (60, 300))
        self.tone = rng.uniform(0.1, 0.18)   # dark, yet brighter than the black surround

    def draw(self, img: np.ndarray, labels: np.ndarray, view, t: int, grit: np.ndarray) -> None:
        ux, uy = np.cos(self.angle), np.sin(self.angle)
        back = self.radius - 1.0 + self.depth + self.wobble(t)
        cx, cy = -ux * back, -uy * back
        box = self._box(view, cx, cy)
        if box is None:
            return
        ys, xs = box
        dist = np.sqrt((view.x[ys, xs] - np.float32(cx)) ** 2 + (view.y[ys, xs] - np.float32(cy)) ** 2)
        edge = (dist - np.float32(self.radius)) * np.float32(view.r)   # px beyond the inner edge
        inside = edge >= 0.0
        if not inside.any():
            return
        alpha = np.clip(edge + 0.5, 0.0, 1.0)
        rim = np.exp(-((edge - 1.0) / 0.8) ** 2) * 0.15                  # the lit metal lip
        shade = np.float32(self.tone) * (0.7 + 0.6 * grit[ys, xs]) + rim
        col = cv2.merge([shade * np.float32(k) for k in (1.0, 0.85, 0.72)])
        region = img[ys, xs]
        col -= region
        col *= cv2.merge([alpha, alpha, alpha])
        region += col
        labels[ys, xs][alpha >= 0.5] = INSTRUMENT

    def _box(self, view, cx: float, cy: float) -> tuple[slice, slice] | None:
        """The rows and columns holding every pixel the crescent touches (alpha > 0: beyond the inner
        edge less half a pixel), or None: the rest of the view is left as it is, so only this box is
        computed. A row has such a pixel iff one of its two ends lies beyond the edge, and so has a column."""
        reach2 = (self.radius - 1.0 / view.r) ** 2       # a pixel's slack on the half-pixel ramp
        xs, ys = view.x[0], view.y[:, 0]
        dx2, dy2 = (xs - cx) ** 2, (ys - cy) ** 2
        rows = np.flatnonzero(max(dx2[0], dx2[-1]) + dy2 > reach2)
        cols = np.flatnonzero(max(dy2[0], dy2[-1]) + dx2 > reach2)
        if not len(rows) or not len(cols):
            return None
        return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def make_cannula(rng: np.random.Generator) -> Cannula | None:
    return Cannula(rng) if rng.random() < 0.35 else None


def make_instruments(rng: np.random.Generator, seed: int, clip: int) -> list[Instrument]:
    count = int(rng.choice([0, 1, 2], p=[0.12, 0.6, 0.28]))
    first = rng.uniform(0, 2 * np.pi)
    entries = [first, first + rng.choice([-1, 1]) * rng.uniform(1.2, 2.6)]
    return [Instrument(rng, (seed, clip, "instrument", i), entries[i]) for i in range(count)]


def draw_instruments(img: np.ndarray, labels: np.ndarray, view, instruments: list[Instrument],
                     t: int, grit: np.ndarray) -> None:
    """Paint instruments into img (float32 RGB, in place) and set their labels to INSTRUMENT."""
    for inst in instruments:
        for a, b, r0, r1, kind in inst.parts(t):
            _draw_capsule(img, labels, view, inst, np.asarray(a), np.asarray(b), r0, r1, kind, grit)


def _draw_capsule(img, labels, view, inst, a, b, r0, r1, kind, grit):
    rad = max(r0, r1)
    lo = np.minimum(a, b) - rad - 0.01
    hi = np.maximum(a, b) + rad + 0.01
    x0, y0 = view.to_px(lo)
    x1, y1 = view.to_px(hi)
    h, w = labels.shape
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(w, int(x1) + 2), min(h, int(y1) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    px = view.x[y0:y1, x0:x1] - np.float32(a[0])
    py = view.y[y0:y1, x0:x1] - np.float32(a[1])
    ab = b - a
    ll = float(np.dot(ab, ab))
    if ll > 1e-12:
        t = np.clip((px * np.float32(ab[0]) + py * np.float32(ab[1])) * np.float32(1.0 / ll), 0.0, 1.0)
        dx = px - t * np.float32(ab[0])
        dy = py - t * np.float32(ab[1])
        rr = np.float32(r0) + np.float32(r1 - r0) * t
        n = ab / np.sqrt(ll)
        across = (dx * np.float32(-n[1]) + dy * np.float32(n[0])) / rr
    else:
        t = np.zeros_like(px)
        dx, dy = px, py
        rr = np.float32(r0)
        across = dx / rr
    dist = np.sqrt(dx * dx + dy * dy)
    alpha = np.clip(0.5 - (dist - rr) * np.float32(view.r), 0.0, 1.0)
    if not alpha.any():
        return
    q = np.minimum(dist / rr, 1.0)
    nz = np.sqrt(1.0 - q * q)
    # cylinder (sphere for the burr) shading, highlight stripe, darker toward the far tip
    light = 0.22 + 0.85 * nz
    if kind == "shaft":
        light *= 1.08 - 0.3 * t
    elif kind == "ceramic":
        light = 0.45 + 0.5 * nz
    else:
        light *= np.float32(0.68 if kind == "jaw" else 0.85)
    if kind == "burr":
        e = ((dx / rr) + 0.25) ** 2 + ((dy / rr) + 0.25) ** 2
        hl = cv2.exp(e * np.float32(-6.0))
        light *= 0.8 + 0.4 * grit[y0:y1, x0:x1]
    else:
        hl = cv2.exp(((across - np.float32(inst.stripe)) * 7.0) ** 2 * np.float32(-1.0))
        hl += 0.25 * cv2.exp(((across + np.float32(inst.stripe * 1.8)) * 9.0) ** 2 * np.float32(-1.0))
    hl *= np.float32(0.2 if kind == "ceramic" else 0.75)
    base = CERAMIC if kind == "ceramic" else inst.color
    # the metal also mirrors the warm surroundings a little
    col = cv2.merge([light * np.float32(base[i] * warm) + hl * np.float32(tone)
                     for i, (warm, tone) in enumerate(((1.04, 1.0), (0.96, 0.97), (0.9, 0.9)))])
    region = img[y0:y1, x0:x1]
    col -= region
    col *= cv2.merge([alpha, alpha, alpha])
    region += col
    lab = labels[y0:y1, x0:x1]
    lab[alpha >= 0.5] = INSTRUMENT
