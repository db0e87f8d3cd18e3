"""`endospine-model prelabel`: an exported model's masks as pre-labels for annotators.

    rows = prelabel("assets/model", "frames/", "labelme", "build/prelabels", min_area=16)

Every image directly in the folder (sorted by name; imageio.folder_images) is segmented as a still
frame (SegmentationRuntime(...).independent_frames().segment, pasted into the frame; 255 outside
the crop box and the field of view = unlabelled) and written in an annotation tool's format:
- labelme: <stem>.json per image, the image copied next to it (imagePath is its file name, so the
  folder moves as a whole); one polygon per region, holes as later polygons (polygons.py);
  top-level key 'endospine' holds the gate's score and verdict (Labelme keeps unknown top-level
  keys when it saves). Unlabelled pixels are not drawn: they come back as background. Outlines are
  simplified within --simplify px (default 0.5). Round trip through `import labelme`, shipped model
  on 8 fresh-seed 512 px frames: IoU per class pooled over the frames 0.996-0.999 at 0.5 px
  (0.986-0.997 at 1 px); single frames lose more where a class is a sliver (worst ligament 0.96)
  or under --min-area (a 15 px fat region dropped). An untrained model's speckle (~70 px regions)
  loses far more (worst class 0.80 at 1 px). 0 keeps every outline point, and the import then
  gives back the model's mask exactly.
- cvat: a 'Segmentation mask 1.1' export as cvat.py reads it (labelmap.txt with the model's class
  colors, SegmentationClass/<stem>.png, ImageSets/Segmentation/default.txt, JPEGImages/ with the
  images copied); unlabelled pixels are painted in the background's color. SegmentationObject/
  (instance masks) is not written: the importer does not read it.
Both get prelabel.csv: image, gate_score, passed (score <= the gate's threshold), most doubtful
(highest score) first, so annotators start with the frames the model is least sure of; a model
without a gate leaves both columns empty and keeps the folder's order. The output folder appears
complete or not at all (StagedDir).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import folder_images, read_bytes, read_image, write_bytes_atomic, write_csv_atomic, write_image
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.core.runtime.postprocess import paste_into_frame
from models.dataset import StagedDir
from models.datatools.polygons import DEFAULT_MIN_AREA, EPSILON, mask_polygons

FORMATS = ("labelme", "cvat")
LABELME_VERSION = "5.2.1"


@dataclass(frozen=True)
class Row:
    image: str
    score: float | None
    passed: bool | None


def prelabel(model_dir: str | Path, images: str | Path, fmt: str, out: str | Path,
             settings: RuntimeSettings | None = None, min_area: int = DEFAULT_MIN_AREA,
             epsilon: float = EPSILON, progress: bool = True) -> list[Row]:
    """Write the pre-labels of every image of the folder into `out`; returns the CSV rows in order."""
    if fmt not in FORMATS:
        raise EndoSpineError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    files = _images(Path(images))
    with StagedDir(out) as tmp:   # refuses a non-empty --out before any work; removed on failure
        rt = SegmentationRuntime(model_dir, settings).independent_frames()
        threshold = rt.gate.rule.threshold if rt.gate is not None else None
        writer = _CvatWriter(tmp, rt.classes) if fmt == "cvat" else _LabelmeWriter(tmp, rt.classes, min_area, epsilon)
        rows = []
        for path in tqdm(files, desc=f"prelabel {fmt}", unit="img", disable=not progress):
            rgb = read_image(path)
            try:
                labels, box, _ = rt.segment(rgb)
            except EndoSpineError as exc:
                raise EndoSpineError(f"{path}: {exc}") from None
            frame = paste_into_frame(labels, box, (rgb.shape[1], rgb.shape[0]), fill=rt.classes.ignore_index)
            score = None if rt.score is None else float(rt.score)
            row = Row(path.name, score, None if score is None or threshold is None else score <= threshold)
            writer.write(path, frame, row)
            rows.append(row)
        writer.finish()
        rows.sort(key=lambda r: -r.score if r.score is not None else 0.0)   # stable: no gate, folder order
        write_csv_atomic(tmp / "prelabel.csv", [{"image": r.image, "gate_score": "" if r.score is None else
                                                 f"{r.score:.4f}", "passed": "" if r.passed is None else
                                                 str(r.passed).lower()} for r in rows])
    return rows


def _images(folder: Path) -> list[Path]:
    files = folder_images(folder, "--images")
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise EndoSpineError(f"{path}: same name as {seen[path.stem].name} (the pre-labels are named by stem)")
        seen[path.stem] = path
    return files


def labelme_doc(polygons, classes: ClassTable, image_name: str, h: int, w: int, row: Row) -> dict:
    """A Labelme file's document: the polygons as shapes, the image by its relative path."""
    names = {c.id: c.name for c in classes.classes}
    shapes = [{"label": names[p.class_id], "points": p.points.astype(float).tolist(), "group_id": None,
               "description": "", "shape_type": "polygon", "flags": {}} for p in polygons]
    return {"version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": image_name, "imageData": None,
            "imageHeight": h, "imageWidth": w,
            "endospine": {"gate_score": row.score, "passed": row.passed, "source": "prelabel (model output)"}}


class _LabelmeWriter:
    def __init__(self, out: Path, classes: ClassTable, min_area: int, epsilon: float):
        self.out, self.classes, self.min_area, self.epsilon = out, classes, min_area, epsilon
        self.ids = [c.id for c in classes.classes if c.id != 0]

    def write(self, image: Path, frame: np.ndarray, row: Row) -> None:
        polygons = mask_polygons(frame, self.ids, background=0, min_area=self.min_area, epsilon=self.epsilon)
        doc = labelme_doc(polygons, self.classes, image.name, *frame.shape, row)
        write_bytes_atomic(self.out / image.name, read_bytes(image))
        write_bytes_atomic(self.out / f"{image.stem}.json", json.dumps(doc, indent=2).encode("utf-8"))

    def finish(self) -> None:
        pass


class _CvatWriter:
    def __init__(self, out: Path, classes: ClassTable):
        self.out, self.classes, self.stems = out, classes, []
        background = next(c.color for c in classes.classes if c.id == 0)
        self.lut = classes.color_lut(ignore_color=background)   # unlabelled: painted as background
        for sub in ("SegmentationClass", "JPEGImages", "ImageSets/Segmentation"):
            (out / sub).mkdir(parents=True)

    def write(self, image: Path, frame: np.ndarray, row: Row) -> None:
        write_image(self.out / "SegmentationClass" / f"{image.stem}.png", self.lut[frame])
        write_bytes_atomic(self.out / "JPEGImages" / image.name, read_bytes(image))
        self.stems.append(image.stem)

    def finish(self) -> None:
        lines = ["# label:color_rgb:parts:actions"]
        lines += [f"{c.name}:{','.join(str(v) for v in c.color)}::" for c in self.classes.classes]
        write_bytes_atomic(self.out / "labelmap.txt", ("\n".join(lines) + "\n").encode("utf-8"))
        subset = self.out / "ImageSets" / "Segmentation" / "default.txt"
        write_bytes_atomic(subset, ("\n".join(self.stems) + "\n").encode("utf-8"))

