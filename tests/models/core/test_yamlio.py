"""The one YAML loader: alias bombs, deep nesting and oversized files refused in one line naming
the file, fast; on/off/yes/no read as strings; plain YAML written without aliases."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from models.core.errors import EndoSpineError
from models.core.yamlio import DATASET_MAX_BYTES, MAX_BYTES, MAX_DEPTH, dump_yaml, read_yaml

pytestmark = pytest.mark.unit


def _refused(path, *words, seconds: float = 2.0) -> str:
    t0 = time.monotonic()
    with pytest.raises(EndoSpineError) as exc:
        read_yaml(path, "profile")
    assert time.monotonic() - t0 < seconds
    text = str(exc.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    for word in words:  # in the problem, not in the path (named after the test)
        assert word in text[len(f"{path}: "):], text
    return text


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """A few hundred bytes that expand to width**levels strings through aliases."""
    lines = ['l0: &l0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 20) -> str:
    """Merge keys (<<) that double the mapping at every level when flattened."""
    lines = ["a0: &a0 {x0: 1}"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], x{i}: 1}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text", [billion_laughs(), merge_bomb(), "a: &x 1\nb: *x\n", "[&a [1], *a]\n"],
                         ids=["billion-laughs", "merge-keys", "one-alias", "flow"])
def test_aliases_are_refused_fast(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    assert len(text) < 1024
    _refused(path, "alias", "line")


def test_anchors_without_aliases_and_stars_in_text_are_fine(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text("a: &x 1\nb: 'x *y'\nc: images/*.png\nd: \"*z\"\n")
    assert read_yaml(path) == {"a": 1, "b": "x *y", "c": "images/*.png", "d": "*z"}


@pytest.mark.parametrize("text", ["[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
                                  "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 1)) + "  " * (MAX_DEPTH + 1) + "x",
                                  "[" * 200_000 + "]" * 200_000],
                         ids=["flow", "block", "200k"])
def test_deep_nesting_is_refused(tmp_path, text):
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    _refused(path)


def test_a_file_over_the_limit_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(64 * 1024 ** 3)  # sparse: 64 GB that take no disk; reading it would take minutes
    _refused(path, "larger than", "MB")
    exact = tmp_path / "limit.yaml"
    exact.write_bytes(b"#" * MAX_BYTES)
    assert read_yaml(exact) is None
    exact.write_bytes(b"#" * (MAX_BYTES + 1))
    _refused(exact, "larger than")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_an_endless_stream_is_refused(tmp_path):
    import threading

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    stop = threading.Event()

    def feed():
        try:
            with open(fifo, "wb") as f:
                while not stop.is_set():
                    f.write(b"a: b\n" * 4096)
        except (BrokenPipeError, OSError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        _refused(fifo, "larger than", seconds=10)
    finally:
        stop.set()
        writer.join(5)


def test_a_10k_image_dataset_yaml_fits_under_the_limits(tmp_path):
    """dataset.yaml as the pipeline writes it: 10 000 images stay under even the general limit."""
    from models.core.classes import default_classes
    from models.dataset import Item, write_meta

    items = [Item(f"images/c{i // 50:04d}_t{i:06d}.jpg", f"labels/c{i // 50:04d}_t{i:06d}.png", f"c{i // 50:04d}", i,
                  "synthetic") for i in range(10_000)]
    write_meta(tmp_path, default_classes(), items, "big", {"generator": {"engine": "endospine-synth/1"}})
    size = (tmp_path / "dataset.yaml").stat().st_size
    assert size < MAX_BYTES < DATASET_MAX_BYTES
    assert len(read_yaml(tmp_path / "dataset.yaml", max_bytes=DATASET_MAX_BYTES)["items"]) == 10_000


def test_yaml_1_1_words_stay_strings(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("mode: off\nb: [on, yes, no, y, n, Off, NO]\nt: true\nf: False\nyes: 1\n")
    assert read_yaml(path) == {"mode": "off", "b": ["on", "yes", "no", "y", "n", "Off", "NO"], "t": True, "f": False,
                               "yes": 1}


@pytest.mark.parametrize("text, word", [("a: 2024-13-45\n", "month"), ("a: [1, 2\n", "line"),
                                        ("a: !!python/object:os.system {}\n", "line"), ("a: 1" + "0" * 5000 + "\n", "digits"),
                                        (b"\xff\xfe", "UTF-8")])
def test_bad_values_are_one_line(tmp_path, text, word):
    path = tmp_path / "b.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    _refused(path, word)


def test_missing_and_folder(tmp_path):
    _refused(tmp_path / "none.yaml", "profile not found")
    _refused(tmp_path, "is a folder")


def test_dump_writes_no_aliases_and_reads_back():
    shared = {"frames": [1, 2, 3]}
    data = {"a": shared, "b": shared, "mode": "off", "flag": True}
    text = dump_yaml(data)
    assert "&" not in text and "*" not in text
    assert yaml.safe_load(text) == data  # 'off' is quoted: every YAML reader sees a string


@pytest.mark.unit
def test_yaml_is_read_and_written_only_through_yamlio():
    """One loader with limits, one dumper without aliases: a writer elsewhere could emit an anchor
    that read_yaml then refuses in the project's own file."""
    import re

    root = Path(__file__).resolve().parents[3]
    direct = re.compile(r"^\s*(import yaml|from yaml import)|\byaml\.(safe_)?(load|dump)\(")
    offenders = [f"{path.relative_to(root)}:{n}" for package in ("app", "models", "calibration")
                 for path in sorted((root / package).rglob("*.py")) if path != root / "models/core/yamlio.py"
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if direct.search(line)]
    assert offenders == [], offenders


@pytest.mark.unit
def test_dump_yaml_writes_a_shared_object_twice_and_read_yaml_reads_it(tmp_path):
    shared = {"names": ["bone", "disc"]}
    path = tmp_path / "shared.yaml"
    path.write_text(dump_yaml({"a": shared, "b": shared}), encoding="utf-8")
    assert read_yaml(path) == {"a": shared, "b": shared}
