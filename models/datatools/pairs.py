"""What every import reader hands to the importer: Pairs (an image and how to make its label map)
under ImportOptions, and the two file helpers the readers share.

The readers (paddleseg and mask folders in importers.py, labelme.py, cvat.py) build Pairs from
a source folder; importers.import_dataset checks and converts them. Readers import this module,
the importer imports the readers: no reader imports the importer.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.datatools.common import default_workers
from models.datatools.masks import LabelMap


@dataclass(frozen=True)
class Pair:
    """One image and how to make its label map. Readers build these; import_dataset runs them."""
    key: str                                   # "/"-separated relative name without suffix
    origin: Path                               # the annotation file that errors name
    label: Callable[[int, int], np.ndarray]    # (height, width) of the image -> HxW class ids
    image: Path                                # the image file (or, with image_bytes, its nominal name)
    image_bytes: Callable[[], bytes] | None = None   # image embedded in the annotation (Labelme)
    split: str | None = None
    files: tuple[Path, ...] = ()               # files that must exist (checked before any work)


@dataclass(frozen=True)
class ImportOptions:
    classes: ClassTable
    label_map: LabelMap = field(default_factory=LabelMap)
    threshold: int | None = None
    clip_from: str | None = None
    workers: int = field(default_factory=default_workers)


def relative_keys(paths: list[Path]) -> list[str]:
    """Keys of files: path relative to the files' common folder, without suffix, '/'-separated."""
    absolute = [Path(os.path.abspath(p)) for p in paths]
    common = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    return [p.relative_to(common).with_suffix("").as_posix() for p in absolute]


def find_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """key (relative path without suffix) -> file, for files with the given suffixes under folder."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in suffixes or not path.is_file() or path.name.startswith("."):
            continue
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            raise EndoSpineError(f"{path}: same name as {found[key].name} in {found[key].parent} (ambiguous pair)")
        found[key] = path
    return found
