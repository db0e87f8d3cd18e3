from __future__ import annotations

import numpy as np
import pytest

from models.core.overlay import OverlayStyle, overlay_allowed, render_overlay, rgba_lut
from models.core.classes import default_classes
from models.core.types import Result

CLASSES = default_classes()


def _mask():
    m = np.zeros((40, 40), np.uint8)
    m[5:20, 5:20] = 1
    m[25:35, 5:35] = 2
    m[5:15, 25:35] = 3
    m[0, :] = 255
    return m


@pytest.mark.unit
def test_fill_colors_are_premultiplied_class_colors():
    rgba = render_overlay(_mask(), CLASSES, OverlayStyle(opacity=0.5))
    assert rgba.shape == (40, 40, 4)
    bone = np.array(CLASSES.classes[1].color)
    assert np.allclose(rgba[10, 10, :3], np.rint(bone * 0.5)) and rgba[10, 10, 3] == 128
    assert (rgba[2, 2] == 0).all() and (rgba[0, 5] == 0).all()  # background and ignore stay clear


@pytest.mark.unit
def test_toggles_hide_classes_and_all():
    style = OverlayStyle().toggled(2)
    rgba = render_overlay(_mask(), CLASSES, style)
    assert rgba[30, 20, 3] == 0 and rgba[10, 10, 3] > 0
    assert render_overlay(_mask(), CLASSES, OverlayStyle(enabled=False)) is None
    assert render_overlay(_mask(), CLASSES, OverlayStyle(visible=frozenset())) is None
    assert not rgba_lut(CLASSES, OverlayStyle(enabled=False)).any()


@pytest.mark.unit
def test_contour_mode_draws_outlines_only():
    rgba = render_overlay(_mask(), CLASSES, OverlayStyle(mode="contour", contour_px=1))
    assert rgba[12, 12, 3] == 0          # inside the bone square: empty
    assert rgba[5, 12, 3] > 0            # on its edge: drawn


@pytest.mark.unit
@pytest.mark.parametrize("frame_id, t, result, allowed", [
    (10, 1.000, Result(10, np.zeros((2, 2), np.uint8), "m", capture_time=1.000), True),   # its own frame
    (13, 1.100, Result(10, np.zeros((2, 2), np.uint8), "m", capture_time=1.000), True),   # 100 ms newer
    (14, 1.130, Result(10, np.zeros((2, 2), np.uint8), "m", capture_time=1.000), False),  # 130 ms: stale
    (9, 0.966, Result(10, np.zeros((2, 2), np.uint8), "m", capture_time=1.000), False),   # never over an older frame
    (10, 1.000, None, False),
])
def test_staleness_rule(frame_id, t, result, allowed):
    assert overlay_allowed(frame_id, t, result)[0] is allowed


@pytest.mark.unit
def test_bad_style():
    with pytest.raises(ValueError):
        OverlayStyle(opacity=1.5)
    with pytest.raises(ValueError):
        OverlayStyle(mode="glow")
