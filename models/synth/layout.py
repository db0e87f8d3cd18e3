"""The world label map: a few large, organic tissue regions of a transforaminal view.

Geometry is in view-radius units U (1 U = the field-of-view radius at zoom 1) around the world
center. Each tissue is a signed field (negative inside) on domain-warped coordinates:
bone and disc are big lobes entering from opposite sides, the ligamentum flavum is a curved
band with frayed, fiber-aligned edges, the nerve (dura or a nerve root) a smooth curved tube,
epidural fat a cluster of lobules. Later structures cover earlier ones (disc, fat, nerve,
ligament, bone). The appearance module reuses the fields (fiber coordinates, lamella distance,
the nerve's across-tube coordinate, the fat lobule centres).

Class ids are the default class table's: instruments (6) are drawn per frame, not here.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.synth.noise import blur, distance_to_points, fbm, value_noise

BG, BONE, LIG, DISC, NERVE, FAT, INSTRUMENT = 0, 1, 2, 3, 4, 5, 6
N_CLASSES = 6      # classes of the world map (instruments ride with the scope, not the world)
PAINT_ORDER = (DISC, FAT, NERVE, LIG, BONE)   # later covers earlier
S_RANGE = 4.0      # ligament texture space: along-fiber coordinate in [-4, 4] U
D_RANGE = 1.5      # across-fiber coordinate in [-1.5, 1.5] U


@dataclass
class Layout:
    labels: np.ndarray          # uint8 (n, n), classes 0-3
    weights: np.ndarray         # float32 (4, n, n): blurred one-hot label masks (sum to 1)
    unit: float                 # world pixels per U
    x: np.ndarray               # float32 (n, n) warped coordinates in U
    y: np.ndarray
    fiber_map: tuple[np.ndarray, np.ndarray] | None   # remap maps into ligament (s, d) texture space
    fiber_tex_shape: tuple[int, int]                  # (h, w) of that texture space
    disc_depth: np.ndarray | None                     # U inside the disc boundary (lamellae)
    bone_axis: float                                  # anatomy direction (radians)
    nerve_across: np.ndarray | None = None            # -1..1 across the nerve tube (0 on its axis)
    nerve_along: np.ndarray | None = None             # U along the tube (vessels follow it)
    fat_cells: np.ndarray | None = None               # U to the nearest fat lobule centre


def _circle_lobe(x, y, direction, offset, radius):
    """A disc of `radius` whose nearest boundary point is `offset` from the origin along `direction`."""
    cx = (offset + radius) * np.cos(direction)
    cy = (offset + radius) * np.sin(direction)
    return np.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius, (cx, cy)


def _ellipse_island(x, y, center, radii, angle):
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = x - center[0], y - center[1]
    u = (dx * c + dy * s) / radii[0]
    v = (-dx * s + dy * c) / radii[1]
    return (np.sqrt(u * u + v * v) - 1.0) * min(radii)


@dataclass
class _Plan:
    present: dict
    alpha: float
    bone: dict
    disc: dict
    lig: dict
    nerve: dict
    fat: dict


def _plan(rng: np.random.Generator) -> _Plan:
    present = {BONE: rng.random() < 0.75, LIG: rng.random() < 0.7, DISC: rng.random() < 0.55,
               NERVE: rng.random() < 0.6, FAT: rng.random() < 0.55}
    if not any(present.values()):
        present[int(rng.integers(1, 6))] = True
    alpha = rng.uniform(0, 2 * np.pi)
    bone = {"island": rng.random() < 0.2, "offset": rng.uniform(-0.35, 0.45),
            "radius": rng.uniform(1.2, 3.5), "dist": rng.uniform(0.1, 0.6),
            "radii": (rng.uniform(0.5, 1.0), rng.uniform(0.45, 0.8)), "angle": rng.uniform(0, np.pi)}
    disc = {"dir": alpha + np.pi + rng.uniform(-0.7, 0.7), "offset": rng.uniform(-0.25, 0.5),
            "radius": rng.uniform(1.0, 3.0)}
    width = rng.uniform(0.35, 0.8)
    adjacent = present[BONE] and not bone["island"] and rng.random() < 0.6
    if adjacent:
        lig = {"dir": alpha + rng.uniform(-0.3, 0.3),
               "offset": bone["offset"] - width / 2 + rng.uniform(-0.1, 0.15),
               "radius": bone["radius"] * rng.uniform(0.8, 1.3)}
    else:
        lig = {"dir": alpha + rng.choice([-1, 1]) * np.pi / 2 + rng.uniform(-0.5, 0.5),
               "offset": rng.uniform(-0.3, 0.45), "radius": rng.uniform(1.2, 4.0)}
    lig.update(width=width, ends=rng.random() < 0.35, length=rng.uniform(1.6, 3.0),
               shift=rng.uniform(-0.6, 0.6), fray=rng.uniform(0.025, 0.06))
    # the nerve runs across the view, roughly along the disc's edge (a traversing or exiting root)
    nerve = {"dir": disc["dir"] + np.pi / 2 + rng.uniform(-0.6, 0.6), "offset": rng.uniform(-0.55, 0.55),
             "curve": rng.uniform(1.5, 6.0) * rng.choice([-1, 1]), "half": rng.uniform(0.14, 0.36),
             "taper": rng.uniform(-0.25, 0.25), "sac": rng.random() < 0.2}
    if nerve["sac"]:                       # the dural sac: a wider, flatter membrane
        nerve["half"] = rng.uniform(0.35, 0.5)
    fat = {"bias": rng.uniform(-0.5, 0.4), "cell": rng.uniform(0.09, 0.17)}
    return _Plan(present, alpha, bone, disc, lig, nerve, fat)


def _fiber_texture_shape(unit: float) -> tuple[int, int]:
    k = min(unit, 256.0)  # texture pixels per U (capped: fibers are blurred at render anyway)
    return int(2 * D_RANGE * k), int(2 * S_RANGE * k)


def build_layout(rng: np.random.Generator, n: int, unit: float) -> Layout:
    """World of n x n pixels, `unit` pixels per U."""
    ax = (np.arange(n, dtype=np.float32) - (n - 1) / 2) / unit
    x0, y0 = np.meshgrid(ax, ax)
    span = n / unit  # world width in U
    warp = rng.uniform(0.10, 0.22)
    x = x0 + warp * fbm(rng, (n, n), span * 0.6, octaves=3)
    y = y0 + warp * fbm(rng, (n, n), span * 0.6, octaves=3)
    edge = fbm(rng, (n, n), span * 2.5, octaves=4)  # boundary roughness, mean 0 std 1
    plan = _plan(rng)
    fray_noise = _fray_texture(rng, unit)
    shape_tex = fray_noise.shape

    nerve_across = nerve_along = fat_cells = None
    if plan.present[NERVE]:
        nerve_field, nerve_across, nerve_along = _nerve(x, y, plan.nerve, edge)
    if plan.present[FAT]:
        fat_field, fat_cells = _fat(rng, x, y, plan.fat, span, unit)
    for attempt in range(8):
        push = 0.12 * attempt
        fields = {}
        if plan.present[NERVE]:
            fields[NERVE] = nerve_field
        if plan.present[FAT]:
            fields[FAT] = fat_field
        disc_depth = None
        fiber_map = None
        if plan.present[DISC]:
            d = plan.disc
            f, _ = _circle_lobe(x, y, d["dir"], d["offset"] + push, d["radius"])
            f += 0.045 * edge
            fields[DISC] = f
            disc_depth = -f
        if plan.present[LIG]:
            f, fiber_map = _ligament(x, y, plan.lig, push, unit, fray_noise, edge)
            fields[LIG] = f
        if plan.present[BONE]:
            b = plan.bone
            if b["island"]:
                dist = b["dist"] + push
                center = (dist * np.cos(plan.alpha), dist * np.sin(plan.alpha))
                f = _ellipse_island(x, y, center, b["radii"], b["angle"])
            else:
                f, _ = _circle_lobe(x, y, plan.alpha, b["offset"] + push, b["radius"])
            f += 0.05 * edge
            fields[BONE] = f
        labels = np.zeros((n, n), np.uint8)
        for cls in PAINT_ORDER:
            if cls in fields:
                labels[fields[cls] < 0] = cls
        window = (x0 * x0 + y0 * y0) < 1.3 ** 2
        if np.mean(labels[window] == BG) >= 0.15:
            break

    sigma = max(0.6, 0.012 * unit)
    weights = np.empty((N_CLASSES, n, n), np.float32)
    for c in range(N_CLASSES):
        weights[c] = blur((labels == c).astype(np.float32), sigma)
    return Layout(labels, weights, unit, x, y, fiber_map, shape_tex, disc_depth, plan.alpha,
                  nerve_across, nerve_along, fat_cells)


def _nerve(x, y, p, edge):
    """A smooth tube of half width p['half'] U along a gently curved arc: (field, across, along)."""
    direction, curve = p["dir"], p["curve"]
    # arc of radius |curve| whose nearest point to the origin is `offset` along the normal
    nx, ny = -np.sin(direction), np.cos(direction)
    cx = (p["offset"] + curve) * nx
    cy = (p["offset"] + curve) * ny
    dx, dy = x - cx, y - cy
    rho = np.sqrt(dx * dx + dy * dy)
    d = (rho - abs(curve)).astype(np.float32)
    along = (np.arctan2(dy, dx) * abs(curve)).astype(np.float32)
    half = p["half"] * (1.0 + p["taper"] * np.tanh(along)) * (1.0 + 0.04 * edge)
    across = np.clip(d / half, -1.5, 1.5).astype(np.float32)
    return (np.abs(d) - half).astype(np.float32), across, along


def _fat(rng, x, y, p, span, unit):
    """Lobule clusters: a patch field whose edge follows the lobules (field, distance to centres)."""
    shape = x.shape
    patch = fbm(rng, shape, span * 1.1, octaves=3) + np.float32(p["bias"])
    cell = p["cell"]
    d = distance_to_points(rng, shape, int(span * span / (cell * cell))) / np.float32(unit)
    lobe = np.clip(1.0 - d / np.float32(cell * 0.8), 0.0, 1.0)   # 1 at a lobule centre
    field = (np.float32(0.9) - patch - 0.6 * lobe) * np.float32(0.2)
    return field.astype(np.float32), d.astype(np.float32)


def _fray_texture(rng: np.random.Generator, unit: float) -> np.ndarray:
    """Noise in ligament (s, d) space, long along fibers (s), thin across them (d)."""
    h, w = _fiber_texture_shape(unit)
    strands = value_noise(rng, (h, w), (2 * D_RANGE / 0.03, 2 * S_RANGE / 0.5))
    bundles = value_noise(rng, (h, w), (2 * D_RANGE / 0.12, 2 * S_RANGE / 1.2))
    tex = (strands - 0.5) * 3.0 + (bundles - 0.5) * 2.0
    return tex.astype(np.float32)


def _ligament(x, y, p, push, unit, fray_noise, edge):
    """Signed field of the ligament band and the remap maps into its fiber texture space."""
    direction = p["dir"]
    offset = p["offset"] + push
    radius = p["radius"]
    cx = (offset + radius) * np.cos(direction)
    cy = (offset + radius) * np.sin(direction)
    dx, dy = x - cx, y - cy
    rho = np.sqrt(dx * dx + dy * dy)
    phi0 = np.arctan2(-cy, -cx)  # angle from the band center toward the world center
    ang = np.mod(np.arctan2(dy, dx) - phi0 + np.pi, 2 * np.pi) - np.pi
    s = ang * radius
    d = rho - radius
    h, w = fray_noise.shape
    k = w / (2 * S_RANGE)
    map_u = ((np.clip(s, -S_RANGE, S_RANGE) + S_RANGE) * k).astype(np.float32)
    map_v = ((np.clip(d, -D_RANGE, D_RANGE) + D_RANGE) * k).astype(np.float32)
    fray = cv2.remap(fray_noise, map_u, map_v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    half = p["width"] / 2 * np.clip(1.0 + 0.25 * edge, 0.5, 1.6)
    f = np.abs(d) - half
    if p["ends"]:
        f = np.maximum(f, np.abs(s - p["shift"]) - p["length"] / 2)
    f -= p["fray"] * fray
    return f, (map_u, map_v)
