"""Help > About EndoSpine and Help > Keyboard shortcuts: what the window says about itself.

The texts are built by plain functions (`about_text`, `shortcuts_text`) that tests read without a
dialog; `info_box` shows one in a non-modal message box (the video keeps running and the window
keeps its keys while it is open).
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterable

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction, QKeySequence
from PyQt6.QtWidgets import QMessageBox, QWidget

from models.core.errors import EndoSpineError
from models.core.runtime.manifest import load_manifest

NOT_A_MEDICAL_DEVICE = ("EndoSpine is not a medical device. It is not cleared or approved for clinical use and "
                        "must not guide surgery: research and teaching use only.")

# (distribution, what it is, its licence) for every package of setup.cfg's install_requires (and
# the Qt build PyQt6 brings): as their package metadata and bundled libraries say.
THIRD_PARTY = (
    ("PyQt6", "PyQt6 (Riverbank Computing)", "GPL v3 (or Riverbank's commercial licence)"),
    ("PyQt6-Qt6", "Qt 6 (The Qt Company)", "LGPL v3 (also GPL and commercial)"),
    ("paddlepaddle", "PaddlePaddle", "Apache-2.0"),
    ("onnxruntime", "ONNX Runtime", "MIT"),
    ("opencv-python-headless", "OpenCV", "Apache-2.0; its wheel bundles FFmpeg (LGPL v2.1+)"),
    ("av", "PyAV", "BSD-3-Clause; its wheel bundles FFmpeg (LGPL v3+) with the x264 and x265 encoders "
                   "(GPL v2+)"),
    ("numpy", "NumPy", "BSD-3-Clause"),
    ("scipy", "SciPy", "BSD-3-Clause"),
    ("matplotlib", "Matplotlib", "the Matplotlib licence (PSF-based)"),
    ("PyYAML", "PyYAML", "MIT"),
    ("tqdm", "tqdm", "MPL-2.0 and MIT"),
    ("psutil", "psutil", "BSD-3-Clause"),
    ("safetensors", "safetensors", "Apache-2.0"),
    ("cryptography", "cryptography", "Apache-2.0 or BSD-3-Clause"),
)


def app_version() -> str:
    """The installed package's version (setup.cfg), as pip and the SBOM report it."""
    try:
        return version("endospine")
    except PackageNotFoundError:
        return "unknown (not installed as a package)"


def model_lines(model_dir: str) -> list[str]:
    """The loaded model's id (name@first 12 hex digits of its weights' SHA-256) and its manifest's
    notice, or that there is none."""
    if not model_dir:
        return ["Model: no model loaded"]
    if not Path(model_dir).is_dir():
        return [f"Model: {model_dir} (not an exported model folder)"]
    try:
        manifest = load_manifest(model_dir, verify=False)  # the worker verifies it when it loads the model
    except EndoSpineError as exc:
        return [f"Model: {model_dir}: the manifest cannot be read ({exc})"]
    return [f"Model: {manifest.model_id}", f"Folder: {model_dir}",
            f"Model notice: {manifest.notice.strip() or '(the manifest has none)'}"]


def about_text(model_dir: str, app_version_text: str | None = None) -> str:
    """Help > About: version, the medical-device statement, the model and its notice, licences."""
    lines = [f"EndoSpine {app_version_text or app_version()}",
             "Real-time AI tissue overlay for endoscopic spine surgery.", "",
             NOT_A_MEDICAL_DEVICE, "", *model_lines(model_dir), "",
             "EndoSpine is licensed under Apache-2.0. It runs on this third-party software:"]
    lines += [f"  {name}: {licence}" for _, name, licence in THIRD_PARTY]
    return "\n".join(lines)


def shortcuts_text(actions: Iterable[QAction]) -> str:
    """Help > Keyboard shortcuts: one line per action that has keys, in the order given."""
    lines = []
    for action in actions:
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
        if keys:
            lines.append(f"{' or '.join(keys)}: {action.text().replace('&', '').rstrip('.')}")
    return "\n".join(lines)


def info_box(parent: QWidget, title: str, text: str) -> QMessageBox:
    """A non-modal message box with `text` (selectable), deleted when closed; the caller shows it."""
    box = QMessageBox(QMessageBox.Icon.Information, title, text, QMessageBox.StandardButton.Close, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setWindowModality(Qt.WindowModality.NonModal)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    return box
