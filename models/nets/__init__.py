"""Segmentation networks written with paddle.nn (no paddleseg package: see docs/ARCHITECTURE.md).

`build_model(name, num_classes)` is the one entry point; names are listed in ARCHS. They are
imported on first use, so that Paddle-free parts (models.nets.bilinear) load without Paddle.
"""
__all__ = ["ARCHS", "LiteSeg", "build_model"]


def __getattr__(name: str):
    if name in __all__:
        from models.nets import liteseg

        return getattr(liteseg, name)
    raise AttributeError(f"module 'models.nets' has no attribute {name!r}")
