"""Image/label pairs for the GAN: square views at the generator's size, read on demand.

A view is the centered square of the frame (the endoscope's circle sits there), resized to the
GAN's size; in training a random square of at least `crop_min` of the short side, and random
flips. Labels are resized nearest-neighbour, so ids (and 255 outside the view) stay exact.
"""
from __future__ import annotations

import cv2
import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import read_image, read_label
from models.dataset import Dataset, Item
from models.gan.nets import encode_labels, from_image


def square_box(width: int, height: int, rng: np.random.Generator | None = None,
               crop_min: float = 1.0) -> tuple[int, int, int]:
    """(x, y, side) of a square inside a width x height frame: centered, or random with rng."""
    short = min(width, height)
    if rng is None:
        return (width - short) // 2, (height - short) // 2, short
    side = max(1, int(round(short * rng.uniform(crop_min, 1.0))))
    return int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1)), side


def resize_label(label: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(label, (size, size), interpolation=cv2.INTER_NEAREST)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def label_view(label: np.ndarray, size: int) -> np.ndarray:
    """The centered square of a label map at size x size (nearest)."""
    x, y, s = square_box(label.shape[1], label.shape[0])
    return resize_label(np.ascontiguousarray(label[y:y + s, x:x + s]), size)


class PairSource:
    """The image/label pairs of some dataset items, as square views at `size`."""

    def __init__(self, dataset: Dataset, items: list[Item], size: int, crop_min: float = 1.0):
        if not items:
            raise EndoSpineError(f"{dataset.root}: no images to read")
        self.dataset, self.items, self.size, self.crop_min = dataset, items, size, crop_min

    @property
    def classes(self) -> ClassTable:
        return self.dataset.classes

    def __len__(self) -> int:
        return len(self.items)

    def view(self, index: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(RGB size x size x 3, labels size x size) of item `index`; random crop and flips with rng."""
        item = self.items[index]
        image = read_image(self.dataset.path(item.image))
        label = read_label(self.dataset.path(item.label))
        if image.shape[:2] != label.shape:
            raise EndoSpineError(f"{self.dataset.path(item.label)}: size {label.shape[::-1]} differs from its "
                                 f"image {image.shape[1::-1]}")
        x, y, s = square_box(image.shape[1], image.shape[0], rng, self.crop_min)
        image = resize_image(image[y:y + s, x:x + s], self.size)
        label = resize_label(np.ascontiguousarray(label[y:y + s, x:x + s]), self.size)
        if rng is not None:
            if rng.random() < 0.5:
                image, label = image[:, ::-1], label[:, ::-1]
            if rng.random() < 0.5:
                image, label = image[::-1], label[::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(label)

    def views(self, indices, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.view(int(i), rng) for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def batch(self, indices, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(condition N x (C+1) x S x S, image N x 3 x S x S in [-1, 1], labels N x S x S)."""
        images, labels = self.views(indices, rng)
        where = f"{self.dataset.root} (train split)"
        return encode_labels(labels, self.classes, where), from_image(images), labels
