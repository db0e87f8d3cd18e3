from __future__ import annotations

import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.errors import EndoSpineError
from models.core.imageio import read_label, write_image, write_label
from models.dataset import Item, StagedDir, load_dataset, parse_ratios, split_by_clip, write_meta, write_splits


def _items(clips: int, per_clip: int) -> list[Item]:
    return [Item(f"images/c{c}_{k}.jpg", f"labels/c{c}_{k}.png", f"c{c}", k, "synthetic")
            for c in range(clips) for k in range(per_clip)]


@pytest.mark.unit
@pytest.mark.parametrize("clips, per_clip, seed", [(60, 50, 0), (10, 3, 1), (3, 5, 2), (7, 1, 3)])
def test_split_by_clip_never_shares_a_clip(clips, per_clip, seed):
    splits = split_by_clip(_items(clips, per_clip), (0.8, 0.1, 0.1), seed)
    clip_sets = [{it.clip for it in splits[s]} for s in ("train", "val", "test")]
    assert not (clip_sets[0] & clip_sets[1] or clip_sets[0] & clip_sets[2] or clip_sets[1] & clip_sets[2])
    assert sum(len(v) for v in splits.values()) == clips * per_clip
    assert all(splits[s] for s in ("train", "val", "test"))


@pytest.mark.unit
def test_split_ratios_and_determinism():
    items = _items(60, 50)
    a = split_by_clip(items, (0.8, 0.1, 0.1), seed=4)
    assert [len(a[s]) for s in ("train", "val", "test")] == [2400, 300, 300]  # the paper's split
    assert a == split_by_clip(items, (0.8, 0.1, 0.1), seed=4)
    assert a != split_by_clip(items, (0.8, 0.1, 0.1), seed=5)


@pytest.mark.unit
@pytest.mark.parametrize("text", ["0.8,0.2", "a,b,c", "-1,1,1", "0,0,0"])
def test_bad_ratios(text):
    with pytest.raises(EndoSpineError, match="--ratios"):
        parse_ratios(text)


def test_write_and_load_round_trip(tmp_path):
    root = tmp_path / "ds"
    items = _items(3, 2)
    with StagedDir(root) as tmp:
        for it in items:
            write_image(tmp / it.image, np.full((8, 8, 3), 100, np.uint8))
            write_label(tmp / it.label, np.full((8, 8), 2, np.uint8))
        splits = split_by_clip(items, (0.6, 0.2, 0.2), 0)
        write_splits(tmp, splits)
        write_meta(tmp, default_classes(), items, name="tiny")
    ds = load_dataset(root)
    assert ds.items == items and ds.name == "tiny"
    assert ds.splits == {k: v for k, v in splits.items()}
    assert ds.summary()["sources"] == {"synthetic": 6}
    assert (read_label(ds.path(items[0].label)) == 2).all()
    assert (root / "train.txt").read_text().splitlines()[0].count(" ") == 1


def test_staged_dir_leaves_nothing_on_failure(tmp_path):
    root = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with StagedDir(root) as tmp:
            (tmp / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert not root.exists() and list(tmp_path.iterdir()) == []


def test_staged_dir_refuses_non_empty_target(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    with pytest.raises(EndoSpineError, match="already exists"):
        with StagedDir(tmp_path / "out"):
            pass
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"


@pytest.mark.unit
def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(EndoSpineError, match="not found"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(EndoSpineError, match="dataset.yaml: missing"):
        load_dataset(tmp_path)
    (tmp_path / "dataset.yaml").write_text("format: something-else\n")
    with pytest.raises(EndoSpineError, match="not a endospine-dataset"):
        load_dataset(tmp_path)
