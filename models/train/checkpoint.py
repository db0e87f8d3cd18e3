"""Checkpoints that survive a restart: atomic writes, optimizer state keyed by structured names.

Shared by the segmentation trainer (models/train/loop.py) and the GAN trainer (models/gan/train.py).
`paddle.load` unpickles: only ever load checkpoints from a folder the user made and named.
"""
from __future__ import annotations

import os
from pathlib import Path

from models.core.paddle_env import import_paddle

paddle = import_paddle()


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


def save_atomic(path: Path, obj) -> None:
    """paddle.save to a temporary name, then rename: a crash never leaves half a checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp")
    paddle.save(obj, str(tmp))
    os.replace(tmp, path)
