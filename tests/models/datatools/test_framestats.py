"""frame-stats: appearance statistics inside the field of view, and the comparison with the real ranges."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from models.cli import main
from models.core.imageio import write_image, write_label
from models.datatools import framestats as fs


def disc_frame(size: int, bgr=(60, 120, 180), radius: float | None = None) -> np.ndarray:
    """A black square frame with a filled disc of one BGR colour: an endoscope view."""
    img = np.zeros((size, size, 3), np.uint8)
    r = int(round(radius if radius is not None else 0.45 * size))
    cv2.circle(img, (size // 2, size // 2), r, tuple(int(v) for v in bgr), thickness=-1)
    return img


def textured(size: int, seed: int = 0, smooth: bool = False, grain: int = 128) -> np.ndarray:
    """A warm disc with a fixed texture (`grain` cells across), drawn at `size` px: the same
    content at any size, never dark enough to leave the field of view."""
    rng = np.random.default_rng(seed)
    if smooth:
        yy, xx = np.mgrid[0:size, 0:size] / size
        light = (0.6 + 0.4 * xx + 0.2 * yy)[..., None]   # a gentle shading, no texture
    else:
        light = cv2.resize(rng.random((grain, grain)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        light = np.clip(0.5 + 0.8 * (light - 0.5), 0.3, 1.0)[..., None]
    img = np.clip(light * np.array([90, 140, 220], np.float32), 0, 255).astype(np.uint8)
    fov = np.zeros((size, size), np.uint8)
    cv2.circle(fov, (size // 2, size // 2), int(0.46 * size), 1, thickness=-1)
    return img * fov[..., None]


# -- one frame ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_known_colour_gives_exact_means_ratios_and_hsv():
    s = fs.frame_stats(disc_frame(200, bgr=(60, 120, 180)))
    assert (s["R"], s["G"], s["B"]) == (180.0, 120.0, 60.0)
    assert s["R/G"] == pytest.approx(1.5, abs=1e-12) and s["B/G"] == pytest.approx(0.5, abs=1e-12)
    assert s["hue_deg"] == 30.0                       # OpenCV H 15: 60 * (G - B) / (R - B) degrees
    assert s["saturation"] == pytest.approx(170 / 255)
    assert s["value"] == pytest.approx(180 / 255)
    assert s["white%"] == 0.0 and s["detail512"] == 0.0   # flat colour, the rim eroded away: no detail
    assert set(s) == set(fs.STATS)


@pytest.mark.unit
def test_interior_is_the_disc_without_its_rim():
    frame = disc_frame(200, radius=80)
    mask = fs.interior(frame)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert mask[100, 100] == 1
    assert mask[100, 100 + 70] == 0          # inside the disc, but within 12 px of its rim
    assert mask[100, 100 + 66] == 1
    area = np.count_nonzero(mask)
    # square kernels: the interior reaches 80 - 12 px along the axes, 80 - 12 * sqrt(2) along the diagonals
    assert np.pi * (80 - 12 * np.sqrt(2)) ** 2 < area < np.pi * 68 ** 2
    speck = frame.copy()
    speck[5:10, 5:10] = 255                   # a 5x5 speck outside the circle: removed by the 15x15 open
    assert np.array_equal(fs.interior(speck), mask)
    dim = frame.copy()
    dim[frame[..., 0] > 0] = (25, 25, 25)     # gray 25 is not above 25: no field of view
    assert not fs.interior(dim).any()


@pytest.mark.unit
def test_a_frame_without_enough_interior_has_no_stats():
    assert fs.frame_stats(np.zeros((100, 100, 3), np.uint8)) is None
    assert np.count_nonzero(fs.interior(disc_frame(200, radius=30))) < 1000 < \
        np.count_nonzero(fs.interior(disc_frame(200, radius=40)))
    assert fs.frame_stats(disc_frame(200, radius=30)) is None
    assert fs.frame_stats(disc_frame(200, radius=40)) is not None
    with pytest.raises(ValueError):
        fs.frame_stats(np.zeros((50, 50), np.uint8))


@pytest.mark.unit
def test_white_share_counts_pixels_whose_smallest_channel_is_above_230():
    frame = disc_frame(300, bgr=(60, 120, 180))
    frame[100:120, 100:120] = (255, 255, 255)   # white
    frame[130:150, 130:150] = (231, 240, 250)   # white: smallest channel 231
    frame[160:180, 160:180] = (230, 255, 255)   # not white: smallest channel 230
    frame[100:120, 160:180] = (255, 255, 200)   # not white: one channel low
    inside = np.count_nonzero(fs.interior(frame))
    assert fs.frame_stats(frame)["white%"] == pytest.approx(100 * 800 / inside, rel=1e-12)


@pytest.mark.unit
def test_detail_orders_texture_and_does_not_depend_on_resolution():
    one, two = textured(800), textured(1600)
    rough, smooth = fs.frame_stats(one)["detail512"], fs.frame_stats(textured(800, smooth=True))["detail512"]
    assert rough > 50 * smooth and 50 < rough < 200     # about the real frames' detail (83 [65, 111])
    assert fs.frame_stats(textured(800, grain=64))["detail512"] < rough / 4     # coarser texture, less detail
    assert fs.frame_stats(two)["detail512"] == pytest.approx(rough, rel=0.15)

    def native(img):   # ... which the plain Laplacian variance, without the 512 px scaling, is not
        inside = fs.interior(img) > 0
        return cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F)[inside].var()
    assert native(one) > 4 * native(two)


@pytest.mark.unit
def test_detail_of_a_small_view_in_a_large_frame_stays_bounded(monkeypatch):
    view = textured(200, grain=32)
    big = np.zeros((3000, 3000, 3), np.uint8)
    big[1401:1601, 1403:1603] = view    # interior ~160 px across: s ~ 3.2, the whole frame scaled ~9600 px square
    expected = fs.frame_stats(view)["detail512"]
    sizes = []
    resize = cv2.resize

    def recording(*args, **kwargs):
        out = resize(*args, **kwargs)
        sizes.append(out.shape[0] * out.shape[1])
        return out

    monkeypatch.setattr(cv2, "resize", recording)
    assert fs.frame_stats(big)["detail512"] == pytest.approx(expected, rel=0.05)
    assert sizes and max(sizes) <= fs.DETAIL_MAX_PIXELS


# -- over frames -------------------------------------------------------------------------------
@pytest.mark.unit
def test_summary_and_comparison():
    rows = [{"R": v, "G": 100.0, "hue_deg": 20.0, "R/G": None} for v in (120.0, 128.0, 190.0, 201.0, 210.0)]
    summary = fs.summarize(rows)
    assert summary["frames"] == 5
    assert summary["stats"]["R"] == {"median": 190.0, "min": 120.0, "max": 210.0, "frames": 5,
                                     "values": [120.0, 128.0, 190.0, 201.0, 210.0]}
    assert "R/G" not in summary["stats"] and "B" not in summary["stats"]
    c = fs.compare(summary)
    assert set(c) == {"R", "hue_deg"}            # G has no range; R/G has no values
    assert c["R"]["real"] == {"median": 195, "min": 128, "max": 201}
    assert c["R"]["median_inside"] is True
    assert (c["R"]["frames_inside"], c["R"]["share_inside"]) == (3, 0.6)   # 128 and 201: bounds included
    assert c["hue_deg"]["share_inside"] == 1.0
    c = fs.compare(summary, {"R": (0, 0, 150)})
    assert c["R"]["median_inside"] is False and c["R"]["frames_inside"] == 2


@pytest.mark.unit
def test_the_real_reference_ranges_are_the_measured_ones():
    assert fs.REFERENCE == {"R": (195, 128, 201), "R/G": (1.46, 1.35, 1.59), "B/G": (0.77, 0.73, 1.00),
                            "hue_deg": (20, 16, 24), "saturation": (0.47, 0.33, 0.53), "value": (0.78, 0.51, 0.80),
                            "white%": (0.00, 0.00, 0.01), "detail512": (83, 65, 111)}
    assert "PLOS ONE" in fs.REFERENCE_SOURCE


# -- inputs ------------------------------------------------------------------------------------
def _bgr_to_rgb(bgr):
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "frames"
    write_image(root / "b.png", _bgr_to_rgb(disc_frame(120, bgr=(60, 120, 180))))
    write_image(root / "sub" / "a.png", _bgr_to_rgb(disc_frame(120, bgr=(40, 100, 200))))
    write_image(root / "sub" / "deeper" / "c.jpg", _bgr_to_rgb(disc_frame(120, bgr=(50, 110, 170))))
    write_image(root / ".cache" / "x.png", _bgr_to_rgb(disc_frame(120)))   # hidden: not read
    (root / "notes.txt").write_text("not an image")
    return root


def test_a_folder_is_read_recursively_in_name_order(folder):
    inputs = fs.collect_inputs([folder])
    assert [i.path.relative_to(folder).as_posix() for i in inputs] == ["b.png", "sub/a.png", "sub/deeper/c.jpg"]
    assert {i.kind for i in inputs} == {"image"}
    doc = fs.measure([folder])
    assert (doc["frames_read"], doc["frames"]) == (3, 3)
    assert [r["R"] for r in doc["per_frame"][:2]] == [180.0, 200.0]   # BGR read right: R is the third channel


def test_a_dataset_folder_gives_only_its_images(tmp_path):
    root = tmp_path / "ds"
    for k in range(3):
        write_image(root / "images" / f"c0_{k}.png", _bgr_to_rgb(disc_frame(120, bgr=(60, 120, 180))))
        write_label(root / "labels" / f"c0_{k}.png", np.full((120, 120), 255, np.uint8))   # bright: would count
    (root / "dataset.yaml").write_text("name: ds\n")
    assert [i.path.name for i in fs.collect_inputs([root])] == ["c0_0.png", "c0_1.png", "c0_2.png"]
    doc = fs.measure([root])
    assert doc["frames"] == 3 and doc["summary"]["stats"]["R"]["median"] == 180.0


def test_max_frames_and_frames_without_a_field_of_view(folder, tmp_path):
    write_image(folder / "sub" / "black.png", np.zeros((120, 120, 3), np.uint8))
    doc = fs.measure([folder])
    assert (doc["frames_read"], doc["frames"]) == (4, 3)
    assert [w["source"] for w in doc["frames_without_fov"]] == [str(folder / "sub" / "black.png")]
    doc = fs.measure([folder], max_frames=2)
    assert (doc["frames_read"], doc["frames"]) == (2, 2)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """Seven frames, frame k a disc with R = 100 + 10 k, written with the project's VideoWriter."""
    from models.core.video import VideoWriter

    path = tmp_path_factory.mktemp("framestats") / "clip.mp4"
    with VideoWriter(path, 128, 128, fps=10, crf=0, preset="ultrafast") as writer:
        for k in range(7):
            writer.write(_bgr_to_rgb(disc_frame(128, bgr=(60, 120, 100 + 10 * k), radius=55)))
    return path


def test_a_video_gives_every_nth_frame(video):
    doc = fs.measure([video], every=3)
    assert [r["frame"] for r in doc["per_frame"]] == [0, 3, 6]
    assert [r["R"] for r in doc["per_frame"]] == pytest.approx([100, 130, 160], abs=3)   # yuv420p rounding
    assert doc["per_frame"][1]["pts"] == pytest.approx(0.3)
    assert len(fs.measure([video], every=1)["per_frame"]) == 7
    assert [r["frame"] for r in fs.measure([video], every=3, max_frames=2)["per_frame"]] == [0, 3]


# -- the command -------------------------------------------------------------------------------
def test_cli_end_to_end_with_json_and_markdown(folder, video, tmp_path, capsys):
    out_json, out_md = tmp_path / "out" / "stats.json", tmp_path / "out" / "stats.md"
    rc = main(["frame-stats", str(folder), str(video), "--every", "3", "--json", str(out_json),
               "--markdown", str(out_md)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "6 frame(s) with a field of view of 6 read" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert "195 [128, 201]" in lines["R"] and "1.46 [1.35, 1.59]" in lines["R/G"]
    assert lines["G"].split()[-1] == "-"          # no reference range for G
    assert "PLOS ONE" in out and f"wrote {out_json}" in out and f"wrote {out_md}" in out

    doc = json.loads(out_json.read_text())
    assert doc["format"] == "endospine-frame-stats/1"
    assert (doc["frames"], doc["settings"]) == (6, {"every": 3, "max_frames": None})
    assert [r["frame"] for r in doc["per_frame"]] == [None, None, None, 0, 3, 6]
    assert doc["per_frame"][0]["R"] == 180.0 and doc["per_frame"][0]["source"] == str(folder / "b.png")
    assert "values" not in doc["summary"]["stats"]["R"]        # per-frame values live in per_frame
    assert doc["summary"]["stats"]["R"]["median"] == pytest.approx(np.median([r["R"] for r in doc["per_frame"]]))
    assert doc["comparison"]["hue_deg"]["real"] == {"median": 20, "min": 16, "max": 24}
    assert doc["reference"]["stats"]["detail512"] == {"median": 83, "min": 65, "max": 111}
    expected_g = sum(1 for r in doc["per_frame"] if 1.35 <= r["R/G"] <= 1.59)
    assert doc["comparison"]["R/G"]["frames_inside"] == expected_g

    md = out_md.read_text().splitlines()
    assert md[2] == "| statistic | measured median [min, max] | real median [min, max] | median inside | frames inside |"
    assert md[3] == "|---|---|---|---|---|"
    assert len([line for line in md if line.startswith("| ")]) == 1 + len(fs.STATS)
    assert any(line.startswith("| detail512 |") and "| 83 [65, 111] |" in line for line in md)


@pytest.fixture
def bad(tmp_path):
    (tmp_path / "broken.mp4").write_text("hello, not a video")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (tmp_path / "garbage.jpg").write_text("not a jpeg")
    (tmp_path / "empty").mkdir()
    write_image(tmp_path / "dark" / "black.png", np.zeros((64, 64, 3), np.uint8))
    write_image(tmp_path / "ok.png", _bgr_to_rgb(disc_frame(120)))
    return tmp_path


BAD = [
    (["{t}/nothing.mp4"], "nothing.mp4: not found"),
    (["{t}/ok.png", "{t}/missing"], "missing: not found"),
    (["{t}/broken.mp4"], "broken.mp4: not a readable video"),
    (["{t}/broken.png"], "broken.png: not a readable image"),
    (["{t}/garbage.jpg"], "garbage.jpg: not a readable image"),
    (["{t}/empty"], "empty: no images"),
    (["{t}/dark"], "no frame has a field of view"),
    (["{t}/ok.png", "--json", "{t}/stats.txt"], "--json {t}/stats.txt: '.txt' is not a JSON file name"),
    (["{t}/ok.png", "--markdown", "{t}/ok.png"], "is the input"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[f"bad-{i}" for i in range(len(BAD))])
def test_bad_input_is_one_line(bad, capsys, argv, message):
    assert main(["frame-stats", *(a.format(t=bad) for a in argv)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("endospine-model: error: ") and message.format(t=bad) in err, err
    assert "Traceback" not in captured.err + captured.out
    assert not (bad / "stats.txt").exists()


@pytest.mark.parametrize("argv", [["frame-stats"], ["frame-stats", "x.mp4", "--every", "0"],
                                  ["frame-stats", "x.mp4", "--max-frames", "-1"]])
def test_bad_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
