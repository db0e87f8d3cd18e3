"""Reading and writing images and label maps, with one-line errors that name the file.

Images are RGB uint8 in memory. Label maps are single-channel uint8 PNGs of class ids.
Writes go to a temporary name and are renamed into place.

Every image decoded anywhere in EndoSpine passes one gate, `decode_image` (files through
`read_image`/`read_label`/`read_bytes`, in-memory bytes such as Labelme's embedded imageData
directly): the format and the declared width and height are read from the header first, by the
small parsers below, and an image above MAX_PIXELS (a 256-byte TIFF can declare 32000x32000, 3 GB
decoded) is refused before OpenCV allocates anything. A header the parsers do not recognise, or
cannot read a size from, is refused too: nothing is decoded blindly. The formats read are the
ones named in FORMATS; OpenCV's others (JPEG 2000, AVIF, Radiance HDR, PFM, EXR) are refused.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.core.errors import EndoSpineError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # what folder and image sources read
MAX_PIXELS = 8192 * 8192   # larger images are refused before decoding (a 100-byte PNG can claim 4 Gpx)
MAX_FILE_BYTES = 1 << 30   # larger image files are refused before reading (8192x8192 16-bit RGBA is 0.5 GB)
FORMATS = "PNG, JPEG, TIFF, BMP, WebP, PBM/PGM/PPM/PAM, GIF, Sun raster"


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding it."""

    format: str    # "png", "jpeg", "tiff", "bmp", "webp", "pnm", "gif", "sunraster"
    suffix: str    # the usual file suffix of that format (".png", ".jpg", ".pgm", ...)
    width: int
    height: int


# -- the header parsers: (width, height) from the first bytes, None when the header is damaged --
def _u(data: bytes, at: int, size: int, order: str = "big") -> int:
    if at < 0 or at + size > len(data):
        raise IndexError(at)
    return int.from_bytes(data[at:at + size], order)


def _png(data: bytes):
    return (_u(data, 16, 4), _u(data, 20, 4)) if data[12:16] == b"IHDR" else None


def _jpeg(data: bytes):
    i = 2
    while i + 1 < len(data):  # walk the segments to the first start-of-frame, as libjpeg does
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:        # fill byte
            i += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:   # markers without a length
            i += 2
        elif marker in (0xD9, 0xDA):   # end of image, or scan data before any frame header
            return None
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return _u(data, i + 7, 2), _u(data, i + 5, 2)
        else:
            i += 2 + _u(data, i + 2, 2)
    return None


def _tiff(data: bytes):
    order = "little" if data[:2] == b"II" else "big"
    big = _u(data, 2, 2, order) == 43    # BigTIFF: 8-byte offsets and counts, 20-byte entries
    ifd = _u(data, 8, 8, order) if big else _u(data, 4, 4, order)
    count_size, entry_size, value_at = (8, 20, 12) if big else (2, 12, 8)
    count = _u(data, ifd, count_size, order)
    found = {}
    for n in range(min(count, (len(data) - ifd) // entry_size)):   # the first directory = the first page
        entry = ifd + count_size + n * entry_size
        tag, kind = _u(data, entry, 2, order), _u(data, entry + 2, 2, order)
        if tag in (256, 257):   # ImageWidth, ImageLength: one SHORT or LONG (or LONG8 in BigTIFF) in the entry
            size = {3: 2, 4: 4, 16: 8 if big else None}.get(kind)
            if size is None or tag in found or _u(data, entry + 4, value_at - 4, order) != 1:
                return None     # another type, a count, or given twice: refused, not guessed
            found[tag] = _u(data, entry + value_at, size, order)
    return (found[256], found[257]) if len(found) == 2 else None


def _bmp(data: bytes):
    if _u(data, 14, 4, "little") == 12:   # OS/2 core header: 16-bit sizes
        return _u(data, 18, 2, "little"), _u(data, 20, 2, "little")
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)   # negative: stored top-down
    return (width, abs(height)) if len(data) >= 26 and width >= 0 else None


def _webp(data: bytes):
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":   # lossy: 14-bit sizes after the start code
        return _u(data, 26, 2, "little") & 0x3FFF, _u(data, 28, 2, "little") & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":           # lossless: 14-bit sizes minus one
        bits = _u(data, 21, 4, "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":                                      # extended: 24-bit canvas size minus one
        return _u(data, 24, 3, "little") + 1, _u(data, 27, 3, "little") + 1
    return None


_PNM_FIELD = re.compile(rb"(?:\s|#[^\r\n]*[\r\n])*(\d+)(?=[\s#])")   # whitespace and comments, a number


def _pnm(data: bytes):
    if data[1:2] == b"7":   # PAM: 'WIDTH n' and 'HEIGHT n' lines before ENDHDR
        head = data[:4096].split(b"ENDHDR")[0] if b"ENDHDR" in data[:4096] else b""
        fields = re.findall(rb"^(WIDTH|HEIGHT)[ \t]+(\d+)[ \t]*\r?$", head, re.M)
        sizes = dict(fields)
        return (int(sizes[b"WIDTH"]), int(sizes[b"HEIGHT"])) if len(fields) == len(sizes) == 2 else None
    at, sizes = 2, []
    for _ in range(2):      # P1-P6: magic, width, height (whitespace and '#' comments between)
        m = _PNM_FIELD.match(data, at, at + 4096)
        if m is None:
            return None
        sizes.append(int(m.group(1)))
        at = m.end()
    return sizes[0], sizes[1]


def _gif(data: bytes):
    return _u(data, 6, 2, "little"), _u(data, 8, 2, "little")   # the logical screen


def _sunraster(data: bytes):
    return _u(data, 4, 4), _u(data, 8, 4)


_PNM_SUFFIX = {b"1": ".pbm", b"4": ".pbm", b"2": ".pgm", b"5": ".pgm", b"3": ".ppm", b"6": ".ppm", b"7": ".pam"}
_PARSERS = (  # format, suffix (None: by content), does the signature match, size parser
    ("png", ".png", lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"), _png),
    ("jpeg", ".jpg", lambda d: d.startswith(b"\xff\xd8\xff"), _jpeg),
    ("tiff", ".tif", lambda d: d[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), _tiff),
    ("bmp", ".bmp", lambda d: d.startswith(b"BM"), _bmp),
    ("webp", ".webp", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP", _webp),
    ("pnm", None, lambda d: d[:1] == b"P" and d[1:2] in _PNM_SUFFIX and d[2:3].isspace(), _pnm),
    ("gif", ".gif", lambda d: d[:6] in (b"GIF87a", b"GIF89a"), _gif),
    ("sunraster", ".ras", lambda d: d.startswith(b"\x59\xa6\x6a\x95"), _sunraster),
)


def image_header(data: bytes, where: str | Path = "image", what: str = "image") -> ImageHeader:
    """The format and declared size of encoded image bytes, without decoding them. EndoSpineError,
    one line naming `where`: an unknown format, a header with no size, an empty or too large size."""
    for fmt, suffix, matches, parse in _PARSERS:
        if matches(data):
            break
    else:
        raise EndoSpineError(f"{where}: not a readable {what}: unknown format (reads {FORMATS})")
    try:
        size = parse(data)
    except IndexError:   # a field past the end: the header is cut short
        size = None
    if size is None:
        raise EndoSpineError(f"{where}: not a readable {what}: damaged {fmt.upper()} header (no image size)")
    width, height = size
    if width <= 0 or height <= 0:
        raise EndoSpineError(f"{where}: not a readable {what}: its header declares an empty {width}x{height} image")
    if width * height > MAX_PIXELS:
        raise EndoSpineError(f"{where}: {what} is {width}x{height}, above the {MAX_PIXELS // 10 ** 6} megapixel limit "
                             "(refused before decoding)")
    return ImageHeader(fmt, suffix or _PNM_SUFFIX[data[1:2]], width, height)


def check_image_file(path: str | Path) -> ImageHeader | None:
    """The gate's header check for a file handed to another decoder (PyAV plays a single image as
    a one-frame video, and FFmpeg decodes a picture while probing it, whatever its name): the
    ImageHeader of a file whose first bytes are a format above, None for any other file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        return None   # the caller's own open reports it
    if not any(matches(head) for _, _, matches, _ in _PARSERS):
        return None
    return image_header(read_bytes(path), path)


def decode_image(data: bytes, where: str | Path = "image", what: str = "image") -> np.ndarray:
    """The gate every image decode goes through: encoded bytes -> the array OpenCV decodes
    (IMREAD_UNCHANGED: HxW gray or HxWx3/4 BGR(A); gray with alpha comes back as the gray), after
    image_header accepted the header. EndoSpineError, one line naming `where`, for anything
    refused or undecodable."""
    header = image_header(data, where, what)
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None:
        raise EndoSpineError(f"{where}: not a readable {what} (damaged {header.format.upper()} data)")
    if img.shape[:2] not in ((header.height, header.width), (header.width, header.height)):  # (TIFF orientation)
        raise EndoSpineError(f"{where}: not a readable {what}: decodes to {img.shape[1]}x{img.shape[0]} but its "
                             f"header declares {header.width}x{header.height}")
    channels = img.shape[2] if img.ndim == 3 else 0
    if channels in (1, 2):   # gray, gray + alpha (PAM, TIFF)
        return np.ascontiguousarray(img[..., 0])
    if channels > 4:
        raise EndoSpineError(f"{where}: not a readable {what}: {channels} channels (gray, color or color + alpha)")
    return img


def read_image(path: str | Path) -> np.ndarray:
    """An image file of a format the gate reads -> HxWx3 uint8 RGB (grayscale expanded, alpha
    dropped, 16-bit scaled)."""
    path = Path(path)
    img = decode_image(read_bytes(path), path, "image")
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
    lab = decode_image(read_bytes(path), path, "label image")
    if lab.ndim == 3:
        if lab.shape[2] in (3, 4) and np.array_equal(lab[..., 0], lab[..., 1]) and np.array_equal(lab[..., 1], lab[..., 2]):
            lab = lab[..., 0]
        else:
            raise EndoSpineError(f"{path}: label must be a single-channel image of class ids, got {lab.shape[2]} color channels")
    if lab.dtype != np.uint8:
        raise EndoSpineError(f"{path}: label must be 8-bit, got {lab.dtype}")
    return np.ascontiguousarray(lab)


def folder_images(folder: Path, flag: str = "folder") -> list[Path]:
    """The image files (IMAGE_SUFFIXES) directly in a folder, sorted by name, hidden files left out;
    EndoSpineError naming the folder when it is not one or holds none."""
    if not folder.is_dir():
        raise EndoSpineError(f"{flag} {folder}: not a folder (expected a folder of images)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not p.name.startswith("."))
    if not files:
        raise EndoSpineError(f"{flag} {folder}: no images ({', '.join(IMAGE_SUFFIXES)}) directly in this folder")
    return files


def read_bytes(path: Path) -> bytes:
    """An image file's bytes for decode_image; EndoSpineError naming the file when it is missing,
    a folder, empty, unreadable or larger than MAX_FILE_BYTES (checked before reading)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise EndoSpineError(f"{path}: file is {path.stat().st_size / 2 ** 30:.1f} GiB, above the "
                                 f"{MAX_FILE_BYTES / 2 ** 30:.0f} GiB limit for one image (refused before reading)")
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
