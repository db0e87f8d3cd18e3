"""Writing videos with PyAV (H.264 in MP4 by default), atomically.

The target is checked first (models.core.outputs: not a folder, a container this writer knows
by its extension, a folder it may write in). The file is written under a temporary name beside
the target and renamed when closed cleanly. Any failure - an exception inside the `with` block,
or the encoder or the disk failing (a full disk, an I/O error) in write() or close() - removes
the partial file; a failure of the disk is one line naming the file (WriteFailed, an
EndoSpineError that is also the OSError it came from).

What a file says besides its pictures is only what the caller gives in `metadata` (issue 21;
models/core/deid.py chooses those tags): the muxer runs with `fflags=+bitexact` (no "Lavf<version>"
encoder tag in MP4/MOV/AVI, only "Lavf" as MKV's required writing application, no random MKV
segment id), no creation time is set (MP4/MOV header times stay 0), and the version and settings
string x264 puts in its first packet (an SEI "user data unregistered" message: "x264 - core 165 -
H.264/MPEG-4 AVC codec - ... options: ...") is overwritten with spaces before it is written. MP4/MOV store the tags
as named metadata (movflags use_metadata_tags); AVI keeps only `comment`; MPEG-TS only its
service name and provider.

Encrypted (issue 21, item 3; models/core/sealed.py): with `key`, the file is `<name>.enc` (e.g.
rec-0001_raw.mp4.enc) and the muxer writes into a SealedWriter, which cannot seek back: MP4/MOV
are then always fragmented (moov up front, no faststart pass). The container is still chosen by
the name without `.enc`; the failure rules are the same (a staged file is removed, a recording
keeps what it has, sealed up to the failure).
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
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
    key: 32 bytes: write the file encrypted, as `path` + '.enc' (models.core.sealed); `self.path`
    is the name written.
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
        metadata: dict[str, str] | None = None,
        key: bytes | None = None,
    ):
        self.path = check_file(path, VIDEO)
        suffix = self.path.suffix.lower()  # the container, also for an encrypted file's name
        if key is not None:
            from models.core.sealed import sealed_name

            self.path = sealed_name(self.path)
            fragmented = True  # the encrypting file object cannot seek back (no faststart, no moov at the end)
        if pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise EndoSpineError(f"{self.path}: {width}x{height} needs even sides for yuv420p")
        self.width, self.height = width, height
        # atomic: write under a temporary name, rename on close. Recordings (fragmented) write
        # straight to their name instead, so that a crash leaves a playable file where expected.
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}") if atomic else self.path
        self._done = False
        options: dict[str, str] = {"fflags": "+bitexact"}  # no encoder version, no random ids
        iso = suffix in (".mp4", ".mov", ".m4v")
        flags = []
        if fragmented and iso:
            flags.append("frag_keyframe+empty_moov+default_base_moof")
        elif faststart and iso:
            flags.append("+faststart")  # the index up front (faststart=False: at the end)
        if metadata and iso:
            flags.append("+use_metadata_tags")  # keep the tags' own names (else only a few known ones)
        if flags:
            options["movflags"] = "".join(flags)
        self._strip_sei = codec == "libx264"
        self._sink = None  # the encrypting file object the muxer writes into (key given)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if key is not None:
                from models.core.sealed import SealedWriter

                self._sink = SealedWriter(self.tmp, key)
            self._container = av.open(self._sink if self._sink is not None else str(self.tmp), mode="w",
                                      format=FORMATS[suffix], options=options)
            self._container.metadata.update(_container_tags(metadata or {}, suffix))
        except (av.FFmpegError, OSError) as exc:
            self._close_sink(abandon=True)
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
        if self._stream.pix_fmt == "yuv420p":
            # OpenCV's conversion (BT.601, limited range, as FFmpeg's): 3 ms of CPU per 1080p frame
            # against 12 ms for the encoder's own from rgb24 (swscale has no fast path for it), the
            # same luma within one level; chroma differs only at sharp colour edges (0.2% of samples)
            frame = av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self._stream.codec_context.framerate
        try:
            for packet in self._stream.encode(frame):
                self._mux(packet)
        except (av.FFmpegError, OSError) as exc:  # a full disk, an I/O error: nothing more can be written
            self.abort()
            raise write_failed(self.path, exc, "cannot write video") from None
        self.frames += 1

    def close(self) -> None:
        if self._done:
            return
        try:
            for packet in self._stream.encode():
                self._mux(packet)
            self._container.close()
            self._close_sink()
            if self.tmp != self.path:
                os.replace(self.tmp, self.path)
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise write_failed(self.path, exc, "cannot finish video") from None
        self._done = True

    def _close_sink(self, abandon: bool = False) -> None:
        """Seal the encrypted file's last chunk and close it (abandon: close it without)."""
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.abandon() if abandon else sink.close()

    def _mux(self, packet: av.Packet) -> None:
        if self._strip_sei:  # x264 writes its version SEI once, into the first packet
            self._strip_sei = False
            data = bytes(packet)
            clean = blank_encoder_sei(data)
            if clean != data:
                packet.update(clean)
        self._container.mux(packet)

    def abort(self) -> None:
        """Stop writing. A staged (atomic) file is removed; a recording keeps what it has."""
        if self._done:
            return
        self._done = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - closing a broken encoder; the file is discarded anyway
            pass
        try:
            self._close_sink()  # a recording keeps what it has, sealed
        except Exception:  # noqa: BLE001 - the disk that failed the write may fail this too
            self._close_sink(abandon=True)
        if self.tmp != self.path:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _container_tags(tags: dict[str, str], suffix: str) -> dict[str, str]:
    """The tags as the container stores them: MPEG-TS has only a service name and provider."""
    if suffix == ".ts":
        return {"service_provider": "EndoSpine", "service_name": "EndoSpine"}
    return dict(tags)


def _nal_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit of an H.264 Annex B buffer (after its start code 00 00 01 or
    00 00 00 01); [] when the buffer does not start with a start code."""
    i = data.find(b"\x00\x00\x01")
    if i < 0 or data[:i].strip(b"\x00"):
        return []
    starts = []
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    ends = [len(data[:nxt - 3].rstrip(b"\x00")) for nxt in starts[1:]] + [len(data)]
    return list(zip(starts, ends))


def blank_encoder_sei(data: bytes) -> bytes:
    """An H.264 Annex B packet with the payload of its "user data unregistered" SEI messages (where
    x264 writes its version and settings) overwritten with spaces; the same length, every other
    byte as it was (a shorter packet could make FFmpeg's MP4-to-Annex-B filter misread the first
    sample's length field as a start code), so the stream decodes exactly as before."""
    out = None
    for start, end in _nal_spans(data):
        unit = data[start:end]
        if len(unit) < 3 or unit[0] & 0x1F != 6 or b"\x00\x00\x03" in unit:
            continue  # not an SEI, or escaped bytes in it: left alone
        i, kind, size = 1, 0, 0
        while i < len(unit) and unit[i] == 0xFF:
            kind, i = kind + 255, i + 1
        kind, i = kind + unit[i], i + 1
        while i < len(unit) and unit[i] == 0xFF:
            size, i = size + 255, i + 1
        if i >= len(unit):
            continue
        size, i = size + unit[i], i + 1
        if kind == 5 and i + size <= len(unit):
            out = out if out is not None else bytearray(data)
            out[start + i:start + i + size] = b" " * size
    return bytes(out) if out is not None else data


# The container for each extension models.core.outputs.VIDEO accepts (never guessed by FFmpeg).
FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi", ".ts": "mpegts"}
