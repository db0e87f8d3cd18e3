"""Datasets on disk: PaddleSeg list files, label PNGs of class ids, and dataset.yaml.

Layout of a dataset folder::

    dataset.yaml        format, class table, one provenance record per image
    train.txt val.txt test.txt   PaddleSeg lists: "image_path label_path" (relative to the folder)
    images/...  labels/...

Provenance per image: the clip it came from, its frame index in that clip, and its source
("real", "synthetic" or "gan"). Splits are by clip: frames of one clip never land in two splits.
Datasets are written into a temporary sibling folder and renamed into place when complete, so
an interrupted run never leaves a half-written dataset under the requested name.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.yamlio import DATASET_MAX_BYTES, dump_yaml, read_folder_file

FORMAT = "endospine-dataset/1"

SPLITS = ("train", "val", "test")
SOURCES = ("real", "synthetic", "gan")


@dataclass(frozen=True)
class Item:
    image: str  # path relative to the dataset root, "/"-separated
    label: str
    clip: str
    frame: int
    source: str = "real"

    def __post_init__(self) -> None:
        for name in ("image", "label", "clip"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        for name in ("image", "label"):  # inside the dataset folder: relative, no '..'
            path = getattr(self, name)
            if path.startswith(("/", "\\")) or ":" in path or ".." in path.replace("\\", "/").split("/"):
                raise ValueError(f"{name} {path!r} must be a path inside the dataset folder")
        if not isinstance(self.frame, int) or isinstance(self.frame, bool):
            raise ValueError(f"frame must be a whole number, got {self.frame!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")


@dataclass
class Dataset:
    root: Path
    classes: ClassTable
    items: list[Item]
    splits: dict[str, list[Item]] = field(default_factory=dict)
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> list[Item]:
        if name == "all":
            return list(self.items)
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise EndoSpineError(f"{self.root}: no {name!r} split (splits: {have}); run 'endospine-model split'")
        return self.splits[name]

    def path(self, rel: str) -> Path:
        return self.root / rel

    def clips(self) -> dict[str, list[Item]]:
        by_clip: dict[str, list[Item]] = defaultdict(list)
        for item in self.items:
            by_clip[item.clip].append(item)
        return dict(by_clip)

    def summary(self) -> dict:
        per_source: dict[str, int] = defaultdict(int)
        for item in self.items:
            per_source[item.source] += 1
        return {
            "name": self.name,
            "images": len(self.items),
            "clips": len(self.clips()),
            "sources": dict(per_source),
            "splits": {k: len(v) for k, v in self.splits.items()},
            "classes": self.classes.names,
        }


# -- reading ---------------------------------------------------------------------------------
def read_meta_file(root: Path) -> tuple[Path, dict]:
    """(path, content) of root/dataset.yaml, checked to be an EndoSpine dataset file (at most
    DATASET_MAX_BYTES, about 120k images)."""
    return read_folder_file(root, "dataset.yaml", FORMAT, "dataset file", "dataset folder",
                            "not an EndoSpine dataset; use 'endospine-model import'", "file", DATASET_MAX_BYTES)


def load_dataset(root: str | Path) -> Dataset:
    root = Path(root)
    meta_path, meta = read_meta_file(root)
    classes = ClassTable.from_dict(meta.get("classes"), source=str(meta_path))
    try:
        records = meta.get("items") or []
        if not isinstance(records, list):
            raise TypeError(f"'items' is a {type(records).__name__}, not a list")
        items = [Item(**rec) for rec in records]
    except (TypeError, ValueError) as exc:
        raise EndoSpineError(f"{meta_path}: bad item record ({exc})") from None
    by_pair = {(it.image, it.label): it for it in items}
    splits: dict[str, list[Item]] = {}
    for name in SPLITS:
        list_path = root / f"{name}.txt"
        if list_path.is_file():
            splits[name] = [_lookup(by_pair, pair, list_path) for pair in _read_list(list_path)]
    extra = {k: v for k, v in meta.items() if k not in ("format", "classes", "items", "name")}
    return Dataset(root, classes, items, splits, name=str(meta.get("name", root.name)), meta=extra)


def _read_list(path: Path) -> Iterator[tuple[str, str]]:
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise EndoSpineError(f"{path}:{lineno}: expected 'image_path label_path', got {line!r}")
        yield parts[0], parts[1]


def _lookup(by_pair: dict, pair: tuple[str, str], list_path: Path) -> Item:
    try:
        return by_pair[pair]
    except KeyError:
        raise EndoSpineError(f"{list_path}: {pair[0]} is not listed in dataset.yaml") from None


# -- writing ---------------------------------------------------------------------------------
def write_meta(root: Path, classes: ClassTable, items: Sequence[Item], name: str, extra: dict | None = None) -> None:
    meta = {"format": FORMAT, "name": name, "classes": classes.to_dict(), **(extra or {})}
    meta["items"] = [asdict(it) for it in items]
    _atomic_write_text(root / "dataset.yaml", dump_yaml(meta, width=120))


def write_splits(root: Path, splits: dict[str, Sequence[Item]]) -> None:
    for name in SPLITS:
        lines = "".join(f"{it.image} {it.label}\n" for it in splits.get(name, []))
        _atomic_write_text(root / f"{name}.txt", lines)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class StagedDir:
    """A folder built under a temporary name and moved to its final name only on success.

    with StagedDir(out) as tmp: write everything into tmp
    On an exception the temporary folder is removed and `out` is left as it was.
    """

    def __init__(self, final: str | Path, overwrite: bool = False):
        self.final = Path(final)
        self.overwrite = overwrite
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        if self.final.exists() and not self.overwrite:
            if not self.final.is_dir() or any(self.final.iterdir()):
                raise EndoSpineError(f"{self.final}: already exists and is not empty (choose another --out)")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.final.parent, prefix=f".{self.final.name}.partial-"))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes 0700; the result is an ordinary folder
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.final.exists():
            shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)


# -- splitting -------------------------------------------------------------------------------
def spread(items: Sequence, limit: int) -> list:
    """Up to `limit` items, taken evenly over the sequence (so over all clips of a split)."""
    if len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def parse_ratios(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> the train, val, test shares; EndoSpineError naming --ratios otherwise."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise EndoSpineError(f"--ratios {text!r}: expected three numbers like 0.8,0.1,0.1") from None
    return check_ratios(parts, f"--ratios {text!r}")


def check_ratios(ratios: Sequence[float], what: str = "ratios") -> tuple[float, float, float]:
    """Three finite shares >= 0 adding up to 1 (within 0.01, then scaled to exactly 1), or
    EndoSpineError '<what>: ...'."""
    parts = tuple(ratios)
    ok = len(parts) == 3 and all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p)
                                 and p >= 0 for p in parts)
    if not ok or abs(sum(parts) - 1) > 0.01 + 1e-9:
        raise EndoSpineError(f"{what}: expected three shares >= 0 adding up to 1 (train,val,test), like 0.8,0.1,0.1")
    total = sum(parts)
    return tuple(float(p) / total + 0.0 for p in parts)  # type: ignore[return-value]


def split_by_clip(items: Iterable[Item], ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[Item]]:
    """Assign whole clips to train/val/test so that image counts approach the ratios.

    Clips are shuffled with the seed, then each goes to the split furthest below its target.
    Every non-zero split gets at least one clip when there are enough clips.
    """
    ratios = check_ratios(ratios)
    by_clip: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_clip[item.clip].append(item)
    clips = sorted(by_clip)
    random.Random(seed).shuffle(clips)
    total = sum(len(v) for v in by_clip.values())
    wanted = [name for name, r in zip(SPLITS, ratios) if r > 0]
    out: dict[str, list[Item]] = {name: [] for name in SPLITS}
    # With enough clips, each small split is seeded with one clip so that none stays empty.
    queue = list(clips)
    if len(queue) >= len(wanted):
        for name in wanted:
            if name != "train":
                out[name].extend(by_clip[queue.pop()])
    for clip in queue:
        deficit = {n: ratios[SPLITS.index(n)] * total - len(out[n]) for n in wanted}
        out[max(deficit, key=deficit.get)].extend(by_clip[clip])
    return out
