"""Reading and writing images and label maps, and the image gate every decode goes through:
each format's size read from its header, bombs and unknown headers refused before decoding."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.imageio import (
    check_image_file,
    decode_image,
    image_header,
    read_image,
    read_label,
    write_image,
    write_label,
)
from tests.imagebombs import FORMATS, bomb, encoded, picture


@pytest.mark.unit
def test_round_trips(tmp_path):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 200  # red stays red: RGB in memory, BGR only inside OpenCV
    write_image(tmp_path / "a.png", rgb)
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    lab = np.arange(35, dtype=np.uint8).reshape(5, 7)
    write_label(tmp_path / "l.png", lab)
    assert np.array_equal(read_label(tmp_path / "l.png"), lab)


@pytest.mark.unit
def test_gray_image_becomes_rgb(tmp_path):
    write_label(tmp_path / "g.png", np.full((3, 3), 9, np.uint8))
    assert read_image(tmp_path / "g.png").shape == (3, 3, 3)


@pytest.mark.unit
@pytest.mark.parametrize("content, problem", [(None, "not found"), (b"", "empty"), (b"not an image", "not a readable")])
def test_bad_files_name_the_file(tmp_path, content, problem):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    for reader in (read_image, read_label):
        with pytest.raises(EndoSpineError) as exc:
            reader(path)
        assert str(path) in str(exc.value) and problem in str(exc.value)


@pytest.mark.unit
def test_color_label_is_refused(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    write_image(tmp_path / "c.png", rgb)
    with pytest.raises(EndoSpineError, match="single-channel"):
        read_label(tmp_path / "c.png")


# -- the image gate: every format's header read before decoding ------------------------------------
@pytest.fixture
def no_decoding(monkeypatch):
    """Any decode fails the test: a refusal must come from the header alone."""
    def decoded(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called: decoded before the size was checked")
    monkeypatch.setattr(cv2, "imdecode", decoded)


@pytest.mark.unit
@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_reads_and_its_size_comes_from_the_header(tmp_path, kind):
    data = encoded(kind)
    header = image_header(data)
    assert (header.width, header.height) == (50, 30)
    path = tmp_path / f"pic{header.suffix}"
    path.write_bytes(data)
    rgb, truth = read_image(path), picture()
    assert rgb.shape == (30, 50, 3) and rgb.dtype == np.uint8
    if kind in (".pgm", ".gif"):      # stored gray
        truth = np.repeat(cv2.cvtColor(truth, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        assert read_label(path).shape == (30, 50)
    lossy = kind in (".jpg", ".webp")
    assert np.abs(rgb.astype(int) - truth).mean() < 3 if lossy else np.array_equal(rgb, truth)


@pytest.mark.unit
@pytest.mark.parametrize("kind", FORMATS)
def test_a_bomb_of_every_format_is_refused_from_its_header(tmp_path, kind, no_decoding):
    """A real small image whose header declares 32000x32000 (3 GB decoded): one line naming the
    file, the declared size and the limit, and nothing decoded."""
    path = tmp_path / f"bomb{kind.split('-')[0]}"
    path.write_bytes(bomb(kind))
    size = {".webp": "16383x16383", ".webp-lossless": "16384x16384"}.get(kind, "32000x32000")  # 14-bit fields
    for reader in (read_image, read_label, lambda p: decode_image(p.read_bytes(), p)):
        with pytest.raises(EndoSpineError) as exc:
            reader(path)
        line = str(exc.value)
        assert "\n" not in line and line.startswith(f"{path}: ")
        assert f"is {size}, above the 67 megapixel limit (refused before decoding)" in line


@pytest.mark.unit
@pytest.mark.parametrize("data, problem", [
    (b"Pf\n50 30\n-1.0\n" + bytes(50 * 30 * 4), "unknown format"),                   # PFM: float, not read
    (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 30 +X 50\n" + bytes(600), "unknown format"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(200), "unknown format"),            # JPEG 2000: not parsed
    (b"\x89PNG\r\n\x1a\n\x00\x00", "damaged PNG header"),                            # cut inside the header
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(7) + b"\xff\xda" + bytes(40), "damaged JPEG header"),
    (b"II*\x00\xff\xff\xff\x7f" + bytes(40), "damaged TIFF header"),                  # directory past the end
    (b"P6\n50 # thirty\n" + bytes(20), "damaged PNM header"),
    (bomb(".png", 0, 30), "declares an empty 0x30 image"),
    (bomb(".bmp", 12000, -12000), "is 12000x12000, above the"),                          # rows stored top-down
])
def test_unknown_and_damaged_headers_are_refused_not_decoded(tmp_path, no_decoding, data, problem):
    path = tmp_path / "x.img"
    path.write_bytes(data)
    with pytest.raises(EndoSpineError, match=re.escape(problem)) as exc:
        read_image(path)
    assert str(exc.value).startswith(f"{path}: ")


@pytest.mark.unit
def test_a_size_given_twice_in_a_tiff_is_refused_not_guessed(no_decoding):
    data = bytearray(encoded(".tif"))
    entry = int.from_bytes(data[4:8], "little") + 2          # the first directory's entries: 256, 257, ...
    assert [int.from_bytes(data[e:e + 2], "little") for e in (entry, entry + 12)] == [256, 257]
    data[entry + 12:entry + 14] = (256).to_bytes(2, "little")  # ImageLength becomes a second ImageWidth
    with pytest.raises(EndoSpineError, match="doubled.tif: not a readable image: damaged TIFF header"):
        image_header(bytes(data), "doubled.tif")


@pytest.mark.unit
def test_a_decode_that_disagrees_with_the_header_is_refused(monkeypatch):
    """Were a parser to misread a header, a bomb could pass: a decode of another size is refused."""
    import models.core.imageio as imageio

    monkeypatch.setattr(imageio, "image_header", lambda data, where, what: imageio.ImageHeader("pnm", ".ppm", 50, 31))
    with pytest.raises(EndoSpineError, match=r"t.ppm: not a readable image: decodes to 50x30 but its header "
                                             r"declares 50x31"):
        imageio.decode_image(encoded(".ppm"), "t.ppm")


@pytest.mark.unit
def test_a_file_above_the_byte_limit_is_refused_before_reading(tmp_path, monkeypatch):
    import models.core.imageio as imageio

    path = tmp_path / "big.png"
    path.write_bytes(encoded(".png") + bytes(4096))
    monkeypatch.setattr(imageio, "MAX_FILE_BYTES", 1024)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read before its size was checked"))
    with pytest.raises(EndoSpineError, match=r"big.png: file is 0.0 GiB, above the 0 GiB limit for one image"):
        read_image(path)


@pytest.mark.unit
@pytest.mark.parametrize("kind", [".tif", ".png", ".webp-extended", ".bmp"])
def test_a_picture_for_ffmpeg_is_gated_whatever_its_name(tmp_path, kind):
    """PyAV plays a single image as a one-frame video and FFmpeg decodes a picture while probing it,
    whatever the file is called: the video source runs the gate's header check first."""
    from models.core.sources.video import VideoSource

    for name in (f"bomb{kind.split('-')[0]}", "bomb.mp4"):
        path = tmp_path / name
        path.write_bytes(bomb(kind))
        with pytest.raises(EndoSpineError, match=rf"{name}: image is \d+x\d+, above the 67 megapixel limit"):
            VideoSource(path).open()
    small = tmp_path / "small.mp4"
    small.write_bytes(encoded(kind))
    assert check_image_file(small) is not None and check_image_file(tmp_path / "missing") is None


@pytest.mark.unit
def test_gray_with_alpha_reads_as_gray(tmp_path):
    """A 2-channel decode (gray + alpha, from PAM or TIFF) is the gray: readers never get 2 channels."""
    gray = picture()[..., 0]
    pam = tmp_path / "ga.pam"
    pam.write_bytes(b"P7\nWIDTH 50\nHEIGHT 30\nDEPTH 2\nMAXVAL 255\nTUPLTYPE GRAYSCALE_ALPHA\nENDHDR\n"
                    + np.stack([gray, np.full_like(gray, 255)], axis=-1).tobytes())
    assert np.array_equal(decode_image(pam.read_bytes()), gray)
    assert np.array_equal(read_label(pam), gray)
    assert np.array_equal(read_image(pam), np.repeat(gray[..., None], 3, axis=2))
