"""`endospine-model reader-study`: readers and the model against one reference, tested for differences."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from models.core.runtime.backends import RuntimeSettings
from models.dataset import StagedDir
from models.reader_study.analysis import Findings, analyse
from models.reader_study.report import write_study
from models.reader_study.stats import ALPHA
from models.reader_study.study import load_reader, load_reference, score_study


def reader_study(reference: str | Path, readers: list[tuple[str, str | Path]], out: str | Path,
                 split: str = "test", model_dir: str | Path | None = None, pred_dir: str | Path | None = None,
                 classes_file: str | Path | None = None, settings: RuntimeSettings | None = None,
                 alpha: float = ALPHA, progress: bool = True) -> Findings:
    """Score, test and write the report folder `out` (complete or not at all)."""
    ref = load_reference(reference, split, classes_file)
    loaded = [load_reader(name, folder, ref) for name, folder in readers]
    scores = score_study(ref, loaded, model_dir=model_dir, pred_dir=pred_dir, settings=settings, progress=progress)
    findings = analyse(scores, alpha)
    about = {"reference": ref.description, "images": str(len(ref.stems)),
             "model": str(model_dir) if model_dir is not None else f"predictions in {pred_dir}",
             "readers": ", ".join(f"{r.label} ({r.folder})" for r in loaded),
             "created": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"}
    with StagedDir(out) as tmp:
        write_study(tmp, scores, findings, about)
    return findings
