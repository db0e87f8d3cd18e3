"""Reading and writing images and label maps, with one-line errors that name the file.

Images are RGB uint8 in memory. Label maps are single-channel uint8 PNGs of class ids.
Writes go to a temporary name and are renamed into place.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from models.errors import EndoSpineError


def read_image(path: str | Path) -> np.ndarray:
    """Any image OpenCV reads -> HxWx3 uint8 RGB (grayscale expanded, alpha dropped, 16-bit scaled)."""
    path = Path(path)
    data = read_bytes(path)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise EndoSpineError(f"{path}: not a readable image")
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
    data = read_bytes(path)
    lab = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise EndoSpineError(f"{path}: not a readable label image")
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


def write_image(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    path = Path(path)
    write_bytes_atomic(path, encode_image(rgb, path.suffix or ".png", jpeg_quality))


def write_label(path: str | Path, labels: np.ndarray) -> None:
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"labels must be HxW uint8, got {labels.dtype} {labels.shape}")
    write_bytes_atomic(Path(path), encode_image(labels, ".png"))
