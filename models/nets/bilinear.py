"""The fixed bilinear up-sampling kernel, without Paddle (the network and the INT8 graph rewrites use it)."""
from __future__ import annotations

import numpy as np


def bilinear_kernel(factor: int) -> np.ndarray:
    """The 2D kernel that makes a stride-`factor` transposed convolution a bilinear upsample.

    Matches bilinear interpolation with half-pixel centers (align_corners=False, as cv2.resize)
    everywhere but the outermost output pixels, which fade towards zero over half a source
    pixel (the network learns around that; replicate-padding it away cost 1-2 ms under oneDNN).
    """
    size = 2 * factor - factor % 2
    center = (size - 1) / 2 if size % 2 == 0 else factor - 1
    ramp = 1 - np.abs(np.arange(size) - center) / factor
    return np.outer(ramp, ramp).astype(np.float32)
