"""Checking a dataset on disk: every problem is found, named by file, and reported; none is fixed.

Problems (any one makes `validate` exit 1):
- dataset.yaml item records that are not valid, the same image or label listed twice, two
  images with identical bytes (a copy would leak across splits), paths that are absolute, leave
  the folder or hold whitespace;
- an image or label that is missing or unreadable (read exactly as training reads them), a label
  that is not a PNG, a label whose size differs from its image's, label values not in the class
  table (nor the ignore index);
- split list lines that are malformed, name an image not in dataset.yaml, or repeat one;
- a clip whose images are in two splits.
Warnings (reported, exit 0): no split lists, images in no split, an empty split, classes with no
pixels at all, files under images/ or labels/ that dataset.yaml does not list.
"""
from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.core.classes import ClassTable
from models.core.cliutil import plural
from models.core.errors import EndoSpineError
from models.core.imageio import read_bytes, read_image, read_label
from models.dataset import SPLITS, Item
from models.datatools.common import default_workers, label_counts, parallel_map, read_meta

Row = tuple[str, int, int, float, int]   # class name, id, pixels, share of all pixels, images holding it


@dataclass(frozen=True)
class Problem:
    file: str      # relative to the dataset folder (a list file may carry ':line')
    message: str


@dataclass
class Report:
    root: Path
    classes: ClassTable
    images: int = 0
    clips: int = 0
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)   # split -> (images, clips)
    unsplit: int = 0
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    images_with: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def class_rows(self) -> list[Row]:
        return class_rows(self.classes, self.pixels, self.images_with)

    def to_dict(self) -> dict:
        return {
            "dataset": str(self.root), "ok": self.ok, "images": self.images, "clips": self.clips,
            "splits": {k: {"images": v[0], "clips": v[1]} for k, v in self.splits.items()},
            "unsplit": self.unsplit,
            "classes": [{"name": n, "id": i, "pixels": p, "share": round(float(s), 6), "images": m}
                        for n, i, p, s, m in self.class_rows()],
            "warnings": list(self.warnings),
            "problems": [{"file": p.file, "problem": p.message} for p in self.problems],
            "seconds": round(self.seconds, 2),
        }

    def to_text(self, max_problems: int | None = None) -> str:
        t = self.classes
        lines = [f"{self.root}: {plural(self.images, 'image')}, {plural(self.clips, 'clip')}, class table '{t.name}' "
                 f"({len(t)} classes, ignore {t.ignore_index})"]
        if self.splits:
            parts = [f"{s} {plural(n, 'image')} ({plural(c, 'clip')})" for s, (n, c) in self.splits.items()]
            lines.append("splits: " + ", ".join(parts) + (f"; {self.unsplit} in no split" if self.unsplit else ""))
        lines += class_lines(self.class_rows())
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        if self.problems:
            lines.append(f"problems ({len(self.problems)}):")
            shown = sorted(self.problems, key=lambda p: p.file)
            if max_problems is not None and len(shown) > max_problems:
                lines += [f"  {p.file}: {p.message}" for p in shown[:max_problems]]
                lines.append(f"  ... and {len(shown) - max_problems} more (write them all with --report FILE)")
            else:
                lines += [f"  {p.file}: {p.message}" for p in shown]
            lines.append(f"FAILED: {len(self.problems)} problems ({self.seconds:.1f} s)")
        else:
            lines.append(f"OK: no problems ({self.seconds:.1f} s)")
        return "\n".join(lines)


def class_rows(classes: ClassTable, pixels: np.ndarray, images_with: np.ndarray) -> list[Row]:
    """(name, id, pixels, share of all pixels, images holding it) per class, then the ignore index."""
    total = max(1, int(pixels.sum()))
    ids = [(c.name, c.id) for c in classes.classes] + [("(ignore)", classes.ignore_index)]
    return [(name, cid, int(pixels[cid]), float(pixels[cid]) / total, int(images_with[cid])) for name, cid in ids]


def class_lines(rows: list[Row]) -> list[str]:
    lines = [f"  {'class':<14}{'id':>4}{'pixels':>16}{'share':>8}{'images':>8}"]
    lines += [f"  {name:<14}{cid:>4}{pixels:>16,}{share:>8.1%}{images:>8}" for name, cid, pixels, share, images in rows]
    return lines


def validate_dataset(root: str | Path, workers: int | None = None) -> Report:
    start = time.perf_counter()
    root = Path(root)
    meta = read_meta(root)  # an unreadable dataset.yaml or class table is fatal: nothing to check
    report = Report(root, meta.classes)
    add = lambda file, message: report.problems.append(Problem(file, message))  # noqa: E731
    for message in meta.bad_records:
        add("dataset.yaml", message)
    items = _unique_items(meta.items, add)
    report.images = len(items)
    report.clips = len({it.clip for it in items})

    digests: dict[str, str] = {}
    check = lambda item: _check_item(root, meta.classes, item)  # noqa: E731
    results = parallel_map(check, items, workers or default_workers(), "validate")
    for item, (counts, problems, digest) in zip(items, results):
        report.problems += problems
        if counts is not None:
            report.pixels += counts
            report.images_with += counts > 0
        if digest is not None:
            first = digests.setdefault(digest, item.image)
            if first != item.image:
                add(item.image, f"same bytes as {first} (a duplicate image)")

    _check_splits(root, items, report, add)
    for c in meta.classes.classes:
        if report.images and report.pixels[c.id] == 0:
            report.warnings.append(f"class {c.name!r} (id {c.id}) has no pixels in any label")
    _orphans(root, items, report)
    report.seconds = time.perf_counter() - start
    return report


def _unique_items(items: list[Item], add) -> list[Item]:
    seen_image: dict[str, Item] = {}
    seen_label: dict[str, Item] = {}
    out = []
    for it in items:
        if it.image in seen_image:
            add(it.image, "listed twice in dataset.yaml")
            continue
        if it.label in seen_label:
            add(it.label, f"label of both {seen_label[it.label].image} and {it.image}")
            continue
        seen_image[it.image] = seen_label[it.label] = it
        out.append(it)
    return out


def _check_item(root: Path, classes: ClassTable, item: Item):
    problems: list[Problem] = []
    prefix = f"{root}/"

    def fail(rel: str, exc: EndoSpineError) -> None:
        message = str(exc).replace(prefix, "")
        problems.append(Problem(rel, message.split(": ", 1)[1] if message.startswith(f"{rel}: ") else message))

    for rel in (item.image, item.label):
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(Problem(rel, "path must be relative, inside the dataset folder"))
        if any(ch.isspace() for ch in rel):
            problems.append(Problem(rel, "path contains whitespace (split list lines split on it)"))
    image = label = digest = None
    try:
        digest = hashlib.sha1(read_bytes(root / item.image)).hexdigest()
        image = read_image(root / item.image)
    except EndoSpineError as exc:
        fail(item.image, exc)
    if Path(item.label).suffix.lower() != ".png":
        problems.append(Problem(item.label, "label is not a PNG (lossy formats change class ids)"))
    try:
        label = read_label(root / item.label)
    except EndoSpineError as exc:
        fail(item.label, exc)
    if label is None:
        return None, problems, digest
    counts = label_counts(label)
    bad = [int(v) for v in np.flatnonzero(counts) if v not in classes.valid_ids()]
    if bad:
        problems.append(Problem(item.label, f"values {bad} are not class ids of '{classes.name}' "
                                            f"(0..{len(classes) - 1}, ignore {classes.ignore_index})"))
    if image is not None and image.shape[:2] != label.shape:
        problems.append(Problem(item.label, f"label is {label.shape[1]}x{label.shape[0]} but its image "
                                            f"{item.image} is {image.shape[1]}x{image.shape[0]}"))
    return counts, problems, digest


def _check_splits(root: Path, items: list[Item], report: Report, add) -> None:
    by_pair = {(it.image, it.label): it for it in items}
    by_image = {it.image: it for it in items}
    listed: dict[tuple[str, str], str] = {}
    clip_splits: dict[str, dict[str, str]] = defaultdict(dict)   # clip -> split -> an image
    present = [s for s in SPLITS if (root / f"{s}.txt").is_file()]
    if not present:
        report.warnings.append("no split lists (train.txt, val.txt, test.txt): run 'endospine-model split'")
        return
    for split in present:
        name = f"{split}.txt"
        try:
            lines = (root / name).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            add(name, f"cannot read ({type(exc).__name__})")
            continue
        members: list[Item] = []
        for lineno, line in enumerate(lines, 1):
            where = f"{name}:{lineno}"
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                add(where, f"expected 'image_path label_path', got {line.strip()!r}")
                continue
            pair = (parts[0], parts[1])
            if pair in listed:
                add(where, f"{parts[0]} is listed twice (also {listed[pair]})")
                continue
            listed[pair] = where
            item = by_pair.get(pair)
            if item is None:
                other = by_image.get(parts[0])
                add(where, f"{parts[0]} is not in dataset.yaml" if other is None else
                    f"{parts[0]} has label {other.label} in dataset.yaml, not {parts[1]}")
                continue
            members.append(item)
            clip_splits[item.clip].setdefault(split, item.image)
        report.splits[split] = (len(members), len({it.clip for it in members}))
        if not members:
            report.warnings.append(f"{name} is empty")
    for clip, where in clip_splits.items():
        if len(where) > 1:
            (s1, img1), (s2, img2) = list(where.items())[:2]
            add(f"{s2}.txt", f"clip {clip!r} is in {s1} ({img1}) and in {s2} ({img2}): frames of one clip "
                             "must stay in one split")
    report.unsplit = sum(1 for it in items if (it.image, it.label) not in listed)
    if report.unsplit:
        report.warnings.append(f"{report.unsplit} images are in no split list")


def _orphans(root: Path, items: list[Item], report: Report) -> None:
    known = {it.image for it in items} | {it.label for it in items}
    stray = [p.relative_to(root).as_posix() for folder in ("images", "labels") if (root / folder).is_dir()
             for p in sorted((root / folder).rglob("*")) if p.is_file()]
    stray = [s for s in stray if s not in known]
    if stray:
        report.warnings.append(f"{len(stray)} files under images/ or labels/ are not in dataset.yaml (e.g. {stray[0]})")
