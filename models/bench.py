"""`endospine-model bench`: how fast an exported model runs here (tensor in, probabilities out).

Configurations are measured interleaved, round by round, so that machine noise hits them alike;
medians and ratios are what to report.
"""
from __future__ import annotations

import json
import time

import numpy as np

from models.runtime import RuntimeSettings, SegmentationRuntime


def bench_model(model_dir: str, runs: int = 50, warmup: int = 5, threads: int = 2,
                compare_native: bool = True) -> dict:
    from models.manifest import load_manifest

    configs = {"onednn": RuntimeSettings(device="cpu", threads=threads, onednn=True)}
    if compare_native:
        configs["native"] = RuntimeSettings(device="cpu", threads=threads, onednn=False)
    if "onnx" in load_manifest(model_dir).files:
        configs["onnxruntime"] = RuntimeSettings(backend="onnxruntime", threads=threads)
    runtimes = {name: SegmentationRuntime(model_dir, s) for name, s in configs.items()}
    first = next(iter(runtimes.values()))
    w, h = first.pre.input_size
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    for i in range(warmup + runs):
        for name, rt in runtimes.items():
            t0 = time.perf_counter()
            rt.run_tensor(x)
            if i >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    result = {"model": first.model_id, "input": [w, h], "threads": threads, "runs": runs}
    for name, ts in times.items():
        result[f"{name}_ms_median"] = round(float(np.median(ts)), 2)
        result[f"{name}_ms_p90"] = round(float(np.percentile(ts, 90)), 2)
    for name in runtimes:
        if name != "onednn":
            result[f"{name}_over_onednn"] = round(result[f"{name}_ms_median"] / result["onednn_ms_median"], 2)
    return result


def main_bench(model_dir: str, runs: int, threads: int, native: bool) -> str:
    return json.dumps(bench_model(model_dir, runs=runs, threads=threads, compare_native=native))
