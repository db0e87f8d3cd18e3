from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.overlay import OverlayStyle, composite, lookup_rgba, render_overlay, rgba_lut

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


# -- pixels the model is unsure of (UNSURE_BIT) --------------------------------------------------------
from models.core.overlay import HATCH_PERIOD, blend, colorize, has_unsure  # noqa: E402
from models.core.types import UNSURE_BIT  # noqa: E402

LIGAMENT = CLASSES.id_of("ligament")
# sha256 (first 16 hex digits) of render_overlay's output before unsure pixels existed (the tree
# before the trust gate, OpenCV 5.0.0): a mask without an unsure pixel must still draw these bytes.
# Fill goes through cv2.LUT only; contour through OpenCV's anti-aliased lines (a new OpenCV that
# draws them differently changes those digests, not the rule).
BEFORE_UNSURE = {
    ("squares", "fill", False): "e586550fdec697d0", ("squares", "contour", False): "786326eb8750f56c",
    ("instrument", "fill", False): "48fb1bd41c7860c4", ("instrument", "fill", True): "93d87fe5eb509342",
    ("instrument", "contour", False): "197bec6b39bc0b9b", ("instrument", "contour", True): "2f9bf0edc6582c1c",
}


def _style(mode, instrument_shown=False, **settings):
    style = OverlayStyle.for_classes(CLASSES, mode=mode, opacity=0.6, **settings)
    return replace(style, visible=style.visible | {INSTRUMENT}) if instrument_shown else style


def _unsure(mask, where):
    """`mask` with UNSURE_BIT set on the pixels `where` selects (never on 255, the ignore id)."""
    out = mask.copy()
    sel = np.zeros(mask.shape, bool)
    sel[where] = True
    sel &= mask != 255
    out[sel] |= UNSURE_BIT
    return out


@pytest.mark.unit
@pytest.mark.parametrize("scene, mode, instrument_shown", list(BEFORE_UNSURE), ids=["-".join(map(str, k))
                                                                                      for k in BEFORE_UNSURE])
def test_without_unsure_pixels_the_overlay_is_what_it_was(scene, mode, instrument_shown):
    import hashlib

    m = _mask() if scene == "squares" else _instrument_scene()
    assert not has_unsure(m)                                 # 255 (ignore) is never an unsure id
    rgba = render_overlay(m, CLASSES, _style(mode, instrument_shown))
    assert hashlib.sha256(rgba.tobytes()).hexdigest()[:16] == BEFORE_UNSURE[scene, mode, instrument_shown]


@pytest.mark.unit
def test_has_unsure_is_the_unsure_range_only():
    m = np.zeros((4, 4), np.uint8)
    for value, unsure in ((0, False), (127, False), (255, False), (UNSURE_BIT, True), (254, True),
                          (NERVE | UNSURE_BIT, True)):
        m[1, 2] = value
        assert has_unsure(m) is unsure, value


@pytest.mark.unit
def test_fill_leaves_an_ordinary_classs_unsure_pixels_transparent():
    m = _unsure(_mask(), (slice(None), slice(12, None)))      # the bone square's right part and all right of it
    style = _style("fill")
    rgba = render_overlay(m, CLASSES, style)
    sure = render_overlay(_mask(), CLASSES, style)
    assert np.array_equal(rgba[:, :12], sure[:, :12])         # the sure part: as before
    assert sure[10, 15, 3] > 0 and sure[30, 20, 3] > 0 and sure[10, 30, 3] > 0
    assert not rgba[:, 12:].any()                             # bone, ligament and disc unsure: transparent
    assert not rgba_lut(CLASSES, style)[UNSURE_BIT:255].any()  # by the lookup table alone


def _edge_runs(row):
    """Alpha > 0 along a row: how many separate drawn runs it has."""
    on = (row > 0).astype(np.int8)
    return int((np.diff(on) == 1).sum() + on[0])


@pytest.mark.unit
@pytest.mark.parametrize("class_id", [BONE, NERVE])
@pytest.mark.parametrize("px", [1, 3])
def test_contour_outlines_unsure_pixels_dashed(class_id, px):
    """Any class, the protected one too: a region of unsure pixels gets a dashed outline in its
    color instead of a solid one."""
    m = np.zeros((60, 80), np.uint8)
    m[10:50, 10:70] = class_id
    style = _style("contour", contour_px=px)
    solid = render_overlay(m, CLASSES, style)
    dashed = render_overlay(m | UNSURE_BIT * (m > 0), CLASSES, style)
    assert _edge_runs(solid[10, 15:65, 3]) == 1                # the top edge: one solid line
    assert _edge_runs(dashed[10, 15:65, 3]) >= 4               # dashes
    assert 0.3 < (dashed[10, 15:65, 3] > 0).mean() < 0.8
    assert _edge_runs(dashed[15:45, 10, 3]) >= 3               # the left edge too
    color = rgba_lut(CLASSES, style, min(1.0, 0.35 + style.opacity))[class_id]
    drawn = dashed[..., 3] > 0
    assert (dashed[drawn] == color).all()                      # the class's own line color
    assert not dashed[20:40, 20:60].any()                      # outlines only


@pytest.mark.unit
def test_fill_hatches_the_protected_classs_unsure_pixels_and_never_drops_them():
    m = np.full((64, 64), FAT, np.uint8)
    m[8:40, 8:56] = NERVE | UNSURE_BIT                        # an unsure nerve
    m[44:60, 8:56] = NERVE                                    # a sure one
    style = _style("fill")
    rgba = render_overlay(m, CLASSES, style)
    nerve = rgba_lut(CLASSES, style)[NERVE]
    assert (rgba[44:60, 8:56] == nerve).all()                 # sure: filled
    hatch = rgba[8:40, 8:56]
    painted = hatch[..., 3] > 0
    assert (hatch[painted] == nerve).all() and 0.4 < painted.mean() < 0.6   # unsure: half, in its color
    assert all(0 < painted[r].mean() < 1 for r in range(len(painted)))      # stripes across every row
    assert all(painted[r, c] == painted[r + 1, c - 1] for r in range(10) for c in range(1, 20))  # diagonal
    # a one-pixel sliver along a gap between stripes, and a speck in a gap: painted, not dropped
    m = np.full((64, 64), FAT, np.uint8)
    gap = HATCH_PERIOD // 2 + 1
    for y in range(10, 40):
        m[y, (gap - y) % HATCH_PERIOD + 8 * (y // 8) + 8] = NERVE | UNSURE_BIT  # x + y = gap (mod period)
    m[50, 50 + (gap - 100) % HATCH_PERIOD] = NERVE | UNSURE_BIT
    rgba = render_overlay(m, CLASSES, style)
    unsure = m == NERVE | UNSURE_BIT
    yy, xx = np.nonzero(unsure)
    assert len(yy) == 31 and ((yy + xx) % HATCH_PERIOD >= HATCH_PERIOD // 2).all()  # in gaps: stripes alone drop them
    assert (rgba[unsure] == nerve).all() and (rgba[m == FAT] == rgba_lut(CLASSES, style)[FAT]).all()
    # the user hides the nerve: hidden, sure or not (the legend toggle decides, not the model)
    hidden = render_overlay(m, CLASSES, replace(style, visible=style.visible - {NERVE}))
    assert not hidden[unsure].any()


@pytest.mark.unit
@pytest.mark.parametrize("mode", ["fill", "contour"])
@pytest.mark.parametrize("size", [(256, 192), (451, 333), (1920, 1080)])
def test_no_tissue_color_lands_on_the_instrument_with_unsure_pixels(mode, size):
    """Unsure bits on the tissue around the instrument and on part of the instrument itself: the
    instrument (sure or not) and one mask pixel around it stay clear of tissue."""
    sure = _instrument_scene()
    near = cv2.dilate((sure == INSTRUMENT).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    m = _unsure(sure, near & (sure != INSTRUMENT))            # the tissue next to it: unsure
    m = _unsure(m, (slice(30, 40), slice(10, 30)))            # and part of the shaft
    assert has_unsure(m) and (m == INSTRUMENT | UNSURE_BIT).any() and (m == NERVE | UNSURE_BIT).any()
    occ = (m == INSTRUMENT) | (m == INSTRUMENT | UNSURE_BIT)
    ring = cv2.dilate(occ.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    alone = np.where(occ, m, 0).astype(np.uint8)              # the instrument with no tissue near it
    hidden = render_overlay(m, CLASSES, _style(mode))
    assert not hidden[ring].any()                             # hidden: nothing on it or its ring
    on = _style(mode, instrument_shown=True)                  # shown: only its own color there
    assert np.array_equal(render_overlay(m, CLASSES, on)[ring], render_overlay(alone, CLASSES, on)[ring])
    frame = _frame(*size)
    shown = composite(frame, hidden)
    inside = _inside(occ.astype(np.uint8), size, 1)
    assert np.array_equal(shown[inside], frame[inside])       # after scaling too
    assert (shown[~inside] != frame[~inside]).any()           # tissue is painted elsewhere


@pytest.mark.unit
def test_reports_draw_an_unsure_pixel_as_its_class():
    labels = np.array([[0, BONE, NERVE, 255], [UNSURE_BIT, BONE | UNSURE_BIT, NERVE | UNSURE_BIT, 254]], np.uint8)
    lut = CLASSES.color_lut(ignore_color=(40, 40, 40))
    colors = colorize(labels, lut)
    assert np.array_equal(colors[1, :3], colors[0, :3])        # as their class
    assert (colors[0, 3] == 40).all()                          # 255 keeps the ignore color
    image = np.full((2, 4, 3), 200, np.uint8)
    mixed = blend(image, labels, lut, 0.5)
    assert np.array_equal(mixed[1, :3], mixed[0, :3])
    assert np.array_equal(mixed[:, 0], image[:, 0])            # the background, sure or not: not blended
    only_nerve = np.zeros(256, bool)
    only_nerve[NERVE] = True
    shown = blend(image, labels, lut, 0.5, show=only_nerve)
    assert (shown[:, 2] != image[:, 2]).all() and np.array_equal(shown[:, 1], image[:, 1])
    assert np.array_equal(composite(np.zeros((2, 4, 3), np.uint8), None), np.zeros((2, 4, 3), np.uint8))


@pytest.mark.unit
def test_lookup_gives_each_id_its_table_row():
    """The 32-bit-word lookup is the per-channel table lookup, byte for byte, on any mask (a
    strided view included)."""
    rng = np.random.default_rng(3)
    lut = rng.integers(0, 256, (256, 4), np.uint8)
    for mask in (rng.integers(0, 256, (64, 48), np.uint8), rng.integers(0, 256, (30, 40), np.uint8)[::2, 1::3]):
        expected = cv2.LUT(cv2.merge([np.ascontiguousarray(mask)] * 4), lut.reshape(256, 1, 4))
        assert np.array_equal(lookup_rgba(mask, lut), expected)
