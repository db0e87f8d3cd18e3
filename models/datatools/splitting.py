"""Re-splitting a dataset: new train/val/test lists, whole clips per split.

Only `--by clip` is offered. `--by image` is refused: frames of one clip are near copies of each
other, so an image-level split puts the same scene in train and test and the test figures lie.
A set of independent images (each its own clip, the import default) splits by clip exactly as
it would by image.

The three lists are written to temporary files first and then renamed, so a failure leaves the
old lists; dataset.yaml records how the split was made (by, ratios, seed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from models.core.errors import EndoSpineError
from models.dataset import SPLITS, Item, check_ratios, split_by_clip, write_meta
from models.datatools.common import read_meta, write_texts_atomic

BY_IMAGE_REFUSED = ("--by image would put frames of one clip into different splits (near-identical frames in "
                    "train and test: leakage); splits are by clip. Independent images are each their own clip "
                    "(the import default), so '--by clip' already splits them image by image")


def resplit(root: str | Path, by: str = "clip", ratios: Sequence[float] = (0.8, 0.1, 0.1),
            seed: int = 0) -> dict[str, list[Item]]:
    root = Path(root)
    ratios = check_ratios(ratios, f"--ratios {','.join(map(str, ratios))}")  # before any work
    if by == "image":
        raise EndoSpineError(BY_IMAGE_REFUSED)
    if by != "clip":
        raise EndoSpineError(f"--by {by!r}: only 'clip' is supported")
    meta = read_meta(root)
    if meta.bad_records:
        raise EndoSpineError(f"{meta.path}: {meta.bad_records[0]} (run 'endospine-model validate')")
    if not meta.items:
        raise EndoSpineError(f"{meta.path}: no images to split")
    images = [it.image for it in meta.items]
    if len(set(images)) != len(images):
        dup = next(i for i in images if images.count(i) > 1)
        raise EndoSpineError(f"{meta.path}: {dup} is listed twice (run 'endospine-model validate')")
    splits = split_by_clip(meta.items, ratios, seed)
    files = {root / f"{name}.txt": "".join(f"{it.image} {it.label}\n" for it in splits[name]) for name in SPLITS}
    write_texts_atomic(files)
    extra = dict(meta.extra)
    extra["split"] = {"by": by, "ratios": [round(float(r), 6) for r in ratios], "seed": int(seed)}
    write_meta(root, meta.classes, meta.items, meta.name, extra)
    return splits
