"""Color correction of a tower, from a white or gray reference (or, failing one, gray world).

White reference: the scope looks at a white or gray card that fills its view. Inside the
field of view (the central 60% of the radius, away from the vignetted rim), in linear light,
the mean color of the card gives channel gains that make it neutral at its own luminance
(so brightness stays as the tower set it). A reference that is too dark, clipped, or not
uniform in color (tissue instead of a card) is refused with the reason: gains measured from it
would be wrong, and a wrong profile is worse than none.

Gray world (fallback, flagged in the profile): the same gains from the mean of ordinary frames,
assuming the scene averages to gray. Surgical scenes are red: gray world over-corrects them
toward blue, so it is a last resort for towers with no card at hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.frames import Sample
from models.core.errors import EndoSpineError
from models.core.optics.color import luminance_preserving_gains, srgb8_to_linear
from models.core.optics.fov import Circle, detect_fov

MIN_LEVEL = 40          # mean brightest-channel level (0..255) a reference needs
MAX_CLIPPED = 0.05      # share of reference pixels at full scale that makes it overexposed
MAX_CHROMA_CV = 0.12    # chromaticity variation across the reference: above it, not a uniform card
GAIN_RANGE = (0.25, 4.0)
CLIP_LEVEL = 250


@dataclass(frozen=True)
class ColorEstimate:
    gains: tuple[float, float, float]
    method: str                  # white-reference | gray-world
    frames: int
    level: float                 # mean brightest-channel level of the pixels used (0..255)
    clipped: float               # share of clipped pixels in the region
    chroma_cv: float             # chromaticity variation across the region (white reference)

    def measured(self) -> dict:
        return {"frames": self.frames, "level": round(self.level, 1), "clipped": round(self.clipped, 4),
                "chroma_cv": round(self.chroma_cv, 4)}


def region_pixels(image: np.ndarray, circle: Circle | None, share: float) -> np.ndarray:
    """(N, 3) uint8 pixels within `share` of the radius of the field of view (the frame's
    central ellipse of that share when there is no circle)."""
    h, w = image.shape[:2]
    c = circle or Circle((w - 1) / 2, (h - 1) / 2, min(w, h) / 2)
    yy, xx = np.ogrid[0:h, 0:w]
    inside = (xx - c.cx) ** 2 + (yy - c.cy) ** 2 <= (share * c.r) ** 2
    return image[inside]


def white_reference(samples: list[Sample], circle: Circle | None = None) -> ColorEstimate:
    """Gains from frames of a white/gray card; EndoSpineError naming the frame if unusable."""
    pixels = []
    for s in samples:
        c = circle or detect_fov(s.image)
        px = region_pixels(s.image, c, 0.6)
        level = float(px.max(axis=1).mean()) if len(px) else 0.0
        clipped = float((px >= CLIP_LEVEL).any(axis=1).mean()) if len(px) else 0.0
        if level < MIN_LEVEL:
            raise EndoSpineError(f"{s.name}: reference too dark (mean level {level:.0f}/255, at least {MIN_LEVEL} "
                                 "needed): more light on the card or a longer exposure")
        if clipped > MAX_CLIPPED:
            raise EndoSpineError(f"{s.name}: reference overexposed ({clipped:.0%} of its pixels clipped at full "
                                 "scale): less light or a shorter exposure")
        pixels.append(px)
    px = np.concatenate(pixels)
    clipped = float((px >= CLIP_LEVEL).any(axis=1).mean())
    good = px[(px < CLIP_LEVEL).all(axis=1) & (px.max(axis=1) >= 10)]
    lin = srgb8_to_linear(good).astype(np.float64)
    chroma = lin / np.maximum(lin.sum(axis=1, keepdims=True), 1e-6)
    cv = float((chroma.std(axis=0) / np.maximum(chroma.mean(axis=0), 1e-6)).max())
    if cv > MAX_CHROMA_CV:
        raise EndoSpineError(f"{_origin(samples)}: not a uniform white or gray reference (its color varies by "
                             f"{cv:.0%} across the view): fill the scope's view with a white or gray card")
    gains = _checked(luminance_preserving_gains(lin.mean(axis=0)), samples)
    return ColorEstimate(gains, "white-reference", len(samples), float(good.max(axis=1).mean()), clipped, cv)


def gray_world(samples: list[Sample], circle: Circle | None = None) -> ColorEstimate:
    """Gains that make the mean of ordinary frames gray (inside their field of view)."""
    pixels = [region_pixels(s.image, circle or detect_fov(s.image), 0.95) for s in samples]
    px = np.concatenate(pixels)
    good = px[(px < CLIP_LEVEL).all(axis=1) & (px.max(axis=1) >= 20)]
    if len(good) < 0.05 * max(len(px), 1) or len(good) < 100:
        raise EndoSpineError(f"{_origin(samples)}: too few well-exposed pixels for gray world (frames dark or clipped)")
    lin = srgb8_to_linear(good).astype(np.float64)
    gains = _checked(luminance_preserving_gains(lin.mean(axis=0)), samples)
    return ColorEstimate(gains, "gray-world", len(samples), float(good.max(axis=1).mean()),
                         float((px >= CLIP_LEVEL).any(axis=1).mean()), float("nan"))


def _checked(gains: np.ndarray, samples: list[Sample]) -> tuple[float, float, float]:
    if not np.isfinite(gains).all() or gains.min() < GAIN_RANGE[0] or gains.max() > GAIN_RANGE[1]:
        raise EndoSpineError(f"{_origin(samples)}: the color cast is too strong to correct (gains "
                             f"{', '.join(f'{g:.2f}' for g in gains)}; allowed {GAIN_RANGE[0]}..{GAIN_RANGE[1]})")
    return tuple(round(float(g), 5) for g in gains)


def _origin(samples: list[Sample]) -> str:
    return samples[0].name.rsplit(" frame ", 1)[0] if len(samples) > 1 else samples[0].name

