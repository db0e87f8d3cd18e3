"""Where the shipped assets live (the repository's assets/ folder, or $ENDOSPINE_ASSETS)."""
from __future__ import annotations

import os
from pathlib import Path


def assets_dir() -> Path:
    override = os.environ.get("ENDOSPINE_ASSETS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "assets"


def default_class_table() -> Path:
    return assets_dir() / "classes.yaml"


def demo_video() -> Path:
    return assets_dir() / "demo.mp4"


def shipped_model() -> Path:
    return assets_dir() / "model"
