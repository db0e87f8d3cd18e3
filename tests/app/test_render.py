from __future__ import annotations

import csv
import json

import av
import numpy as np
import pytest

from app.cli import main
from models.core.overlay import composite


@pytest.mark.unit
def test_composite_blends_premultiplied():
    frame = np.full((4, 6, 3), 100, np.uint8)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (100, 0, 0, 128)  # 50% red (premultiplied: 200 * 0.5)
    out = composite(frame, rgba, (2, 1, 2, 2))
    assert tuple(out[1, 2]) == (150, 50, 50)
    assert (out[0] == 100).all() and tuple(out[2, 3]) == (100, 100, 100)
    assert frame[1, 2, 0] == 100  # the input is untouched


def test_render_writes_every_frame_and_a_csv(small_video, tiny_model_dir, tmp_path, capsys):
    out, table = tmp_path / "o.mp4", tmp_path / "f.csv"
    assert main(["render", str(small_video), "--out", str(out), "--model", str(tiny_model_dir),
                 "--frames-csv", str(table), "--max-frames", "20"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == 20
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 20
    rows = list(csv.DictReader(table.open()))
    assert [int(r["frame"]) for r in rows] == list(range(20))
    assert {"pts", "bone_area", "ligament_area", "disc_area", "inference_ms"} <= set(rows[0])


def test_render_bad_input(tmp_path, tiny_model_dir, capsys):
    assert main(["render", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o.mp4"),
                 "--model", str(tiny_model_dir)]) == 1
    err = capsys.readouterr().err
    assert "missing.mp4" in err and "not found" in err
    assert main(["render", "synthetic", "--out", str(tmp_path / "o.mp4"), "--model", str(tmp_path)]) == 1
    assert "manifest.yaml" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()
