"""Scoring readers and the model against a reference, image by image.

The reference is a dataset folder (its --split) or a plain folder of label PNGs; each reader is
a folder of `<image stem>.png` label maps; the model is either run on the reference dataset's
images (--model) or read from a prediction folder (--pred). Every answer is checked (present,
same size, known ids) before it is scored. Per image and answer: IoU and Dice per class from
the image's confusion matrix; the per-image figure the tests use is the mean over the tissue
classes present in the reference or the answer (as in the paper's mean IoU).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.classes import ClassTable, default_classes
from models.core.errors import EndoSpineError
from models.core.imageio import read_image
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.core.yamlio import read_yaml
from models.dataset import load_dataset
from models.evaluate.labels import as_answer, label_files, read_answer, read_reference, require_stems
from models.metrics import ConfusionMatrix, scores_from_matrix
from models.predict import predict_frame, split_items

MODEL = "model"


@dataclass
class Reader:
    name: str
    folder: Path | None = None    # label PNGs; None for a model run here
    is_model: bool = False
    simulated: bool = False
    card: dict = field(default_factory=dict)  # reader.yaml, if the folder has one

    @property
    def label(self) -> str:
        return f"{self.name} (SIMULATED)" if self.simulated else self.name


@dataclass
class Reference:
    classes: ClassTable
    stems: list[str]
    labels: list[Path]
    images: list[Path] | None   # None: a label folder, no pictures
    description: str


@dataclass
class StudyScores:
    classes: ClassTable
    readers: list[Reader]
    stems: list[str]
    iou: np.ndarray     # (readers, images, classes), NaN where a class is in neither map
    dice: np.ndarray
    matrices: np.ndarray  # (readers, classes, classes) pooled confusion

    def per_image(self, key: str, tissue: int | None = None) -> np.ndarray:
        """(readers, images): mean over tissues (NaN-skipping), or one class id's figure."""
        values = getattr(self, key)
        if tissue is not None:
            return values[:, :, tissue]
        t = values[:, :, 1:] if len(self.classes) > 1 else values
        out = np.full(t.shape[:2], np.nan)
        has = np.isfinite(t).any(axis=2)
        out[has] = np.nanmean(t[has], axis=1)
        return out


def load_reference(path: str | Path, split: str = "test", classes_file: str | Path | None = None) -> Reference:
    path = Path(path)
    if (path / "dataset.yaml").is_file():
        dataset = load_dataset(path)
        items = split_items(dataset, split)
        return Reference(dataset.classes, [Path(it.image).stem for it in items],
                         [dataset.path(it.label) for it in items], [dataset.path(it.image) for it in items],
                         f"{dataset.name} ({path}), split {split}")
    files = label_files(path, "reference folder")
    classes = ClassTable.load(classes_file) if classes_file else default_classes()
    return Reference(classes, list(files), list(files.values()), None, f"label folder {path}")


def load_reader(name: str, folder: str | Path, reference: Reference) -> Reader:
    folder = Path(folder)
    files = label_files(folder, f"folder of reader {name!r}")
    require_stems(files, reference.stems, folder, f"label of reader {name!r}")
    card = {}
    if (folder / "reader.yaml").is_file():
        card = read_yaml(folder / "reader.yaml", "reader card")
        if not isinstance(card, dict):
            raise EndoSpineError(f"{folder / 'reader.yaml'}: expected a mapping")
    return Reader(name, folder, simulated=bool(card.get("simulated", False)), card=card)


def score_study(reference: Reference, readers: list[Reader], model_dir: str | Path | None = None,
                pred_dir: str | Path | None = None, settings: RuntimeSettings | None = None,
                progress: bool = True) -> StudyScores:
    """Score every reader and the model on every reference image."""
    if (model_dir is None) == (pred_dir is None):
        raise EndoSpineError("reader-study needs exactly one of --model MODEL_DIR or --pred DIR")
    names = [r.name for r in readers]
    if not readers:
        raise EndoSpineError("reader-study needs at least one --reader NAME=DIR")
    if len(set(names)) != len(names) or MODEL in names:
        raise EndoSpineError(f"--reader names must be unique and not {MODEL!r}, got {', '.join(names)}")
    classes = reference.classes
    runtime = None
    if model_dir is not None:
        if reference.images is None:
            raise EndoSpineError(f"--model needs a dataset folder as --reference (images to run on); "
                                 f"{reference.description} has labels only: use --pred")
        runtime = SegmentationRuntime(model_dir, settings).independent_frames()
        if runtime.classes.names != classes.names:
            raise EndoSpineError(f"{model_dir}: the model's classes {runtime.classes.names} differ from the "
                                 f"reference's {classes.names}")
        model = Reader(MODEL, None, is_model=True)
    else:
        model = load_reader(MODEL, pred_dir, reference)
        model.is_model = True
    everyone = [*readers, model]
    n, c = len(reference.stems), len(classes)
    iou = np.full((len(everyone), n, c), np.nan)
    dice = np.full_like(iou, np.nan)
    pooled = [ConfusionMatrix(c, classes.ignore_index) for _ in everyone]
    steps = tqdm(range(n), unit="img", desc="reader study", disable=not progress)
    for i in steps:
        stem, label_path = reference.stems[i], reference.labels[i]
        truth = read_reference(label_path, classes)
        for r, reader in enumerate(everyone):
            if reader.folder is None:
                answer = _run_model(runtime, reference.images[i], truth.shape, classes)
            else:
                answer = read_answer(reader.folder / f"{stem}.png", classes, truth.shape)
            s = scores_from_matrix(pooled[r].update(truth, answer))
            iou[r, i], dice[r, i] = s["iou"], s["dice"]
    return StudyScores(classes, everyone, list(reference.stems), iou, dice, np.stack([p.matrix for p in pooled]))


def _run_model(runtime: SegmentationRuntime, image: Path, shape: tuple[int, int], classes: ClassTable) -> np.ndarray:
    rgb = read_image(image)
    if rgb.shape[:2] != shape:
        raise EndoSpineError(f"{image}: image is {rgb.shape[1]}x{rgb.shape[0]}, its label {shape[1]}x{shape[0]}")
    labels, _ = predict_frame(runtime, rgb)
    return as_answer(labels, classes)


def parse_reader(text: str) -> tuple[str, str]:
    """'NAME=DIR' -> (name, dir)."""
    name, sep, folder = text.partition("=")
    if not sep or not name.strip() or not folder.strip():
        raise EndoSpineError(f"--reader {text!r}: expected NAME=DIR, e.g. senior=labels/senior")
    return name.strip(), folder.strip()
