"""Starting weights for fine-tuning (`train --init SOURCE`): an exported model folder or a training run.

    MODEL_DIR  an exported model folder: its manifest is verified first (files, seal; a folder whose
               manifest does not verify is refused), then its weights.safetensors (written by export
               since the weights file was added; older folders: re-export them from their run)
    RUN        a training run folder: its best checkpoint, class table (data.yaml) and network (config.yaml)

The network must be the same architecture; the input size may differ (the weights do not depend
on it). Class tables may differ: every layer is copied but the classifier (the last 1x1 convolution),
whose rows are matched by class name: a class the source knows keeps its row, a new one starts from
the fresh initialisation. `init_from` returns the sentences the training log records about it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.yamlio import read_yaml
from models.nets import build_model
from models.train.checkpoint import checkpoint_path, load_weights, stored

WEIGHTS_FILE = "weights.safetensors"  # the eager network's weights inside an exported model folder
WEIGHTS_ROLE = "weights"              # its role in the manifest's files


@dataclass(frozen=True)
class InitSource:
    path: Path
    kind: str            # "model" or "run"
    arch: str
    classes: ClassTable
    stem: Path           # checkpoint stem (models/train/checkpoint.py)


def find_source(source: str | Path) -> InitSource:
    """What SOURCE is (one line naming it when it is neither a verified model folder nor a run)."""
    path = Path(source)
    if not path.is_dir():
        raise EndoSpineError(f"{path}: --init needs an exported model folder or a training run folder")
    if (path / "manifest.yaml").is_file():
        return _model_source(path)
    if (path / "config.yaml").is_file() and (path / "data.yaml").is_file():
        return _run_source(path)
    raise EndoSpineError(f"{path}: neither an exported model folder (manifest.yaml) nor a training run "
                         f"(config.yaml, data.yaml)")


def _model_source(path: Path) -> InitSource:
    from models.core.runtime.manifest import load_manifest

    manifest = load_manifest(path)  # verified: a folder whose files or seal do not match is refused here
    entry = manifest.files.get(WEIGHTS_ROLE)
    if not entry:
        raise EndoSpineError(f"{path}: this model folder has no training weights ({WEIGHTS_FILE}); "
                             f"re-export it from its run to fine-tune from it, or pass the run folder")
    arch = (manifest.network or {}).get("arch")
    if not isinstance(arch, str):
        raise EndoSpineError(f"{path / 'manifest.yaml'}: network.arch missing")
    weights = path / entry["path"]
    return InitSource(path, "model", arch, manifest.classes, weights.with_name(weights.name.split(".")[0]))


def _run_source(path: Path) -> InitSource:
    from models.train.config import TrainConfig

    cfg = TrainConfig.load(path / "config.yaml")
    data = read_yaml(path / "data.yaml", "training data file")
    if not isinstance(data, dict) or "classes" not in data:
        raise EndoSpineError(f"{path / 'data.yaml'}: no class table")
    classes = ClassTable.from_dict(data["classes"], source=str(path / "data.yaml"))
    stem = path / "best"
    if stored(stem) is None:
        raise EndoSpineError(f"{checkpoint_path(stem)}: missing (the run has not validated yet)")
    return InitSource(path, "run", cfg.model, classes, stem)


def classifier_keys(model) -> tuple[str, str]:
    """The state-dict keys (weight, bias) of the network's last 1x1 convolution: one row per class."""
    names = [n for n, _ in model.named_parameters()]
    weight = next((n for n in reversed(names) if n.endswith(".weight")), None)
    bias = weight[: -len("weight")] + "bias" if weight else None
    if weight is None or bias not in names:
        raise EndoSpineError("the network has no classifier layer with a bias")
    return weight, bias


def head_matches(source: ClassTable, target: ClassTable) -> dict[int, int]:
    """target class id -> source class id, for the classes both tables name (case and spaces ignored)."""
    by_name = {c.name.strip().lower(): c.id for c in source.classes}
    return {c.id: by_name[c.name.strip().lower()] for c in target.classes if c.name.strip().lower() in by_name}


def init_from(model, arch: str, classes: ClassTable, source: str | Path, trust_pickle: bool = False) -> list[str]:
    """Set `model` (architecture `arch`, class table `classes`) from SOURCE; returns what was done, in words."""
    src = find_source(source)
    if src.arch != arch:
        raise EndoSpineError(f"{src.path}: network {src.arch}, but this run trains {arch} (use --net {src.arch}, "
                             f"or model: {src.arch} in the config)")
    donor = build_model(src.arch, len(src.classes))
    load_weights(donor, src.stem, trust_pickle)  # checked: names, shapes, dtypes, finite
    theirs = donor.state_dict()
    ours = model.state_dict()
    w_key, b_key = classifier_keys(model)
    new = {}
    for key, value in ours.items():
        if key in (w_key, b_key):
            continue
        if key not in theirs or list(theirs[key].shape) != list(value.shape):
            raise EndoSpineError(f"{src.path}: layer {key} does not fit this network")
        new[key] = theirs[key].numpy()
    matches = head_matches(src.classes, classes)
    for key in (w_key, b_key):
        rows = ours[key].numpy().copy()  # fresh initialisation for the classes the source does not know
        donor_rows = theirs[key].numpy()
        for dst, s in matches.items():
            rows[dst] = donor_rows[s]
        new[key] = rows
    model.set_state_dict({k: np.ascontiguousarray(v) for k, v in new.items()})
    kept = [c.name for c in classes.classes if c.id in matches]
    fresh = [c.name for c in classes.classes if c.id not in matches]
    lines = [f"init from {src.kind} {src.path}: all layers of {arch} copied; classifier rows kept for "
             f"{', '.join(kept) or 'no class'}"]
    lines.append(f"classifier rows starting fresh: {', '.join(fresh)}" if fresh else "no class starts fresh")
    unused = [c.name for c in src.classes.classes if c.id not in matches.values()]
    if unused:
        lines.append(f"source classes not in this table (dropped): {', '.join(unused)}")
    return lines

