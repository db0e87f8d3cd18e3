from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.overlay import OverlayStyle, composite, render_overlay, rgba_lut

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
    disc_hidden = replace(CLASSES, classes=tuple(replace(c, visible=False) if c.id == 3 else c
                                                 for c in CLASSES.classes))
    assert OverlayStyle.for_classes(CLASSES).visible == CLASSES.default_visible
    assert OverlayStyle.for_classes(disc_hidden, opacity=0.5) == OverlayStyle(opacity=0.5,
                                                                              visible=CLASSES.default_visible - {3})
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


# -- protected classes on top, occluders never painted over ------------------------------------------
NERVE, FAT, INSTRUMENT, BONE = (CLASSES.id_of(n) for n in ("nerve", "fat", "instrument", "bone"))


def _premultiplied(class_id, alpha):
    return np.rint(np.asarray(CLASSES.classes[class_id].color) * alpha)


@pytest.mark.unit
def test_the_protected_outline_is_on_top_where_outlines_overlap():
    """fat follows nerve in the table, so table order alone would draw fat's outline over the nerve's."""
    assert CLASSES.protected == frozenset({NERVE}) and FAT > NERVE
    m = np.zeros((40, 40), np.uint8)
    m[5:35, 5:20] = NERVE
    m[5:35, 20:35] = FAT
    style = OverlayStyle.for_classes(CLASSES, mode="contour", contour_px=3, opacity=0.65)  # lines at alpha 1
    rgba = render_overlay(m, CLASSES, style)
    nerve = _premultiplied(NERVE, 1.0)
    for x in (19, 20):          # both outlines cover the columns at the shared edge: the nerve's is drawn
        assert np.array_equal(rgba[20, x, :3], nerve) and rgba[20, x, 3] == 255, x
    assert np.array_equal(rgba[20, 33, :3], _premultiplied(FAT, 1.0))   # fat's other edge is fat's
    # the roles come from the table: without `protect`, table order decides again
    plain = replace(CLASSES, classes=tuple(replace(c, protect=False) for c in CLASSES.classes))
    assert not np.array_equal(render_overlay(m, plain, style)[20, 20, :3], nerve)


def _instrument_scene():
    m = np.zeros((48, 64), np.uint8)
    m[:, :22] = BONE
    m[:, 22:40] = NERVE
    m[:, 40:] = FAT
    m[30:48, 10:50] = INSTRUMENT      # a shaft across all three tissues
    m[40:44, 2:6] = INSTRUMENT        # and a small tip
    m[0, :] = 255
    return m


def _inside(mask, size, class_id):
    """Where `class_id` is in `mask` shown at `size` (w, h): output pixels whose centre lies in one of its pixels."""
    return cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST_EXACT) == class_id


def _frame(w, h):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([120 + x % 100, 60 + y % 90, 40 + (x + y) % 50], axis=-1).astype(np.uint8)


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["fill", "contour"])
@pytest.mark.parametrize("size", [(256, 192), (200, 150), (451, 333), (1920, 1080)])
def test_no_tissue_color_lands_on_the_instrument_after_scaling(mode, size):
    m = _instrument_scene()
    frame = _frame(*size)
    style = OverlayStyle.for_classes(CLASSES, mode=mode, opacity=0.6)
    assert INSTRUMENT not in style.visible                  # hidden by default, and still blocks tissue
    shown = composite(frame, render_overlay(m, CLASSES, style))
    inside = _inside(m, size, INSTRUMENT)
    assert inside.sum() > 0.1 * inside.size
    assert np.array_equal(shown[inside], frame[inside])
    assert (shown[~inside] != frame[~inside]).any()          # tissue is painted elsewhere
    # shown, the instrument has its own color there and nothing else: as if no tissue were near it
    on = replace(style, visible=style.visible | {INSTRUMENT})
    alone = np.where(m == INSTRUMENT, m, 0).astype(np.uint8)
    if mode == "fill":
        assert np.array_equal(composite(frame, render_overlay(m, CLASSES, on))[inside],
                              composite(frame, render_overlay(alone, CLASSES, on))[inside])
    else:
        assert (composite(frame, render_overlay(m, CLASSES, on))[inside] != frame[inside]).any()


@pytest.mark.unit
def test_without_the_fix_tissue_would_bleed_onto_the_instrument():
    """The check above is not vacuous: the same scene drawn as if the instrument were tissue bleeds."""
    m = _instrument_scene()
    plain = replace(CLASSES, classes=tuple(replace(c, occluder=False) for c in CLASSES.classes))
    for mode in ("fill", "contour"):
        style = OverlayStyle.for_classes(plain, mode=mode, opacity=0.6)
        frame = _frame(256, 192)
        inside = _inside(m, (256, 192), INSTRUMENT)
        assert (composite(frame, render_overlay(m, plain, style))[inside] != frame[inside]).any(), mode


@pytest.mark.unit
def test_occluder_handling_leaves_the_rest_alone():
    m = _mask()                                               # no instrument pixel: drawn exactly as before
    for mode in ("fill", "contour"):
        style = OverlayStyle.for_classes(CLASSES, mode=mode)
        plain = replace(CLASSES, classes=tuple(replace(c, occluder=False, protect=False) for c in CLASSES.classes))
        assert np.array_equal(render_overlay(m, CLASSES, style), render_overlay(m, plain, style))
    scene = _instrument_scene()
    before = scene.copy()
    rgba = render_overlay(scene, CLASSES, OverlayStyle.for_classes(CLASSES))
    assert np.array_equal(scene, before)                      # the caller's mask is not changed
    ring = cv2.dilate((scene == INSTRUMENT).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not rgba[ring, 3].any()                            # the instrument and one pixel around it: clear
    far = ~cv2.dilate(ring.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & (scene != 255)
    assert rgba[far, 3].all()                                  # tissue further away is painted as usual
    only = render_overlay(np.full((8, 8), INSTRUMENT, np.uint8), CLASSES, OverlayStyle.for_classes(CLASSES))
    assert only[..., 3].max() == 0                             # a hidden instrument alone: nothing painted
