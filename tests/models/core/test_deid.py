"""models/core/deid.py: the kept disc, the circle per frame, the metadata EndoSpine writes and reads
back, and what PyAV/FFmpeg would add on their own (issue 21)."""
from __future__ import annotations

import getpass
import socket
import struct
import zlib

import av
import numpy as np
import pytest

from models.core.deid import (
    CircleFinder,
    DeidPolicy,
    KeepMask,
    disallowed_image,
    disallowed_video,
    encode_image,
    image_metadata,
    parse_region,
    video_metadata,
)
from models.core.errors import EndoSpineError
from models.core.optics.fov import Circle
from models.core.optics.profile import FovSection, Profile
from models.core.video import VideoWriter, blank_encoder_sei


def _disc(w=160, h=120, cx=80.0, cy=60.0, r=40.0, level=200) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = level
    img[2:8, 2:30] = 255  # "text" in a corner
    return img


@pytest.mark.unit
def test_keep_mask_is_the_disc_plus_margin_exactly():
    c = Circle(50.3, 40.7, 20.2)
    m = KeepMask((120, 90), c, 3.0)
    yy, xx = np.mgrid[0:90, 0:120]
    expect = (xx - c.cx) ** 2 + (yy - c.cy) ** 2 <= (c.r + 3) ** 2
    assert np.array_equal(m.keep.astype(bool), expect)
    assert m.black_share == pytest.approx(1 - expect.mean())
    assert KeepMask((120, 90), None, 3).kept == 0  # no circle: nothing kept


@pytest.mark.unit
def test_apply_copies_the_inside_and_never_touches_the_frame():
    img = np.random.default_rng(0).integers(1, 255, (90, 120, 3), dtype=np.uint8)
    before = img.copy()
    m = KeepMask((120, 90), Circle(60, 45, 30), 2)
    out = m.apply(img)
    assert np.array_equal(img, before)                       # the display's frame is left as it was
    keep = m.keep.astype(bool)
    assert np.array_equal(out[keep], img[keep]) and not out[~keep].any()
    a = m.apply(img, reuse=True)
    b = m.apply(img[::-1].copy(), reuse=True)               # the buffer is reused: outside stays 0
    assert a is b and not b[~keep].any()
    wide = np.random.default_rng(1).integers(1, 255, (91, 121, 3), dtype=np.uint8)
    assert np.array_equal(m.apply(wide[:90, :120])[keep], wide[:90, :120][keep])  # a view of a larger frame
    with pytest.raises(ValueError):
        m.apply(wide)


@pytest.mark.unit
def test_finder_region_profile_detected_held_none():
    img = _disc()
    assert CircleFinder(region=Circle(1, 2, 30))(img) == Circle(1, 2, 30)
    fixed = FovSection(mode="fixed", frame_size=(160, 120), center=(80, 60), radius=40)
    f = CircleFinder(fov=fixed)
    assert f(img) == Circle(80, 60, 40) and f.source == "profile"
    f = CircleFinder(fov=fixed)
    assert f(np.zeros((100, 100, 3), np.uint8)) is None  # another shape: detect; nothing to find
    undistorted = FovSection(mode="fixed", frame_size=(160, 120), center=(10, 10), radius=9, undistorted=True)
    assert CircleFinder(fov=undistorted)(img).cx == pytest.approx(80, abs=1)  # not for raw frames: detected

    f = CircleFinder(every=3)
    found = f(img)
    assert f.source == "detected" and abs(found.r - 40) < 1.5
    for _ in range(6):  # the scope out of view: the circle is held
        assert f(np.zeros_like(img)) is not None
    assert f.detections == 3  # the first frame, then every 3rd
    g = CircleFinder()
    assert g(np.full((120, 160, 3), 90, np.uint8)) is None and g.source == "none"  # a plain camera


@pytest.mark.unit
@pytest.mark.parametrize("text", ["1,2", "a,b,c", "10,10,2", "nan,1,30", "-5,3,30"])
def test_parse_region_refuses(text):
    with pytest.raises(EndoSpineError, match="--region"):
        parse_region(text)


@pytest.mark.unit
def test_policy_tags_say_what_the_frames_keep():
    tags = DeidPolicy(model_id="m-1").tags()
    assert set(tags) == {"endospine", "frames", "model_id", "comment"} and tags["frames"] == "field-of-view"
    full = DeidPolicy(keep_full_frame=True).tags()
    assert full["frames"] == "full-frame" and "NOT de-identified".lower() in full["comment"].lower()
    assert DeidPolicy().csv_note().startswith("# EndoSpine ")
    profile = Profile.from_dict({"format": "endospine-profile/1", "deid": {"keep_full_frame": True, "margin_px": 7}})
    p = DeidPolicy.from_profile(profile)
    assert p.keep_full_frame and p.margin_px == 7


def _png_chunks(data: bytes) -> list[str]:
    at, out = 8, []
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        crc = struct.unpack(">I", data[at + 8 + size:at + 12 + size])[0]
        assert zlib.crc32(data[at + 4:at + 8 + size]) & 0xFFFFFFFF == crc
        out.append(kind.decode())
        at += 12 + size
    return out


@pytest.mark.unit
def test_images_carry_only_the_allowed_tags():
    tags = DeidPolicy(model_id="m").tags()
    png = encode_image(_disc(), ".png", tags)
    assert _png_chunks(png) == ["IHDR"] + ["tEXt"] * 4 + ["IDAT"] * (len(_png_chunks(png)) - 6) + ["IEND"]
    meta = image_metadata(png)
    assert meta["tEXt:frames"] == "field-of-view" and disallowed_image(meta) == []
    jpg = encode_image(_disc(), ".jpg", tags)
    meta = image_metadata(jpg)
    assert set(meta) == {"APP0:JFIF", "COM"} and disallowed_image(meta) == []
    # what other writers put in is caught: an EXIF block, a time chunk, a foreign text key
    exif = jpg[:2] + b"\xff\xe1" + struct.pack(">H", 12) + b"Exif\x00\x00abcd" + jpg[2:]
    assert disallowed_image(image_metadata(exif)) == ["APP1:Exif"]
    timed = png[:33] + struct.pack(">I", 7) + b"tIME" + bytes(7) + b"\x00\x00\x00\x00" + png[33:]
    assert "tIME" in disallowed_image(image_metadata(timed))
    author = png[:33] + struct.pack(">I", 10) + b"tEXtAuthor\x00DOE" + b"\x00\x00\x00\x00" + png[33:]
    assert disallowed_image(image_metadata(author)) == ["tEXt:Author"]


@pytest.mark.unit
def test_blank_encoder_sei_keeps_every_other_byte():
    text = b"\xdc\x45\xe9\xbd" * 4 + b"x264 - core 165\x00"  # x264's UUID, then its version string
    sei = b"\x06\x05" + bytes([len(text)]) + text + b"\x80"
    idr = b"\x65\x88\x84\x00\x33"
    packet = b"\x00\x00\x00\x01" + sei + b"\x00\x00\x01" + idr
    clean = blank_encoder_sei(packet)
    assert len(clean) == len(packet) and b"x264" not in clean and b"\xdc\x45" not in clean
    assert clean == packet.replace(text, b" " * len(text))   # the same length: only the payload changes
    other = b"\x00\x00\x01\x06\x01\x02\x11\x22\x80" + b"\x00\x00\x01" + idr   # another SEI (pic timing)
    assert blank_encoder_sei(other) == other
    assert blank_encoder_sei(b"\x00\x00\x00\x10" + idr) == b"\x00\x00\x00\x10" + idr  # not Annex B: untouched


# -- what the video writer puts into each container, read back -------------------------------------
FORBIDDEN = [b"Lavf5", b"Lavf6", b"Lavc", b"x264 - core", b"videolan", b"Service01"]


def _strings_of_this_machine() -> list[bytes]:
    out = []
    for name in (socket.gethostname(), getpass.getuser()):
        if name and len(name) >= 6:  # shorter ones may occur by chance in compressed bytes
            out.append(name.encode())
    return out


@pytest.mark.parametrize("suffix, fragmented", [(".mp4", False), (".mp4", True), (".mov", False), (".m4v", False),
                                                (".mkv", False), (".avi", False), (".ts", False)])
def test_video_metadata_is_the_allow_list(tmp_path, suffix, fragmented):
    """FFmpeg by default writes 'encoder: Lavf62...' (MP4, MOV, MKV; AVI 'software'), MKV a random
    segment id, MPEG-TS 'FFmpeg'/'Service01', and x264 its version and settings into the first
    packet: none of it may reach a written file; EndoSpine's tags must."""
    path = tmp_path / f"v{suffix}"
    policy = DeidPolicy(model_id="model-7")
    with policy.video_writer(path, 64, 48, 25, fragmented=fragmented, atomic=not fragmented, preset="ultrafast") as w:
        for i in range(8):
            w.write(np.full((48, 64, 3), 30 * i, np.uint8))
    meta = video_metadata(path)
    assert disallowed_video(meta) == [], meta
    container = {k.lower(): v for k, v in meta["container"].items()}
    if suffix in (".mp4", ".mov", ".m4v", ".mkv"):
        assert container["frames"] == "field-of-view" and container["model_id"] == "model-7"
        assert container["endospine"]
    if suffix == ".avi":
        assert container["comment"].startswith("EndoSpine ")
    assert "creation_time" not in container
    data = path.read_bytes()
    assert not [s for s in FORBIDDEN + _strings_of_this_machine() if s in data]
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 8  # the stripped SEI does not hurt decoding


def test_mp4_header_times_are_zero(tmp_path):
    """mvhd, tkhd and mdhd carry creation and modification times: 0, not the wall clock."""
    path = tmp_path / "v.mp4"
    with VideoWriter(path, 32, 24, 25, preset="ultrafast", metadata=DeidPolicy().tags()) as w:
        for i in range(3):
            w.write(np.zeros((24, 32, 3), np.uint8))
    data = path.read_bytes()
    for box in (b"mvhd", b"tkhd", b"mdhd"):
        at = data.index(box) + 4
        version = data[at]
        times = struct.unpack(">QQ" if version == 1 else ">II", data[at + 4:at + (20 if version == 1 else 12)])
        assert times == (0, 0), box
