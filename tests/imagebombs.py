"""Decompression bombs for the image-gate tests, made at test time: a real small image of each
format whose header is rewritten to declare another size (a few hundred bytes that claim
32000x32000, 3 GB once decoded). Nothing is ever decoded at the declared size here.
"""
from __future__ import annotations

import re
import struct

import cv2
import numpy as np

# the formats the gate reads, as the suffix OpenCV encodes them by (WebP in its three layouts)
FORMATS = (".png", ".jpg", ".tif", ".tif-be", ".bigtiff", ".bmp", ".webp", ".webp-lossless", ".webp-extended",
           ".ppm", ".pgm", ".pam", ".ras", ".gif")
BOMB = (32000, 32000)


def picture(h: int = 30, w: int = 50) -> np.ndarray:
    """A small RGB test picture with structure (so lossy codecs keep it recognisable)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) % 256], axis=-1).astype(np.uint8)


def encoded(kind: str, rgb: np.ndarray | None = None) -> bytes:
    """`rgb` (default: picture()) encoded as `kind` (one of FORMATS)."""
    rgb = picture() if rgb is None else rgb
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if kind == ".pgm":
        bgr = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if kind in (".tif-be", ".bigtiff"):
        return _tiff(bgr, big_endian=kind == ".tif-be", big=kind == ".bigtiff")
    if kind == ".gif":
        return _gif(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    params = {".webp": [cv2.IMWRITE_WEBP_QUALITY, 90], ".webp-lossless": [cv2.IMWRITE_WEBP_QUALITY, 101]}
    data = cv2.imencode(kind[:5], bgr, params.get(kind, []))[1].tobytes()
    if kind == ".webp-extended":   # the same lossy bitstream behind a VP8X canvas chunk
        data = _riff(_vp8x(rgb.shape[1], rgb.shape[0]) + data[12:])
    return data


def bomb(kind: str, width: int = BOMB[0], height: int = BOMB[1]) -> bytes:
    """A real small `kind` image whose header declares width x height."""
    data = bytearray(encoded(kind))
    if kind == ".png":
        data[16:24] = struct.pack(">II", width, height)
    elif kind == ".jpg":
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    elif kind in (".tif", ".tif-be", ".bigtiff"):
        order = ">" if kind == ".tif-be" else "<"
        big = kind == ".bigtiff"
        ifd = struct.unpack(order + ("Q" if big else "I"), data[8:16] if big else data[4:8])[0]
        count = struct.unpack(order + ("Q" if big else "H"), data[ifd:ifd + (8 if big else 2)])[0]
        for n in range(count):
            entry = ifd + (8 if big else 2) + n * (20 if big else 12)
            tag, typ = struct.unpack(order + "HH", data[entry:entry + 4])
            if tag in (256, 257):
                at, value = entry + (12 if big else 8), width if tag == 256 else height
                fmt = {3: "H", 4: "I", 16: "Q"}[typ]
                data[at:at + struct.calcsize(fmt)] = struct.pack(order + fmt, value)
    elif kind == ".bmp":
        data[18:26] = struct.pack("<ii", width, height)
    elif kind == ".webp":        # lossy frames hold 14 bits: the largest they can declare
        data[26:30] = struct.pack("<HH", min(width, 16383), min(height, 16383))
    elif kind == ".webp-lossless":
        bits = (min(width, 16384) - 1) | (min(height, 16384) - 1) << 14 | (data[24] >> 4) << 28   # alpha, version kept
        data[21:25] = struct.pack("<I", bits)
    elif kind == ".webp-extended":
        data[12:30] = _vp8x(width, height)
    elif kind in (".ppm", ".pgm"):
        return re.sub(rb"^(P[56]\s+)\d+(\s+)\d+", rb"\g<1>%d\g<2>%d" % (width, height), bytes(data), count=1)
    elif kind == ".pam":
        data = re.sub(rb"\nWIDTH \d+", b"\nWIDTH %d" % width, bytes(data), count=1)
        return re.sub(rb"\nHEIGHT \d+", b"\nHEIGHT %d" % height, data, count=1)
    elif kind == ".ras":
        data[4:12] = struct.pack(">II", width, height)
    elif kind == ".gif":
        data[6:10] = struct.pack("<HH", min(width, 65535), min(height, 65535))
    return bytes(data)


def _riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _vp8x(width: int, height: int) -> bytes:
    size = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"VP8X" + struct.pack("<I", 10) + bytes(4) + size


def _tiff(bgr: np.ndarray, big_endian: bool = False, big: bool = False) -> bytes:
    """An uncompressed RGB TIFF written by hand: big-endian or BigTIFF, which OpenCV does not write."""
    h, w = bgr.shape[:2]
    pixels = np.ascontiguousarray(bgr[..., ::-1]).tobytes()
    o = ">" if big_endian else "<"
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2), (273, 4, 1, 0),
            (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, len(pixels))]
    # BitsPerSample 8 given once: libtiff applies it to every sample
    head = 16 if big else 8
    ifd_size = (8 + 20 * len(tags) + 8) if big else (2 + 12 * len(tags) + 4)
    strip = head + ifd_size
    out = (b"MM" if big_endian else b"II") + (struct.pack(o + "HHHQ", 43, 8, 0, head) if big
                                              else struct.pack(o + "HI", 42, head))
    out += struct.pack(o + ("Q" if big else "H"), len(tags))
    for tag, typ, count, value in tags:
        value = strip if tag == 273 else value
        size = {3: "H", 4: "I"}[typ]
        field = struct.pack(o + size, value).ljust(8 if big else 4, b"\0")
        out += struct.pack(o + ("HHQ" if big else "HHI"), tag, typ, count) + field
    out += bytes(8 if big else 4)
    return out + pixels


def _gif(gray: np.ndarray) -> bytes:
    """A gray GIF (256-entry gray palette, uncompressed-style LZW with a clear code every 254 codes)."""
    h, w = gray.shape
    palette = bytes(v for g in range(256) for v in (g, g, g))
    codes, clear, end = [], 256, 257
    for i, px in enumerate(gray.ravel()):
        if i % 254 == 0:
            codes.append(clear)
        codes.append(int(px))
    codes.append(end)
    bits, nbits, out = 0, 0, bytearray()
    for code in codes:   # every code 9 bits wide: the table is cleared before it would grow
        bits |= code << nbits
        nbits += 9
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + palette
            + b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08" + blocks + b"\x00;")
