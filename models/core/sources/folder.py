"""`path/to/folder[?fps=N]`: the images of a folder in file-name order, N per second."""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qsl

from models.core.errors import EndoSpineError
from models.core.imageio import IMAGE_SUFFIXES, read_image
from models.core.sources.base import Source
from models.core.types import Frame


class FolderSource(Source):
    """The images of a folder, in file-name order, at a fixed rate."""

    def __init__(self, folder: str | Path, fps: float = 10.0, loop: bool = False):
        super().__init__()
        self.folder = Path(folder)
        self.name = self.folder.name or str(self.folder)
        self.fps = fps
        self.loop = loop
        self.files: list[Path] = []  # the images, in name order (after open())
        self._t0: float | None = None
        self.unreadable = 0  # images skipped because they could not be read (or were refused: too large)
        self._first_skip = ""  # why the first of them was skipped, for end_note

    @classmethod
    def from_spec(cls, spec: str, loop: bool = False) -> "FolderSource":
        """`path/to/folder[?fps=N]`, N in (0, 240] (default 10)."""
        path, _, query = spec.partition("?")
        try:
            fps = float(dict(parse_qsl(query)).get("fps", 10))
        except ValueError:
            raise EndoSpineError(f"{spec}: fps must be a number") from None
        if not 0 < fps <= 240:
            raise EndoSpineError(f"{spec}: fps must be in (0, 240]")
        return cls(path, fps=fps, loop=loop)

    def open(self) -> None:
        if not self.folder.is_dir():
            raise EndoSpineError(f"{self.folder}: folder not found")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise EndoSpineError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        first = read_image(self.files[0])
        self.size = (first.shape[1], first.shape[0])
        self.opened = True

    def read(self) -> Frame | None:
        while True:
            n = self._next_id + self.unreadable
            if n >= len(self.files) and not self.loop:
                return None
            if self._t0 is None:
                self._t0 = time.monotonic()
            if self._stop.is_set() or (self.realtime and not self._wait_until(self._t0 + n / self.fps)):
                return None
            try:
                image = read_image(self.files[n % len(self.files)])
            except EndoSpineError as exc:
                self.unreadable += 1  # skipped, counted, said at the end; the clock goes on
                self._first_skip = self._first_skip or str(exc)
                continue
            return self._frame(image, n / self.fps)

    def end_note(self) -> str:
        """'' when every image played, else how many were skipped and why the first was."""
        if not self.unreadable:
            return ""
        return f"{self.name}: {self.unreadable} image(s) skipped, the first: {self._first_skip}"
