"""The procedural scene engine: API contract, determinism, field of view, labels vs image."""
from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import cv2
import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.synth import SyntheticClip
from models.synth.fov import RIM_WIDTH
from models.synth.layout import INSTRUMENT


@lru_cache(maxsize=None)
def _clip(seed: int, clip: int = 0, width: int = 192, height: int = 192) -> SyntheticClip:
    return SyntheticClip(seed, clip, width, height)


def _dist(clip: SyntheticClip) -> np.ndarray:
    """Distance of every pixel center (x = column, y = row) from the fov center."""
    cx, cy, _ = clip.fov
    y, x = np.mgrid[0:clip.height, 0:clip.width]
    return np.hypot(x - cx, y - cy)


def _digest(seed: int, t: int) -> str:
    img, lab = SyntheticClip(seed, 1, 96, 80).render(t)
    return hashlib.sha256(img.tobytes() + lab.tobytes()).hexdigest()


# -- API and determinism -----------------------------------------------------------------------

@pytest.mark.unit
def test_render_types_and_shapes():
    clip = _clip(0, 0, 200, 150)
    img, lab = clip.render(0)
    assert img.shape == (150, 200, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert lab.shape == (150, 200) and lab.dtype == np.uint8 and lab.flags.c_contiguous
    assert set(np.unique(lab)) <= {0, 1, 2, 3, 4, 5, 6, 255}
    assert len(clip.fov) == 3 and all(isinstance(v, float) for v in clip.fov)


@pytest.mark.unit
def test_same_seed_same_bytes_and_different_seeds_differ():
    a, b = SyntheticClip(3, 0, 128, 128), SyntheticClip(3, 0, 128, 128)
    for t in (0, 7, 151):
        ia, la = a.render(t)
        ib, lb = b.render(t)
        assert ia.tobytes() == ib.tobytes() and la.tobytes() == lb.tobytes()
    other = SyntheticClip(4, 0, 128, 128).render(7)[0]
    assert not np.array_equal(a.render(7)[0], other)
    assert not np.array_equal(a.render(7)[0], SyntheticClip(3, 1, 128, 128).render(7)[0])


@pytest.mark.unit
def test_random_access_order_does_not_matter():
    a, b = SyntheticClip(3, 2, 128, 128), SyntheticClip(3, 2, 128, 128)
    a5, a2 = a.render(5), a.render(2)
    b2, b5 = b.render(2), b.render(5)
    assert np.array_equal(a5[0], b5[0]) and np.array_equal(a2[0], b2[0])
    assert np.array_equal(a5[1], b5[1]) and np.array_equal(a2[1], b2[1])
    assert not np.array_equal(a5[0], a2[0])


def test_same_bytes_in_another_process():
    # a fresh (spawned) interpreter running OpenCV single-threaded gives the same bytes.
    # (cv2.setNumThreads in a *forked* child of a process that already used OpenCV hangs.)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        remote = list(pool.map(_digest, [6, 6], [0, 33]))
    assert remote == [_digest(6, 0), _digest(6, 33)]


@pytest.mark.unit
@pytest.mark.parametrize("kwargs", [
    dict(seed=-1), dict(seed=1.5), dict(seed="1"), dict(seed=True), dict(seed=0, clip=-2),
    dict(seed=0, width=63), dict(seed=0, height=8193), dict(seed=0, width=512.0),
    dict(seed=0, width=None),
])
def test_bad_arguments_raise_one_line_error(kwargs):
    with pytest.raises(EndoSpineError) as exc:
        SyntheticClip(**kwargs)
    assert "\n" not in str(exc.value)


@pytest.mark.unit
def test_bad_frame_index():
    clip = _clip(0)
    for t in (-1, 2.0, "3", None):
        with pytest.raises(EndoSpineError):
            clip.render(t)
    clip.render(np.int64(4))  # numpy integers are fine


# -- field of view -------------------------------------------------------------------------------

def _check_fov_contract(clip: SyntheticClip, img: np.ndarray, lab: np.ndarray) -> None:
    _, _, r = clip.fov
    d = _dist(clip)
    inside, outside = d <= r, d > r
    assert (lab[outside] == 255).all()
    assert img[outside].max() < 10
    notch = inside & (lab == 255)
    # inside the circle only the notch marker (wide frames) is ignored; it is small and at the rim
    assert notch.sum() <= 0.01 * inside.sum()
    if notch.any():
        assert d[notch].min() >= 0.93 * r
    # the orange rim ring: within RIM_WIDTH px inside the edge; labels there are still tissue
    ring = inside & (d > r - RIM_WIDTH) & ~notch
    assert (lab[ring] != 255).all()


@pytest.mark.unit
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_square_fov(seed):
    clip = _clip(seed, 0, 256, 256)
    cx, cy, r = clip.fov
    assert 0.95 * 256 <= 2 * r <= 256
    assert r <= cx <= 256 - r + 1 and r <= cy <= 256 - r + 1
    img, lab = clip.render(10)
    _check_fov_contract(clip, img, lab)
    assert not (lab == 255)[_dist(clip) <= r].any()  # no notch on square frames
    # the rim ring is orange and brighter than the tissue just inside it
    d = _dist(clip)
    ring = (d <= r - 0.5) & (d > r - 2.0)
    band = (d <= r - 6) & (d > r - 12)
    rgb = img[ring].astype(float).mean(0)
    assert rgb[0] > rgb[1] > rgb[2]
    assert rgb.mean() > img[band].astype(float).mean()


@pytest.mark.unit
def test_nearly_square_frames_use_the_square_rule():
    clip = _clip(5, 0, 300, 256)
    assert 0.95 * 256 <= 2 * clip.fov[2] <= 256


@pytest.mark.unit
def test_wide_fov_and_notch():
    notches = 0
    for seed in range(6):
        clip = _clip(seed, 0, 480, 270)
        cx, cy, r = clip.fov
        assert 0.72 * 270 <= 2 * r <= 0.85 * 270
        assert r <= cx <= 480 - r and r <= cy <= 270 - r
        assert (cx, cy) != (239.5, 134.5)
        img, lab = clip.render(3)
        _check_fov_contract(clip, img, lab)
        notches += bool((lab == 255)[_dist(clip) <= r].any())
    assert notches >= 3  # present in most clips


def test_full_hd_frame():
    clip = SyntheticClip(2, 0, 1920, 1080)
    img, lab = clip.render(40)
    assert img.shape == (1080, 1920, 3) and lab.shape == (1080, 1920)
    _check_fov_contract(clip, img, lab)
    assert img[:, :100].max() < 10 and (lab[:, :100] == 255).all()


# -- labels vs image ---------------------------------------------------------------------------

def _instrument_free(clip: SyntheticClip, t: int) -> bool:
    return all(not inst.parts(t) for inst in clip._instruments)


def _capsule_core(clip: SyntheticClip, t: int) -> np.ndarray:
    """Pixels at least 2 px inside some instrument part (from the instrument geometry)."""
    cx, cy, r = clip.fov
    y, x = np.mgrid[0:clip.height, 0:clip.width]
    px, py = (x - cx) / r, (y - cy) / r
    core = np.zeros(x.shape, bool)
    for inst in clip._instruments:
        for a, b, r0, r1, _ in inst.parts(t):
            ab = np.asarray(b) - np.asarray(a)
            ll = float(ab @ ab) or 1.0
            s = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / ll, 0, 1)
            dist = np.hypot(px - a[0] - s * ab[0], py - a[1] - s * ab[1])
            core |= dist * r < (r0 + (r1 - r0) * s) * r - 2.0
    return core & (np.hypot(x - cx, y - cy) <= r)


@pytest.mark.unit
def test_instruments_are_labeled_instrument():
    checked = 0
    for seed in range(12):
        clip = _clip(seed)
        for t in (0, 90, 200):
            core = _capsule_core(clip, t)
            if core.sum() > 50:
                _, lab = clip.render(t)
                assert (lab[core] == INSTRUMENT).all()
                checked += 1
    assert checked >= 3


@pytest.mark.unit
def test_the_cannula_edge_is_instrument_and_dark():
    seeds = [s for s in range(40) if _clip(s, 0, 64, 64)._cannula is not None][:3]
    assert seeds, "no clip among 40 has a cannula edge"
    for seed in seeds:
        clip = _clip(seed, 0, 320, 320)
        img, lab = clip.render(10)
        cx, cy, r = clip.fov
        c = clip._cannula
        # a point well inside the crescent, on its thickest side
        x = int(round(cx + np.cos(c.angle) * (r - 0.5 * c.depth * r)))
        y = int(round(cy + np.sin(c.angle) * (r - 0.5 * c.depth * r)))
        assert lab[y, x] == INSTRUMENT
        inside = (_dist(clip) <= clip.fov[2] - 2) & (lab != INSTRUMENT)
        assert 20 < img[y, x].mean() < 0.75 * img[inside].mean()   # dark, but not the black surround


def _class_colors(seeds, size=192):
    """Mean RGB per class over eroded class masks (no borders), frames without instruments."""
    sums = {c: [] for c in range(6)}
    for seed in seeds:
        clip = _clip(seed, 0, size, size)
        for t in (0, 120, 260):
            if not _instrument_free(clip, t):
                continue
            img, lab = clip.render(t)
            inner = _dist(clip) < 0.85 * clip.fov[2]
            for c in range(6):
                m = cv2.erode((lab == c).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & inner
                if m.sum() > 100:
                    sums[c].append(img[m].astype(float).mean(0))
    return {c: np.mean(v, axis=0) for c, v in sums.items() if v}


def _sat(rgb):
    return (rgb.max() - rgb.min()) / rgb.max()


def test_class_colors_follow_labels():
    col = _class_colors(range(24))
    assert set(col) == {0, 1, 2, 3, 4, 5}
    bg, bone, lig, disc, nerve, fat = (col[c] for c in range(6))
    for c in col.values():
        assert c[0] > c[1] > c[2]  # warm: red > green > blue
    assert lig.mean() > bg.mean() + 25 and disc.mean() > bg.mean() + 25
    assert _sat(lig) < _sat(bg) and _sat(disc) < _sat(bg)
    assert _sat(disc) <= _sat(lig) + 0.03          # disc about as white as ligament
    assert bg[0] / bg[1] > max(bone[0] / bone[1], lig[0] / lig[1], disc[0] / disc[1],
                               nerve[0] / nerve[1])   # soft tissue is the reddest
    assert _sat(nerve) < _sat(fat) and _sat(nerve) < _sat(bg)   # the membrane is pale
    assert fat[1] / fat[2] > nerve[1] / nerve[2] + 0.1            # fat is yellow, nerve pink


def _detail512(img: np.ndarray, inside: np.ndarray) -> float:
    """Laplacian variance inside the view (frames here are 512 px: no rescale needed)."""
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    interior = cv2.erode(inside.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    return float(cv2.Laplacian(gray, cv2.CV_32F)[interior].var())


@pytest.mark.unit
def test_frames_carry_fine_tissue_texture():
    """Real endoscopy frames measure 65-111 (Laplacian variance, view at 512 px); the v1 engine
    rendered 4-7. Uncompressed frames carry more than that (JPEG and H.264 take a share of the
    finest detail); the median over a few clips must be of the real frames' order."""
    values = []
    for seed in range(6):
        clip = _clip(seed, 0, 512, 512)
        img, _ = clip.render(40)
        values.append(_detail512(img, _dist(clip) <= clip.fov[2]))
    assert 60 <= float(np.median(values)) <= 400, values


def test_every_class_shows_up_and_background_always_present():
    seen = set()
    for seed in range(10):
        clip = _clip(seed)
        _, lab = clip.render(50)
        inside = lab[_dist(clip) <= clip.fov[2] - 1]
        seen |= set(np.unique(inside).tolist())
    assert seen == {0, 1, 2, 3, 4, 5, 6}


@pytest.mark.unit
def test_labels_are_temporally_coherent():
    for seed in (1, 7):
        clip = _clip(seed, 0, 160, 160)
        inside = _dist(clip) <= clip.fov[2]
        labs = [clip.render(t)[1][inside] for t in range(100, 130)]
        agree = [np.mean(a == b) for a, b in zip(labs, labs[1:])]
        assert np.mean(agree) >= 0.95
        assert min(agree) >= 0.85


def _label_r2(img: np.ndarray, lab: np.ndarray) -> float:
    """How much of the color variance the label map explains (one-way ANOVA R^2)."""
    keep = lab != 255
    x, lbl = img[keep].astype(float), lab[keep]
    total = ((x - x.mean(0)) ** 2).sum()
    within = sum(((x[lbl == c] - x[lbl == c].mean(0)) ** 2).sum() for c in np.unique(lbl))
    return 1.0 - within / total


@pytest.mark.unit
def test_labels_line_up_with_the_image():
    """Shifting the label map by a few pixels explains the image worse than the true alignment."""
    for seed in (1, 3, 4):
        img, lab = _clip(seed).render(30)
        scores = {}
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                shifted = np.roll(lab, (dy, dx), axis=(0, 1))
                scores[(dy, dx)] = _label_r2(img[8:-8, 8:-8], shifted[8:-8, 8:-8])
        best = max(scores, key=scores.get)
        assert max(abs(best[0]), abs(best[1])) <= 1, (seed, best)
        assert scores[(0, 0)] > scores[(3, 3)] + 0.02


@pytest.mark.unit
def test_rng_streams_are_distinct_and_stable():
    from models.synth.noise import rng_for

    draw = lambda *k: rng_for(*k).integers(0, 2**62)  # noqa: E731
    assert draw(1, 2, "a") == draw(1, 2, "a")
    assert len({draw(1, 2, "a"), draw(1, 2, "b"), draw(2, 1, "a"), draw(1, 2, "a", -1),
                draw(1, 2, "a", 1)}) == 5


@pytest.mark.unit
def test_engine_ids_are_the_default_class_table():
    from models.core.classes import default_classes
    from models.synth import layout

    table = default_classes()
    for name, const in (("background", layout.BG), ("bone", layout.BONE), ("ligament", layout.LIG),
                        ("disc", layout.DISC), ("nerve", layout.NERVE), ("fat", layout.FAT),
                        ("instrument", layout.INSTRUMENT)):
        assert table.id_of(name) == const
    assert len(table) == 7
