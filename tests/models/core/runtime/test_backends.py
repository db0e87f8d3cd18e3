"""The app-side runtime on an exported model: CPU here; GPU and TensorRT where a GPU exists."""
from __future__ import annotations

import numpy as np
import pytest

from models.core.classes import default_classes
from models.core.errors import EndoSpineError
from models.core.runtime.backends import RuntimeSettings, SegmentationRuntime


def test_segment_a_wide_frame(tiny_model_dir):
    rt = SegmentationRuntime(tiny_model_dir)
    frame = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    labels, box, timings = rt.segment(frame)
    assert box == (35, 0, 90, 90) and labels.shape == (90, 90)
    assert set(np.unique(labels)) <= set(range(len(rt.classes)))
    assert set(timings) == {"preprocess", "predict", "postprocess"}
    assert rt.model_id.startswith("endospine-liteseg-cpu-128@")


def test_onednn_and_native_agree(tiny_model_dir):
    x = np.random.default_rng(1).standard_normal((1, 3, 128, 128)).astype(np.float32)
    a = SegmentationRuntime(tiny_model_dir, RuntimeSettings(onednn=True)).run_tensor(x)
    b = SegmentationRuntime(tiny_model_dir, RuntimeSettings(onednn=False)).run_tensor(x)
    assert a.shape == (1, len(default_classes()), 16, 16) and np.abs(a - b).max() < 1e-4
    assert np.allclose(a.sum(axis=1), 1, atol=1e-4)  # softmax probabilities


@pytest.mark.unit
@pytest.mark.parametrize("kw", [dict(device="npu"), dict(precision="int4"), dict(threads=0),
                                dict(backend="onnxruntime", device="gpu"), dict(backend="tvm")])
def test_bad_settings(kw):
    with pytest.raises(ValueError):
        RuntimeSettings(**kw)


def test_onnx_backend_needs_onnx_file(tiny_model_dir):
    with pytest.raises(EndoSpineError, match="export with --onnx"):
        SegmentationRuntime(tiny_model_dir, RuntimeSettings(backend="onnxruntime"))


def _has_gpu() -> bool:
    from models.core.paddle_env import import_paddle

    paddle = import_paddle()
    return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


@pytest.mark.gpu
@pytest.mark.parametrize("settings", [RuntimeSettings(device="gpu"), RuntimeSettings(device="gpu", precision="fp16"),
                                      RuntimeSettings(device="tensorrt", precision="fp16", trt_dynamic_shapes=True)])
def test_gpu_predictors_match_cpu(tiny_model_dir, tmp_path, settings):
    if not _has_gpu():
        pytest.skip("no CUDA GPU with a CUDA build of Paddle")
    if settings.device == "tensorrt":
        from dataclasses import replace
        settings = replace(settings, trt_cache_dir=str(tmp_path / "trt"))
    x = np.random.default_rng(2).standard_normal((1, 3, 128, 128)).astype(np.float32)
    cpu = SegmentationRuntime(tiny_model_dir).run_tensor(x)
    gpu = SegmentationRuntime(tiny_model_dir, settings).run_tensor(x)
    assert np.abs(cpu - gpu).max() < (2e-2 if settings.precision == "fp16" else 1e-3)
