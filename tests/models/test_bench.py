from __future__ import annotations

import pytest

from models.bench import bench_model


@pytest.mark.slow
def test_bench_model_reports_each_configuration(tiny_model_dir):
    result = bench_model(str(tiny_model_dir), runs=2, warmup=1, rounds=1)
    assert result["runs"] == 2 and result["input"] == [128, 128]
    assert result["onednn_ms_median"] > 0 and result["native_ms_median"] > 0
    assert result["native_over_onednn"] > 0
    assert "onnxruntime_ms_median" not in result  # the tiny model has no model.onnx
