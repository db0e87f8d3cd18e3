"""Hostile files for the hostile corpus (app/diagnostics/hostile.py), made at run time.

- image bombs: a small real image of each format whose header is rewritten to declare a huge
  size (a few hundred bytes that a decoder would expand to gigabytes);
- YAML alias bombs ("billion laughs"): a few hundred bytes that expand to millions of nodes;
- a pickle that runs code when loaded (it creates a marker file: harmless, and visible);
- videos: an 8 s still inside a variable-frame-rate MP4, a raw H.264 stream, a raw stream whose
  resolution grows mid-stream;
- model folders edited after export: the manifest changed (and sealed again, so that only the
  value checks stand between the edit and the screen), a weight byte flipped, ONNX weights moved
  to an external-data file.

Only the runtime core (models.core) and libraries are used: the display never imports the pipeline.
"""
from __future__ import annotations

import pickle
import shutil
import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from models.core.yamlio import dump_yaml, read_yaml

BOMB_SIZE = (32000, 32000)   # width, height: 3 GB as 8-bit RGB


# -- image bombs ---------------------------------------------------------------------------------
def picture(h: int = 48, w: int = 64) -> np.ndarray:
    """A small BGR picture with some structure."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4 % 256, y * 5 % 256, (x + y) * 3 % 256], -1).astype(np.uint8)


def _encode(suffix: str, params: list[int] | None = None) -> bytearray:
    ok, buf = cv2.imencode(suffix, picture(), params or [])
    if not ok:
        raise RuntimeError(f"OpenCV cannot encode {suffix}")
    return bytearray(buf.tobytes())


def png_bomb(w: int, h: int) -> bytes:
    data = _encode(".png")
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))   # IHDR's CRC
    return bytes(data)


def jpeg_bomb(w: int, h: int) -> bytes:
    data = _encode(".jpg")
    pos = 2
    while pos + 4 <= len(data):
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):     # start of frame: precision, height, width
            data[pos + 5:pos + 9] = struct.pack(">HH", min(h, 65500), min(w, 65500))
            return bytes(data)
        pos += 2 + length
    raise RuntimeError("no start-of-frame marker in OpenCV's JPEG")


def tiff_bomb(w: int, h: int) -> bytes:
    data = _encode(".tif")
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag, kind = struct.unpack(order + "HH", data[at:at + 4])
        if tag in (256, 257):                # ImageWidth, ImageLength
            value = w if tag == 256 else h
            data[at + 8:at + 12] = struct.pack(order + ("HH" if kind == 3 else "I"),
                                               *((value, 0) if kind == 3 else (value,)))
    return bytes(data)


def bmp_bomb(w: int, h: int) -> bytes:
    data = _encode(".bmp")
    data[18:26] = struct.pack("<ii", w, h)
    return bytes(data)


def ppm_bomb(w: int, h: int) -> bytes:
    return f"P6\n{w} {h}\n255\n".encode() + bytes(4096)


def webp_bomb(w: int, h: int) -> bytes:
    """Lossless WebP (VP8L) declares at most 16384x16384 (268 megapixels)."""
    data = _encode(".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])
    if data[12:16] != b"VP8L":
        raise RuntimeError("OpenCV did not write a lossless WebP")
    bits = struct.unpack("<I", data[21:25])[0]
    w, h = min(w, 16384), min(h, 16384)
    data[21:25] = struct.pack("<I", (w - 1) | (h - 1) << 14 | (bits & ~((1 << 28) - 1)))
    return bytes(data)


BOMBS: dict[str, Callable[[int, int], bytes]] = {
    "png": png_bomb, "jpg": jpeg_bomb, "tif": tiff_bomb, "bmp": bmp_bomb, "ppm": ppm_bomb, "webp": webp_bomb}


def bomb(fmt: str) -> bytes:
    return BOMBS[fmt](*BOMB_SIZE)


def write_picture(path: Path, h: int = 48, w: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(path.suffix, picture(h, w))[1].tobytes())
    return path


# -- YAML and pickle -----------------------------------------------------------------------------
def alias_bomb(key: str, levels: int = 9, width: int = 9, head: str = "") -> str:
    """YAML whose `key` expands to width**levels strings through anchors and aliases."""
    lines = [head.rstrip("\n")] if head else []
    lines.append(f"a0: &a0 [{', '.join(['lol'] * width)}]")
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * width)}]")
    lines.append(f"{key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


class _RunsCode:
    """Unpickling this calls open(marker, 'w'): the file appearing is the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def code_running_pickle(marker: Path) -> bytes:
    return pickle.dumps({"weights": _RunsCode(marker)}, protocol=2)


# -- videos --------------------------------------------------------------------------------------
def _frames(n: int, w: int, h: int, start: int = 0):
    y, x = np.mgrid[0:h, 0:w]
    for i in range(start, start + n):
        yield np.stack([(x * 2 + i * 5) % 256, (y * 3 + i * 3) % 256, np.full_like(x, (i * 9) % 256)],
                       -1).astype(np.uint8)


def write_video(path: Path, times_s: list[float], size: tuple[int, int] = (160, 120), fmt: str | None = None) -> Path:
    """H.264 frames shown at the given times (seconds): a gap is a still. fmt 'h264': raw stream."""
    import av

    w, h = size
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for t, rgb in zip(times_s, _frames(len(times_s), w, h)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_still_video(path: Path, still_s: float = 8.0) -> Path:
    """1 s at 25 fps, then one frame held for still_s, then 1 s more (a variable-frame-rate MP4)."""
    before = [i / 25 for i in range(25)]
    after = [1.0 + still_s + i / 25 for i in range(25)]
    return write_video(path, before + after)


def write_raw_h264(path: Path, frames: int = 50, size: tuple[int, int] = (160, 120)) -> Path:
    return write_video(path, [i / 25 for i in range(frames)], size, fmt="h264")


def write_growing_h264(path: Path) -> Path:
    """A raw H.264 stream of 25 frames at 160x120, then 25 at 320x240 (joined recordings)."""
    small, large = path.with_suffix(".a.h264"), path.with_suffix(".b.h264")
    write_raw_h264(small, 25, (160, 120))
    write_raw_h264(large, 25, (320, 240))
    path.write_bytes(small.read_bytes() + large.read_bytes())
    small.unlink()
    large.unlink()
    return path


# -- model folders -------------------------------------------------------------------------------
def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=False)
    return dst


def edit_manifest(folder: Path, change: Callable[[dict], None], reseal: bool = True) -> None:
    """Apply `change` to manifest.yaml's content; sealed again with the current code (when it
    seals), so the edit reaches the value checks instead of stopping at the seal."""
    path = folder / "manifest.yaml"
    content = read_yaml(path, "manifest")
    content.pop("integrity", None)
    change(content)
    write_sealed = _sealer() if reseal else None
    if write_sealed is None:
        path.write_text(dump_yaml(content), encoding="utf-8")
    else:
        write_sealed(folder, content)


def _sealer():
    try:
        from models.core.runtime.manifest import write_sealed
    except ImportError:   # a version that does not seal manifests
        return None
    return write_sealed


def file_hash(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def flip_byte(path: Path, at_fraction: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    at = int(len(data) * at_fraction)
    data[at] ^= 0x55
    path.write_bytes(bytes(data))


def onnx_to_external_data(folder: Path, listed: bool) -> Path:
    """Move model.onnx's weights into model.onnx.data (the onnx package); the manifest gets the
    new model.onnx hash and, if listed, the data file with its hash. Returns the data file."""
    import onnx

    model = onnx.load(str(folder / "model.onnx"))
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="model.onnx.data", size_threshold=0)
    data = folder / "model.onnx.data"

    def change(content: dict) -> None:
        content["files"]["onnx"]["sha256"] = file_hash(folder / "model.onnx")
        if listed:
            content["files"]["onnx_data"] = {"path": data.name, "sha256": file_hash(data)}

    edit_manifest(folder, change)
    return data
