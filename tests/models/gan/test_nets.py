"""The GAN's networks: shapes, determinism, spectral norm, condition encoding, and that training learns."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.errors import EndoSpineError
from models.gan.config import GanConfig
from models.gan.nets import build_gan, encode_labels, from_image, paddle, to_image
from models.gan.train import make_optimizers, train_step

pytestmark = pytest.mark.unit
CLASSES = default_classes()


def _nets(seed: int, size: int = 32, width: int = 8):
    paddle.seed(seed)
    return build_gan(GanConfig(size=size, ngf=width, ndf=width), len(CLASSES))


def _cond(n: int, size: int, seed: int = 0) -> np.ndarray:
    labels = np.random.default_rng(seed).integers(0, 4, (n, size, size)).astype(np.uint8)
    labels[:, :2] = 255
    return encode_labels(labels, CLASSES)


@pytest.mark.parametrize("size", [32, 64])
def test_generator_shape_range_and_determinism(size):
    cond = paddle.to_tensor(_cond(2, size))
    outs = []
    for seed in (5, 5, 6):
        g, _ = _nets(seed, size)
        g.eval()
        outs.append(g(cond).numpy())
    assert outs[0].shape == (2, 3, size, size)
    assert np.abs(outs[0]).max() <= 1.0
    np.testing.assert_array_equal(outs[0], outs[1])  # same seed, same weights, same pictures
    assert np.abs(outs[0] - outs[2]).mean() > 1e-3  # another seed, other weights


def test_discriminator_patch_grid_and_features():
    _, d = _nets(0, 64)
    score, feats = d(paddle.to_tensor(_cond(2, 64)), paddle.zeros([2, 3, 64, 64]))
    # 64 -> 32 -> 16 -> 8 (stride 2) -> 7 (stride 1) -> 6 (head): a 6x6 grid of patch scores
    assert score.shape == [2, 1, 6, 6]
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]


def test_spectral_norm_keeps_top_singular_value_near_one():
    _, d = _nets(1, 32)
    d.train()
    x, img = paddle.to_tensor(_cond(2, 32)), paddle.randn([2, 3, 32, 32])
    for _ in range(100):  # one power iteration per training forward; converged well before 100
        d(x, img)
    convs = [m for m in d.sublayers() if hasattr(m, "weight_orig")]
    assert len(convs) == 5
    for conv in convs:
        w = conv.weight.numpy().reshape(conv.weight.shape[0], -1)
        raw = conv.weight_orig.numpy().reshape(w.shape[0], -1)
        assert np.linalg.svd(w, compute_uv=False)[0] == pytest.approx(1.0, abs=0.01)
        assert abs(np.linalg.svd(raw, compute_uv=False)[0] - 1.0) > 0.05  # the raw weights are not normalized


def test_spectral_norm_state_round_trip():
    _, d = _nets(2, 32)
    x, img = paddle.to_tensor(_cond(1, 32)), paddle.randn([1, 3, 32, 32])
    d.train()
    d(x, img)
    d.eval()
    before = d(x, img)[0].numpy()
    _, fresh = _nets(9, 32)
    fresh.set_state_dict(d.state_dict())
    fresh.eval()
    np.testing.assert_allclose(fresh(x, img)[0].numpy(), before, atol=1e-5)


def test_encode_labels_one_hot_and_field_of_view():
    labels = np.array([[[0, 1, 3, 255]]], np.uint8)
    cond = encode_labels(labels, CLASSES)
    n = len(CLASSES)
    assert cond.shape == (1, n + 1, 1, 4)                      # one plane per class, then the field of view
    want = np.zeros((4, n + 1))
    for pixel, label in enumerate((0, 1, 3)):
        want[pixel, label] = want[pixel, n] = 1                # the ignore pixel (255): all zero
    np.testing.assert_array_equal(cond[0, :, 0, :].T, want)
    with pytest.raises(EndoSpineError, match=r"\[7\]"):
        encode_labels(np.array([[[7]]], np.uint8), CLASSES, "x.png")


def test_image_conversion_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    np.testing.assert_array_equal(to_image(from_image(rgb)), rgb)


def test_a_few_steps_reduce_the_l1_loss():
    """Blobs of class colors: 40 steps must bring the reconstruction error down clearly."""
    rng = np.random.default_rng(0)
    size, n = 32, 4
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n, size, size), np.uint8)
    for k in range(n):
        for c in (1, 2, 3):
            cy, cx = rng.integers(4, size - 4, 2)
            labels[k][(yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(20, 60)] = c
    palette = np.array([[150, 60, 40], [220, 150, 100], [240, 210, 160], [200, 120, 200]], np.uint8)
    images = palette[labels]
    cond, real = encode_labels(labels, CLASSES), from_image(images)
    cfg = GanConfig(size=size, ngf=8, ndf=8, lr_g=1e-3)
    g, d = _nets(0, size)
    opt_g, opt_d = make_optimizers(cfg, g, d)
    l1 = [train_step(cfg, g, d, opt_g, opt_d, cond, real)["l1"] for _ in range(40)]
    assert np.mean(l1[-5:]) < 0.6 * np.mean(l1[:5]), l1
