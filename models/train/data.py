"""Training samples: dataset items -> (augmented image tensor, label tensor), mixed by source."""
from __future__ import annotations

import numpy as np

from models.augment import AugmentConfig, augment
from models.core.imageio import read_image, read_label
from models.core.paddle_env import import_paddle
from models.core.runtime.frameview import FramePrep
from models.core.runtime.preprocess import Preprocess
from models.dataset import Dataset, Item

paddle = import_paddle()


class TrainSamples(paddle.io.Dataset):
    """Random augmented views. Index i always gives the same sample for the same epoch seed."""

    def __init__(self, pools: list[tuple[Dataset, list[Item]]], pre: Preprocess, aug: AugmentConfig, seed: int,
                 preps: list[FramePrep] | None = None):
        """preps: how each pool's images become views (its tower's profile); default: the
        default profile (automatic field of view) for every pool."""
        super().__init__()
        self.entries = [(ds.root, item, k) for k, (ds, items) in enumerate(pools) for item in items]
        self.preps = preps or [FramePrep(None, pre, independent=True) for _ in pools]
        self.pre, self.aug, self.seed = pre, aug, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int):
        root, item, pool = self.entries[index]
        image, label = load_view(root, item, self.pre, self.preps[pool])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        img, lab = augment(image, label, self.pre.input_size[0], self.aug, rng)
        return self.pre.normalize(img)[0], lab.astype(np.int64)


class EvalSamples(paddle.io.Dataset):
    """Validation views at the model's input size, no augmentation (labels resized nearest)."""

    def __init__(self, dataset: Dataset, items: list[Item], pre: Preprocess, prep: FramePrep | None = None):
        super().__init__()
        self.root, self.items, self.pre = dataset.root, items, pre
        self.prep = prep or FramePrep(None, pre, independent=True)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        import cv2

        image, label = load_view(self.root, self.items[index], self.pre, self.prep)
        lab = cv2.resize(label, self.pre.input_size, interpolation=cv2.INTER_NEAREST)
        return self.pre.normalize(self.pre.resize_to_input(image))[0], lab.astype(np.int64)


def load_view(root, item: Item, pre: Preprocess, prep: FramePrep | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Image and label of an item, cut the way the runtime cuts frames (models/core/runtime/frameview.py):
    the profile's lens undistortion, the field of view's square, outside it ignore, its colors."""
    image = read_image(root / item.image)
    label = read_label(root / item.label)
    if image.shape[:2] != label.shape:
        from models.core.errors import EndoSpineError
        raise EndoSpineError(f"{root / item.label}: size {label.shape[::-1]} differs from its image {image.shape[1::-1]}")
    image, label = (prep or FramePrep(None, pre, independent=True)).training_view(image, label)
    h, w = label.shape
    iw, ih = pre.input_size
    if abs(w / h - iw / ih) > 0.01:  # the runtime stretches such views to the input: train on the same shapes
        import cv2

        image = pre.resize_to_input(image)
        label = cv2.resize(label, (iw, ih), interpolation=cv2.INTER_NEAREST)
    return image, label


def mixing_weights(sizes: list[int], ratios: list[float]) -> np.ndarray:
    """Per-sample weights so that pool k fills `ratios[k]` of the draws (pool 0 takes the rest)."""
    shares = [1 - sum(ratios)] + list(ratios)
    weights = np.concatenate([np.full(n, share / n) for n, share in zip(sizes, shares) if n > 0])
    return weights / weights.sum()


class MixedSampler(paddle.io.Sampler):
    """Draws `per_epoch` indices with the given weights (with replacement), new draw each epoch."""

    def __init__(self, weights: np.ndarray, per_epoch: int, seed: int):
        self.weights, self.per_epoch, self.seed = weights, per_epoch, seed
        self.epoch = 0

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 0x5A])
        return iter(rng.choice(len(self.weights), size=self.per_epoch, p=self.weights).tolist())

    def __len__(self) -> int:
        return self.per_epoch


def label_histogram(dataset: Dataset, items: list[Item], num_classes: int, max_items: int = 200) -> np.ndarray:
    """Pixel counts per class over (a sample of) the items, for class weights."""
    counts = np.zeros(num_classes, np.int64)
    step = max(1, len(items) // max_items)
    for item in items[::step]:
        lab = read_label(dataset.root / item.label)
        counts += np.bincount(lab[lab < num_classes].ravel(), minlength=num_classes)[:num_classes]
    return counts
