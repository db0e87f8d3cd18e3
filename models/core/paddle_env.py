"""Importing Paddle quietly (its import warns about a missing ccache, which users never need)."""
from __future__ import annotations

import os
import warnings


def import_paddle():
    os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ INFO/WARNING lines are noise to users
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle
    return paddle
