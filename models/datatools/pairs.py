"""What every import reader hands to the importer: Pairs (an image and how to make its label map)
under ImportOptions, and the two file helpers the readers share.

The readers (paddleseg and mask folders in importers.py, labelme.py, cvat.py) build Pairs from
a source folder; importers.import_dataset checks and converts them. Readers import this module,
the importer imports the readers: no reader imports the importer.

Annotation files come from other people's tools and are read with limits (read_text_limited,
read_bytes_limited, load_json_limited): a regular file of at most MAX_ANNOTATION_BYTES, UTF-8, and for JSON at most
MAX_JSON_DEPTH levels of nesting and MAX_JSON_CONTAINERS lists and objects, counted by a scan of
the bytes before json.loads (which recurses and would end in RecursionError on a deep file).
"""
from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from models.core.classes import ClassTable
from models.core.errors import EndoSpineError
from models.datatools.common import default_workers
from models.datatools.masks import LabelMap

MAX_ANNOTATION_BYTES = 64 * 2 ** 20   # a Labelme file with a 4K image embedded is about 20 MB
MAX_JSON_DEPTH = 64                   # a Labelme file nests 4 deep (file, shapes, shape, points, point)
MAX_JSON_CONTAINERS = 2_000_000       # every point is a list: 2 M points is far beyond any annotation


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


def read_text_limited(path: Path, what: str = "file", limit: int | None = None) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes (default MAX_ANNOTATION_BYTES);
    else a one-line EndoSpineError."""
    return _decode(path, what, read_bytes_limited(path, what, limit))


def read_bytes_limited(path: Path, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Opened without blocking, so a named
    pipe or a device called '.json' is refused instead of waited on."""
    limit = MAX_ANNOTATION_BYTES if limit is None else limit
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise EndoSpineError(f"{path}: not a regular file (expected a {what})")
            data = f.read(limit + 1)     # never more than the limit, even if the file grows
    except FileNotFoundError:
        raise EndoSpineError(f"{path}: {what} not found") from None
    except (OSError, ValueError) as exc:   # ValueError: a NUL byte in the name
        raise EndoSpineError(f"{path}: cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from None
    if len(data) > limit:
        raise EndoSpineError(f"{path}: larger than {limit:,} bytes; too large for a {what}")
    return data


def _decode(path: Path, what: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EndoSpineError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def load_json_limited(path: Path, what: str = "JSON file", limit: int | None = None):
    """The parsed content of a JSON file read with read_bytes_limited's limits, its nesting and
    its number of lists and objects checked before parsing; any problem is one EndoSpineError line."""
    data = read_bytes_limited(path, what, limit)
    depth, containers = json_nesting(data)
    if containers > MAX_JSON_CONTAINERS:
        raise EndoSpineError(f"{path}: more than {MAX_JSON_CONTAINERS:,} lists and objects; too large for a {what}")
    if depth > MAX_JSON_DEPTH:
        raise EndoSpineError(f"{path}: JSON nested {depth} levels deep (the limit is {MAX_JSON_DEPTH}); "
                             f"not a {what}")
    text = _decode(path, what, data)
    del data
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EndoSpineError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (ValueError, RecursionError, MemoryError) as exc:   # e.g. an integer of 5000 digits
        first = (str(exc).splitlines() or [""])[0][:80]
        raise EndoSpineError(f"{path}: not usable JSON ({type(exc).__name__}: {first})") from None


_ESCAPE = re.compile(rb"\\.", re.S)
_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def json_nesting(data: bytes) -> tuple[int, int]:
    """(deepest nesting, number of lists and objects) of JSON text, found without parsing it.

    Escapes are dropped, then every byte but quotes and brackets, then strings (which may hold
    brackets); what is left is brackets only. UTF-8 multi-byte characters hold no ASCII bytes.
    """
    brackets = _STRING.sub(b"", _ESCAPE.sub(b"", data).translate(None, _NOT_STRUCTURE))
    opens = brackets.count(b"[") + brackets.count(b"{")
    if opens > MAX_JSON_CONTAINERS or len(brackets) > 2 * MAX_JSON_CONTAINERS + 2:
        return 0, max(opens, MAX_JSON_CONTAINERS + 1)   # refused on the count; no need for the depth
    if not opens:
        return 0, 0
    codes = np.frombuffer(brackets, np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max()), opens
