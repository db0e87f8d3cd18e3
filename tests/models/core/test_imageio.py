from __future__ import annotations

import numpy as np
import pytest

from models.core.errors import EndoSpineError
from models.core.imageio import read_image, read_label, write_image, write_label


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


def _header_claims(data: bytes, width: int, height: int, kind: str) -> bytes:
    """The same image bytes with the header's size field changed (a decompression bomb)."""
    buf = bytearray(data)
    if kind == ".png":
        buf[16:20], buf[20:24] = width.to_bytes(4, "big"), height.to_bytes(4, "big")
    else:
        sof = buf.index(b"\xff\xc0")
        buf[sof + 5:sof + 7], buf[sof + 7:sof + 9] = height.to_bytes(2, "big"), width.to_bytes(2, "big")
    return bytes(buf)


@pytest.mark.unit
@pytest.mark.parametrize("kind", [".png", ".jpg"])
def test_declared_size_and_huge_images_refused_before_decoding(tmp_path, kind):
    import cv2

    from models.core.imageio import declared_size

    data = cv2.imencode(kind, np.zeros((30, 50, 3), np.uint8))[1].tobytes()
    assert declared_size(data) == (50, 30)
    bomb = tmp_path / f"bomb{kind}"
    bomb.write_bytes(_header_claims(data, 60000, 60000, kind))
    with pytest.raises(EndoSpineError, match=r"bomb.*60000x60000, above the 67 megapixel limit"):
        read_image(bomb)
    with pytest.raises(EndoSpineError, match="above the"):
        read_label(bomb)
