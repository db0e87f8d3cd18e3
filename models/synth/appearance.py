"""Per-class world appearance: albedo (float32 RGB, 0..1) and a height map (pixels) for shading.

Each class gets its own texture over the whole world; they are mixed with the layout's blurred
class masks, so appearance blends softly across borders while the labels stay hard. A class
builder returns (planar color (3, h, w), smooth relief, fine relief), reliefs in pixels.
"""
from __future__ import annotations

import cv2
import numpy as np

from models.synth.layout import BG, BONE, D_RANGE, DISC, FAT, LIG, N_CLASSES, NERVE, S_RANGE, Layout
from models.synth.noise import blur, distance_to_points, fbm, smoothstep, value_noise


def _rgb(*c: float) -> np.ndarray:
    """A color as a (3, 1, 1) float32 array: images here are planar (3, h, w) for fast mixing."""
    return (np.array(c, np.float32) / 255.0).reshape(3, 1, 1)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel lerp of colors or planar images a -> b by t (h, w)."""
    return a + (b - a) * t[None]


def _jitter(rng: np.random.Generator, color: np.ndarray, amount: float = 0.04) -> np.ndarray:
    gain = np.exp(rng.normal(0.0, amount, 3) + rng.normal(0.0, amount)).astype(np.float32)
    return color * gain.reshape(3, 1, 1)


def _bumps(rng, shape, span: float, size: float, slope: float, u: float) -> np.ndarray:
    """Relief of bumps about `size` U across with gradient std about `slope` (for wet glints)."""
    return fbm(rng, shape, span / size, octaves=2) * np.float32(slope * size * u / 4.0)


def _grain(rng, shape, px: float, aniso: float = 1.0) -> np.ndarray:
    """Fine noise, mean 0 std about 0.3, with features about `px` world pixels across
    (`aniso` > 1 stretches them along x): the tissue's own high-frequency texture."""
    h, w = shape
    return value_noise(rng, shape, (h / px, w / (px * aniso))) - np.float32(0.5)


def _vessels(rng, lay: Layout, span: float, sizes=((0.8, 0.04, 0.55), (0.3, 0.045, 0.4))) -> np.ndarray:
    """Branching vessels: zero lines of noise; finer levels only sprout near coarser ones."""
    shape = lay.labels.shape
    near = smoothstep(-0.2, 1.0, fbm(rng, shape, span * 1.2, octaves=2))
    vessels = np.zeros(shape, np.float32)
    for size, width, strength in sizes:
        v = fbm(rng, shape, span / size, octaves=2)
        line = smoothstep(width, 0.0, np.abs(v)) * near * np.float32(strength)
        vessels = np.maximum(vessels, line)
        near = np.minimum(1.0, blur(line, 0.25 * size * lay.unit) * 6.0)
    return vessels


def _background(rng, lay: Layout, span: float):
    """Soft tissue: red-orange fibrous masses, vessels, blood-soaked patches, deep recesses."""
    shape = lay.labels.shape
    u = lay.unit
    low = fbm(rng, shape, span * 0.9, octaves=3)
    mid = fbm(rng, shape, span * 3.0, octaves=4)
    col = _mix(_jitter(rng, _rgb(138, 66, 44)),
               _jitter(rng, _rgb(184, 84, 48)), smoothstep(-1.2, 1.4, mid))
    smooth = low * (0.06 * u) + _bumps(rng, shape, span, 0.06, 0.15, u)
    # torn fibrous strands in a few directions, and a fine wet grain
    fibres = _grain(rng, shape, 1.6, aniso=rng.uniform(3.0, 6.0))
    grain = _grain(rng, shape, 1.3)
    col *= (1.0 + 0.6 * fibres + 0.45 * grain)[None]
    fine = mid * (0.006 * u) + (fibres * 0.004 + grain * 0.002) * u
    vessels = _vessels(rng, lay, span)
    col = _mix(col, _rgb(128, 26, 22), blur(vessels, 0.6))
    soak = smoothstep(0.8, 2.2, fbm(rng, shape, span * 1.6, octaves=3)) * rng.uniform(0.3, 0.8)
    col = _mix(col, _rgb(140, 34, 24), soak)
    clot = smoothstep(1.4, 2.4, fbm(rng, shape, span * 4.0, octaves=3)) * rng.uniform(0.0, 0.8)
    col = _mix(col, _rgb(96, 18, 14), clot)   # dark red clots
    deep = smoothstep(-0.5, 2.0, low) * rng.uniform(0.25, 0.5)
    col *= (1.0 - deep)[None]
    return col, smooth, fine


def _nerve(rng, lay: Layout, span: float):
    """Dura / nerve root: a smooth pale pink-white tube crossed by fine branching red vessels."""
    shape = lay.labels.shape
    u = lay.unit
    across = lay.nerve_across     # built whenever the layout has a nerve (else this is not called)
    crown = np.sqrt(np.clip(1.0 - across * across, 0.0, 1.0))
    col = _mix(_jitter(rng, _rgb(204, 142, 132)), _jitter(rng, _rgb(234, 190, 172)), crown)
    sheen = _grain(rng, shape, 6.0, aniso=3.0)          # the membrane is smooth: a faint sheen only
    col *= (1.0 + 0.1 * sheen + 0.16 * _grain(rng, shape, 1.4))[None]
    vessels = _vessels(rng, lay, span, ((0.35, 0.05, 0.85), (0.15, 0.07, 0.75), (0.06, 0.09, 0.6)))
    col = _mix(col, _rgb(170, 40, 36), vessels)
    smooth = crown * np.float32(0.07 * u)
    fine = (sheen * 0.002 - vessels * 0.004) * u
    return col, smooth, fine


def _fat(rng, lay: Layout, span: float):
    """Epidural fat: yellow-orange lobules, darker septa between them, glossy domes."""
    shape = lay.labels.shape
    u = lay.unit
    d = lay.fat_cells             # built whenever the layout has fat
    cell = float(np.percentile(d[:: 8, :: 8], 90)) + 1e-3
    dome = np.clip(1.0 - (d / np.float32(cell)) ** 2, 0.0, 1.0)
    septa = smoothstep(0.55 * cell, 0.95 * cell, d)
    col = _mix(_jitter(rng, _rgb(204, 130, 70)), _jitter(rng, _rgb(232, 172, 96)), dome)
    col = _mix(col, _rgb(170, 70, 40), septa * 0.7)
    col *= (1.0 + 0.45 * _grain(rng, shape, 1.5) + 0.1 * fbm(rng, shape, span * 6, octaves=3))[None]
    smooth = dome * np.float32(0.035 * u)
    fine = (dome * 0.004 - septa * 0.004) * u
    return col, smooth, fine


def _bone(rng, lay: Layout, span: float):
    shape = lay.labels.shape
    u = lay.unit
    mottle = fbm(rng, shape, span * 2.0, octaves=5)
    col = _mix(_jitter(rng, _rgb(212, 126, 76)),
               _jitter(rng, _rgb(230, 166, 112)), smoothstep(-0.5, 1.6, mottle))
    col = _mix(col, _rgb(192, 106, 62), smoothstep(0.4, 2.0, -mottle) * 0.6)
    ivory = smoothstep(0.8, 2.0, fbm(rng, shape, span * 3.0, octaves=3))   # cortical patches
    col = _mix(col, _rgb(234, 182, 130), ivory * 0.55)
    smooth = fbm(rng, shape, span * 1.5, octaves=3) * (0.04 * u)
    fine = mottle * (0.004 * u)
    # burr grooves: curved parallel ridges in burred patches
    g_ang = lay.bone_axis + np.pi / 2 + rng.uniform(-0.6, 0.6)
    c, s = np.cos(g_ang), np.sin(g_ang)
    along = lay.x * c + lay.y * s
    across = -lay.x * s + lay.y * c
    wavelength = rng.uniform(0.05, 0.09)
    wobble = fbm(rng, shape, span * 6, octaves=2) * np.float32(0.35 * wavelength)
    g = across + rng.uniform(-0.25, 0.25) * along * along + wobble
    ridges = np.abs(np.sin(g * (np.pi / wavelength))).astype(np.float32) - 0.64  # burr scallops
    depth = smoothstep(-0.5, 1.0, fbm(rng, shape, span * 4, octaves=2))
    burred = smoothstep(0.0, 1.2, fbm(rng, shape, span * 1.2, octaves=2) + rng.uniform(-0.8, 0.3))
    fine += ridges * burred * depth * (0.012 * u)
    col *= (1.0 + 0.12 * ridges * burred * depth)[None]
    # cancellous (porous, redder) areas with irregular dark pits
    porous = smoothstep(0.2, 1.4, fbm(rng, shape, span * 1.5, octaves=2) + rng.uniform(-0.6, 0.5))
    col = _mix(col, _rgb(204, 110, 72), porous * 0.25)
    sponge = fbm(rng, shape, span * rng.uniform(25, 40), octaves=2)
    pit = blur(smoothstep(1.0, 1.9, sponge) * porous, 0.004 * u)
    col = _mix(col, _rgb(150, 56, 40), pit * 0.75)
    fine -= pit * (0.012 * u)
    smooth += _bumps(rng, shape, span, 0.035, 0.12, u)
    # granular cut surface: trabecular grain at two scales
    grain = _grain(rng, shape, 1.4) + 0.7 * _grain(rng, shape, 3.0)
    col *= (1.0 + 0.55 * grain)[None]
    fine += grain * (0.004 * u)
    # red bleeding spots
    d = distance_to_points(rng, shape, int(span * span * rng.uniform(0.5, 2.0)))
    spot_n = fbm(rng, shape, span * 8, octaves=2)
    rad = rng.uniform(0.03, 0.07) * u
    bleed = smoothstep(rad, rad * 0.2, d * (1.0 + 0.3 * spot_n))
    col = _mix(col, _rgb(176, 44, 32), bleed * 0.8)
    # burr debris glitter: sparse tiny specks, brighter than white (they clip after shading)
    glitter = _sparse(rng, shape, span * span * rng.uniform(60, 160))
    glitter *= smoothstep(0.0, 1.2, fbm(rng, shape, span * 2.5, octaves=2))   # debris in patches
    glitter = cv2.GaussianBlur(glitter, (0, 0), max(0.5, 0.003 * u)) * np.float32(1 + 0.004 * u)
    col += glitter[None] * _rgb(200, 170, 130)   # warm sparkle: the saline and light tint it
    return col, smooth, fine


def _sparse(rng, shape, count: float) -> np.ndarray:
    img = np.zeros(shape, np.float32)
    k = int(count)
    img[rng.integers(0, shape[0], k), rng.integers(0, shape[1], k)] = rng.uniform(0.3, 1.0, k)
    return img


def _ligament(rng, lay: Layout, span: float):
    shape = lay.labels.shape
    u = lay.unit
    h, w = lay.fiber_tex_shape
    # texture space spans 2*D_RANGE U across fibers (rows) and 2*S_RANGE U along them (cols)
    fine = value_noise(rng, (h, w), (2 * D_RANGE / 0.02, 2 * S_RANGE / 0.35))
    strand = value_noise(rng, (h, w), (2 * D_RANGE / 0.045, 2 * S_RANGE / 0.7))
    bundle = value_noise(rng, (h, w), (2 * D_RANGE / 0.12, 2 * S_RANGE / 1.4))
    tex = cv2.merge([fine, strand, bundle])
    mu, mv = lay.fiber_map
    fb = cv2.remap(tex, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    fine, strand, bundle = fb[..., 0] - 0.5, fb[..., 1] - 0.5, fb[..., 2] - 0.5
    fibril = value_noise(rng, (h, w), (2 * D_RANGE / 0.008, 2 * S_RANGE / 0.25))
    fibril = cv2.remap(fibril, mu, mv, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) - np.float32(0.5)
    fluff = fbm(rng, shape, span * 4, octaves=4)
    col = _mix(_jitter(rng, _rgb(246, 202, 142)),
               _rgb(222, 168, 116), smoothstep(0.0, -0.4, bundle + 0.5 * strand + 0.08 * fluff) * 0.8)
    col *= (1.0 + 0.6 * fibril + 0.2 * fine + 0.1 * strand + 0.03 * fluff)[None]
    tufts = smoothstep(0.6, 2.0, fluff)            # fluffy, frayed tufts where it was bitten
    col = _mix(col, _rgb(246, 226, 196), tufts * 0.6)
    col *= (1.0 + 0.2 * tufts * _grain(rng, shape, 1.3))[None]
    smooth = (bundle * 0.025 + strand * 0.012 + np.maximum(fluff, 0) * 0.01) * u
    fine_h = (fibril * 0.006 + fine * 0.006 + strand * 0.006) * u
    return col, smooth, fine_h


def _disc(rng, lay: Layout, span: float):
    shape = lay.labels.shape
    u = lay.unit
    depth = lay.disc_depth
    warp = fbm(rng, shape, span * 1.5, octaves=3)
    lam_len = rng.uniform(0.07, 0.12)
    lam = np.sin((depth + 0.04 * warp) * (2 * np.pi / lam_len)).astype(np.float32)
    cotton = fbm(rng, shape, span * 5, octaves=4)
    col = _mix(_jitter(rng, _rgb(240, 216, 194)), _rgb(250, 240, 226),
               smoothstep(0.0, 1.6, cotton))
    fibril = _grain(rng, shape, 1.4, aniso=rng.uniform(2.0, 4.0))
    col *= (1.0 + 0.03 * lam + 0.55 * fibril)[None]
    stain = smoothstep(1.2, 2.4, fbm(rng, shape, span * 2, octaves=3))
    col = _mix(col, _rgb(218, 160, 138), stain * 0.5)
    # nucleus fragments: loose white cotton-like tufts with a fine fluffy grain
    frag = smoothstep(0.9, 1.8, fbm(rng, shape, span * 3.5, octaves=4)) * rng.uniform(0.3, 1.0)
    col = _mix(col, _rgb(238, 226, 208) * (1.0 + 0.3 * _grain(rng, shape, 1.2))[None], frag)
    smooth = np.maximum(cotton, 0) * (0.015 * u) + _bumps(rng, shape, span, 0.05, 0.13, u) + frag * (0.02 * u)
    fine = (lam * 0.003 + cotton * 0.006 + fibril * 0.003) * u
    return col, smooth, fine


_BUILDERS = {BG: _background, BONE: _bone, LIG: _ligament, DISC: _disc, NERVE: _nerve, FAT: _fat}
_ELEVATION = {BG: 0.0, BONE: 0.06, LIG: 0.08, DISC: 0.04, NERVE: 0.05, FAT: 0.03}   # in U
_BRIGHTNESS = {BG: 1.0, BONE: 1.04, LIG: 1.12, DISC: 1.1, NERVE: 1.05, FAT: 1.05}    # beyond albedo 1


def build_appearance(rng: np.random.Generator, lay: Layout) -> np.ndarray:
    """World RGBH: float32 (n, n, 4), RGB albedo in 0..1 (glitter may exceed 1), H in pixels.

    Fine relief is baked into the albedo as static shading; H holds the smooth relief that
    drives the view-dependent shading and wet highlights.
    """
    n = lay.labels.shape[0]
    u = lay.unit
    span = n / u
    albedo = np.zeros((3, n, n), np.float32)
    height = fbm(rng, (n, n), span * 0.8, octaves=3) * np.float32(0.12 * u)   # terrain
    fine = np.zeros((n, n), np.float32)
    elevation = np.zeros((n, n), np.float32)
    for c in range(N_CLASSES):
        # one generator per class so absent classes do not shift the others' draws
        sub = np.random.default_rng(rng.integers(0, 2 ** 63))
        wgt = lay.weights[c]
        if float(wgt.max()) <= 0.0:
            continue
        col, smooth, fine_c = _BUILDERS[c](sub, lay, span)
        albedo += col * (wgt * np.float32(_BRIGHTNESS[c]))[None]
        height += smooth * blur(wgt, 0.03 * u)  # relief blends wider than color
        fine += fine_c * wgt
        elevation[lay.labels == c] = _ELEVATION[c] * u
    height += blur(elevation, 0.04 * u)
    gx = cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    shade = 1.0 / np.sqrt(1.0 + gx * gx + gy * gy)
    for ch, power in enumerate((0.8, 1.0, 1.25)):   # shadows go red-brown, not grey
        albedo[ch] *= shade ** np.float32(power)
    height += fine * np.float32(0.2)
    height = blur(height, max(0.5, 0.004 * u))
    return cv2.merge([albedo[0], albedo[1], albedo[2], height])
