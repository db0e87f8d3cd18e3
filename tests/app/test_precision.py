"""--precision in the display (issue 18): the worker runs the shipped model's model.int8.onnx on
ONNX Runtime when asked; a folder without one, or the Paddle backend, is one line before any window."""
from __future__ import annotations

import pytest

from app.ai.supervisor import worker_config
from app.cli import build_parser, main
from models.core.errors import EndoSpineError
from models.core.paths import shipped_model
from models.core.runtime.manifest import INT8_ROLE, load_manifest

SHIPPED = shipped_model()
has_int8 = pytest.mark.skipif(not (SHIPPED / "manifest.yaml").is_file()
                              or INT8_ROLE not in load_manifest(SHIPPED, verify=False).files,
                              reason="no shipped model with model.int8.onnx")


def test_run_render_and_bench_take_precision():
    parser = build_parser()
    for command in (["run"], ["render", "synthetic", "--out", "o.mp4"], ["bench"]):
        assert parser.parse_args(command).precision == "fp32"
        assert parser.parse_args([*command, "--precision", "int8"]).precision == "int8"
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--precision", "fp16"])   # GPU only, not offered here


def test_worker_config_refuses_int8_without_the_file_or_on_paddle(tiny_model_dir):
    assert worker_config(str(tiny_model_dir), "auto").settings.precision == "fp32"
    with pytest.raises(EndoSpineError, match=rf"{tiny_model_dir}: no INT8 model in this model folder"):
        worker_config(str(tiny_model_dir), "onnxruntime", precision="int8")
    with pytest.raises(EndoSpineError, match="INT8 runs on the onnxruntime backend only"):
        worker_config(str(tiny_model_dir), "paddle", precision="int8")


@has_int8
def test_worker_config_passes_int8_through():
    cfg = worker_config(str(SHIPPED), "auto", precision="int8")
    assert (cfg.settings.backend, cfg.settings.precision) == ("onnxruntime", "int8")
    with pytest.raises(EndoSpineError, match="onnxruntime backend only"):
        worker_config(str(SHIPPED), "paddle", precision="int8")


@has_int8
def test_render_with_int8(small_video, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    assert main(["render", str(small_video), "--out", str(out), "--model", str(SHIPPED), "--precision", "int8",
                 "--max-frames", "2", "-q"]) == 0
    assert out.is_file()
    assert main(["render", str(small_video), "--out", str(tmp_path / "p.mp4"), "--model", str(SHIPPED),
                 "--precision", "int8", "--backend", "paddle", "-q"]) == 1
    assert "INT8 runs on the onnxruntime backend only" in capsys.readouterr().err
