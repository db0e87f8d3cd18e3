"""Label-map perturbations: only class-table ids, 255 exactly outside the original view; synthesis plan."""
from __future__ import annotations

import numpy as np
import pytest

from models.dataset import Item
from models.gan.perturb import PerturbConfig, fill_ignore, perturb
from models.gan.synthesize import plan_maps

pytestmark = pytest.mark.unit


def _endoscope_map(seed: int, size: int = 64) -> np.ndarray:
    """Stripes of tissue classes inside a circular view, 255 outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    lab = ((xx * np.cos(seed) + yy * np.sin(seed) + rng.integers(0, 20)) // 12 % 4).astype(np.uint8)
    lab[(yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 > (0.47 * size) ** 2] = 255
    return lab


@pytest.mark.parametrize("seed", range(6))
def test_perturbed_maps_keep_ids_and_the_view(seed):
    lab, other = _endoscope_map(seed), _endoscope_map(seed + 10)
    cfg = PerturbConfig(recombine=1.0)
    out, ops = perturb(lab, np.random.default_rng(seed), cfg, other)
    assert out.dtype == np.uint8 and out.shape == lab.shape
    assert set(np.unique(out)) <= {0, 1, 2, 3, 255}
    np.testing.assert_array_equal(out == 255, lab == 255)  # 255 exactly outside the original view
    assert (out != lab).mean() > 0.1  # a new layout, not a copy
    assert any(op.startswith("rotate") for op in ops) and any(op.startswith("recombine") for op in ops)


def test_maps_without_a_view_get_no_ignore():
    lab = _endoscope_map(3)
    lab[lab == 255] = 0  # e.g. Kvasir: the whole frame is labeled
    out, _ = perturb(lab, np.random.default_rng(1), PerturbConfig(recombine=1.0), _endoscope_map(4))
    assert 255 not in out and set(np.unique(out)) <= {0, 1, 2, 3}


def test_fill_ignore_takes_the_nearest_class():
    lab = np.array([[1, 255, 255, 2]], np.uint8)
    np.testing.assert_array_equal(fill_ignore(lab), [[1, 1, 2, 2]])
    np.testing.assert_array_equal(fill_ignore(np.full((2, 2), 255, np.uint8)), np.full((2, 2), 255))


def test_perturbation_is_seeded():
    lab, other = _endoscope_map(0), _endoscope_map(1)
    a = perturb(lab, np.random.default_rng(7), PerturbConfig(), other)
    b = perturb(lab, np.random.default_rng(7), PerturbConfig(), other)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_plan_never_repeats_an_unchanged_map():
    items = [Item(f"i{k}.png", f"l{k}.png", f"c{k}", 0) for k in range(10)]
    plan = plan_maps(items, 35, seed=0, perturb_share=0.5)
    kept = [base.label for base, other in plan if other is None]
    assert 0 < len(kept) <= 10 and len(set(kept)) == len(kept)
    assert all(other is not None for _, other in plan[10:])  # beyond the first pass, always new maps
    assert plan == plan_maps(items, 35, seed=0, perturb_share=0.5)
