"""Synthetic video-tower frames for the de-identification tests (issue 21): a scene-engine endoscope
frame with the text a tower burns in around the circle (patient name, date of birth, record number,
time in the four corners; surgeon, room and date in a bottom band), and measures of what is left
outside the circle."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from models.core.optics.fov import Circle
from models.synth import SyntheticClip

CORNER_TEXT = ("DOE^JOHN", "DOB 1961-04-02", "MRN 00482913", "14:32:07")
BAND_TEXT = "Dr. SMITH  OR3  2024-05-06"


def burn_in(image: np.ndarray) -> np.ndarray:
    """A copy of `image` with white text in all four corners and a grey bottom band with text."""
    out = image.copy()
    h, w = out.shape[:2]
    s = h / 360
    scale, thick = 0.5 * s, max(1, round(1.5 * s))
    spots = [(4, round(16 * s)), (w - round(150 * s), round(16 * s)),
             (4, h - round(40 * s)), (w - round(150 * s), h - round(40 * s))]
    for (x, y), text in zip(spots, CORNER_TEXT):
        cv2.putText(out, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick)
    cv2.rectangle(out, (0, h - round(20 * s)), (w, h), (60, 60, 60), -1)
    cv2.putText(out, BAND_TEXT, (8, h - round(6 * s)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick)
    return out


class Tower:
    """Frames of one synthetic clip with burned-in text; `circle` is the clip's true field of view."""

    def __init__(self, seed: int = 1, width: int = 640, height: int = 360):
        self.clip = SyntheticClip(seed, seed, width, height)
        self.circle = Circle(*self.clip.fov)
        self.size = (width, height)

    def frame(self, t: int) -> np.ndarray:
        return burn_in(self.clip.render(t)[0])

    def labels(self, t: int) -> np.ndarray:
        return self.clip.render(t)[1]

    def video(self, path: Path, frames: int = 12, fps: int = 25, tags: dict | None = None, audio: bool = False) -> Path:
        """A video as another recorder might write it: its own tags (a patient's name, a creation
        time), stream tags and, with audio=True, a silent audio stream."""
        w, h = self.size
        with av.open(str(path), "w") as c:
            c.metadata.update(tags or {})
            v = c.add_stream("libx264", rate=Fraction(fps))
            v.width, v.height, v.pix_fmt = w, h, "yuv420p"
            v.options = {"preset": "ultrafast", "crf": "16"}
            v.metadata["handler_name"] = "OR3 tower"
            a = c.add_stream("aac", rate=48000) if audio else None
            for t in range(frames):
                f = av.VideoFrame.from_ndarray(self.frame(t), format="rgb24")
                f.pts = t
                for p in v.encode(f):
                    c.mux(p)
                if a is not None:
                    silence = np.zeros((1, 48000 // fps), np.float32)
                    af = av.AudioFrame.from_ndarray(silence, format="fltp", layout="mono")
                    af.sample_rate, af.pts = 48000, t * (48000 // fps)
                    for p in a.encode(af):
                        c.mux(p)
            for p in v.encode():
                c.mux(p)
            if a is not None:
                for p in a.encode():
                    c.mux(p)
        return path


def beyond(image: np.ndarray, circle: Circle, distance: float) -> np.ndarray:
    """The brightest channel of the pixels farther than `distance` beyond the circle's rim."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    far = np.hypot(xx - circle.cx, yy - circle.cy) > circle.r + distance
    return image.max(axis=2)[far] if image.ndim == 3 else image[far]


def max_beyond(image: np.ndarray, circle: Circle, distance: float) -> int:
    values = beyond(image, circle, distance)
    return int(values.max()) if values.size else 0


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
