"""Integration: tiny dataset -> gan train (+ resume) -> synthesize -> validate -> quality -> train with GAN data."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from models.cli import main
from models.core.imageio import read_label
from models.dataset import load_dataset, write_meta, write_splits
from models.train.checkpoint import paddle, read_checkpoint
from tests.models.train.test_checkpoint import write_crafted_pickle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gan_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan")
    data, gan, synth = root / "data", root / "gan", root / "gan-data"
    assert main(["synth", "--out", str(data), "--clips", "6", "--frames", "2", "--size", "96", "--seed", "3",
                 "--workers", "1", "--ratios", "0.6,0.2,0.2"]) == 0
    cfg = root / "gan.yaml"
    cfg.write_text(yaml.safe_dump({"ngf": 8, "ndf": 8, "sample_every": 4, "checkpoint_every": 4, "log_every": 2}))
    assert main(["gan", "train", "--data", str(data), "--out", str(gan), "--config", str(cfg), "--size", "32",
                 "--iters", "6", "--batch-size", "2"]) == 0
    assert main(["gan", "synthesize", "--gan", str(gan), "--labels", str(data), "--out", str(synth), "--n", "10"]) == 0
    return root, data, gan, synth


def test_gan_folder_has_everything_and_resumes(gan_setup, tmp_path):
    _, data, gan, _ = gan_setup
    for name in ("config.yaml", "data.yaml", "state.yaml", "train.log", "metrics.csv", "samples/step_0000004.png",
                 "samples/step_0000006.png", "checkpoints/step_0000006/opt_g.opt.safetensors"):
        assert (gan / name).is_file(), name
    assert not (gan / "checkpoints/step_0000004").exists()  # older checkpoints are dropped
    assert yaml.safe_load((gan / "data.yaml").read_text())["split"] == "train"
    copy = tmp_path / "gan"
    shutil.copytree(gan, copy)
    assert main(["gan", "train", "--data", str(data), "--out", str(copy), "--iters", "8", "--resume"]) == 0
    assert yaml.safe_load((copy / "state.yaml").read_text()) == {"step": 8, "checkpoint": "checkpoints/step_0000008"}
    steps = [int(line.split(",")[0]) for line in (copy / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [2, 4, 6, 8]
    whole = tmp_path / "whole"  # the same 8 steps in one go: the resumed run ends with the same weights
    assert main(["gan", "train", "--data", str(data), "--out", str(whole), "--config", str(gan.parent / "gan.yaml"),
                 "--size", "32", "--iters", "8", "--batch-size", "2"]) == 0
    for part in ("generator", "generator_ema", "discriminator"):
        a = read_checkpoint(whole / f"checkpoints/step_0000008/{part}.safetensors")[0]
        b = read_checkpoint(copy / f"checkpoints/step_0000008/{part}.safetensors")[0]
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), part
    assert main(["gan", "train", "--data", str(data), "--out", str(copy), "--iters", "9", "--size", "64",
                 "--resume"]) == 1  # another architecture cannot resume
    assert main(["gan", "train", "--data", str(data), "--out", str(copy), "--iters", "2"]) == 1  # already a GAN


def test_synthesized_dataset_is_valid_and_marked_gan(gan_setup):
    _, data, _, synth = gan_setup
    ds = load_dataset(synth)
    assert len(ds.items) == 10 and len(ds.split("train")) == 10
    assert not ds.split("val") and not ds.split("test")
    assert {it.source for it in ds.items} == {"gan"} and all(it.clip.startswith("gan-c") for it in ds.items)
    assert ds.meta["generator"]["step"] == 6 and ds.meta["generator"]["engine"] == "endospine-gan/1"
    assert len(ds.meta["derivation"]) == 10
    for it in ds.items:
        lab = read_label(ds.path(it.label))
        assert lab.shape == (32, 32) and set(np.unique(lab)) <= set(range(len(ds.classes))) | {255}
    assert main(["validate", str(synth)]) == 0


def test_quality_writes_figures_and_grid(gan_setup, tmp_path):
    _, data, gan, _ = gan_setup
    assert main(["gan", "quality", "--gan", str(gan), "--data", str(data), "--out", str(tmp_path)]) == 0
    import json

    q = json.loads((tmp_path / "quality-val.json").read_text())
    assert q["images"] >= 2 and "Laplacian" in q["method"]["swd_x1e3"]
    for key in ("generated_vs_real", "train_vs_real"):
        assert np.isfinite(q[key]["swd_x1e3"]["mean"]) and np.isfinite(q[key]["fd_color_texture"])
    assert (tmp_path / "quality-val.png").stat().st_size > 1000


def test_training_with_gan_data_records_provenance_and_validates_on_real(gan_setup):
    root, data, _, synth = gan_setup
    run = root / "seg-run"
    cfg = root / "seg.yaml"
    cfg.write_text(yaml.safe_dump({"input_size": 128, "batch_size": 2, "eval_every": 2, "log_every": 1,
                                   "warmup_iters": 1, "workers": 0, "augment": {"crop": 128}}))
    assert main(["train", "--data", str(data), "--out", str(run), "--config", str(cfg), "--iters", "2",
                 "--extra-data", f"{synth}:0.4"]) == 0
    log = (run / "train.log").read_text()
    assert "10 gan from" in log and "share 0.40, 10 GAN-synthetic images" in log
    summary = yaml.safe_load((run / "data.yaml").read_text())
    assert [(t["gan_images"], t["batch_share"]) for t in summary["train"]] == [(0, 0.6), (10, 0.4)]
    assert summary["val"]["dataset"] == str(data) and "gan" not in summary["val"]["sources"]


def test_gan_images_never_validate(gan_setup, tmp_path):
    """A main dataset whose val split holds GAN images is refused; an extra dataset's val split is never used."""
    root, data, _, synth = gan_setup
    ds, gan = load_dataset(data), load_dataset(synth)
    mixed = tmp_path / "mixed"
    shutil.copytree(data, mixed)
    for sub in ("images", "labels"):
        for f in (synth / sub).iterdir():
            shutil.copy(f, mixed / sub / f.name)
    write_meta(mixed, ds.classes, ds.items + gan.items, "mixed")
    write_splits(mixed, {"train": ds.split("train"), "val": ds.split("val") + gan.items[:2], "test": ds.split("test")})
    cfg = root / "seg.yaml"
    assert main(["train", "--data", str(mixed), "--out", str(tmp_path / "r1"), "--config", str(cfg),
                 "--iters", "1"]) == 1
    from models.train.loop import _extra_pool

    write_splits(mixed, {"train": ds.split("train")[:2], "val": gan.items})  # an extra set with a val split
    _, items = _extra_pool(str(mixed), ds.classes)
    assert items == ds.split("train")[:2]


def test_bad_input_gives_one_line(gan_setup, tmp_path, capsys):
    _, data, gan, _ = gan_setup
    assert main(["gan", "synthesize", "--gan", str(tmp_path / "nope"), "--labels", str(data),
                 "--out", str(tmp_path / "o")]) == 1
    assert "GAN folder not found" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(gan, broken)
    (broken / "checkpoints/step_0000006/generator_ema.safetensors").unlink()
    assert main(["gan", "quality", "--gan", str(broken), "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert "generator_ema.safetensors: checkpoint file missing" in err and len(err.strip().splitlines()) == 1
    other = tmp_path / "two-class"
    shutil.copytree(data, other)
    meta = yaml.safe_load((other / "dataset.yaml").read_text())
    meta["classes"]["classes"] = meta["classes"]["classes"][:2]
    (other / "dataset.yaml").write_text(yaml.safe_dump(meta))
    assert main(["gan", "synthesize", "--gan", str(gan), "--labels", str(other), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "differ from those the GAN" in err and len(err.strip().splitlines()) == 1
    assert main(["gan", "train", "--data", str(data), "--out", str(tmp_path / "g"), "--resume"]) == 1
    assert "GAN folder not found" in capsys.readouterr().err


def test_pickle_gan_weights_are_refused_unless_trusted(gan_setup, tmp_path, capsys):
    """A crafted generator_ema.pdparams: synthesize, quality and train --resume refuse in one line naming
    --trust-pickle and no code runs; a genuine old (paddle.save) file loads with the flag, to the same images."""
    from models.gan.store import load_generator

    _, data, gan, synth = gan_setup
    _, generator = load_generator(gan)
    crafted, old, marker = tmp_path / "crafted", tmp_path / "old", tmp_path / "marker"
    for folder in (crafted, old):
        shutil.copytree(gan, folder)
        (folder / "checkpoints/step_0000006/generator_ema.safetensors").unlink()
    write_crafted_pickle(crafted / "checkpoints/step_0000006/generator_ema.pdparams", marker)
    paddle.save(generator.state_dict(), str(old / "checkpoints/step_0000006/generator_ema.pdparams"))
    capsys.readouterr()
    for folder in (crafted, old):
        for argv in (["gan", "synthesize", "--gan", str(folder), "--labels", str(data), "--out", str(tmp_path / "s")],
                     ["gan", "quality", "--gan", str(folder), "--data", str(data), "--out", str(tmp_path / "q")],
                     ["gan", "train", "--data", str(data), "--out", str(folder), "--iters", "7", "--resume"]):
            assert main(argv) == 1, argv
            err = capsys.readouterr().err.strip()
            assert "generator_ema.pdparams: an old pickle checkpoint" in err and "--trust-pickle" in err, err
            assert "\n" not in err
    assert not marker.exists() and not (tmp_path / "s").exists()

    out = tmp_path / "s"
    assert main(["gan", "synthesize", "--gan", str(old), "--labels", str(data), "--out", str(out), "--n", "10",
                 "--trust-pickle"]) == 0
    assert "any code in the file runs" in capsys.readouterr().err
    made, before = load_dataset(out), load_dataset(synth)
    assert [it.image for it in made.items] == [it.image for it in before.items]
    assert all((out / it.image).read_bytes() == (synth / it.image).read_bytes() for it in made.items)
    assert main(["gan", "train", "--data", str(data), "--out", str(old), "--iters", "7", "--resume",
                 "--trust-pickle"]) == 0
    assert (old / "checkpoints/step_0000007/generator_ema.safetensors").is_file()
