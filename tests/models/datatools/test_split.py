from __future__ import annotations

import pytest
import yaml

from models.cli import main
from models.core.errors import EndoSpineError
from models.dataset import load_dataset
from models.datatools.splitting import resplit
from models.datatools.validate import validate_dataset
from tests.models.datatools.conftest import make_dataset


@pytest.fixture
def many_clips(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, clips=20, per_clip=3)
    return root


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_never_shares_a_clip(many_clips, seed):
    resplit(many_clips, ratios=(0.6, 0.2, 0.2), seed=seed)
    ds = load_dataset(many_clips)
    clips = {name: {it.clip for it in items} for name, items in ds.splits.items()}
    assert not (clips["train"] & clips["val"] or clips["train"] & clips["test"] or clips["val"] & clips["test"])
    assert sum(len(v) for v in ds.splits.values()) == 60 and all(ds.splits.values())
    assert validate_dataset(many_clips).ok
    assert yaml.safe_load((many_clips / "dataset.yaml").read_text())["split"] == \
        {"by": "clip", "ratios": [0.6, 0.2, 0.2], "seed": seed}


def test_split_is_seeded(many_clips):
    a = resplit(many_clips, seed=7)
    assert a == resplit(many_clips, seed=7)
    assert a != resplit(many_clips, seed=8)


def test_broken_old_lists_are_replaced(many_clips):
    (many_clips / "val.txt").write_text("images/gone.png labels/gone.png\n")
    resplit(many_clips)
    assert validate_dataset(many_clips).ok


def test_by_image_is_refused(many_clips, capsys):
    before = (many_clips / "train.txt").read_text()
    with pytest.raises(EndoSpineError, match="leakage"):
        resplit(many_clips, by="image")
    with pytest.raises(SystemExit) as exc:  # not offered: a usage error that says why
        main(["split", str(many_clips), "--by", "image"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "argument --by: there is no split by image" in err and "leak" in err
    assert (many_clips / "train.txt").read_text() == before


def test_cli_prints_counts(many_clips, capsys):
    assert main(["split", str(many_clips), "--ratios", "0.8,0.1,0.1", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["train", "48", "images", "80.0%"]
    assert "16 clips" in out.splitlines()[0]


def test_too_few_clips_warns(tmp_path, capsys):
    make_dataset(tmp_path / "ds", clips=4, per_clip=1)
    assert main(["split", str(tmp_path / "ds"), "--ratios", "1,1,1,1"]) == 1      # four ratios: one-line error
    assert "--ratios" in capsys.readouterr().err
    (tmp_path / "one").mkdir()
    make_dataset(tmp_path / "one" / "ds", clips=1, per_clip=2)
    assert main(["split", str(tmp_path / "one" / "ds")]) == 0
    assert "warning: val, test got no clip" in capsys.readouterr().out
