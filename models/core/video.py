"""Writing videos with PyAV (H.264 in MP4 by default), atomically.

The target is checked first (models.core.outputs: not a folder, a container this writer knows
by its extension, a folder it may write in). The file is written under a temporary name beside
the target and renamed when closed cleanly. Any failure - an exception inside the `with` block,
or the encoder or the disk failing (a full disk, an I/O error) in write() or close() - removes
the partial file; a failure of the disk is one line naming the file (WriteFailed, an
EndoSpineError that is also the OSError it came from).
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from models.core.errors import EndoSpineError
from models.core.outputs import VIDEO, check_file, write_failed


def parse_resolution(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EndoSpineError(f"--resolution {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise EndoSpineError(f"--resolution {text!r}: width and height must be in 16..8192")
    return w, h


class VideoWriter:
    """Encode RGB uint8 frames to a video file.

    fragmented=True writes a fragmented MP4 (moov up front, fragments per keyframe) that stays
    playable up to the last fragment if the process dies; use it with atomic=False for recordings.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float = 30.0,
        *,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        crf: int | None = 23,
        preset: str = "medium",
        gop: int | None = None,
        fragmented: bool = False,
        faststart: bool = True,
        atomic: bool = True,
    ):
        self.path = check_file(path, VIDEO)
        if pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise EndoSpineError(f"{self.path}: {width}x{height} needs even sides for yuv420p")
        self.width, self.height = width, height
        # atomic: write under a temporary name, rename on close. Recordings (fragmented) write
        # straight to their name instead, so that a crash leaves a playable file where expected.
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}") if atomic else self.path
        self._done = False
        options: dict[str, str] = {}
        if fragmented and self.path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            options["movflags"] = "frag_keyframe+empty_moov+default_base_moof"
        elif faststart and self.path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            options["movflags"] = "+faststart"  # the index up front (faststart=False: at the end)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.tmp), mode="w", format=FORMATS[self.path.suffix.lower()],
                                      options=options)
        except (av.FFmpegError, OSError) as exc:
            if atomic:
                self.tmp.unlink(missing_ok=True)
            raise write_failed(self.path, exc, "cannot create video") from None
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self._stream = self._container.add_stream(codec, rate=rate)
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = pix_fmt
            codec_opts: dict[str, str] = {}
            if codec in ("libx264", "libx265"):
                codec_opts["preset"] = preset
                if crf is not None:
                    codec_opts["crf"] = str(crf)
            if gop:
                self._stream.codec_context.gop_size = gop
            self._stream.options = codec_opts
        except (av.FFmpegError, ValueError, OSError) as exc:
            self.abort()
            raise EndoSpineError(f"{self.path}: cannot set up the {codec} encoder ({exc})") from None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected {self.height}x{self.width}x3 uint8, got {rgb.dtype} {rgb.shape}")
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self._stream.codec_context.framerate
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:  # a full disk, an I/O error: nothing more can be written
            self.abort()
            raise write_failed(self.path, exc, "cannot write video") from None
        self.frames += 1

    def close(self) -> None:
        if self._done:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            if self.tmp != self.path:
                os.replace(self.tmp, self.path)
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise write_failed(self.path, exc, "cannot finish video") from None
        self._done = True

    def abort(self) -> None:
        """Stop writing. A staged (atomic) file is removed; a recording keeps what it has."""
        if self._done:
            return
        self._done = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - closing a broken encoder; the file is discarded anyway
            pass
        if self.tmp != self.path:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# The container for each extension models.core.outputs.VIDEO accepts (never guessed by FFmpeg).
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".ts": "mpegts"}
