"""`endospine-model evaluate`: judge a model (or a folder of its label maps) on a dataset split.

    evaluate(data, out, model_dir="assets/model")      # runs the model: figures + ROC/AUC + calibration
    evaluate(data, out, pred_dir="build/pred")         # label PNGs from `predict`: figures, no AUC, no ECE

Every figure gets a 95 % bootstrap interval over the split's clips (`bootstrap` resamples, 0: none).

Images are read one at a time and dropped after use; the report folder is written under a
temporary name and appears complete or not at all.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from models.core.errors import EndoSpineError
from models.core.imageio import read_image
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime
from models.dataset import Dataset, Item, StagedDir, load_dataset
from models.evaluate.accumulate import Accumulator, frame_scores
from models.evaluate.bootstrap import DEFAULT_RESAMPLES
from models.evaluate.calibration import gate_temperature
from models.evaluate.labels import label_files, read_answer, read_reference, require_stems
from models.evaluate.report import write_report
from models.evaluate.summary import metrics
from models.predict import predict_frame_boxed, split_items, still_stage


def evaluate(data_dir: str | Path, out: str | Path, split: str = "test", model_dir: str | Path | None = None,
             pred_dir: str | Path | None = None, settings: RuntimeSettings | None = None, gallery: int = 6,
             progress: bool = True, bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """Evaluate and write the report folder `out`; returns the metrics.json document."""
    if (model_dir is None) == (pred_dir is None):
        raise EndoSpineError("evaluate needs exactly one of --model MODEL_DIR or --pred DIR")
    if bootstrap < 0:
        raise EndoSpineError(f"--bootstrap {bootstrap}: resamples must be 0 (no intervals) or more")
    started = time.perf_counter()
    dataset = load_dataset(data_dir)
    items = split_items(dataset, split)
    stems = [Path(it.image).stem for it in items]
    about = {"dataset": f"{dataset.name} ({dataset.root})", "split": f"{split}, {len(items)} images"}
    temperature = None
    if model_dir is not None:
        runtime = SegmentationRuntime(model_dir, settings).independent_frames()
        if runtime.classes.names != dataset.classes.names:
            raise EndoSpineError(f"{dataset.root}: classes {dataset.classes.names} differ from the model's "
                                 f"{runtime.classes.names}")
        try:
            temperature = gate_temperature(runtime.manifest.gate)
        except ValueError as exc:
            raise EndoSpineError(f"{runtime.root}: manifest {exc}") from None
        s = runtime.settings
        about = {"model": f"{runtime.manifest.name} ({runtime.root})", **about,
                 "runtime": f"{s.backend} {s.device}{' oneDNN' if s.backend == 'paddle' and s.device == 'cpu' and s.onednn else ''}"
                            f", {s.threads} threads, field of view {s.fov}",
                 "profile": s.profile or "default (automatic field of view, no color change, no lens)",
                 "notice": runtime.manifest.notice or ""}
        source = _model_answers(runtime, dataset)
    else:
        files = label_files(pred_dir, "prediction folder")
        require_stems(files, stems, pred_dir, "prediction")
        about = {"model": f"predictions in {pred_dir}", **about}
        source = _folder_answers(files, dataset)
    acc = Accumulator(dataset.classes, with_scores=model_dir is not None, gallery_size=gallery,
                      temperature=temperature)
    with StagedDir(out) as tmp:
        for item, stem in zip(tqdm(items, unit="img", desc="evaluate", disable=not progress), stems):
            truth, answer, scores, image = source(item, stem)
            try:
                acc.add(stem, item.clip, item.frame, truth, answer, scores, image)
            except ValueError as exc:  # size or id problems the readers did not catch
                raise EndoSpineError(f"{dataset.path(item.label)}: {exc}") from None
        elapsed = time.perf_counter() - started
        about["evaluated"] = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {elapsed:.0f} s"
        doc = metrics(acc, split, {"dataset": str(dataset.root), "model": about["model"],
                                   "seconds": round(elapsed, 1)}, resamples=bootstrap, seed=seed)
        write_report(tmp, acc, doc, {k: v for k, v in about.items() if v})
    return doc


def _model_answers(runtime: SegmentationRuntime, dataset: Dataset):
    classes = dataset.classes
    stage = still_stage(runtime)  # still images: no smoothing, full-size labels (as `predict` writes)

    def answer(item: Item, stem: str):
        rgb = read_image(dataset.path(item.image))
        truth = read_reference(dataset.path(item.label), classes, rgb.shape[:2])
        labels, probs, box = predict_frame_boxed(runtime, rgb, stage)
        declined = labels == classes.ignore_index
        scores = frame_scores(probs, box, declined, truth != classes.ignore_index)
        labels[declined] = 0
        return truth, labels, scores, lambda: rgb

    return answer


def _folder_answers(files: dict[str, Path], dataset: Dataset):
    classes = dataset.classes

    def answer(item: Item, stem: str):
        truth = read_reference(dataset.path(item.label), classes)
        labels = read_answer(files[stem], classes, truth.shape)
        return truth, labels, None, lambda: read_image(dataset.path(item.image))

    return answer
