"""Every reader of images goes through the one gate (models.core.imageio.decode_image): a
decompression bomb in a folder source, a dataset, a calibration folder, an import (files, masks,
Labelme's embedded imageData) ends in one line naming the file, its declared size and the limit,
never in a decode at the declared size. Bombs are made at test time (tests/imagebombs.py).
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.core.imageio import read_label, write_image, write_label
from tests.imagebombs import bomb, encoded

ROOT = Path(__file__).resolve().parents[1]
LIMIT = "above the 67 megapixel limit (refused before decoding)"


@pytest.fixture
def bombs(monkeypatch):
    """bombs(kind, ...) -> bomb bytes; any decode of those bytes fails the test at once (without
    the gate it would allocate gigabytes before failing)."""
    made: set[bytes] = set()
    real_imdecode = cv2.imdecode

    def guarded(buf, flags, *args):
        if np.asarray(buf).tobytes() in made:
            raise AssertionError("a bomb reached cv2.imdecode: decoded before its size was checked")
        return real_imdecode(buf, flags, *args)

    monkeypatch.setattr(cv2, "imdecode", guarded)
    monkeypatch.setattr(cv2, "imread", lambda *a, **k: pytest.fail("cv2.imread bypasses the gate"))

    def make(kind: str = ".tif", width: int = 32000, height: int = 32000) -> bytes:
        data = bomb(kind, width, height)
        made.add(data)
        return data
    return make


def _one_line(err: str, *parts: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.mark.unit
def test_no_reader_decodes_around_the_gate():
    """The class, kept closed: only models/core/imageio.py may call a decoder on image bytes."""
    decoders = re.compile(r"\bcv2\.(imread|imdecode|imreadmulti|imreadanimation|imcount)\b"
                          r"|\bImage\.open\(|\bplt\.imread\(")
    offenders = []
    for package in ("app", "models", "calibration"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "models/core/imageio.py":
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if decoders.search(line.split("#")[0]):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == [], "decode through models.core.imageio (decode_image / read_image / read_label):\n" + \
        "\n".join(offenders)


# -- the display's folder source -------------------------------------------------------------------
def test_render_of_a_folder_with_a_bomb_stops_in_one_line(tmp_path, tiny_model_dir, capsys, bombs):
    from app.cli import main

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.tif").write_bytes(bombs(".tif"))     # the 256 KB TIFF of the report, in miniature
    out = tmp_path / "o.mp4"
    assert main(["render", str(folder), "--out", str(out), "--model", str(tiny_model_dir)]) == 1
    _one_line(capsys.readouterr().err, f"{folder / 'a.tif'}: image is 32000x32000, {LIMIT}")
    assert not out.exists()


def test_render_of_a_folder_says_it_skipped_a_bomb_between_good_images(tmp_path, tiny_model_dir, capsys, bombs):
    """The frames around it are rendered; the skipped image is a warning line and in the summary."""
    import json

    from app.cli import main

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.png").write_bytes(encoded(".png"))
    (folder / "b.tif").write_bytes(bombs(".tif"))
    (folder / "c.png").write_bytes(encoded(".png"))
    out = tmp_path / "o.mp4"
    assert main(["render", str(folder), "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["frames"] == 2 and out.exists()
    skipped = f"frames: 1 image(s) skipped, the first: {folder / 'b.tif'}: image is 32000x32000"
    assert summary["source_note"].startswith(skipped)
    assert f"endospine render: warning: {skipped}" in captured.err


def test_render_stopped_by_max_frames_says_nothing_of_the_source_end(small_video, tmp_path, tiny_model_dir, capsys):
    """--max-frames stops reading early: that is not a file cut short, so no warning."""
    import json

    from app.cli import main

    out = tmp_path / "o.mp4"
    assert main(["render", str(small_video), "--out", str(out), "--model", str(tiny_model_dir),
                 "--max-frames", "5"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["source_note"] is None
    assert "warning" not in captured.err


@pytest.mark.unit
def test_a_folder_source_skips_a_bomb_between_good_images_and_says_so(tmp_path, bombs):
    from models.core.sources.folder import FolderSource

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.png").write_bytes(encoded(".png"))
    (folder / "b.webp").write_bytes(bombs(".webp-extended"))
    (folder / "c.bmp").write_bytes(encoded(".bmp"))
    source = FolderSource(folder)
    source.realtime = False
    source.open()
    frames = [source.read(), source.read()]
    assert source.read() is None and all(f.image.shape == (30, 50, 3) for f in frames)
    first = f"{folder / 'b.webp'}: image is 32000x32000, {LIMIT}"
    assert source.end_note() == f"frames: 1 image(s) skipped, the first: {first}"


# -- the pipeline: validate, import ----------------------------------------------------------------
def test_validate_names_each_bomb_and_goes_on(tmp_path, capsys, bombs):
    from models.cli import main
    from tests.models.datatools.conftest import make_dataset

    root = tmp_path / "ds"
    make_dataset(root)
    (root / "images/c0_0.png").write_bytes(bombs(".tif"))          # a TIFF under a .png name: content decides
    (root / "labels/c1_1.png").write_bytes(bombs(".png", 30000, 30000))
    assert main(["validate", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"images/c0_0.png: image is 32000x32000, {LIMIT}" in out
    assert f"labels/c1_1.png: label image is 30000x30000, {LIMIT}" in out
    assert "Traceback" not in out


def _labelme(path: Path, data: bytes, h: int = 30, w: int = 50) -> None:
    shape = {"label": "bone", "points": [[1, 1], [20, 1], [20, 20]], "shape_type": "polygon"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"shapes": [shape], "imagePath": "gone.png", "imageHeight": h, "imageWidth": w,
                                "imageData": base64.b64encode(data).decode()}))


def test_import_labelme_refuses_a_bomb_in_image_data(tmp_path, capsys, bombs):
    from models.cli import main

    src, out = tmp_path / "src", tmp_path / "ds"
    _labelme(src / "ok.json", encoded(".png"))
    _labelme(src / "zz.json", bombs(".png", 30000, 30000), 30000, 30000)
    assert main(["import", "labelme", str(src), "--out", str(out), "--workers", "1"]) == 1
    _one_line(capsys.readouterr().err, f"{src / 'zz.json'} (embedded imageData): image is 30000x30000, {LIMIT}")
    assert not out.exists()


@pytest.mark.parametrize("kind, suffix", [(".bmp", ".bmp"), (".tif", ".tif"), (".jpg", ".jpg"), (".webp", ".webp")])
def test_embedded_image_data_keeps_its_own_format(tmp_path, kind, suffix):
    """imageData is written under the suffix of what it is (it used to be .png unless JPEG)."""
    from models.cli import main

    src, out = tmp_path / "src", tmp_path / "ds"
    data = encoded(kind)
    _labelme(src / "f.json", data)
    assert main(["import", "labelme", str(src), "--out", str(out), "--workers", "1"]) == 0
    assert (out / "images" / f"f{suffix}").read_bytes() == data
    assert read_label(out / "labels/f.png").shape == (30, 50)


@pytest.mark.parametrize("where", ["images", "masks"])
def test_import_masks_refuses_a_bomb_image_or_mask(tmp_path, capsys, bombs, where):
    from models.cli import main

    src = tmp_path / "src"
    write_image(src / "images/a.png", np.zeros((30, 50, 3), np.uint8))
    write_label(src / "masks/a.png", np.zeros((30, 50), np.uint8))
    victim = src / where / "a.png"
    victim.write_bytes(bombs(".bmp"))
    assert main(["import", "masks", str(src), "--out", str(tmp_path / "ds"), "--workers", "1"]) == 1
    what = "image" if where == "images" else "mask image"
    _one_line(capsys.readouterr().err, f"{victim}: {what} is 32000x32000, {LIMIT}")


# -- calibration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("as_folder", [True, False])
def test_calibrate_fov_refuses_a_bomb_in_one_line(tmp_path, capsys, bombs, as_folder):
    from calibration.cli import main

    folder = tmp_path / "refs"
    folder.mkdir()
    write_image(folder / "a.png", np.zeros((30, 50, 3), np.uint8))
    victim = folder / "b.tif"
    victim.write_bytes(bombs(".tif"))
    spec = folder if as_folder else victim
    assert main(["fov", str(spec), "--out", str(tmp_path / "p.yaml")]) == 1
    _one_line(capsys.readouterr().err, f"{victim}: image is 32000x32000, {LIMIT}")
    assert not (tmp_path / "p.yaml").exists()
