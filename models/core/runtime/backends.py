"""Running an exported model: Paddle Inference on CPU (oneDNN), GPU or TensorRT.

    model = SegmentationRuntime("assets/model", RuntimeSettings(device="cpu", threads=2))
    probs, box, timings = model.probabilities(frame_rgb)     # then a PostStage (postprocess.py)
    labels, box, timings = model.segment(frame_rgb)          # or both, for a still image
    model.score                                              # the last frame's gate score (None: no gate)

precision "int8" runs model.int8.onnx (endospine-model quantize, export --int8) on ONNX Runtime.

Importable without any training code; loads only a folder whose sealed manifest and files
match (manifest.py), and, when the endoscope profile has a `trust:` key, only a model signed
with that key.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.core.errors import EndoSpineError
from models.core.optics.fov import Circle
from models.core.optics.profile import FovSection, Profile, default_profile, load_profile
from models.core.paddle_env import import_paddle
from models.core.runtime.frameview import FramePrep, View
from models.core.runtime.gate import FrameGate
from models.core.runtime.manifest import INT8_ROLE, Manifest, load_manifest
from models.core.runtime.postprocess import PostSettings, PostStage, segment_frame
from models.core.runtime.preprocess import ENCODINGS, input_encoding

DEVICES = ("cpu", "gpu", "tensorrt")
BACKENDS = ("paddle", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "int8")


def precision_problem(files, root: str | Path, backend: str, precision: str) -> str | None:
    """Why a model folder listing `files` cannot run at `precision` on `backend` (None: it can):
    INT8 is model.int8.onnx on ONNX Runtime."""
    if precision != "int8":
        return None
    if backend != "onnxruntime":
        return (f"{root}: INT8 runs on the onnxruntime backend only (model.int8.onnx), not {backend}; "
                "use --backend onnxruntime or auto")
    if INT8_ROLE not in files:
        return (f"{root}: no INT8 model in this model folder (make one with 'endospine-model quantize {root} "
                "--data DATASET' or 'export --onnx --int8')")
    return None


def auto_backend(files, device: str = "cpu") -> str:
    """What backend "auto" means for a model whose manifest lists `files`: ONNX Runtime when the
    model ships model.onnx, onnxruntime is installed and the device is the CPU (measured 1.8x
    faster than Paddle + oneDNN for the shipped model on 2 cores, same output), else Paddle
    Inference. The display, render and every pipeline command resolve "auto" here."""
    from importlib.util import find_spec

    if device != "cpu" or "onnx" not in files:
        return "paddle"
    return "onnxruntime" if find_spec("onnxruntime") is not None else "paddle"


@dataclass(frozen=True)
class RuntimeSettings:
    backend: str = "paddle"          # or "onnxruntime" (CPU; needs model.onnx from `export --onnx`)
    device: str = "cpu"
    threads: int = 2                 # CPU math threads
    spin: bool = False               # ONNX Runtime's threads spin while they wait for work: a little faster
                                     # alone, but they burn CPU between frames (measured here, 2 threads: 25 ms
                                     # of CPU per 7.4 ms inference with, 11 ms per 9.6 ms without); for batch jobs
    onednn: bool = True              # CPU: oneDNN kernels (5-7x faster than without)
    gpu_id: int = 0
    gpu_memory_mb: int = 512         # initial GPU memory pool
    precision: str = "fp32"          # fp32 | fp16 (GPU / TensorRT) | int8 (onnxruntime: model.int8.onnx)
    trt_cache_dir: str | None = None # TensorRT: keep built engines here (first start is slow)
    trt_workspace_mb: int = 1024
    trt_min_subgraph: int = 3
    trt_dynamic_shapes: bool = False # the exported input is fixed-size; set for batch > 1 variants
    fov: str = "auto"                # "auto": as the profile says (default: find the circular field of
                                     # view, crop its square, ignore outside it); "off": the manifest's
                                     # crop as it is, whatever the profile says
    profile: str | None = None       # endoscope profile YAML (models/core/optics/profile.py); None: the default
                                     # profile (automatic field of view, no color change, no lens)

    def __post_init__(self) -> None:
        if self.fov not in ("auto", "off"):
            raise ValueError("fov must be 'auto' or 'off'")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "onnxruntime" and self.device != "cpu":
            raise ValueError("the onnxruntime backend runs on the CPU only here; use backend paddle for GPU/TensorRT")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.threads < 1:
            raise ValueError("threads must be at least 1")


def runtime_profile(settings: RuntimeSettings) -> Profile:
    """The profile a runtime applies: the file's (or the default), field of view off if asked."""
    profile = load_profile(settings.profile) if settings.profile else default_profile()
    if settings.fov == "off":
        profile = replace(profile, fov=FovSection(mode="off"))
    return profile


def build_predictor(manifest: Manifest, root: Path, settings: RuntimeSettings):
    paddle = import_paddle()
    inference = paddle.inference
    config = inference.Config(str(manifest.path(root, "model")), str(manifest.path(root, "params")))
    config.disable_glog_info()
    if settings.device == "cpu":
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(settings.threads)
        if settings.onednn:
            config.enable_onednn()
        else:
            config.disable_onednn()
    else:
        config.enable_use_gpu(settings.gpu_memory_mb, settings.gpu_id)
        if settings.device == "tensorrt":
            precision = inference.PrecisionType.Half if settings.precision == "fp16" else inference.PrecisionType.Float32
            config.enable_tensorrt_engine(workspace_size=settings.trt_workspace_mb << 20, max_batch_size=1,
                                          min_subgraph_size=settings.trt_min_subgraph, precision_mode=precision,
                                          use_static=settings.trt_cache_dir is not None, use_calib_mode=False)
            if settings.trt_cache_dir:
                Path(settings.trt_cache_dir).mkdir(parents=True, exist_ok=True)
                config.set_optim_cache_dir(settings.trt_cache_dir)
            if settings.trt_dynamic_shapes:
                w, h = manifest.preprocess.input_size
                shape = {"image": [1, 3, h, w]}
                config.set_trt_dynamic_shape_info(shape, shape, shape)
        elif settings.precision == "fp16":
            config.enable_use_gpu(settings.gpu_memory_mb, settings.gpu_id, inference.PrecisionType.Half)
    try:
        return inference.create_predictor(config)
    except Exception as exc:  # noqa: BLE001 - Paddle raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EndoSpineError(f"{root}: cannot build a {settings.device} predictor ({first})") from None


class SegmentationRuntime:
    """Preprocess -> predict for one frame at a time; `view` says where the last frame's input
    came from, for the post-processing stage."""

    def __init__(self, model_dir: str | Path, settings: RuntimeSettings | None = None):
        self.root = Path(model_dir)
        self.settings = settings or RuntimeSettings()
        self.profile = runtime_profile(self.settings)
        trust = self.profile.trust
        self.manifest = load_manifest(self.root, verify=True, trusted_key=trust.key if trust else None,
                                      trusted_by=f"the profile {self.settings.profile}")
        self.classes = self.manifest.classes
        self.pre = self.manifest.preprocess
        problem = precision_problem(self.manifest.files, self.root, self.settings.backend, self.settings.precision)
        if problem:
            raise EndoSpineError(problem)
        self.model_id = self.manifest.model_id + ("+int8" if self.settings.precision == "int8" else "")
        self.view: View | None = None      # where the last frame's model input came from
        self.gate = FrameGate.load(self.root, self.manifest)  # None: exported before gates
        self.features: np.ndarray | None = None  # the last frame's pooled features (models with a gate)
        self.score: float | None = None    # the last frame's gate score (None: no gate)
        self._still = PostStage(self.classes, PostSettings.still())  # for segment()
        if self.settings.backend == "onnxruntime":
            self._run, self.encoding = _onnx_runner(self.manifest, self.root, self.settings)
        else:   # Paddle's models read the float tensor
            self._run = _paddle_runner(build_predictor(self.manifest, self.root, self.settings))
            self.encoding = "tensor"
        self.prep = FramePrep(self.profile, self.pre, encoding=self.encoding)

    def independent_frames(self) -> "SegmentationRuntime":
        """For datasets: find the field of view anew in every image (no tracking across images)."""
        self.prep = FramePrep(self.profile, self.pre, independent=True, encoding=self.encoding)
        return self

    @property
    def circle(self) -> Circle | None:
        """The field of view of the last frame (working-frame pixels), if any."""
        return self.view.circle if self.view is not None else None

    def run_tensor(self, x: np.ndarray) -> np.ndarray:
        """The model's input (self.encoding: (1, 3, H, W) float32, or the picture's (1, H/2, W/2,
        12) uint8 blocks) -> (1, C, h, w) float32 class probabilities (and `features`, the pooled
        features of a model with a gate)."""
        outputs = self._run(np.ascontiguousarray(x, dtype=ENCODINGS[self.encoding]))
        probs = next((o for o in outputs if o.ndim == 4), None)
        self.features = next((o for o in outputs if o.ndim == 2), None)
        if probs is None:
            raise EndoSpineError(f"{self.root}: model has no (1, C, h, w) probability output")
        if not np.isfinite(probs).all():
            raise EndoSpineError(f"{self.root}: model produced non-finite probabilities")
        return probs

    def probabilities(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int], dict[str, float]]:
        """A frame -> ((C, h, w) probabilities on the model's output grid, crop box, timings ms)."""
        t0 = time.perf_counter()
        x, self.view = self.prep(rgb)
        t1 = time.perf_counter()
        probs = self.run_tensor(x)[0]
        t2 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "predict": (t2 - t1) * 1e3}
        if self.gate is not None:
            if self.features is None:
                raise EndoSpineError(f"{self.root}: the manifest has a gate, but the model has no feature output")
            self.score = self.gate.score(self.features)
            timings["gate"] = (time.perf_counter() - t2) * 1e3
        return probs, self.view.box, timings

    def segment(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int], dict[str, float]]:
        """A still frame -> (checked labels over the crop box at the box's size, box, timings ms):
        the post-processing stage with still settings (no smoothing, no mask size cap)."""
        return segment_frame(self, self._still, rgb)


def _paddle_runner(predictor):
    inp = predictor.get_input_handle(predictor.get_input_names()[0])
    outs = [predictor.get_output_handle(name) for name in predictor.get_output_names()]

    def run(x: np.ndarray) -> list[np.ndarray]:
        inp.copy_from_cpu(x)
        predictor.run()
        return [out.copy_to_cpu() for out in outs]

    return run


def _onnx_runner(manifest: Manifest, root: Path, settings: RuntimeSettings):
    """(run, encoding): a function of the model's input, and the input it reads (its declared input)."""
    if "onnx" not in manifest.files:
        raise EndoSpineError(f"{root}: no model.onnx in this model folder (export with --onnx)")
    role = INT8_ROLE if settings.precision == "int8" else "onnx"
    try:
        import onnxruntime as ort
    except ImportError:
        raise EndoSpineError("the onnxruntime backend needs onnxruntime: pip install -e '.[onnx]'") from None
    options = onnx_session_options(settings)
    try:
        session = ort.InferenceSession(str(manifest.path(root, role)), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise EndoSpineError(f"{manifest.path(root, role)}: cannot load ({str(exc).splitlines()[0]})") from None
    declared = session.get_inputs()[0]
    name = declared.name
    try:
        encoding = input_encoding(declared.type, declared.shape, manifest.preprocess)
    except ValueError as exc:
        raise EndoSpineError(f"{manifest.path(root, role)}: {exc}") from None

    def run(x: np.ndarray) -> list[np.ndarray]:
        return session.run(None, {name: x})

    return run, encoding


def onnx_session_options(settings: RuntimeSettings):
    """ONNX Runtime's session options for `settings` (threads, spinning). INT8 (QOperator): the
    operators left in FP32 stay FP32. Without `session.disable_quant_qdq` ONNX Runtime fuses each
    dequantize -> AveragePool -> quantize into QLinearAveragePool, a slow kernel (0.69 of 4.2 ms
    for the shipped model's 5 pools, against 0.14 ms in FP32); with it INT8 ran 1.28-1.30x FP32
    instead of 1.21x, at the same validation mean IoU. Since `quantize` rewrites the pools as
    depthwise convolutions (models/int8graph.py) the shipped INT8 graphs have none left; the
    setting stays for INT8 models made without the rewrites. No effect on a model without Q/DQ
    nodes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spin else "0")
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    options.log_severity_level = 3
    return options
