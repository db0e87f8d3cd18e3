"""Labeled image sets from other tools -> an EndoSpine dataset (images/, labels/, dataset.yaml).

Formats (`endospine-model import FORMAT SRC --out DIR`):
- paddleseg: SRC is a folder with train.txt / val.txt / test.txt (or *_list.txt), or one list
  file; lines 'image_path label_path' relative to that folder. The lists' splits are kept.
- masks: SRC holds images/ and masks/ (or labels/), matched by relative path without suffix.
- labelme: SRC is a folder of Labelme JSON files (searched recursively), or one JSON file.
- cvat: SRC is an unzipped CVAT 'Segmentation mask 1.1' export (see cvat.py).
How masks become class ids (ids, binary JPEG masks, colors, --map): see masks.py.

The readers build Pairs (pairs.py); this module checks and converts them. Every image gets a
key: its path relative to the images' common folder, without suffix (the JSON's path for
Labelme). Output: images/<key><original suffix> (bytes copied, never re-encoded),
labels/<key>.png. Clip ids come from the key (common.ClipNamer): by default each
image is its own clip; --clip-from REGEX takes group 1 as the clip (group 2 as frame index).
All images are provenance 'real'. Source splits that would put one clip in two splits are an
error. Without source splits no lists are written: run `endospine-model split`.
The same image twice (the same bytes, however named) is checked on import, as validate would:
with the same labels it is imported once, with a warning naming both; with different labels it
is an error naming both, and nothing is written.
File names that are not valid UTF-8 (copied from an old share, say) are imported under an escaped
name (common.utf8_text: each undecodable byte written \\xNN, in the clip id, and _xNN in the
output file name) with a note that says how many: the images are kept and every name the dataset
writes is UTF-8 text.
Annotation text files are read with the readers' limits (pairs.read_text_limited).
"""
from __future__ import annotations

import hashlib
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.core.imageio import decode_image, image_header, read_bytes, write_bytes_atomic, write_label
from models.dataset import SPLITS, Item, StagedDir, write_meta, write_splits
from models.datatools.common import (
    IMAGE_SUFFIXES,
    ClipNamer,
    check_out_free,
    label_counts,
    parallel_map,
    safe_name,
    utf8_text,
)
from models.datatools.cvat import read_cvat
from models.datatools.labelme import read_labelme
from models.datatools.masks import MaskReader, check_ids
from models.datatools.pairs import ImportOptions, Pair, find_files, read_text_limited, relative_keys

__all__ = ["FORMATS", "ImportOptions", "ImportReport", "Pair", "find_files", "import_dataset", "read_masks",
           "read_paddleseg", "relative_keys"]

FORMATS = ("paddleseg", "labelme", "cvat", "masks")
LIST_FILES = {"train": ("train.txt", "train_list.txt"), "val": ("val.txt", "val_list.txt"),
              "test": ("test.txt", "test_list.txt")}


@dataclass
class ImportReport:
    out: Path
    kind: str
    classes: ClassTable
    images: int
    clips: int
    splits: dict[str, tuple[int, int]]   # split -> (images, clips)
    pixels: np.ndarray                   # (256,) pixel count per label value
    images_with: np.ndarray              # (256,) images holding each label value
    notes: list[str]
    seconds: float
    warnings: list[str] = field(default_factory=list)


def import_dataset(kind: str, src: str | Path, out: str | Path, options: ImportOptions) -> ImportReport:
    readers = {"paddleseg": read_paddleseg, "masks": read_masks, "labelme": read_labelme, "cvat": read_cvat}
    if kind not in readers:
        raise EndoSpineError(f"unknown import format {kind!r} (choose from {', '.join(FORMATS)})")
    src, out, start = Path(src), Path(out), time.perf_counter()
    if not src.exists():
        raise EndoSpineError(f"{src}: not found")
    check_out_free(out)
    namer = ClipNamer(options.clip_from)  # a bad pattern fails before any reading
    pairs, notes = readers[kind](src, options)
    if not pairs:
        raise EndoSpineError(f"{src}: no images found for format '{kind}'")
    plan = _plan(pairs, namer, notes)
    classes = options.classes
    warnings: list[str] = []
    with StagedDir(out) as tmp:
        pixels = np.zeros(256, np.int64)
        images_with = np.zeros(256, np.int64)
        items, kept = [], []
        seen: dict[str, tuple[Pair, Item, str]] = {}   # image digest -> the first pair with it
        dropped: list[str] = []
        removed: list[Item] = []
        convert = lambda job: _convert(job, tmp, classes)  # noqa: E731
        results = parallel_map(convert, plan, options.workers, f"import {kind}")
        try:
            for (pair, _, _), (item, counts, image_digest, label_digest) in zip(plan, results):
                first = seen.setdefault(image_digest, (pair, item, label_digest))
                if first[0] is not pair:
                    _same_image(pair, item, label_digest, first, tmp)   # raises if the labels differ
                    dropped.append(f"{_image_name(pair)} (a copy of {_image_name(first[0])})")
                    removed.append(item)
                    continue
                items.append(item)
                kept.append(pair)
                pixels += counts
                images_with += counts > 0
        finally:
            results.close()   # on an error: no worker still writes while the staged folder is removed
        if dropped:
            _prune_empty(tmp, removed)
            more = f" and {len(dropped) - 3} more" if len(dropped) > 3 else ""
            warnings.append(f"{len(dropped)} duplicate image(s), the same bytes and the same labels as another, "
                            f"imported once: {'; '.join(dropped[:3])}{more}")
        _check_not_all_ignore(pixels, classes, src)
        map_file = utf8_text(options.label_map.source) if options.label_map.names else None
        imported = {"format": kind, "from": utf8_text(str(src.resolve())), "clip_from": options.clip_from,
                    "threshold": options.threshold, "map": map_file}
        write_meta(tmp, classes, items, name=utf8_text(out.name), extra={"imported": imported})
        splits: dict[str, list[Item]] = defaultdict(list)
        for pair, item in zip(kept, items):
            if pair.split:
                splits[pair.split].append(item)
        if splits:
            write_splits(tmp, splits)
    split_counts = {s: (len(v), len({i.clip for i in v})) for s, v in splits.items()}
    return ImportReport(out, kind, classes, len(items), len({i.clip for i in items}), split_counts,
                        pixels, images_with, notes, time.perf_counter() - start, warnings)


# -- the shared part ---------------------------------------------------------------------------
def _plan(pairs: list[Pair], namer: ClipNamer, notes: list[str]) -> list[tuple[Pair, str, tuple[str, int]]]:
    """Check names, files, clips and splits before any pixel is read; -> (pair, out key, clip)."""
    by_key: dict[str, Pair] = {}
    plan = []
    escaped = 0
    for pair in pairs:
        name = utf8_text(pair.key)
        escaped += name != pair.key
        key = safe_name(name)
        if key.lower() in by_key:
            raise EndoSpineError(f"{pair.origin}: same output name {key!r} as {by_key[key.lower()].origin}")
        by_key[key.lower()] = pair
        for f in pair.files:
            if not f.is_file():
                raise EndoSpineError(f"{f}: file not found (referenced by {pair.origin})")
        plan.append((pair, key, namer(name, pair.origin)))
    if escaped:
        notes.append(f"{escaped} file names are not valid UTF-8: imported with each undecodable byte written "
                     "as xNN (rename the source files to UTF-8 to keep their names)")
    split_of: dict[str, tuple[str, Pair]] = {}
    unsplit = 0
    for pair, _, (clip, _) in plan:
        if pair.split is None:
            unsplit += 1
            continue
        first = split_of.setdefault(clip, (pair.split, pair))
        if first[0] != pair.split:
            raise EndoSpineError(f"{pair.origin}: clip {clip!r} is in the source's {first[0]} split "
                                 f"({first[1].image.name}) and its {pair.split} split; one clip must stay in one "
                                 "split (check --clip-from)")
    if split_of and unsplit:
        notes.append(f"{unsplit} images are in no source split list")
    if not split_of:
        notes.append("no splits in the source: run 'endospine-model split' on the output")
    return plan


def _image_name(pair: Pair) -> str:
    return f"{pair.origin} (embedded imageData)" if pair.image_bytes is not None else str(pair.image)


def _same_image(pair: Pair, item: Item, label_digest: str, first: tuple[Pair, Item, str], tmp: Path) -> None:
    """`pair`'s image has the same bytes as first's: an error if their labels differ, else the
    second copy's files are removed from the staged output (it is imported once)."""
    first_pair, _, first_label = first
    if label_digest != first_label:
        raise EndoSpineError(f"{_image_name(pair)}: the same image (same bytes) as {_image_name(first_pair)}, but "
                             f"labelled differently ({pair.origin.name} and {first_pair.origin.name} disagree); "
                             "remove one copy or make the labels agree")
    for rel in (item.image, item.label):
        (tmp / rel).unlink(missing_ok=True)


def _prune_empty(tmp: Path, items: list[Item]) -> None:
    """Remove the folders under images/ and labels/ that removed duplicates left empty (once no
    worker writes any more)."""
    for rel in {str(Path(r).parent) for it in items for r in (it.image, it.label)}:
        folder = tmp / rel
        while folder.parent != tmp and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def _convert(job: tuple[Pair, str, tuple[str, int]], tmp: Path,
             classes: ClassTable) -> tuple[Item, np.ndarray, str, str]:
    pair, key, (clip, frame) = job
    data = pair.image_bytes() if pair.image_bytes is not None else read_bytes(pair.image)
    where = f"{pair.origin} (embedded imageData)" if pair.image_bytes is not None else pair.image
    h, w = decode_image(data, where).shape[:2]   # the size gate runs before decoding
    labels = pair.label(h, w)
    if labels.shape != (h, w):
        raise EndoSpineError(f"{pair.origin}: label is {labels.shape[1]}x{labels.shape[0]} "
                             f"but image {pair.image.name} is {w}x{h}")
    check_ids(labels, classes, pair.origin)
    counts = label_counts(labels)
    suffix = pair.image.suffix.lower()
    if pair.image_bytes is not None or suffix not in IMAGE_SUFFIXES:
        suffix = image_header(data, where).suffix   # the suffix of what the bytes are
    image_rel, label_rel = f"images/{key}{suffix}", f"labels/{key}.png"
    write_bytes_atomic(tmp / image_rel, data)
    write_label(tmp / label_rel, labels)
    label_digest = hashlib.sha1(np.ascontiguousarray(labels).tobytes()).hexdigest()
    return Item(image_rel, label_rel, clip, frame, "real"), counts, hashlib.sha1(data).hexdigest(), label_digest


def _check_not_all_ignore(pixels: np.ndarray, classes: ClassTable, src: Path) -> None:
    """Masks holding only 0 and 255 are binary masks read as ids: 255 would become 'ignore'."""
    if len(classes) > 1 and pixels[1:len(classes)].sum() == 0 and pixels[classes.ignore_index] > 0:
        raise EndoSpineError(f"{src}: every label holds only background (0) and ignore ({classes.ignore_index}); "
                             "binary 0/255 masks? pass --threshold 128, or --map to say what each value means")


# -- paddleseg -------------------------------------------------------------------------------
def read_paddleseg(src: Path, opts: ImportOptions) -> tuple[list[Pair], list[str]]:
    if src.is_file():
        root = src.parent
        stem = src.stem.lower()
        lists = [(next((s for s in SPLITS if stem.startswith(s)), None), src)]
    else:
        root = src
        lists = []
        for split, names in LIST_FILES.items():
            found = next((root / n for n in names if (root / n).is_file()), None)
            if found is not None:
                lists.append((split, found))
        if not lists:
            other = [names[1] for names in LIST_FILES.values()]
            raise EndoSpineError(f"{src}: no train.txt, val.txt or test.txt, nor {', '.join(other[:-1])} or "
                                 f"{other[-1]} (PaddleSeg list files)")
    reader = MaskReader(opts.classes, opts.label_map, opts.threshold)
    entries: list[tuple[str | None, Path, Path]] = []
    seen: dict[Path, str] = {}
    for split, list_path in lists:
        lines = read_text_limited(list_path, "PaddleSeg list file").splitlines()
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise EndoSpineError(f"{list_path}:{lineno}: expected 'image_path label_path', got {line.strip()!r}")
            image = Path(os.path.normpath(root / parts[0]))
            where = f"{list_path.name}:{lineno}"
            if image in seen:
                raise EndoSpineError(f"{list_path}:{lineno}: {parts[0]} is listed twice (also {seen[image]})")
            seen[image] = where
            entries.append((split, image, Path(os.path.normpath(root / parts[1]))))
    keys = relative_keys([image for _, image, _ in entries])
    pairs = [Pair(key, label_path, _mask_label(reader, label_path), image, split=split, files=(image, label_path))
             for key, (split, image, label_path) in zip(keys, entries)]
    return pairs, []


# -- masks -----------------------------------------------------------------------------------
def read_masks(src: Path, opts: ImportOptions) -> tuple[list[Pair], list[str]]:
    images_dir = src / "images"
    masks_dir = next((src / n for n in ("masks", "labels") if (src / n).is_dir()), None)
    if not images_dir.is_dir() or masks_dir is None:
        raise EndoSpineError(f"{src}: expected an images/ folder and a masks/ (or labels/) folder")
    images = find_files(images_dir, IMAGE_SUFFIXES)
    masks = find_files(masks_dir, IMAGE_SUFFIXES)
    lonely = [images[k] for k in images if k not in masks] + [masks[k] for k in masks if k not in images]
    if lonely:
        more = f" (and {len(lonely) - 1} more unmatched files)" if len(lonely) > 1 else ""
        other = masks_dir.name if lonely[0].is_relative_to(images_dir) else "images"
        raise EndoSpineError(f"{lonely[0]}: no file with the same name in {other}/{more}")
    reader = MaskReader(opts.classes, opts.label_map, opts.threshold)
    notes = []
    if any((src / name).is_file() for names in LIST_FILES.values() for name in names):
        notes.append(f"{src} has PaddleSeg split lists: 'import paddleseg' would keep those splits")
    pairs = [Pair(key, masks[key], _mask_label(reader, masks[key]), images[key]) for key in images]
    return pairs, notes


def _mask_label(reader: MaskReader, path: Path) -> Callable[[int, int], np.ndarray]:
    return lambda h, w: reader(path)
