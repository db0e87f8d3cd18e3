"""Running an exported model over a dataset split: label PNGs, optional probabilities, metrics."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.errors import EndoSpineError
from models.core.imageio import read_image, read_label, write_label
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.core.runtime.postprocess import PostSettings, PostStage, paste_into_frame
from models.dataset import Dataset, Item, StagedDir, load_dataset
from models.metrics import ConfusionMatrix, scores_from_matrix


def still_stage(runtime: SegmentationRuntime) -> PostStage:
    """The post-processing of independent still images: no smoothing, labels at full size, checked."""
    return PostStage(runtime.classes, PostSettings.still())


def predict_frame(runtime: SegmentationRuntime, rgb: np.ndarray, stage: PostStage | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution (labels HxW uint8, probabilities CxHxW float32 over the crop box or None)."""
    labels, probs, _ = predict_frame_boxed(runtime, rgb, stage)
    return labels, probs


def predict_frame_boxed(runtime: SegmentationRuntime, rgb: np.ndarray, stage: PostStage | None = None
                        ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """As predict_frame, plus the crop box (x, y, w, h) in frame pixels that the probabilities
    cover. stage: default still_stage(runtime); a refused output raises EndoSpineError."""
    size = (rgb.shape[1], rgb.shape[0])
    probs, box, _ = runtime.probabilities(rgb)
    labels = (stage or still_stage(runtime))(probs, box, size, view=runtime.view)
    return paste_into_frame(labels, box, size), probs, box


def predict_dataset(model_dir: str | Path, data_dir: str | Path, out: str | Path, split: str = "test",
                    probs: bool = False, settings: RuntimeSettings | None = None, progress: bool = True) -> Path:
    """Write <image stem>.png label maps (class ids) for every image of the split; with probs, also
    <stem>.probs.npz holding uint8 probabilities (x/255) of each class on the model's output grid."""
    runtime = SegmentationRuntime(model_dir, settings).independent_frames()
    dataset = load_dataset(data_dir)
    check_classes(runtime, dataset)
    items = split_items(dataset, split)
    stems = [Path(it.image).stem for it in items]
    stage = still_stage(runtime)
    with StagedDir(out) as tmp:
        for item, stem in zip(tqdm(items, unit="img", desc="predict", disable=not progress), stems):
            labels, p = predict_frame(runtime, read_image(dataset.path(item.image)), stage)
            write_label(tmp / f"{stem}.png", labels)
            if probs:
                q = np.clip(np.rint(p * 255), 0, 255).astype(np.uint8)
                np.savez_compressed(tmp / f"{stem}.probs.npz", probs=q, classes=np.array(runtime.classes.names))
    return Path(out)


def split_items(dataset: Dataset, split: str) -> list[Item]:
    """The items of a split, which must be non-empty and have distinct image stems (outputs are named by stem)."""
    items = dataset.split(split)
    if not items:
        raise EndoSpineError(f"{dataset.root}: split {split!r} has no images")
    stems = [Path(it.image).stem for it in items]
    if len(set(stems)) != len(stems):
        raise EndoSpineError(f"{dataset.root}: image file names repeat in split {split!r}; outputs are named by stem")
    return items


@dataclass(frozen=True)
class SplitCounts:
    """What a model did on a split, pixel by pixel: one confusion matrix per image (truth rows),
    with each image's clip, so that the figures can be pooled over the split and resampled by clip."""
    names: list[str]          # the class table's names, in id order
    clips: list[str]          # the clip of each image
    matrices: np.ndarray      # (images, C, C) valid-pixel counts

    def figures(self, groups: dict[str, list[int]] | None = None) -> dict:
        """Per-class and mean accuracy/precision/recall/IoU/Dice over all pixels of the split (pooled),
        4 decimals, null where a class is absent. groups: mean name -> the class indices it averages
        (default: "mean" over the tissues, every class but background)."""
        n = len(self.names)
        scores = scores_from_matrix(self.matrices.sum(axis=0))
        groups = groups or {"mean": list(range(1, n)) or [0]}
        per_class = {c: {k: _num(v[i]) for k, v in scores.items()} for i, c in enumerate(self.names)}
        means = {g: {k: _num(_nanmean(v[list(cols)])) for k, v in scores.items()} for g, cols in groups.items()}
        return {"images": len(self.clips), "clips": len(set(self.clips)), "per_class": per_class, **means}


def split_counts(runtime: SegmentationRuntime, dataset: Dataset, items: list[Item], progress: bool = True
                 ) -> SplitCounts:
    """Run the model on every item (still images, full label resolution) and count its answers."""
    check_classes(runtime, dataset)
    runtime.independent_frames()
    cm = ConfusionMatrix(len(dataset.classes), dataset.classes.ignore_index)
    stage = still_stage(runtime)
    matrices = []
    for item in tqdm(items, unit="img", desc="test", disable=not progress):
        labels, _ = predict_frame(runtime, read_image(dataset.path(item.image)), stage)
        truth = read_label(dataset.path(item.label))
        if truth.shape != labels.shape:
            raise EndoSpineError(f"{dataset.path(item.label)}: size differs from its image")
        matrices.append(cm.update(truth, np.where(labels == 255, 0, labels).astype(np.uint8)))
    n = len(dataset.classes)
    return SplitCounts(list(dataset.classes.names), [it.clip for it in items],
                       np.stack(matrices).astype(np.int64) if matrices else np.zeros((0, n, n), np.int64))


def _num(v) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 4)


def _nanmean(values: np.ndarray) -> float:
    """The mean of the finite values; NaN (quietly) if there are none."""
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def check_classes(runtime: SegmentationRuntime, dataset: Dataset) -> None:
    if runtime.classes.names != dataset.classes.names:
        raise EndoSpineError(f"{dataset.root}: classes {dataset.classes.names} differ from the model's "
                             f"{runtime.classes.names}")
