"""Reading and writing images and label maps, with one-line errors that name the file.

Images are RGB uint8 in memory. Label maps are single-channel uint8 PNGs of class ids.
Writes go to a temporary name and are renamed into place.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from models.core.errors import EndoSpineError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # what folder and image sources read
MAX_PIXELS = 8192 * 8192   # larger images are refused before decoding (a 100-byte PNG can claim 4 Gpx)


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):  # walk the JPEG segments to the first start-of-frame
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def _decode(path: Path, data: bytes, what: str) -> np.ndarray:
    size = declared_size(data)
    if size and size[0] * size[1] > MAX_PIXELS:
        raise EndoSpineError(f"{path}: {what} is {size[0]}x{size[1]}, above the {MAX_PIXELS // 10 ** 6} megapixel limit")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise EndoSpineError(f"{path}: not a readable {what}")
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Any image OpenCV reads -> HxWx3 uint8 RGB (grayscale expanded, alpha dropped, 16-bit scaled)."""
    path = Path(path)
    img = _decode(path, read_bytes(path), "image")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise EndoSpineError(f"{path}: unsupported image type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    """A label PNG -> HxW uint8 class ids. Color (3-channel) label files are refused."""
    path = Path(path)
    lab = _decode(path, read_bytes(path), "label image")
    if lab.ndim == 3:
        if lab.shape[2] in (3, 4) and np.array_equal(lab[..., 0], lab[..., 1]) and np.array_equal(lab[..., 1], lab[..., 2]):
            lab = lab[..., 0]
        else:
            raise EndoSpineError(f"{path}: label must be a single-channel image of class ids, got {lab.shape[2]} color channels")
    if lab.dtype != np.uint8:
        raise EndoSpineError(f"{path}: label must be 8-bit, got {lab.dtype}")
    return np.ascontiguousarray(lab)


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EndoSpineError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise EndoSpineError(f"{path}: is a folder, expected a file") from None
    except OSError as exc:
        raise EndoSpineError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise EndoSpineError(f"{path}: file is empty")
    return data


def encode_image(rgb: np.ndarray, suffix: str = ".png", jpeg_quality: int = 95) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if suffix.lower() in (".jpg", ".jpeg") else []
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    ok, buf = cv2.imencode(suffix, bgr, params)
    if not ok:
        raise EndoSpineError(f"cannot encode image as {suffix}")
    return buf.tobytes()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise EndoSpineError(f"{path}: cannot write ({exc.strerror or exc})") from None


def write_csv_atomic(path: str | Path, rows: list[dict]) -> None:
    """Rows (dicts with the same keys, in column order) as CSV with a header, written atomically."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(Path(path), buf.getvalue().encode("utf-8"))


def write_image(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    path = Path(path)
    write_bytes_atomic(path, encode_image(rgb, path.suffix or ".png", jpeg_quality))


def write_label(path: str | Path, labels: np.ndarray) -> None:
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"labels must be HxW uint8, got {labels.dtype} {labels.shape}")
    write_bytes_atomic(Path(path), encode_image(labels, ".png"))
