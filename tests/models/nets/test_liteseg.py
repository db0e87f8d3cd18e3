"""The shared model tests: forward shapes, a training step, export and oneDNN parity."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.nets import ARCHS, build_model
from models.nets.complexity import count_macs
from models.nets.layers import BilinearUp, bilinear_kernel, paddle


@pytest.mark.unit
@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bilinear_up_matches_opencv_inside(factor):
    x = np.random.default_rng(0).random((1, 3, 10, 12)).astype(np.float32)
    y = BilinearUp(3, factor)(paddle.to_tensor(x)).numpy()[0, 1]
    ref = cv2.resize(x[0, 1], (12 * factor, 10 * factor), interpolation=cv2.INTER_LINEAR)
    assert y.shape == ref.shape
    f = factor
    assert np.abs(y[f:-f, f:-f] - ref[f:-f, f:-f]).max() < 1e-5


@pytest.mark.unit
def test_bilinear_kernel_preserves_constants():
    k = bilinear_kernel(4)
    # each output phase sums the kernel taps that hit it: all phases must sum to 1
    for dy in range(4):
        for dx in range(4):
            assert k[dy::4, dx::4].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(ARCHS))
def test_forward_shapes_and_sizes(name):
    net = build_model(name, 5)
    net.eval()
    with paddle.no_grad():
        for h, w in [(128, 128), (256, 384)]:
            out = net(paddle.zeros([2, 3, h, w]))
            assert out.shape == [2, 5, h // 8, w // 8]


def test_cpu_model_is_light():
    net = build_model("liteseg-cpu", 4)
    assert count_macs(net, (1, 3, 384, 384)) < 1.0e9  # ~1 GMAC or less for CPU real time (docs/ARCHITECTURE.md)


def test_a_few_steps_reduce_the_loss():
    from models.train.config import LossConfig
    from models.train.losses import SegLoss

    paddle.seed(0)
    net = build_model("liteseg-cpu", 3)
    opt = paddle.optimizer.Adam(learning_rate=3e-3, parameters=net.parameters())
    loss_fn = SegLoss(LossConfig(), 3)
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 3, 128, 128)).astype(np.float32))
    y = np.zeros((2, 128, 128), np.int64)
    y[:, :64] = 1
    y[:, 100:] = 2
    y[:, :4] = 255
    y = paddle.to_tensor(y)
    losses = []
    for _ in range(8):
        loss, _ = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0] * 0.8


def test_exported_model_runs_under_onednn_and_matches_eager(tmp_path):
    """Catches a Paddle upgrade that breaks our ops under oneDNN (Paddle 3.3.x, docs/ARCHITECTURE.md)."""
    from models.export import ProbabilityHead

    paddle.seed(0)
    net = build_model("liteseg-cpu", 4)
    net.eval()
    head = ProbabilityHead(net)
    head.eval()
    paddle.jit.save(head, str(tmp_path / "model"), input_spec=[paddle.static.InputSpec([1, 3, 256, 256], "float32", "image")])
    graph = tmp_path / "model.json" if (tmp_path / "model.json").exists() else tmp_path / "model.pdmodel"
    x = np.random.default_rng(2).standard_normal((1, 3, 256, 256)).astype(np.float32)
    with paddle.no_grad():
        eager = head(paddle.to_tensor(x)).numpy()
    for onednn in (True, False):
        config = paddle.inference.Config(str(graph), str(tmp_path / "model.pdiparams"))
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(2)
        config.enable_onednn() if onednn else config.disable_onednn()
        predictor = paddle.inference.create_predictor(config)
        predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(x)
        predictor.run()
        out = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
        assert out.shape == (1, 4, 32, 32)
        assert np.abs(out - eager).max() < 1e-4, f"onednn={onednn}"
