"""Checkpoints that survive a restart and cannot run code: safetensors files, written atomically.

Shared by the segmentation trainer (models/train/loop.py), export (models/export.py) and the GAN
(models/gan/store.py). A checkpoint is named by its stem (`RUN/best`, `GAN_DIR/checkpoints/step_N/opt_g`):

    STEM.safetensors       network weights: tensors keyed by structured names ("head.conv.weight")
    STEM.opt.safetensors   optimizer state: moments and powers as tensors keyed by structured
                           parameter names; the rest (the learning-rate scheduler's counters) as
                           JSON in the file's metadata

A safetensors file is a JSON header and raw arrays: reading one parses, it never executes. Loading
checks the file against the network: every tensor it has, with its shape and dtype, finite, and
nothing else; one line naming the file when it does not fit.

Older versions wrote STEM.pdparams / STEM.pdopt with paddle.save, which is pickle: loading such a
file runs whatever code a crafted one holds. They are refused with one line naming --trust-pickle;
with trust_pickle=True they load as before (paddle.load), after a note on stderr saying so.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic
from models.core.paddle_env import import_paddle

paddle = import_paddle()

WEIGHTS, OPTIMIZER = "weights", "optimizer"
_SUFFIX = {WEIGHTS: ".safetensors", OPTIMIZER: ".opt.safetensors"}
_LEGACY = {WEIGHTS: ".pdparams", OPTIMIZER: ".pdopt"}
FORMAT = "endospine-checkpoint/1"
TRUST_FLAG = "--trust-pickle"  # the command-line flag that sets trust_pickle (models/cli.py)


def checkpoint_path(stem: Path, kind: str = WEIGHTS) -> Path:
    """The file a checkpoint of this kind is written to."""
    return stem.with_name(stem.name + _SUFFIX[kind])


def stored(stem: Path, kind: str = WEIGHTS) -> Path | None:
    """The file holding a checkpoint: the safe format, else an old pickle one, else None."""
    for path in (checkpoint_path(stem, kind), stem.with_name(stem.name + _LEGACY[kind])):
        if path.is_file():
            return path
    return None


# -- writing ---------------------------------------------------------------------------------
def save_weights(stem: Path, model) -> Path:
    """model.state_dict() -> STEM.safetensors."""
    return _write(checkpoint_path(stem, WEIGHTS), {k: _array(v) for k, v in model.state_dict().items()}, {})


def save_optimizer(stem: Path, opt, model) -> Path:
    """opt.state_dict() -> STEM.opt.safetensors, keyed by `model`'s structured parameter names."""
    state = rename_opt_state(opt.state_dict(), param_names(model))
    tensors = {k: _array(v) for k, v in state.items() if _is_tensor(v)}
    rest = {k: v for k, v in state.items() if not _is_tensor(v)}
    return _write(checkpoint_path(stem, OPTIMIZER), tensors, rest)


def _write(path: Path, tensors: dict[str, np.ndarray], rest: dict) -> Path:
    from safetensors.numpy import save

    meta = {"format": FORMAT, "state": json.dumps(rest, default=_plain)}
    write_bytes_atomic(path, save(tensors, metadata=meta))  # a crash never leaves half a checkpoint
    return path


# -- reading ---------------------------------------------------------------------------------
Header = dict[str, tuple[str, list[int]]]  # tensor name -> (numpy dtype name, shape), read before any data


def load_weights(model, stem: Path, trust_pickle: bool = False) -> Path:
    """Set `model`'s weights from its checkpoint; returns the file read."""
    path, legacy = _resolve(stem, WEIGHTS, trust_pickle)
    if legacy:
        arrays = {k: _array(v) for k, v in _unpickle(path).items() if _is_tensor(v)}
        _check_weights(path, model, _header_of(arrays))
    else:
        arrays, _ = _read(path, lambda header, rest: _check_weights(path, model, header))
    for key, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise EndoSpineError(f"{path}: {key} holds NaN or infinite values")
    model.set_state_dict(arrays)
    return path


def load_optimizer(opt, model, stem: Path, trust_pickle: bool = False) -> Path:
    """Restore `opt` (which optimizes `model`) from its checkpoint; returns the file read."""
    path, legacy = _resolve(stem, OPTIMIZER, trust_pickle)
    if legacy:
        state = _unpickle(path)  # as older versions loaded it
    else:
        tensors, rest = _read(path, lambda header, rest: _check_optimizer(path, opt, model, header, rest))
        state = {**{k: paddle.to_tensor(v) for k, v in tensors.items()}, **rest}
    opt.set_state_dict(rename_opt_state(state, param_names(model), to_local=True))
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """The tensors and the JSON part of one safetensors checkpoint file (one-line errors)."""
    return _read(Path(path))


def _resolve(stem: Path, kind: str, trust_pickle: bool) -> tuple[Path, bool]:
    path = stored(stem, kind)
    if path is None:
        raise EndoSpineError(f"{checkpoint_path(stem, kind)}: checkpoint file missing")
    if path.suffix != _LEGACY[kind]:
        return path, False
    if not trust_pickle:
        raise EndoSpineError(f"{path}: an old pickle checkpoint; loading it would run any code hidden in the file, "
                             f"so it is refused ({TRUST_FLAG} loads it anyway: only for files you made yourself)")
    print(f"{path}: loading a pickle checkpoint ({TRUST_FLAG}): any code in the file runs now", file=sys.stderr)
    return path, True


_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32", "I16": "int16",
           "I8": "int8", "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


def _read(path: Path, check=None) -> tuple[dict[str, np.ndarray], dict]:
    """Parse one file: format, JSON part, tensor names/dtypes/shapes, `check(header, rest)`, then the data."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise EndoSpineError(f"{path}: not an EndoSpine checkpoint (format "
                                     f"{str(meta.get('format'))[:40]!r}, expected {FORMAT!r})")
            try:
                rest = json.loads(meta.get("state", "{}"))
            except (ValueError, RecursionError):
                rest = None
            if not isinstance(rest, dict):
                raise EndoSpineError(f"{path}: its non-tensor state is not a JSON object")
            header = {}
            for key in f.keys():
                piece = f.get_slice(key)
                header[key] = (_DTYPES.get(piece.get_dtype(), piece.get_dtype()), list(piece.get_shape()))
            if check is not None:
                check(header, rest)  # before reading the data: a file that does not fit costs no memory
            tensors = {key: f.get_tensor(key) for key in header}
    except EndoSpineError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: say which, not a traceback
        raise EndoSpineError(f"{path}: not a readable checkpoint ({_reason(exc)})") from None
    return tensors, rest


def _unpickle(path: Path) -> dict:
    try:
        state = paddle.load(str(path))
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which
        raise EndoSpineError(f"{path}: cannot read checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise EndoSpineError(f"{path}: not a checkpoint (holds a {type(state).__name__}, not a state dict)")
    return state


def _header_of(arrays: dict[str, np.ndarray]) -> Header:
    return {k: (a.dtype.name, list(a.shape)) for k, a in arrays.items()}


def _check_weights(path: Path, model, header: Header) -> None:
    """Exactly the network's tensors, each with its dtype and shape."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in header]
    unknown = [k for k in header if k not in expected]
    if missing or unknown:
        what = [f"{len(missing)} tensors missing (e.g. {missing[0]!r})"] if missing else []
        what += [f"{len(unknown)} unknown (e.g. {unknown[0][:60]!r})"] if unknown else []
        raise EndoSpineError(f"{path}: does not fit this network: {', '.join(what)}")
    for key, tensor in expected.items():
        (dtype, shape), want = header[key], (str(tensor.dtype).replace("paddle.", ""), list(tensor.shape))
        if (dtype, shape) != want:
            raise EndoSpineError(f"{path}: {key} is {dtype} {shape}, the network expects {want[0]} {want[1]}")


def _check_optimizer(path: Path, opt, model, header: Header, rest: dict) -> None:
    """State for every trainable parameter and nothing else, each tensor the parameter's shape (moments)
    or one value (powers of the betas), and the scheduler's counters in the form this optimizer writes
    them (Paddle itself would fail later, mid-training, with a traceback)."""
    params = {key: list(p.shape) for key, p in model.named_parameters() if not p.stop_gradient}
    names = sorted(params, key=len, reverse=True)
    owned: set[str] = set()
    for key, (_, shape) in header.items():
        owner = next((n for n in names if key.startswith(n + "_")), None)
        if owner is None:
            raise EndoSpineError(f"{path}: optimizer state {key[:60]!r} belongs to no parameter of this network")
        if shape not in (params[owner], [1]):
            raise EndoSpineError(f"{path}: optimizer state {key[:60]!r} has shape {shape}, its parameter "
                                 f"{params[owner]}")
        owned.add(owner)
    if len(owned) != len(names):
        lost = next(n for n in names if n not in owned)
        raise EndoSpineError(f"{path}: no optimizer state for parameter {lost!r} of this network")
    expected = {k: v for k, v in opt.state_dict().items() if not _is_tensor(v)}
    wrong = _first_difference(expected, rest)
    if wrong is not None:
        raise EndoSpineError(f"{path}: optimizer field {wrong!r} is missing or of the wrong kind")


def _first_difference(expected, got, where: str = "") -> str | None:
    """The first key path where `got` lacks a key of `expected` or holds another kind of value."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return where or "(top)"
        for key, value in expected.items():
            if key not in got:
                return f"{where}{key}"
            diff = _first_difference(value, got[key], f"{where}{key}.")
            if diff is not None:
                return diff
        return None
    number = (int, float, np.integer, np.floating)
    if isinstance(expected, number) and not isinstance(expected, bool):
        ok = isinstance(got, (int, float)) and not isinstance(got, bool)
    else:
        ok = isinstance(got, type(expected))
    return None if ok else where.rstrip(".")


# -- names and values ------------------------------------------------------------------------
def param_names(model) -> dict[str, str]:
    """Paddle's global parameter name (e.g. conv2d_94.w_0, differs per process) -> structured name."""
    return {p.name: key for key, p in model.named_parameters()}


def rename_opt_state(state: dict, names: dict[str, str], to_local: bool = False) -> dict:
    """Optimizer state keys are '<param name>_<slot>'; store them under structured names so that a
    resumed run (whose layers got other global names) finds its moments again."""
    mapping = {v: k for k, v in names.items()} if to_local else names
    prefixes = sorted(mapping, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        new = key
        for prefix in prefixes:
            if key.startswith(prefix + "_"):
                new = mapping[prefix] + key[len(prefix):]
                break
        out[new] = value
    return out


def _is_tensor(value) -> bool:
    return isinstance(value, (paddle.Tensor, np.ndarray))


def _array(value) -> np.ndarray:
    return np.ascontiguousarray(value.numpy() if isinstance(value, paddle.Tensor) else value)


def _plain(value):
    """json.dumps fallback: numpy scalars and one-element tensors of a scheduler's state."""
    if isinstance(value, (np.generic, np.ndarray, paddle.Tensor)) and np.size(_array(value)) == 1:
        return _array(value).reshape(()).item()
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint's JSON part")


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__
