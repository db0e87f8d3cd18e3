"""Endoscope profiles: what one tower does to the picture, measured once, applied everywhere.

A profile is a YAML file (written by `endospine-calibrate`, readable and editable by hand):

    format: endospine-profile/1
    name: OR3 tower
    fov:                          # where the circular image sits
      mode: fixed                 # auto (detect in every frame) | fixed (this circle) | off (whole frame)
      frame_size: [1920, 1080]    # fixed: the frames the circle was measured on
      center: [958.4, 540.2]      # pixels; pixel (x, y) has its center at integer coordinates
      radius: 421.7
      notch_deg: 312.5            # the rim's notch marker, clockwise from 3 o'clock (or null)
      undistorted: false          # measured on frames after the lens section's undistortion
    color:                        # applied per pixel in linear light
      mode: gains                 # none | gains | matrix
      gains: [1.12, 1.0, 0.81]
      method: white-reference     # how it was measured: white-reference | gray-world | manual
    lens: {model: fisheye, image_size: [1920, 1080], camera_matrix: [[...]], distortion: [...], undistort: true}
    latency: {p50_ms: 92.0, p95_ms: 110.5, max_ms: 131.2, samples: 580}
    capture: {device: 0, backend: v4l2, width: 1920, height: 1080, fps: 60, fourcc: MJPG, buffer: 1}
    timing: {no_signal_after_s: 0.6}  # the display's timing rules that differ (models.core.timing.Timing)
    trust: {public_key: keys/model-signing.pub.pem}  # run only models signed with this key (or PEM text)
    deid: {keep_full_frame: false, margin_px: 4}  # recordings and snapshots: the field of view only (models/core/deid.py)
                                  # + encrypt: true, key_file: /secure/or3.key: encrypted (models/core/sealed.py)

Every section is optional; the default profile (no file) is automatic field of view, no color
change, no lens, the default timing, recordings and snapshots de-identified (field of view only). `load_profile` checks every field and names the file and
the field in its one-line error; `save_profile` writes atomically.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.core.errors import EndoSpineError
from models.core.imageio import write_bytes_atomic
from models.core.optics.capture_settings import CaptureSettings
from models.core.optics.color import ColorCorrection
from models.core.optics.fov import Circle
from models.core.optics.lens import LensModel, frame_size_ok, frame_size_rule
from models.core.timing import Timing
from models.core.yamlio import dump_yaml, parse_yaml, read_yaml

FORMAT = "endospine-profile/1"
FOV_MODES = ("auto", "fixed", "off")
COLOR_MODES = ("none", "gains", "matrix")
SECTIONS = ("fov", "color", "lens", "latency", "capture", "timing", "trust", "deid")
DEFAULT_DEID_MARGIN_PX = 4.0  # picture kept beyond the field of view's circle in what is written


@dataclass(frozen=True)
class FovSection:
    mode: str = "auto"
    frame_size: tuple[int, int] | None = None
    center: tuple[float, float] | None = None
    radius: float | None = None
    notch_deg: float | None = None
    undistorted: bool = False
    measured: dict = field(default_factory=dict, compare=False)   # frames used, spread: for people

    def __post_init__(self) -> None:
        if self.mode not in FOV_MODES:
            raise ValueError(f"mode: must be one of {', '.join(FOV_MODES)}, got {self.mode!r}")
        if self.mode == "fixed":
            if self.frame_size is None or self.center is None or self.radius is None:
                raise ValueError("mode fixed needs frame_size, center and radius")
            if not frame_size_ok(self.frame_size):
                raise ValueError(f"frame_size: expected {frame_size_rule()}, got {list(self.frame_size)}")
            if len(self.center) != 2 or not np.isfinite(self.center).all():
                raise ValueError(f"center: expected [x, y], got {list(self.center)}")
            w, h = self.frame_size
            if not (np.isfinite(self.radius) and 4 < self.radius <= max(w, h)):
                raise ValueError(f"radius: must be a number of pixels > 4 and at most {max(w, h)}, got {self.radius}")
            x, y = self.center
            if not (0 <= x < w and 0 <= y < h):
                raise ValueError(f"center: ({x:g}, {y:g}) lies outside the {w}x{h} frame")
        if self.notch_deg is not None and not 0 <= self.notch_deg < 360:
            raise ValueError(f"notch_deg: must be in [0, 360), got {self.notch_deg}")

    def circle_for(self, width: int, height: int) -> Circle | None:
        """The fixed circle in a frame of this size: as measured, or scaled for a resized frame
        of the same aspect; None when the frame has another shape (then detect it instead)."""
        if self.mode != "fixed":
            return None
        fw, fh = self.frame_size
        if (width, height) == (fw, fh):
            return Circle(self.center[0], self.center[1], self.radius)
        if abs(width / height - fw / fh) > 0.01 * fw / fh:
            return None
        s = width / fw
        return Circle((self.center[0] + 0.5) * s - 0.5, (self.center[1] + 0.5) * s - 0.5, self.radius * s)


@dataclass(frozen=True)
class ColorSection:
    mode: str = "none"
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    matrix: tuple[tuple[float, float, float], ...] | None = None
    method: str = "manual"
    measured: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in COLOR_MODES:
            raise ValueError(f"mode: must be one of {', '.join(COLOR_MODES)}, got {self.mode!r}")
        if len(self.gains) != 3 or not all(np.isfinite(g) and 0.1 <= g <= 10 for g in self.gains):
            raise ValueError(f"gains: expected three numbers in 0.1..10, got {list(self.gains)}")
        if self.mode == "matrix":
            m = np.asarray(self.matrix if self.matrix is not None else [], np.float64)
            if m.shape != (3, 3) or not np.isfinite(m).all() or abs(np.linalg.det(m)) < 1e-6:
                raise ValueError("matrix: mode matrix needs an invertible 3x3 matrix [[r..], [g..], [b..]]")

    def correction(self) -> ColorCorrection | None:
        """The per-pixel correction, or None when the colors stay as they are."""
        if self.mode == "gains":
            c = ColorCorrection.from_gains(self.gains)
        elif self.mode == "matrix":
            c = ColorCorrection(self.matrix)
        else:
            return None
        return None if c.identity else c


@dataclass(frozen=True)
class LatencySection:
    p50_ms: float
    p95_ms: float
    max_ms: float
    samples: int
    source: str = ""
    measured: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.p50_ms <= self.p95_ms <= self.max_ms:
            raise ValueError("p50_ms <= p95_ms <= max_ms must hold, all >= 0")
        if self.samples < 1:
            raise ValueError(f"samples: must be at least 1, got {self.samples}")


@dataclass(frozen=True)
class DeidSection:
    """What the display's recordings and snapshots keep (models/core/deid.py, issue 21)."""
    keep_full_frame: bool = False              # True: the whole frame, text burned in by the tower included
    margin_px: float = DEFAULT_DEID_MARGIN_PX  # picture kept beyond the circle; everything farther is black
    encrypt: bool = False                      # write them encrypted (models/core/sealed.py)
    key_file: str | None = None                # the key (absolute path, never in the output folder); else ENDOSPINE_KEY

    def __post_init__(self) -> None:
        if not isinstance(self.keep_full_frame, bool):
            raise ValueError(f"keep_full_frame: must be true or false, got {self.keep_full_frame!r}")
        if not 0 <= self.margin_px <= 64:
            raise ValueError(f"margin_px: must be 0..64 pixels, got {self.margin_px}")
        if not isinstance(self.encrypt, bool):
            raise ValueError(f"encrypt: must be true or false, got {self.encrypt!r}")
        if self.key_file is not None and (not isinstance(self.key_file, str) or not self.key_file.strip()
                                          or not Path(self.key_file).expanduser().is_absolute()):
            raise ValueError(f"key_file: must be an absolute path (or ~/...) to a key file, got {self.key_file!r}")


@dataclass(frozen=True)
class TrustSection:
    """Run only models signed with this Ed25519 key (models/core/signing.py)."""
    public_key: str                                             # PEM text, or a PEM file (relative: to the profile)
    key: bytes = field(default=b"", compare=False, repr=False)  # the raw 32-byte key it names

    @classmethod
    def parse(cls, data: Any, base: Path | None = None) -> "TrustSection":
        """The section, its key read and checked; ValueError('trust.public_key: problem')."""
        from models.core import signing

        if not isinstance(data, dict) or set(data) != {"public_key"}:
            raise ValueError("trust: expected {public_key: <PEM text or PEM file>}")
        text = data["public_key"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"trust.public_key: expected PEM text or a PEM file, got {text!r}")
        try:
            if signing.PUBLIC_PEM in text:
                key = signing.parse_public_key(text)
            else:
                file = Path(text).expanduser()
                key = signing.read_public_key(file if file.is_absolute() or base is None else base / file)
        except ValueError as exc:
            raise ValueError(f"trust.public_key: {exc}") from None
        return cls(public_key=text, key=key)


@dataclass(frozen=True)
class Profile:
    fov: FovSection = field(default_factory=FovSection)
    color: ColorSection = field(default_factory=ColorSection)
    lens: LensModel | None = None
    latency: LatencySection | None = None
    capture: CaptureSettings | None = None
    timing: Timing = field(default_factory=Timing)
    name: str = ""
    created: str = ""
    trust: TrustSection | None = None
    deid: DeidSection = field(default_factory=DeidSection)

    def __post_init__(self) -> None:
        undistorts = self.lens is not None and self.lens.undistort
        if self.fov.mode == "fixed" and self.fov.undistorted != undistorts:
            raise ValueError(f"fov.undistorted: the circle was measured on {'un' if self.fov.undistorted else ''}"
                             f"distorted frames but the lens section {'does' if undistorts else 'does not'} undistort; "
                             "re-run endospine-calibrate fov")

    def updated(self, **sections) -> "Profile":
        """A copy with some sections replaced and a fresh `created` stamp."""
        stamp = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        return replace(self, created=stamp, **sections)

    def to_dict(self, digits: int | None = 6) -> dict:
        """The YAML content; numbers rounded to `digits` decimals (None: every digit)."""
        d: dict[str, Any] = {"format": FORMAT}
        if self.name:
            d["name"] = self.name
        if self.created:
            d["created"] = self.created
        d["fov"] = _section_dict(self.fov, digits)
        d["color"] = _section_dict(self.color, digits)
        for key in ("lens", "latency"):
            if getattr(self, key) is not None:
                d[key] = _section_dict(getattr(self, key), digits)
        if self.capture is not None:
            c = _section_dict(self.capture, digits)
            d["capture"] = {"device": c.pop("index"), **c}
        if timing := self.timing.to_dict():  # only the rules that differ from the defaults
            d["timing"] = timing
        if self.trust is not None:
            d["trust"] = {"public_key": self.trust.public_key}
        if self.deid != DeidSection():  # only when it differs from the default (de-identified)
            d["deid"] = _section_dict(self.deid, digits)
        return d

    @classmethod
    def from_dict(cls, d: Any, base: Path | None = None) -> "Profile":
        """Raises ValueError('section.field: problem'). base: the folder relative key files are in."""
        if not isinstance(d, dict):
            raise ValueError(f"a profile must be a mapping of sections (format, {', '.join(SECTIONS)})")
        unknown = set(d) - {"format", "name", "created", *SECTIONS}
        if unknown:
            raise ValueError(f"{_key(min(unknown, key=str))}: unknown section (expected {', '.join(SECTIONS)})")
        if d.get("format") != FORMAT:
            raise ValueError(f"format: expected {FORMAT!r}, got {d.get('format')!r}")
        out: dict[str, Any] = {"name": str(d.get("name") or ""), "created": str(d.get("created") or "")}
        for key, kind in (("fov", FovSection), ("color", ColorSection), ("lens", LensModel),
                          ("latency", LatencySection), ("capture", CaptureSettings), ("deid", DeidSection)):
            if d.get(key) is not None:
                out[key] = _parse_section(kind, d[key], key)
        if d.get("timing") is not None:
            out["timing"] = _parse_timing(d["timing"])
        if d.get("trust") is not None:
            out["trust"] = TrustSection.parse(d["trust"], base)
        return cls(**out)


def default_profile() -> Profile:
    """No file: automatic field of view, colors as they are, no lens correction."""
    return Profile()


def load_profile(path: str | Path) -> Profile:
    """A profile file, checked field by field; EndoSpineError '<file>: <section.field>: <problem>'."""
    path = Path(path)
    data = read_yaml(path, "profile")
    try:
        return Profile.from_dict(data, base=path.parent)
    except (ValueError, TypeError, ArithmeticError) as exc:  # any value a section cannot take: one line
        raise EndoSpineError(f"{path}: {exc}".replace("\n", "\\n").replace("\r", "\\r")) from None


def names_trust(path: str | Path) -> bool:
    """Whether a profile file, even one that does not load, looks like it has a `trust:` section:
    a display that falls back to the default profile on a bad file must not fall back from a
    trusted key to running any model."""
    try:
        with Path(path).open("rb") as f:
            raw = f.read(1 << 22)
    except OSError:
        return False
    return re.search(rb"\btrust[\"']?\s*:", raw) is not None


def save_profile(profile: Profile, path: str | Path) -> Path:
    """Write atomically, as plain YAML (no aliases) that loads again: numbers rounded to 6
    decimals, or kept whole where rounding would break a rule (e.g. fps 1e-9 rounded to 0)."""
    path = Path(path)
    for digits in (6, None):
        text = ("# EndoSpine endoscope profile (endospine-calibrate); README.md, section Calibration\n"
                + dump_yaml(profile.to_dict(digits), default_flow_style=None, width=100))
        try:
            Profile.from_dict(parse_yaml(text), base=path.parent)
            break
        except ValueError:
            continue
    write_bytes_atomic(path, text.encode("utf-8"))
    return path


def load_or_default(path: str | Path) -> Profile:
    """The profile at `path` if the file exists (to update one section), else the default."""
    return load_profile(path) if Path(path).exists() else default_profile()


# -- (de)serialization helpers --------------------------------------------------------------------
def _section_dict(section, digits: int | None) -> dict:
    out = {}
    for f in fields(section):
        v = getattr(section, f.name)
        if v is None or (f.name == "measured" and not v):
            continue
        out[f.name] = _plain(v, digits)
    return out


def _plain(v, digits: int | None):
    if isinstance(v, (tuple, list, np.ndarray)):
        return [_plain(x, digits) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x, digits) for k, x in v.items()}
    if isinstance(v, (np.floating, float)):
        return round(float(v), digits) if digits is not None else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _parse_timing(data: Any) -> Timing:
    try:
        return Timing.from_dict(data)
    except ValueError as exc:  # 'field: problem' -> 'timing.field: problem'
        text = str(exc)
        raise ValueError(f"timing.{text}" if ":" in text.split(" ", 1)[0] else f"timing: {text}") from None


def _parse_section(kind, data: Any, name: str):
    if not isinstance(data, dict):
        raise ValueError(f"{name}: must be a mapping of fields, got {type(data).__name__}")
    data = dict(data)
    if kind is CaptureSettings and "device" in data:
        data["index"] = data.pop("device")
    known = {f.name: f for f in fields(kind)}
    for key in data:
        if key not in known:
            shown = "device" if key == "index" else key
            raise ValueError(f"{name}.{_key(shown)}: unknown field (expected one of "
                             f"{', '.join('device' if k == 'index' else k for k in known)})")
    try:
        values = {k: _coerce(kind, k, v, name) for k, v in data.items()}
        return kind(**values)
    except TypeError as exc:  # a required field missing
        missing = ", ".join(re.findall(r"'(\w+)'", str(exc))) or str(exc)
        raise ValueError(f"{name}: missing field(s) {missing}") from None
    except ValueError as exc:
        text = str(exc)
        raise ValueError(text if text.startswith(f"{name}.") else f"{name}.{text}" if ":" in (text.split() or [""])[0]
                         else f"{name}: {text}") from None


_TUPLES = {"frame_size": int, "center": float, "gains": float, "image_size": int, "distortion": float}
_NUMBERS = {"radius", "notch_deg", "balance", "rms_px", "valid_radius", "p50_ms", "p95_ms", "max_ms", "fps",
            "margin_px"}
_INTS = {"samples", "index", "width", "height", "buffer"}


def _coerce(kind, key: str, v: Any, section: str):
    where = f"{section}.{'device' if key == 'index' else key}"
    if v is None or key == "measured":
        if key == "measured" and not isinstance(v, (dict, type(None))):
            raise ValueError(f"{where}: must be a mapping")
        return v if v is not None else ({} if key == "measured" else None)
    try:
        if key in _TUPLES:
            if not isinstance(v, (list, tuple)):
                raise TypeError
            return tuple(_number(x, _TUPLES[key]) for x in v)
        if key in ("matrix", "camera_matrix"):
            return tuple(tuple(_number(x, float) for x in row) for row in v)
        if key in _NUMBERS:
            return _number(v, float)
        if key in _INTS:
            return _number(v, int)
        if key in ("undistorted", "undistort", "keep_full_frame"):
            if not isinstance(v, bool):
                raise TypeError
            return v
        if key in ("mode", "method", "model", "source", "backend", "fourcc"):
            if not isinstance(v, str):
                raise TypeError
            return v
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{where}: unexpected value {_shown(v)}") from None
    return v


MAX_INT = 2 ** 31 - 1  # no count, size or device number in a profile comes near


def _number(v: Any, kind: type):
    """A finite number (an int within MAX_INT for whole-number fields); TypeError/ValueError."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    if not math.isfinite(v):
        raise ValueError
    if kind is int:
        if not float(v).is_integer() or abs(v) > MAX_INT:
            raise ValueError
        return int(v)
    return float(v)


def _key(k: Any) -> str:
    """A mapping key as a message shows it: plain names as they are, anything else quoted."""
    return k if isinstance(k, str) and k.isidentifier() else repr(k)


def _shown(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
