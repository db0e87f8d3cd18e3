"""`endospine-model gate-check`: how an exported model's trust gate scores frames like its training
data, frames unlike them, and (--corrupt) frames it gets wrong.

    doc = gate_check("assets/model", ins=["build/spine-v2"], oods=["build/kvasir", "photos"],
                     out="build/gate-check", corrupt="build/spine-v2")

Each --in / --ood folder is a dataset (it holds dataset.yaml: the images of its --split) or a folder
of images (the image files directly in it, sorted by name); a set is named after its folder (made
unique). Every image gets the gate's score and the verdict passed = score <= the manifest's
threshold, one frame at a time (no hysteresis, no tracking of the field of view across images).
--corrupt DATASET: every image of its split clean and under the corruptions of corruptions.py,
each with its mean IoU over tissues against the reference label (models.metrics.frame_mean_iou). gatesummary.py
turns the rows into summary.json and the console lines, gatereport.py writes the report folder,
which appears complete or not at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from models.core.errors import EndoSpineError
from models.core.imageio import folder_images, read_image
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.dataset import Dataset, StagedDir, load_dataset, spread
from models.evaluate.corruptions import corrupt, image_seed, renderings
from models.evaluate.gatereport import write_gate_report
from models.evaluate.gatesummary import Row, make_row, summarize
from models.evaluate.labels import read_reference
from models.metrics import frame_mean_iou
from models.predict import check_classes, predict_frame_boxed, still_stage


@dataclass(frozen=True)
class ImageSet:
    name: str
    kind: str                                      # in | ood | corrupt
    source: str                                    # what the folder is, for the report
    images: list[tuple[str, Path, Path | None]]    # (name in scores.csv, image file, reference label)
    dataset: Dataset | None = None


def gate_check(model_dir: str | Path, ins: list, oods: list, out: str | Path, split: str = "test",
               corrupt_data: str | Path | None = None, max_images: int | None = None,
               settings: RuntimeSettings | None = None, progress: bool = True) -> dict:
    """Score every set, write the report folder `out`; returns the summary.json document."""
    if not ins or not oods:
        raise EndoSpineError("gate-check needs at least one --in and one --ood folder")
    sets = image_sets(ins, oods, corrupt_data, split, max_images)
    with StagedDir(out) as tmp:   # refuses a non-empty --out before any work; removed on failure
        runtime = SegmentationRuntime(model_dir, settings).independent_frames()
        gate = runtime.gate
        if gate is None:
            raise EndoSpineError(f"{model_dir}: this model has no trust gate (exported before gates); re-export it")
        for s in sets:
            if s.kind == "corrupt":
                check_classes(runtime, s.dataset)
        rows: list[Row] = []
        for s in sets:
            rows += (_corrupt_rows if s.kind == "corrupt" else _score_rows)(runtime, s, progress)
        cfg = runtime.settings
        about = {"model": f"{runtime.manifest.name} ({runtime.root})", "split": split,
                 "runtime": f"{cfg.backend} {cfg.device}, {cfg.threads} threads, field of view {cfg.fov}",
                 "checked": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"}
        doc = summarize(rows, gate.rule, gate.dims, {s.name: s.source for s in sets}, about)
        write_gate_report(tmp, rows, doc)
    return doc


def image_sets(ins: list, oods: list, corrupt_data, split: str, max_images: int | None) -> list[ImageSet]:
    """The sets in command-line order (--in, --ood, --corrupt), each checked to hold images."""
    taken: set[str] = set()
    sets = [open_set(d, "in", split, max_images, taken) for d in ins]
    sets += [open_set(d, "ood", split, max_images, taken) for d in oods]
    if corrupt_data is not None:
        sets.append(open_set(corrupt_data, "corrupt", split, max_images, taken))
    return sets


def open_set(folder: str | Path, kind: str, split: str, max_images: int | None, taken: set[str]) -> ImageSet:
    root = Path(folder)
    flag = f"--{kind}"
    if not root.is_dir():
        raise EndoSpineError(f"{flag} {root}: not a folder (expected a folder of images or a dataset folder)")
    dataset = None
    if (root / "dataset.yaml").is_file():
        dataset = load_dataset(root)
        images = [(it.image, dataset.path(it.image), dataset.path(it.label)) for it in dataset.split(split)]
        source = f"dataset {dataset.name} ({root}), split {split}"
        if not images:
            raise EndoSpineError(f"{flag} {root}: split {split!r} of this dataset has no images")
    elif kind == "corrupt":
        raise EndoSpineError(f"{flag} {root}: not a dataset folder (no dataset.yaml); the corrupted frames are "
                             f"scored against the dataset's reference labels")
    else:
        images = [(p.name, p, None) for p in folder_images(root, flag)]
        source = f"folder of images ({root})"
    if max_images is not None:
        images = spread(images, max_images)
    return ImageSet(_unique(root.resolve().name or "set", taken), kind, source, images, dataset)


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name}-{k}", k + 1
    taken.add(out)
    return out


def _score_rows(runtime: SegmentationRuntime, s: ImageSet, progress: bool) -> list[Row]:
    threshold = runtime.gate.rule.threshold
    rows = []
    for name, path, _ in tqdm(s.images, desc=f"gate-check {s.name}", unit="img", disable=not progress):
        rgb = read_image(path)
        try:
            runtime.probabilities(rgb)
        except EndoSpineError as exc:
            raise EndoSpineError(f"{path}: {exc}") from None
        rows.append(make_row(s.name, s.kind, name, runtime.score, threshold))
    return rows


def _corrupt_rows(runtime: SegmentationRuntime, s: ImageSet, progress: bool) -> list[Row]:
    """Each image clean and under every corruption: its score and its mean IoU."""
    classes = s.dataset.classes
    threshold = runtime.gate.rule.threshold
    stage = still_stage(runtime)
    rows = []
    for name, path, label in tqdm(s.images, desc=f"gate-check {s.name} (corrupted)", unit="img",
                                  disable=not progress):
        rgb = read_image(path)
        truth = read_reference(label, classes, rgb.shape[:2])
        inside = truth != classes.ignore_index          # the field of view (and any unlabelled spots)
        seed = image_seed(name)
        for family, severity in renderings():
            image = corrupt(rgb, family, severity, seed, inside if inside.any() else None)
            try:
                labels, _, _ = predict_frame_boxed(runtime, image, stage)
            except EndoSpineError as exc:
                raise EndoSpineError(f"{path} ({family} {severity}): {exc}") from None
            miou = frame_mean_iou(truth, labels, len(classes), classes.ignore_index)
            rows.append(make_row(s.name, "corrupt", name, runtime.score, threshold, corruption=family,
                                 severity=severity, mean_iou=miou))
    return rows
