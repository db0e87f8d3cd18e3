"""Segmentation networks written with paddle.nn (no paddleseg package: see docs/ARCHITECTURE.md).

`build_model(name, num_classes)` is the one entry point; names are listed in ARCHS.
"""
from models.nets.liteseg import ARCHS, LiteSeg, build_model

__all__ = ["ARCHS", "LiteSeg", "build_model"]
