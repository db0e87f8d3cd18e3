"""Hostile split ratios and dataset.yaml files: one line naming the input, before any list is
rewritten; a dataset.yaml alias bomb refused at once."""
from __future__ import annotations

import time

import pytest

from models.cli import main
from models.core.errors import EndoSpineError
from models.dataset import load_dataset, parse_ratios, split_by_clip
from models.datatools.splitting import resplit
from tests.models.core.test_yamlio import billion_laughs
from tests.models.datatools.conftest import make_dataset

pytestmark = pytest.mark.unit

BAD_RATIOS = ["nan,0.1,0.1", "inf,0.1,0.1", "0.8,nan,0.1", "-inf,1,1", "0.8,0.1,0.2", "8,1,1", "1e400,0,0", "0.8,0.1",
              "-0.1,0.6,0.5"]


@pytest.mark.parametrize("text", BAD_RATIOS)
def test_bad_ratios_are_one_line(text):
    with pytest.raises(EndoSpineError, match=r"^--ratios .*adding up to 1"):
        parse_ratios(text)


@pytest.mark.parametrize("text, shares", [("0.8,0.1,0.1", (0.8, 0.1, 0.1)), ("1,0,0", (1.0, 0.0, 0.0)),
                                          ("0.33,0.33,0.33", (1 / 3, 1 / 3, 1 / 3))])
def test_good_ratios(text, shares):
    assert parse_ratios(text) == pytest.approx(shares) and sum(parse_ratios(text)) == pytest.approx(1.0)


@pytest.mark.parametrize("text", ["nan,0.1,0.1", "0.5,0.5,0.5"])
def test_split_command_refuses_before_rewriting_the_lists(tmp_path, capsys, text):
    root = tmp_path / "ds"
    make_dataset(root, clips=4, per_clip=2)
    before = {p.name: p.read_bytes() for p in root.glob("*.txt")} | {"dataset.yaml": (root / "dataset.yaml").read_bytes()}
    assert main(["split", str(root), "--ratios", text]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and f"--ratios {text!r}" in err and "Traceback" not in captured.err + captured.out
    after = {p.name: p.read_bytes() for p in root.glob("*.txt")} | {"dataset.yaml": (root / "dataset.yaml").read_bytes()}
    assert after == before


def test_programmatic_ratios_are_checked_too(tmp_path):
    root = tmp_path / "ds"
    items = make_dataset(root, clips=4, per_clip=2)
    with pytest.raises(EndoSpineError, match="adding up to 1"):
        resplit(root, ratios=(float("nan"), 0.1, 0.1))
    with pytest.raises(EndoSpineError, match="adding up to 1"):
        split_by_clip(items, (0.8, 0.1, float("inf")))


def test_a_dataset_yaml_alias_bomb_is_refused_at_once(tmp_path):
    root = tmp_path / "ds"
    make_dataset(root, clips=2, per_clip=1)
    meta = root / "dataset.yaml"
    meta.write_text(meta.read_text() + "bomb:\n" + "".join(f"  {line}\n" for line in billion_laughs().splitlines()))
    t0 = time.monotonic()
    with pytest.raises(EndoSpineError) as exc:
        load_dataset(root)
    assert time.monotonic() - t0 < 2
    assert str(exc.value).startswith(f"{meta}: ") and "alias" in str(exc.value)[len(f"{meta}: "):]
