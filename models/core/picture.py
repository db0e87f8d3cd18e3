"""Frames larger than the screen: the picture kept in the source's own pixel layout at full
resolution, and the RGB view made from it at the size the display and the model use.

A 4K endoscope tower delivers 3840x2160 frames, in YUV (4:2:0 from a file's H.264 or HEVC,
NV12 or packed 4:2:2 from a capture card). Nothing on the live path needs them in full-resolution
RGB: the OR monitor shows at most its own size, and the model sees a 384-pixel crop. Converting
4K YUV to RGB and then scaling it down costs two passes over 25 MB. Instead, each plane is scaled
to the view size in its own layout (the luma plane to the view, the chroma planes to half of it)
and only the small picture is converted to RGB: one pass over the large frame, at its reading cost.
The full-resolution picture stays in its own layout (`Planes`, half the bytes of RGB for 4:2:0)
for what needs every pixel, recordings, snapshots and rendered videos, which convert it with
`Planes.rgb()` when they use it.

    full = Planes.from_av(av_frame)                  # the decoder's frame, no conversion
    image = full.view(fit_size(full.size, (1920, 1080)))

The colour conversion is OpenCV's BT.601 YUV -> RGB, which agrees with FFmpeg's (the path frames
that need no scaling take) to about one level of 255 on average (0.4 on the demo video's frames).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# pixel layouts kept as they are: FFmpeg's name -> OpenCV's conversion of the whole layout to RGB
_TO_RGB = {
    "yuv420p": cv2.COLOR_YUV2RGB_I420,   # planar Y, U, V; chroma at half width and height
    "yuvj420p": cv2.COLOR_YUV2RGB_I420,
    "nv12": cv2.COLOR_YUV2RGB_NV12,      # planar Y, interleaved UV at half width and height
    "uyvy422": cv2.COLOR_YUV2RGB_UYVY,   # packed U Y V Y: two pixels in four bytes
    "yuyv422": cv2.COLOR_YUV2RGB_YUY2,   # packed Y U Y V
    "rgb24": None,
}
FORMATS = tuple(_TO_RGB)
# The view the display and the model use for larger frames (run, bench and render alike): an OR
# monitor's 1080p. A 4K source is shown and segmented at this size; `--view-size source` keeps
# every frame at its own size (on a machine that can afford it).
DEFAULT_VIEW_MAX = (1920, 1080)
_PACKED = {"uyvy422": (1, 3), "yuyv422": (0, 2)}  # where the two luma samples of a pixel pair sit


def fit_size(size: tuple[int, int], limit: tuple[int, int] | None) -> tuple[int, int]:
    """`size` (w, h) scaled down to fit inside `limit`, aspect kept, even sides (what 4:2:0
    chroma needs); `size` itself if it fits already or there is no limit."""
    w, h = size
    if limit is None or (w <= limit[0] and h <= limit[1]):
        return w, h
    s = min(limit[0] / w, limit[1] / h)
    return max(2, int(w * s) // 2 * 2), max(2, int(h * s) // 2 * 2)


def parse_size(text: str) -> tuple[int, int] | None:
    """'WxH' -> (W, H); 'source' -> None (no limit). ValueError for anything else."""
    if text.strip().lower() == "source":
        return None
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) < 64 or int(h) < 64:
        raise ValueError(f"{text!r}: expected WIDTHxHEIGHT (each at least 64) or 'source'")
    return int(w), int(h)


@dataclass(frozen=True, eq=False)
class Planes:
    """A picture in its source's pixel layout (FORMATS), as one C-contiguous uint8 array:
    4:2:0 planar (yuv420p, nv12) as (h * 3/2, w), packed 4:2:2 as (h, w, 2), rgb24 as (h, w, 3)."""

    fmt: str
    data: np.ndarray
    size: tuple[int, int]  # (w, h) of the picture

    def __post_init__(self) -> None:
        w, h = self.size
        if self.fmt not in _TO_RGB:
            raise ValueError(f"pixel layout {self.fmt!r} is not kept as planes (have {', '.join(FORMATS)})")
        if self.data.dtype != np.uint8 or self.data.shape != layout_shape(self.fmt, w, h):
            raise ValueError(f"{self.fmt} {w}x{h}: expected uint8 {layout_shape(self.fmt, w, h)}, "
                             f"got {self.data.dtype} {self.data.shape}")

    @classmethod
    def from_av(cls, av_frame) -> "Planes | None":
        """A PyAV frame's picture as planes without converting it (None: a layout not kept, or odd
        sides, which 4:2:0 cannot split evenly; the caller converts such frames whole)."""
        fmt, w, h = av_frame.format.name, av_frame.width, av_frame.height
        if fmt not in _TO_RGB or fmt == "rgb24" or w % 2 or h % 2:
            return None
        try:
            data = np.ascontiguousarray(av_frame.to_ndarray())
        except ValueError:  # a layout this PyAV cannot hand over as an array (e.g. uyvy422)
            return None
        return cls(fmt, data.reshape(layout_shape(fmt, w, h)), (w, h))

    @classmethod
    def from_buffer(cls, fmt: str, buffer: np.ndarray, size: tuple[int, int]) -> "Planes":
        """A raw frame buffer as a capture driver hands it over (any shape, the right byte count)."""
        w, h = size
        shape = layout_shape(fmt, w, h)
        flat = np.ascontiguousarray(buffer).reshape(-1)
        if flat.size != int(np.prod(shape)):
            raise ValueError(f"{fmt} {w}x{h}: expected {int(np.prod(shape))} bytes, got {flat.size}")
        return cls(fmt, flat.reshape(shape), size)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def rgb(self) -> np.ndarray:
        """The full-resolution picture as HxWx3 uint8 RGB (a new array; RGB planes themselves,
        which nobody may modify: frames are immutable)."""
        code = _TO_RGB[self.fmt]
        return self.data if code is None else cv2.cvtColor(self.data, code)

    def picture(self, limit: tuple[int, int] | None) -> tuple[np.ndarray, "Planes | None"]:
        """What a source delivers: (the picture fitted inside `limit`, these planes if that is a
        reduced view, else None)."""
        size = fit_size(self.size, limit)
        return (self.view(size), self) if size != self.size else (self.rgb(), None)

    def view(self, size: tuple[int, int]) -> np.ndarray:
        """The picture at `size` (w, h; even sides) as HxWx3 uint8 RGB: every plane scaled in its
        own layout (scale_to()), then the small picture converted."""
        w, h = size
        if (w, h) == self.size:
            return self.rgb()
        code = _TO_RGB[self.fmt]
        if code is None:
            return scale_to(self.data, w, h)
        return cv2.cvtColor(self._scaled(w, h), code)

    def _scaled(self, w: int, h: int) -> np.ndarray:
        sw, sh = self.size
        if self.fmt in _PACKED:  # a pixel pair is one 4-byte cell: scale the cells, w/2 of them
            cells = self.data.reshape(sh, sw // 2, 4)
            return np.ascontiguousarray(scale_to(cells, w // 2, h)).reshape(h, w, 2)
        chroma = self.data[sh:].reshape(-1)
        quarter = (sh // 2) * (sw // 2)
        if self.fmt == "nv12":  # one plane of UV pairs
            planes = [self.data[:sh], chroma.reshape(sh // 2, sw // 2, 2)]
        else:  # I420: U then V, each (h/2, w/2), stored back to back
            u, v = (chroma[i * quarter:(i + 1) * quarter].reshape(sh // 2, sw // 2) for i in (0, 1))
            planes = [self.data[:sh], u, v]
        return _scaled_420(planes, w, h)


class AvConverter:
    """PyAV frames converted through one swscale context that stays, on one thread.

    `av_frame.to_ndarray(format="rgb24")` builds a new swscale context for every frame, and this
    FFmpeg's swscale starts and ends its slice threads with each context: the decoder child of a
    1080p60 file created and ended two threads per frame. One kept context on one thread (the
    same pixels) measured 1.1-1.2 ms of CPU per 1080p frame against 1.7-2.0 ms.

        rgb = AvConverter()(av_frame)               # HxWx3 uint8 RGB, C-contiguous
        yuv = AvConverter().frame(av_frame, "yuv420p")
    """

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()

    def frame(self, av_frame, fmt: str):
        """The frame in pixel format `fmt` (a new PyAV frame; the same one if it is in it already)."""
        return self._reformatter.reformat(av_frame, format=fmt, threads=1)

    def __call__(self, av_frame) -> np.ndarray:
        # odd widths come back with padded rows: made contiguous (a copy only then)
        return np.ascontiguousarray(self.frame(av_frame, "rgb24").to_ndarray())


def view_from_av(av_frame, size: tuple[int, int]) -> np.ndarray | None:
    """A 4:2:0 PyAV frame (yuv420p, yuvj420p, nv12; even sides) at `size` as RGB, scaled from its
    own plane buffers (no copy of the full picture); None for any other layout."""
    fmt, sw, sh = av_frame.format.name, av_frame.width, av_frame.height
    if fmt not in ("yuv420p", "yuvj420p", "nv12") or sw % 2 or sh % 2:
        return None
    planes = []
    for i, plane in enumerate(av_frame.planes):
        rows = sh if i == 0 else sh // 2
        cols = sw if i == 0 or fmt == "nv12" else sw // 2  # bytes per row in use
        buf = np.frombuffer(plane, np.uint8).reshape(rows, plane.line_size)[:, :cols]
        planes.append(buf.reshape(rows, cols // 2, 2) if i == 1 and fmt == "nv12" else buf)
    return cv2.cvtColor(_scaled_420(planes, *size), _TO_RGB[fmt])


def _scaled_420(planes: list[np.ndarray], w: int, h: int) -> np.ndarray:
    """Planes of a 4:2:0 picture (Y, then U and V or the UV pairs of NV12) scaled to w x h
    (scale_to()) into one small buffer of the same layout, (h * 3/2, w)."""
    out = np.empty((h * 3 // 2, w), np.uint8)
    scale_to(planes[0], w, h, dst=out[:h])
    if len(planes) == 2:  # NV12
        out[h:] = scale_to(planes[1], w // 2, h // 2).reshape(h // 2, w)
        return out
    dst, cq = out[h:].reshape(-1), (h // 2) * (w // 2)
    for i, plane in enumerate(planes[1:]):
        dst[i * cq:(i + 1) * cq] = scale_to(plane, w // 2, h // 2).reshape(-1)
    return out


def scale_to(image: np.ndarray, w: int, h: int, dst: np.ndarray | None = None) -> np.ndarray:
    """`image` (a plane, or pixels of any channel count) at w x h, the last step written into
    `dst` when given. Made smaller, it is halved by area averaging while it stays at least twice
    the size (OpenCV's whole-factor path), then scaled bilinearly for the rest (a reduction by
    less than 2: pictures here are soft); odd sides that stop the halving leave a last area
    average. Made larger, it is bilinear. OpenCV's area averaging by a fractional factor was
    10-20x slower than this (one thread, a 1080p luma plane to 1202x676: 6.7 ms against 0.8 ms
    bilinear; 4K to 1600x900: 28 against 2.8 ms), which made the decoder child of a 1080p60
    file with `--view-size 1202x676` spend 13-18 ms per frame converting."""
    steps = []
    sh, sw = image.shape[:2]
    while sw >= 2 * w and sh >= 2 * h and not (sh % 2 or sw % 2):
        sw, sh = sw // 2, sh // 2
        steps.append(((sw, sh), cv2.INTER_AREA))
    if (sw, sh) != (w, h):
        steps.append(((w, h), cv2.INTER_AREA if sw >= 2 * w or sh >= 2 * h else cv2.INTER_LINEAR))
    if not steps:                  # already w x h
        if dst is None:
            return image
        dst[...] = image
        return dst
    for i, (size, interpolation) in enumerate(steps):
        image = cv2.resize(image, size, dst=dst if i == len(steps) - 1 else None, interpolation=interpolation)
    return image


def layout_shape(fmt: str, w: int, h: int) -> tuple[int, ...]:
    if fmt in ("yuv420p", "yuvj420p", "nv12"):
        return (h * 3 // 2, w)
    if fmt in _PACKED:
        return (h, w, 2)
    return (h, w, 3)
