"""`endospine-model bench`: how fast an exported model runs here (its input in, probabilities out).

Each model is fed what the runtime feeds it, made from the same picture at the input size: the
normalized float tensor, or, for an INT8 model that reads the picture itself, its bytes in 2x2
blocks. Making that input from the resized picture is timed too (`<config>_input_ms_median`),
since the two differ in cost; `int8_speedup` is the model alone, `int8_speedup_with_input` both.

Each configuration (Paddle + oneDNN, Paddle native CPU, ONNX Runtime when the model has
model.onnx, ONNX Runtime INT8 when it also has model.int8.onnx) runs in a fresh process of its
own, in alternating rounds, so that machine noise hits them alike and their thread pools never
compete: measured in one process, OpenMP threads spinning after one runtime's call slowed the
other's 3-4x. Medians and ratios are what to report.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from models.core.errors import EndoSpineError
from models.core.runtime.backends import RuntimeSettings
from models.core.runtime.manifest import INT8_ROLE, load_manifest


def _time_config(model_dir: str, settings: RuntimeSettings, runs: int, warmup: int
                 ) -> tuple[list[float], list[float]]:
    """(model ms, input ms) of each timed run: the model on its input, and making that input from
    a picture at the input size."""
    from models.core.runtime.backends import SegmentationRuntime

    runtime = SegmentationRuntime(model_dir, settings)
    w, h = runtime.pre.input_size
    picture = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    times, inputs = [], []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        x = runtime.prep.encode(picture)
        t1 = time.perf_counter()
        runtime.run_tensor(x)
        if i >= warmup:
            times.append((time.perf_counter() - t1) * 1e3)
            inputs.append((t1 - t0) * 1e3)
    return times, inputs


def round_sizes(runs: int, rounds: int) -> list[int]:
    """`runs` timed runs over at most `rounds` rounds, as evenly as can be: 5 over 3 -> [2, 2, 1]."""
    rounds = max(1, min(rounds, runs))
    return [runs // rounds + (i < runs % rounds) for i in range(rounds)]


def bench_model(model_dir: str, runs: int = 50, warmup: int = 5, threads: int = 2,
                compare_native: bool = True, rounds: int = 3, backend: str = "auto") -> dict:
    """Time each configuration `runs` times in all (split over the rounds). backend: auto times
    every backend the model runs on (Paddle oneDNN, Paddle native, ONNX Runtime with model.onnx);
    paddle or onnxruntime only that one. A model with model.int8.onnx is timed on ONNX Runtime
    at both precisions, in the same alternating rounds: onnxruntime_int8_ms_median and int8_speedup
    (FP32 median / INT8 median, same backend, same run)."""
    manifest = load_manifest(model_dir)
    configs = {}
    if backend in ("auto", "paddle"):
        configs["onednn"] = RuntimeSettings(device="cpu", threads=threads, onednn=True)
        if compare_native:
            configs["native"] = RuntimeSettings(device="cpu", threads=threads, onednn=False)
    if backend in ("auto", "onnxruntime"):
        if "onnx" in manifest.files:
            configs["onnxruntime"] = RuntimeSettings(backend="onnxruntime", threads=threads)
            if INT8_ROLE in manifest.files:
                configs["onnxruntime_int8"] = RuntimeSettings(backend="onnxruntime", threads=threads,
                                                              precision="int8")
        elif backend == "onnxruntime":
            raise EndoSpineError(f"{model_dir}: no model.onnx in this model folder (export with --onnx)")
    # The runs were once runs // rounds per round: 5 runs over 3 rounds timed 3 (issue 20).
    sizes = round_sizes(runs, rounds)
    times: dict[str, list[float]] = {name: [] for name in configs}
    inputs: dict[str, list[float]] = {name: [] for name in configs}
    ctx = mp.get_context("spawn")
    for size in sizes:
        for name, settings in configs.items():
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                model_ms, input_ms = pool.submit(_time_config, model_dir, settings, size, warmup).result()
            times[name] += model_ms
            inputs[name] += input_ms
    w, h = manifest.preprocess.input_size
    result = {"model": manifest.model_id, "input": [w, h], "threads": threads, "backend": backend,
              "runs": sum(sizes), "rounds": len(sizes)}
    for name, ts in times.items():
        result[f"{name}_ms_median"] = round(float(np.median(ts)), 2)
        result[f"{name}_ms_p90"] = round(float(np.percentile(ts, 90)), 2)
        result[f"{name}_input_ms_median"] = round(float(np.median(inputs[name])), 3)
    for name in configs:
        if name != "onednn" and "onednn" in configs:
            result[f"{name}_over_onednn"] = round(result[f"{name}_ms_median"] / result["onednn_ms_median"], 2)
    if "onnxruntime_int8" in configs:
        result["int8_speedup"] = round(result["onnxruntime_ms_median"] / result["onnxruntime_int8_ms_median"], 2)
        both = {name: np.median(np.add(times[name], inputs[name])) for name in ("onnxruntime", "onnxruntime_int8")}
        result["int8_speedup_with_input"] = round(float(both["onnxruntime"] / both["onnxruntime_int8"]), 2)
    return result


def main_bench(model_dir: str, runs: int, threads: int, native: bool, backend: str = "auto") -> str:
    return json.dumps(bench_model(model_dir, runs=runs, threads=threads, compare_native=native, backend=backend))
