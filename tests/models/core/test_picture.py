"""Frames larger than the view: the picture kept in its own pixel layout, the view scaled plane by
plane before the colour conversion (models/core/picture.py), and the Frame that carries both."""
from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from models.core.picture import Planes, fit_size, parse_size, scale_to
from models.core.types import Frame

pytestmark = pytest.mark.unit


def _scene(w: int = 320, h: int = 180) -> np.ndarray:
    """A smooth picture with a few edges, like an endoscope's (no single-pixel detail)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([120 + 90 * np.sin(x / 37), 110 + 80 * np.cos(y / 29), 60 + 50 * np.sin((x + y) / 53)], -1)
    rgb[h // 4:h // 2, w // 3:w // 2] = (230, 200, 190)
    return cv2.GaussianBlur(rgb.clip(0, 255).astype(np.uint8), (5, 5), 1.5)


def _planes(rgb: np.ndarray, fmt: str) -> Planes:
    """`rgb` in the layout `fmt` as FFmpeg converts it (UYVY, which PyAV cannot hand over as an
    array, as FFmpeg's YUYV with each pixel pair's bytes reordered, as a capture card sends it)."""
    h, w = rgb.shape[:2]
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuyv422" if fmt == "uyvy422" else fmt)
    if fmt != "uyvy422":
        return Planes.from_av(frame)
    yuyv = frame.to_ndarray().reshape(h, w // 2, 4)
    return Planes.from_buffer("uyvy422", yuyv[..., [1, 0, 3, 2]], (w, h))


def test_fit_size_keeps_the_aspect_and_even_sides_and_never_enlarges():
    assert fit_size((3840, 2160), (1920, 1080)) == (1920, 1080)
    assert fit_size((1920, 1080), (1920, 1080)) == (1920, 1080)
    assert fit_size((1280, 720), (1920, 1080)) == (1280, 720)       # fits: as it is
    assert fit_size((2880, 2160), (1920, 1080)) == (1440, 1080)     # 4:3 into a 16:9 limit
    assert fit_size((4096, 2160), (1920, 1080)) == (1920, 1012)     # DCI 4K: width bound, even height
    assert fit_size((3840, 2160), None) == (3840, 2160)


def test_parse_size():
    assert parse_size("1920x1080") == (1920, 1080) and parse_size("Source") is None
    for bad in ("1920", "x1080", "1920x", "10x10", "wide x high", "-5x7"):
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            parse_size(bad)


@pytest.mark.parametrize("fmt", ["yuv420p", "nv12", "uyvy422", "yuyv422"])
def test_the_view_matches_the_picture_scaled_after_conversion(fmt):
    rgb = _scene()
    planes = _planes(rgb, fmt)
    assert planes.fmt == fmt and planes.size == (320, 180)
    full = planes.rgb()
    assert full.shape == rgb.shape and np.abs(full.astype(int) - rgb).mean() < 3  # the YUV round trip only
    view = planes.view((160, 90))
    reference = cv2.resize(full, (160, 90), interpolation=cv2.INTER_AREA)
    assert view.shape == (90, 160, 3) and view.dtype == np.uint8
    assert np.abs(view.astype(int) - reference).mean() < 2.5
    assert np.array_equal(planes.view((320, 180)), full)  # its own size: the plain conversion
    odd = planes.view((202, 114))                         # a fractional factor (--view-size of a window)
    reference = cv2.resize(full, (202, 114), interpolation=cv2.INTER_AREA)
    assert odd.shape == (114, 202, 3) and np.abs(odd.astype(int) - reference).mean() < 2.5


@pytest.mark.parametrize("size, halvings", [((160, 90), 1), ((80, 44), 2), ((202, 114), 0), ((70, 40), 2)])
def test_scale_to_halves_by_area_then_scales_the_rest_bilinearly(size, halvings):
    """Whole halvings by area averaging (OpenCV's fast path), then bilinear for less than 2x;
    close to one area average of the whole factor on a soft picture."""
    rgb = _scene()
    out = scale_to(rgb, *size)
    assert out.shape == (size[1], size[0], 3)
    expected = rgb
    for _ in range(halvings):
        expected = cv2.resize(expected, (expected.shape[1] // 2, expected.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if expected.shape[:2] != (size[1], size[0]):
        expected = cv2.resize(expected, size, interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out, expected)
    area = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - area).mean() < 2.0
    plane = rgb[..., 0].copy()                           # one plane, and packed cells (4 channels)
    assert scale_to(plane, *size).shape == (size[1], size[0])
    assert scale_to(np.dstack([rgb, plane]), *size).shape == (size[1], size[0], 4)


def test_the_colour_conversion_agrees_with_ffmpegs():
    frame = av.VideoFrame.from_ndarray(_scene(), format="rgb24").reformat(format="yuv420p")
    ours = Planes.from_av(frame).rgb().astype(int)
    ffmpeg = frame.to_ndarray(format="rgb24").astype(int)
    assert np.abs(ours - ffmpeg).mean() < 1.5  # the path frames that need no scaling take


def test_from_buffer_takes_a_drivers_flat_bytes_and_refuses_a_wrong_count():
    planes = _planes(_scene(), "uyvy422")
    flat = planes.data.reshape(1, -1)  # as OpenCV hands a raw frame over
    again = Planes.from_buffer("uyvy422", flat, (320, 180))
    assert np.array_equal(again.data, planes.data)
    with pytest.raises(ValueError, match="expected 115200 bytes, got 115198"):
        Planes.from_buffer("uyvy422", flat[:, :-2], (320, 180))


def test_planes_are_checked_and_odd_or_rgb_frames_are_not_kept_as_planes():
    with pytest.raises(ValueError, match="not kept as planes"):
        Planes("yuv444p", np.zeros((4, 4, 3), np.uint8), (4, 4))
    with pytest.raises(ValueError, match=r"expected uint8 \(6, 4\)"):
        Planes("yuv420p", np.zeros((4, 4), np.uint8), (4, 4))
    odd = av.VideoFrame.from_ndarray(np.zeros((9, 12, 3), np.uint8), format="rgb24")
    assert Planes.from_av(odd) is None                            # RGB: converted whole by the caller
    assert Planes.from_av(av.VideoFrame(13, 9, "yuv420p")) is None  # odd sides cannot split 4:2:0
    assert Planes.from_av(av.VideoFrame(16, 8, "uyvy422")) is None  # PyAV has no array for it: converted whole
    rgb = _scene()
    kept = Planes("rgb24", rgb, (320, 180))
    assert kept.rgb() is rgb and kept.view((160, 90)).shape == (90, 160, 3)


def test_a_frame_with_full_planes_maps_its_boxes_to_full_resolution():
    planes = _planes(_scene(), "yuv420p")
    frame = Frame(3, 0.0, 0.1, planes.view((160, 90)), planes)
    assert frame.size == (160, 90) and frame.full_size == (320, 180)
    assert frame.to_full((10, 20, 30, 40)) == (20, 40, 60, 80) and frame.to_full(None) is None
    assert frame.full_rgb().shape == (180, 320, 3)
    plain = Frame(4, 0.0, 0.1, _scene())
    assert plain.full_size == plain.size and plain.full_rgb() is plain.image
    assert plain.to_full((1, 2, 3, 4)) == (1, 2, 3, 4)


@pytest.mark.parametrize("fmt", ["yuv420p", "nv12"])
def test_the_view_from_the_decoders_own_buffers_is_the_same_picture(fmt):
    from models.core.picture import view_from_av

    frame = av.VideoFrame.from_ndarray(_scene(), format="rgb24").reformat(format=fmt)
    assert np.array_equal(view_from_av(frame, (160, 90)), Planes.from_av(frame).view((160, 90)))
    assert view_from_av(frame.reformat(format="yuv444p"), (160, 90)) is None  # not 4:2:0: the caller copies


@pytest.mark.parametrize("w", [320, 321])  # an odd width: swscale pads its rows
def test_the_kept_converter_gives_ffmpegs_pixels_frame_after_frame(w):
    from models.core.picture import AvConverter

    convert = AvConverter()
    pictures = [_scene(w, 180), _scene(w, 180)[::-1].copy(), _scene(w, 180)[:, ::-1].copy()]
    frames = [av.VideoFrame.from_ndarray(p, format="rgb24").reformat(format="yuv420p") for p in pictures]
    got = [convert(f) for f in frames]  # one context for all of them; earlier results stay as they were
    for frame, rgb in zip(frames, got):
        assert rgb.flags.c_contiguous and rgb.shape == (180, w, 3)
        assert np.array_equal(rgb, frame.to_ndarray(format="rgb24"))
    assert not np.array_equal(got[0], got[1])
    assert convert.frame(frames[0], "yuv420p").format.name == "yuv420p"
    assert convert.frame(frames[0], "nv12").format.name == "nv12"


def test_scale_to_keeps_area_averaging_when_odd_sides_stop_the_halving_and_enlarges_bilinearly():
    odd = _scene(321, 181)
    np.testing.assert_array_equal(scale_to(odd, 80, 45), cv2.resize(odd, (80, 45), interpolation=cv2.INTER_AREA))
    small = _scene(80, 45)
    np.testing.assert_array_equal(scale_to(small, 200, 110),
                                  cv2.resize(small, (200, 110), interpolation=cv2.INTER_LINEAR))
    assert scale_to(small, 80, 45) is small
