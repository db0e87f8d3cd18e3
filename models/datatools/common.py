"""What the dataset tools share: dataset.yaml read leniently, clip ids, names, a parallel map."""
from __future__ import annotations

import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import cv2
import numpy as np
from tqdm import tqdm

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.dataset import Item, read_meta_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


# -- dataset.yaml ----------------------------------------------------------------------------
@dataclass
class Meta:
    path: Path
    name: str
    classes: ClassTable
    items: list[Item]
    bad_records: list[str]    # one message per item record that is not a valid Item
    extra: dict               # every other top-level key, kept as it was


def read_meta(root: Path) -> Meta:
    """dataset.yaml without the split lists (those are checked, or rewritten, by the caller)."""
    path, meta = read_meta_file(root)
    classes = ClassTable.from_dict(meta.get("classes"), source=str(path))
    records = meta.get("items") or []
    if not isinstance(records, list):
        raise EndoSpineError(f"{path}: 'items' must be a list")
    items, bad = [], []
    for n, rec in enumerate(records, 1):
        try:
            item = Item(**rec)
            if not all(isinstance(v, str) for v in (item.image, item.label, item.clip)) or type(item.frame) is not int:
                raise ValueError("image, label and clip must be text and frame a whole number")
            items.append(item)
        except (TypeError, ValueError) as exc:
            bad.append(f"item #{n}: bad record ({exc})")
    extra = {k: v for k, v in meta.items() if k not in ("format", "name", "classes", "items")}
    return Meta(path, str(meta.get("name", root.name)), classes, items, bad, extra)


def write_texts_atomic(files: dict[Path, str]) -> None:
    """Write several text files so that each is either the old or the new version, never partial.

    All are written to temporary names first, then renamed one after the other.
    """
    done: list[tuple[str, Path]] = []
    try:
        for path, text in files.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            done.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
    except OSError as exc:
        for tmp, _ in done:
            Path(tmp).unlink(missing_ok=True)
        raise EndoSpineError(f"{exc.filename or 'dataset'}: cannot write ({exc.strerror or exc})") from None
    for tmp, path in done:
        os.replace(tmp, path)


def check_out_free(out: Path) -> None:
    """Fail before any work when the output folder exists and is not empty (StagedDir's rule)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EndoSpineError(f"{out}: already exists and is not empty (choose another --out)")


# -- names and clips -------------------------------------------------------------------------
def utf8_text(text: str) -> str:
    """A name as valid UTF-8 text. Python holds the bytes of a file name that is not UTF-8 as lone
    surrogates, which no UTF-8 file (dataset.yaml, the split lists) can hold: each becomes a
    backslash escape, \\xNN for an undecodable byte (a Latin-1 'Wirbelsäule' reads 'Wirbels\\xe4ule'),
    \\uNNNN for any other lone surrogate. Valid names come back unchanged."""
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return text
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF
                   else f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def safe_name(text: str) -> str:
    """A file-name-safe version of a name: PaddleSeg list lines split on whitespace."""
    return re.sub(r"[^\w.\-/]+", "_", text).strip("_") or "_"


class ClipNamer:
    """Clip id and frame index of an image from its key (relative path without suffix).

    Without a pattern each image is its own clip (clip = key, frame 0). With --clip-from REGEX
    the pattern is searched in the key: group 1 is the clip id, group 2 (if present) the frame
    index. Example: '^(.+)_(\\d+)$' reads 'case03_000120' as clip 'case03', frame 120, which is
    how `extract` names its frames.
    """

    def __init__(self, pattern: str | None = None):
        self.pattern = pattern
        self.regex = None
        if pattern is not None:
            shown = self.shown = _quoted(pattern)
            try:
                self.regex = re.compile(pattern)
            except re.error as exc:
                raise EndoSpineError(f"--clip-from {shown}: not a valid regular expression ({exc})") from None
            if self.regex.groups < 1:
                raise EndoSpineError(f"--clip-from {shown}: needs a group '(...)' that captures the clip id")

    def __call__(self, key: str, origin: Path | str) -> tuple[str, int]:
        if self.regex is None:
            return key, 0
        m = self.regex.search(key)
        where = f"{origin}: --clip-from {self.shown}"
        if m is None:
            raise EndoSpineError(f"{where} does not match {key!r} (the image's name: its path in the source, "
                                 "without suffix)")
        clip = m.group(1)
        if clip is None:
            raise EndoSpineError(f"{where} matches {key!r} ({m.group(0)!r}) but group 1, the clip id, "
                                 "takes no part in the match; make group 1 required")
        if not clip:
            raise EndoSpineError(f"{where} matches {key!r} ({m.group(0)!r}) but group 1, the clip id, is empty; "
                                 "make it match at least one character, e.g. (.+) instead of (.*) or ()")
        frame = 0
        if self.regex.groups >= 2 and m.group(2) is not None:
            digits = m.group(2)
            if not digits:
                raise EndoSpineError(f"{where} matches {key!r} but group 2, the frame index, is empty; "
                                     r"make it match the frame number, e.g. (\d+)")
            if not (digits.isascii() and digits.isdigit()):
                raise EndoSpineError(f"{where}: group 2 must be a frame number (digits 0-9), got {digits!r} "
                                     f"in {key!r}")
            frame = int(digits)
        return clip, frame


def _quoted(text: str) -> str:
    """A pattern as the user typed it, in single quotes (repr would double every backslash)."""
    return f"'{text}'" if text.isprintable() and "'" not in text else repr(text)


# -- parallel work ---------------------------------------------------------------------------
def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int, desc: str) -> Iterator[R]:
    """fn over items in threads (OpenCV codecs release the GIL), results in order, with progress.

    The first exception stops the work: pending items are cancelled and the exception raised.
    """
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=None, leave=False)
    if workers <= 1:
        for item in items:
            yield fn(item)
            bar.update()
        bar.close()
        return
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [pool.submit(fn, item) for item in items]
        for fut in futures:
            yield fut.result()
            bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()


def label_counts(labels: np.ndarray) -> np.ndarray:
    """(256,) int64 pixel count per value of a uint8 label map (OpenCV, off the GIL, when exact)."""
    if labels.size < 1 << 24:  # float32 histogram bins are exact below 2**24
        return cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return np.bincount(labels.ravel(), minlength=256)


