"""Distribution distances between two sets of images, without any pretrained network.

No Inception weights can be downloaded here, so FID proper is out. Two measures instead:

- SWD: sliced Wasserstein distance on Laplacian-pyramid patches, as in ProGAN (Karras et al.
  2018): each image's Laplacian pyramid (finest level = the image side, down to 16 px); 128
  random 7x7 RGB patches per image and level; descriptors normalized per color channel within
  each set; the 1-D Wasserstein distance of the two sets' projections on 512 random unit
  directions, averaged over the directions and 4 repeats; reported x 1e3 per level. Fine
  levels see texture and edges, coarse ones color and layout.
- FD-CT: Fréchet distance between Gaussians fitted to 24 hand-made color/texture features per
  image (CIELAB mean, std and 10/50/90th percentiles per channel; mean |Laplacian|, Laplacian
  std and mean gradient magnitude of L at 3 scales), computed inside the field of view and
  standardized by the second (real) set's mean and std.
Lower is better for both; compare with the same distances between two real sets.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
from scipy import linalg

PATCH = 7
FEATURE_NAMES = ([f"{c}_{s}" for c in ("L", "a", "b") for s in ("mean", "std", "p10", "p50", "p90")]
                 + [f"{k}_s{lv}" for lv in range(3) for k in ("lap_abs", "lap_std", "grad")])


# -- sliced Wasserstein distance on Laplacian-pyramid patches ---------------------------------
def laplacian_pyramid(image: np.ndarray, min_size: int = 16) -> list[np.ndarray]:
    """Levels finest first: band-pass differences, then the coarsest Gaussian level."""
    levels, g = [], image.astype(np.float32)
    while g.shape[0] > min_size:
        down = cv2.pyrDown(g)
        levels.append(g - cv2.pyrUp(down, dstsize=(g.shape[1], g.shape[0])))
        g = down
    levels.append(g)
    return levels


def _patches(level: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    h, w = level.shape[:2]
    ys = rng.integers(0, h - PATCH + 1, n)
    xs = rng.integers(0, w - PATCH + 1, n)
    off = np.arange(PATCH)
    rows = ys[:, None, None] + off[None, :, None]
    cols = xs[:, None, None] + off[None, None, :]
    return level[rows, cols].reshape(n, -1)  # n x (7*7*3)


def _normalize(desc: np.ndarray) -> np.ndarray:
    d = desc.reshape(len(desc), -1, 3)
    d = (d - d.mean(axis=(0, 1))) / (d.std(axis=(0, 1)) + 1e-8)
    return d.reshape(len(desc), -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, directions: int = 512,
                       repeats: int = 4) -> float:
    """SWD between two equally sized point sets (n x d)."""
    if a.shape != b.shape:
        raise ValueError(f"point sets differ in shape: {a.shape} vs {b.shape}")
    total = 0.0
    for _ in range(repeats):
        dirs = rng.standard_normal((a.shape[1], directions)).astype(np.float32)
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        pa, pb = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
        total += float(np.abs(pa - pb).mean())
    return total / repeats


def pyramid_swd(images_a: np.ndarray, images_b: np.ndarray, seed: int = 0, per_image: int = 128) -> dict[str, float]:
    """SWD x 1e3 per pyramid level (keyed by the level's side in px) and their mean. N x S x S x 3 uint8 each."""
    if len(images_a) != len(images_b) or not len(images_a):
        raise ValueError("both image sets need the same, non-zero number of images")
    rng = np.random.default_rng(seed)
    desc_a: list[list[np.ndarray]] = []
    desc_b: list[list[np.ndarray]] = []
    for store, images in ((desc_a, images_a), (desc_b, images_b)):
        for img in images:
            for k, level in enumerate(laplacian_pyramid(img)):
                if len(store) <= k:
                    store.append([])
                store[k].append(_patches(level, per_image, rng))
    sides = [lv.shape[0] for lv in laplacian_pyramid(images_a[0])]
    out = {str(side): 1e3 * sliced_wasserstein(_normalize(np.concatenate(da)), _normalize(np.concatenate(db)), rng)
           for side, da, db in zip(sides, desc_a, desc_b)}
    out["mean"] = float(np.mean(list(out.values())))
    return {k: round(v, 3) for k, v in out.items()}


# -- Fréchet distance on color/texture features -------------------------------------------------
def image_features(rgb: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """24 color/texture numbers (FEATURE_NAMES) of one RGB uint8 image, over the `inside` mask."""
    if inside is None or not inside.any():
        inside = np.ones(rgb.shape[:2], bool)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    feats = []
    for c in range(3):
        v = lab[..., c][inside]
        feats += [v.mean(), v.std(), *np.percentile(v, (10, 50, 90))]
    light, mask = lab[..., 0], inside.astype(np.uint8)
    for _ in range(3):
        keep = mask.astype(bool)
        lap = cv2.Laplacian(light, cv2.CV_32F, ksize=3)[keep]
        gx = cv2.Sobel(light, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(light, cv2.CV_32F, 0, 1, ksize=3)
        feats += [np.abs(lap).mean() if lap.size else 0.0, lap.std() if lap.size else 0.0,
                  np.hypot(gx, gy)[keep].mean() if keep.any() else 0.0]
        light = cv2.pyrDown(light)
        mask = cv2.resize(mask, (light.shape[1], light.shape[0]), interpolation=cv2.INTER_NEAREST)
    return np.asarray(feats, np.float64)


def standardizer(reference: np.ndarray):
    """f -> (f - mean) / std with the reference set's statistics (constant features left at 0)."""
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    std = np.where(std > 1e-9, std, 1.0)
    return lambda f: (f - mean) / std


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(Ca + Cb - 2 (Ca Cb)^1/2) between Gaussians fitted to two feature sets."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(ca @ cb)
        if not np.isfinite(root).all():  # singular covariances (few images): regularize, as FID code does
            eps = np.eye(len(ca)) * 1e-6
            root = linalg.sqrtm((ca + eps) @ (cb + eps))
    root = np.real(root)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(ca + cb - 2 * root))
