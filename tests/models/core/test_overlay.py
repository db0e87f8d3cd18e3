from __future__ import annotations

import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.overlay import OverlayStyle, render_overlay, rgba_lut

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
    style = OverlayStyle.for_classes(CLASSES).toggled(2)
    rgba = render_overlay(_mask(), CLASSES, style)
    assert rgba[30, 20, 3] == 0 and rgba[10, 10, 3] > 0
    assert render_overlay(_mask(), CLASSES, OverlayStyle(enabled=False)) is None
    assert render_overlay(_mask(), CLASSES, OverlayStyle(visible=frozenset())) is None
    assert not rgba_lut(CLASSES, OverlayStyle(enabled=False)).any()


@pytest.mark.unit
def test_the_class_table_decides_what_shows_by_default():
    from dataclasses import replace

    disc_hidden = replace(CLASSES, classes=CLASSES.classes[:3] + (replace(CLASSES.classes[3], visible=False),))
    assert OverlayStyle.for_classes(CLASSES).visible == frozenset({1, 2, 3})
    assert OverlayStyle.for_classes(disc_hidden, opacity=0.5) == OverlayStyle(opacity=0.5, visible=frozenset({1, 2}))
    for style in (OverlayStyle(), OverlayStyle(mode="contour")):  # no set given: the table's own default
        rgba = render_overlay(_mask(), disc_hidden, style)
        assert rgba[10, 25:35, 3].max() == 0 and rgba[5:20, 5:20, 3].max() > 0
        assert render_overlay(_mask(), CLASSES, style)[10, 25:35, 3].max() > 0
    polyp = replace(CLASSES, classes=CLASSES.classes[:2])  # any table: no ids assumed
    assert OverlayStyle.for_classes(polyp).visible == frozenset({1})
    with pytest.raises(ValueError, match="for_classes"):
        OverlayStyle().toggled(1)


@pytest.mark.unit
def test_contour_mode_draws_outlines_only():
    rgba = render_overlay(_mask(), CLASSES, OverlayStyle(mode="contour", contour_px=1))
    assert rgba[12, 12, 3] == 0          # inside the bone square: empty
    assert rgba[5, 12, 3] > 0            # on its edge: drawn


@pytest.mark.unit
def test_bad_style():
    with pytest.raises(ValueError):
        OverlayStyle(opacity=1.5)
    with pytest.raises(ValueError):
        OverlayStyle(mode="glow")
