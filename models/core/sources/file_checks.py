"""Cheap checks of a video file's structure before and after FFmpeg reads it (no decoding).

An MP4/MOV is a sequence of top-level boxes (size, type). A recording cut off before it was
finalized either lacks its index (moov written at the end: nothing can be played) or has a
last box that runs past the end of the file (moov at the start, or fragments: the part before
the cut plays). Reading the box headers tells the two apart in a few reads.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

ISO_SUFFIXES = (".mp4", ".m4v", ".mov", ".3gp")
MAX_BOXES = 100_000  # a fragmented hour has ~ 3600 fragments; beyond this the file is not sane


@dataclass(frozen=True)
class Mp4Layout:
    boxes: tuple[str, ...]   # top-level box types in file order
    truncated: bool          # the last box claims more bytes than the file has

    @property
    def has_index(self) -> bool:
        return "moov" in self.boxes

    @property
    def unplayable_cut(self) -> bool:
        """Media data, no index, and cut short: a recording that was never finalized."""
        return "mdat" in self.boxes and not self.has_index


def mp4_layout(path: str | Path) -> Mp4Layout | None:
    """The top-level boxes of an ISO media file, or None if it is not one (or not a file)."""
    path = Path(path)
    if path.suffix.lower() not in ISO_SUFFIXES or not path.is_file():
        return None
    size = path.stat().st_size
    boxes: list[str] = []
    with path.open("rb") as f:
        pos = 0
        while pos + 8 <= size and len(boxes) < MAX_BOXES:
            f.seek(pos)
            head = f.read(16)
            box_size, kind = struct.unpack(">I4s", head[:8])
            if box_size == 1 and len(head) >= 16:
                box_size = struct.unpack(">Q", head[8:16])[0]
            elif box_size == 0:
                box_size = size - pos  # "to the end of the file"
            name = kind.decode("latin-1")
            if not boxes and name != "ftyp" or box_size < 8 or not name.isprintable():
                return None if not boxes else Mp4Layout(tuple(boxes), True)
            boxes.append(name)
            if pos + box_size > size:
                return Mp4Layout(tuple(boxes), True)
            pos += box_size
    return Mp4Layout(tuple(boxes), pos < size and len(boxes) < MAX_BOXES)


def clock(seconds: float) -> str:
    """mm:ss.s, as the replay bar shows time."""
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m):02d}:{s:04.1f}"
