"""New label maps from training label maps: flips, rotation and zoom, elastic warps, recombined regions.

The field of view stays where it was: an endoscope's circle is fixed by the optics, so only the
tissue layout inside it moves. Before moving, ignore pixels (255) are filled with the nearest
class so that warps never pull ignore into the view; after, the original outside is set back to
255. Every pixel is sampled nearest-neighbour from existing ids, so a perturbed map holds only
ids of the class table, and 255 exactly outside the original view.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class PerturbConfig:
    flip: float = 0.5                       # probability of each of horizontal and vertical flips
    rotate: float = 180.0                   # max degrees either way (endoscope views rotate freely)
    scale: tuple[float, float] = (0.85, 1.25)
    elastic: float = 0.05                   # std of the warp's control-point shifts, as a share of the side
    recombine: float = 0.3                  # probability of pasting a region of another label map

    def __post_init__(self) -> None:
        if not (0 <= self.flip <= 1 and 0 <= self.recombine <= 1):
            raise ValueError("flip and recombine are probabilities in 0..1")
        if not 0 < self.scale[0] <= self.scale[1] or self.elastic < 0 or self.rotate < 0:
            raise ValueError("scale must be 0 < low <= high; elastic and rotate >= 0")


def fill_ignore(label: np.ndarray, ignore: int = 255) -> np.ndarray:
    """Each ignore pixel takes the class of the nearest labeled pixel (unchanged when none is labeled)."""
    outside = label == ignore
    if not outside.any() or outside.all():
        return label.copy()
    _, (iy, ix) = ndimage.distance_transform_edt(outside, return_indices=True)
    return label[iy, ix]


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, cells: int = 4) -> np.ndarray:
    """Low-frequency random field (standard normal at `cells` x `cells` control points, cubic in between)."""
    h, w = shape
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def move(label: np.ndarray, rng: np.random.Generator, cfg: PerturbConfig) -> tuple[np.ndarray, list[str]]:
    """Flip, rotate + zoom about the center, and elastically warp a (filled) label map."""
    h, w = label.shape
    ops = []
    if rng.random() < cfg.flip:
        label, ops = label[:, ::-1], ops + ["hflip"]
    if rng.random() < cfg.flip:
        label, ops = label[::-1], ops + ["vflip"]
    angle = float(rng.uniform(-cfg.rotate, cfg.rotate))
    scale = float(rng.uniform(*cfg.scale))
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    # Inverse mapping: for each output pixel, where it comes from in the input.
    inv = cv2.invertAffineTransform(m)
    inv = inv.astype(np.float32)
    map_x = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
    map_y = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
    ops.append(f"rotate {angle:.0f} scale {scale:.2f}")
    if cfg.elastic > 0:
        map_x += smooth_field((h, w), rng) * cfg.elastic * w
        map_y += smooth_field((h, w), rng) * cfg.elastic * h
        ops.append(f"elastic {cfg.elastic:g}")
    out = cv2.remap(np.ascontiguousarray(label), map_x, map_y, interpolation=cv2.INTER_NEAREST,
                    borderMode=cv2.BORDER_REFLECT)
    return out, ops


def blob_mask(shape: tuple[int, int], rng: np.random.Generator, share: float) -> np.ndarray:
    """A smooth random region covering about `share` of the picture."""
    field = smooth_field(shape, rng, cells=3)
    return field > np.quantile(field, 1 - share)


def perturb(label: np.ndarray, rng: np.random.Generator, cfg: PerturbConfig = PerturbConfig(),
            other: np.ndarray | None = None, ignore: int = 255) -> tuple[np.ndarray, list[str]]:
    """A new label map from `label` (and, for recombination, a region of `other`, same size).

    Returns the map and the list of operations applied (for the dataset's provenance).
    """
    view = label != ignore
    out, ops = move(fill_ignore(label, ignore), rng, cfg)
    if other is not None and rng.random() < cfg.recombine:
        moved, _ = move(fill_ignore(other, ignore), rng, cfg)
        share = float(rng.uniform(0.2, 0.5))
        region = blob_mask(out.shape, rng, share)
        out = np.where(region, moved, out)
        ops.append(f"recombine {share:.2f}")
    out = np.ascontiguousarray(out, dtype=np.uint8)
    out[~view] = ignore
    return out, ops
