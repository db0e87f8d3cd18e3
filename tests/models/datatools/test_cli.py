"""Bad input to the dataset commands: exit 1 with one line naming the file and the problem."""
from __future__ import annotations

import json

import pytest

from models.cli import main
from tests.models.datatools.conftest import make_dataset


@pytest.fixture
def world(tmp_path):
    (tmp_path / "notvideo.mp4").write_text("hello")
    (tmp_path / "bad_classes.yaml").write_text("classes: nope\n")
    (tmp_path / "bad_map.yaml").write_text("bone: [1, 2\n")
    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "a.json").write_text(json.dumps({"shapes": [{"label": "bone", "points": [[0, 0], [1, 0], [1, 1]]}], "imagePath": "a.png"}))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    make_dataset(tmp_path / "ds", clips=2, per_clip=1)
    return tmp_path


CASES = [
    (["extract", "{t}/none.mp4", "--out", "{t}/o"], "none.mp4: video not found"),
    (["extract", "{t}/notvideo.mp4", "--out", "{t}/o"], "notvideo.mp4: cannot open as a video"),
    (["import", "masks", "{t}/nothing", "--out", "{t}/o"], "nothing: not found"),
    (["import", "paddleseg", "{t}/lm", "--out", "{t}/o"], "lm: no train.txt, val.txt or test.txt"),
    (["import", "labelme", "{t}/lm", "--out", "{t}/o", "--classes", "{t}/bad_classes.yaml"], "bad_classes.yaml: not a valid class table"),
    (["import", "labelme", "{t}/lm", "--out", "{t}/o", "--map", "{t}/bad_map.yaml"], "bad_map.yaml: cannot read map file"),
    (["import", "labelme", "{t}/lm", "--out", "{t}/o"], "a.png not found and no imageData"),
    (["import", "labelme", "{t}/lm", "--out", "{t}/full"], "full: already exists and is not empty"),
    (["import", "cvat", "{t}/lm", "--out", "{t}/o"], "expected labelmap.txt and SegmentationClass/"),
    (["validate", "{t}/nothing"], "nothing: dataset folder not found"),
    (["split", "{t}/lm"], "dataset.yaml: missing"),
    (["split", "{t}/ds", "--ratios", "a,b"], "--ratios 'a,b'"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0][:2]) + f"-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line(world, capsys, argv, message):
    assert main([a.format(t=world) for a in argv]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("endospine-model: error: ") and message in err
    assert "Traceback" not in captured.err + captured.out
    assert not (world / "o").exists()


@pytest.mark.parametrize("argv", [["extract", "v.mp4", "--out", "o", "--every", "0"],
                                  ["extract", "v.mp4", "--out", "o", "--dup-threshold", "1.5"],
                                  ["import", "masks", "s", "--out", "o", "--threshold", "300"],
                                  ["import", "zip", "s", "--out", "o"]])
def test_bad_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err
