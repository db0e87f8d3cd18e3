from __future__ import annotations

import numpy as np
import pytest

from models.augment import AugmentConfig, augment
from models.core.errors import EndoSpineError
from models.train.config import ExtraData, TrainConfig
from models.train.data import mixing_weights


@pytest.mark.unit
def test_config_file_and_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("iters: 50\nloss: {dice: 0.5}\naugment: {crop: 128, scale: [0.9, 1.1]}\n")
    cfg = TrainConfig.load(path, iters=70, lr=None)
    assert cfg.iters == 70 and cfg.loss.dice == 0.5 and cfg.augment.scale == (0.9, 1.1)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.unit
@pytest.mark.parametrize("text", ["bogus: 1", "iters: 0", "model: resnet", "input_size: 100", "loss: {ohem_fraction: 2}",
                                  "- a list"])
def test_bad_config_names_the_file(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(EndoSpineError) as exc:
        TrainConfig.load(path)
    assert str(path) in str(exc.value)


@pytest.mark.unit
@pytest.mark.parametrize("text, ok", [("gan", ("gan", 0.3)), ("/d/gan:0.25", ("/d/gan", 0.25)), ("x:2", None), ("x:abc", None)])
def test_extra_data_parse(text, ok):
    if ok:
        e = ExtraData.parse(text)
        assert (e.path, e.ratio) == ok
    else:
        with pytest.raises(EndoSpineError):
            ExtraData.parse(text)


@pytest.mark.unit
def test_mixing_weights_give_ratios():
    w = mixing_weights([100, 10], [0.25])
    assert w[:100].sum() == pytest.approx(0.75) and w[100:].sum() == pytest.approx(0.25)


@pytest.mark.unit
def test_augment_keeps_labels_aligned():
    """A label-colored image stays consistent with its label through geometry (nearest labels)."""
    rng = np.random.default_rng(0)
    label = np.zeros((200, 200), np.uint8)
    label[:, 100:] = 1
    image = np.zeros((200, 200, 3), np.uint8)
    image[label == 1] = 250
    cfg = AugmentConfig(crop=128, brightness=0, contrast=0, saturation=0, hue=0, gamma=(1, 1), blur=0, noise=0, jpeg=0)
    for _ in range(10):
        img, lab = augment(image, label, 200, cfg, rng)
        assert img.shape == (128, 128, 3) and lab.shape == (128, 128)
        assert set(np.unique(lab)) <= {0, 1, 255}
        inner = (lab != 255)
        inner[1:-1, 1:-1] &= (lab[:-2, 1:-1] == lab[2:, 1:-1]) & (lab[1:-1, :-2] == lab[1:-1, 2:])
        if (inner & (lab == 1)).any():
            assert img[inner & (lab == 1)].mean() > 200
        if (inner & (lab == 0)).any():
            assert img[inner & (lab == 0)].mean() < 50
