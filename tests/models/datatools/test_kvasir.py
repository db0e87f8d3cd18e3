"""Import a handful of real Kvasir-SEG images (JPEG images, 3-channel JPEG masks, fixed splits).

The data lives outside the repository (never copied in): point $ENDOSPINE_KVASIR at a Kvasir-SEG
folder in the PaddleSeg list layout (train.txt, val.txt, test.txt). Skipped when it is not set.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.cli import main
from models.core.imageio import read_label
from models.dataset import load_dataset
from models.datatools.validate import validate_dataset

pytestmark = pytest.mark.slow


def kvasir_dir() -> Path | None:
    candidate = os.environ.get("ENDOSPINE_KVASIR")
    if candidate and (Path(candidate) / "train.txt").is_file():
        return Path(candidate)
    return None


@pytest.fixture(scope="module")
def kvasir() -> Path:
    found = kvasir_dir()
    if found is None:
        pytest.skip("Kvasir-SEG not found (set ENDOSPINE_KVASIR to its folder)")
    return found


def test_import_a_few_kvasir_images_keeps_splits_and_masks(kvasir, tmp_path, polyp_classes, capsys):
    # A small PaddleSeg source: the first lines of Kvasir's own lists, with absolute paths.
    src = tmp_path / "src"
    src.mkdir()
    picked = {}
    for split, n in (("train", 4), ("val", 2), ("test", 1)):
        lines = (kvasir / f"{split}.txt").read_text().split("\n")[:n]
        picked[split] = [line.split() for line in lines]
        (src / f"{split}.txt").write_text("".join(f"{kvasir / a} {kvasir / b}\n" for a, b in picked[split]))
    out = tmp_path / "kvasir"
    assert main(["import", "paddleseg", str(src), "--out", str(out), "--classes", str(polyp_classes)]) == 0
    assert "imported 7 images (7 clips)" in capsys.readouterr().out

    ds = load_dataset(out)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 4, "val": 2, "test": 1}
    assert ds.classes.names == ["background", "polyp"]
    for item, (image, mask) in zip(ds.splits["val"], picked["val"]):
        assert item.clip == Path(image).stem and item.image == f"images/{Path(image).name}"
        assert (out / item.image).read_bytes() == (kvasir / image).read_bytes()
        label = read_label(out / item.label)
        truth = cv2.imread(str(kvasir / mask), cv2.IMREAD_GRAYSCALE) > 127     # SOURCE.md: gray > 127 is polyp
        assert np.array_equal(label == 1, truth) and set(np.unique(label)) <= {0, 1}
    report = validate_dataset(out)
    assert report.ok, report.to_text()
    assert 0.02 < report.pixels[1] / report.pixels.sum() < 0.6
