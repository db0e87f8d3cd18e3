"""What the three command-line tools share: one vocabulary, one-line errors and non-zero exits,
never a traceback.

`common_options(parser)` gives a tool and every subcommand (nested ones too) the same
`--version` (tool only), `-v/--verbose`, `-q/--quiet`, `--log-file PATH` and the same help
formatter (defaults shown); `run(parser, argv)` parses, sets up logging once (configure_logging)
and calls the subcommand. The shared option helpers keep one meaning per name: `--model` is always
an exported model folder, `--backend` (add_backend, resolve_backend) always offers auto, paddle and
onnxruntime with the default auto, `--precision` (add_precision) fp32 and int8 with the default
fp32, SOURCE is always described by source_help().
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Sequence

from models.core.errors import EndoSpineError

PACKAGE = "endospine"
log = logging.getLogger("endospine.cli")


# -- help --------------------------------------------------------------------------------------
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """'(default: X)' after every option with a default worth showing: not for None, False, an empty
    list or SUPPRESS (an option that is simply off or left to the command), nor when the help
    already says its default. Descriptions keep their paragraphs; a paragraph with indented or
    '- ' lines (a list, a table) is kept as written, any other is wrapped to the terminal."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in re.split(r"\n\s*\n", text.strip("\n")):
            lines = para.splitlines()
            if any(line.startswith((" ", "\t", "- ")) for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(textwrap.fill(" ".join(line.strip() for line in lines), width,
                                         initial_indent=indent, subsequent_indent=indent))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (action.help is argparse.SUPPRESS or default is None or default is False or default == []
                or default is argparse.SUPPRESS or "default" in text.lower()):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)" if text else "default: %(default)s"
        return text


def version() -> str:
    """The installed package's version; in a source tree never installed, setup.cfg's, marked so."""
    from importlib import metadata

    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        pass
    import configparser

    cfg = configparser.ConfigParser()
    try:
        cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg", encoding="utf-8")
        return f"{cfg['metadata']['version']} (source tree, not installed)"
    except (KeyError, OSError, configparser.Error):
        return "unknown (not installed)"


def _subparsers(parser: argparse.ArgumentParser):
    """Every subcommand parser below `parser`, nested ones too, each once (aliases share one)."""
    seen: set[int] = set()
    for action in parser._actions:  # argparse has no public walk over subparsers
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield sub
                    yield from _subparsers(sub)


def _add_output_options(p: argparse.ArgumentParser, top: bool) -> None:
    # A subcommand's copies default to SUPPRESS: they only set what is given after the subcommand,
    # never reset what was given before it (`endospine-model -q train ...` and `... train -q` alike).
    unset = {} if top else {"default": argparse.SUPPRESS}
    g = p.add_argument_group("output and logging (every command)")
    g.add_argument("-v", "--verbose", action="store_true", help="also debug messages (and, for train, the "
                   "run log's lines) on the console", **unset)
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no info messages: only "
                   "warnings, errors and the command's result", **unset)
    g.add_argument("--log-file", metavar="PATH", help="also append every message, debug ones included, with "
                   "time stamps to this file (train also keeps train.log in its run folder)", **unset)


def common_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--version on the tool; -v/-q/--log-file and the shared help formatter on the tool and
    every subcommand. Call it last in build_parser (after every subcommand exists)."""
    parser.formatter_class = HelpFormatter
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    _add_output_options(parser, top=True)
    for sub in _subparsers(parser):
        sub.formatter_class = HelpFormatter
        _add_output_options(sub, top=False)
    return parser


# -- logging -----------------------------------------------------------------------------------
LOG_FORMAT = "%(asctime)s %(message)s"  # as train.log (models/train/loop.py), so the two read alike
# Loggers that write only their run folder's train.log (propagate off): their records are passed
# on to --log-file too (and to the console with -v).
RUN_LOGGERS = ("endospine.train", "endospine.gan")


class _Console(logging.Handler):
    """Messages on the current stderr, through tqdm so that a progress bar is not torn apart."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own rule: never raise from a handler
            self.handleError(record)


class _PassOn(logging.Filter):
    """On a run logger: hand its records to the command's handlers as well, while the logger keeps
    them to itself (propagate off); once it propagates, the records reach them anyway."""

    def __init__(self, handlers: list[logging.Handler]):
        super().__init__()
        self.handlers = handlers

    def filter(self, record: logging.LogRecord) -> bool:
        if not logging.getLogger(record.name).propagate:
            for handler in self.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
        return True


class _Logging:
    """What configure_logging set up, so that it can be taken down again (tests call main often)."""

    def __init__(self):
        self.handlers: list[logging.Handler] = []
        self.filters: list[tuple[logging.Logger, logging.Filter]] = []

    def close(self) -> None:
        root = logging.getLogger(PACKAGE)
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        for logger, filt in self.filters:
            logger.removeFilter(filt)
        if self.handlers:
            root.setLevel(logging.NOTSET)
            root.propagate = True
        self.handlers, self.filters = [], []


_current = _Logging()


def configure_logging(verbose: bool = False, quiet: bool = False, log_file: str | Path | None = None) -> None:
    """The one logging set-up of the three tools, for the `endospine` logger and everything below
    it: the console (stderr) shows info messages, debug ones too with verbose, only warnings and
    errors with quiet; log_file (appended to, folders created) gets everything with time stamps.
    Calling it again replaces the previous set-up."""
    _current.close()
    root = logging.getLogger(PACKAGE)
    console = _Console(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    handlers: list[logging.Handler] = [console]
    if log_file:
        path = Path(log_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        except OSError as exc:
            from models.core.outputs import os_reason

            raise EndoSpineError(f"--log-file {path}: cannot write ({os_reason(exc)})") from None
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handlers.append(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(min(h.level for h in handlers))
    root.propagate = False  # printed once, even if a library gives Python's root logger a handler
    _current.handlers = handlers
    passed_on = handlers[1:] + ([console] if verbose else [])
    if passed_on:
        for name in RUN_LOGGERS:
            logger, filt = logging.getLogger(name), _PassOn(passed_on)
            logger.addFilter(filt)
            _current.filters.append((logger, filt))


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars unless -q/--quiet (for the commands' `progress=` switches)."""
    return not getattr(args, "quiet", False)


def _check_log_file(args: argparse.Namespace) -> None:
    """--log-file is a file we may write, and none of the files the command names (an input, an output)."""
    from models.core.outputs import ANY, check_file

    named = []
    for dest, value in vars(args).items():
        if dest != "log_file" and isinstance(value, (str, Path)):
            named.append(value)
        elif isinstance(value, (list, tuple)):
            named.extend(v for v in value if isinstance(v, (str, Path)))
    check_file(args.log_file, ANY, "--log-file", named)


# -- running a command -------------------------------------------------------------------------
def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse argv, set up logging and call the chosen subcommand's `func(args) -> int | None`."""
    for stream in (sys.stdout, sys.stderr):   # a file name that is not UTF-8 prints escaped, never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = parser.parse_args(argv)
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    if verbose and quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    func: Callable | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    started = time.monotonic()
    code = 1
    try:
        if getattr(args, "log_file", None):
            _check_log_file(args)
        configure_logging(verbose, quiet, getattr(args, "log_file", None))
        log.debug("%s %s: %s", parser.prog, version(), " ".join(sys.argv[1:] if argv is None else argv))
        code = int(func(args) or 0)
        return code
    except EndoSpineError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        _to_log_file(logging.ERROR, f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        _to_log_file(logging.ERROR, "interrupted")
        code = 130
        return 130
    except BrokenPipeError:   # the reader went away (`| head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing left to flush at exit
        code = 141
        return 141
    except Exception:   # a bug: the traceback goes to the console as always, and into --log-file
        _to_log_file(logging.ERROR, "unexpected error", exc_info=sys.exc_info())
        raise
    finally:
        log.debug("exit %d after %.1f s", code, time.monotonic() - started)
        _current.close()


def _to_log_file(level: int, message: str, exc_info=None) -> None:
    """A record for --log-file only (the console has it already: the one-line error, a traceback)."""
    for handler in _current.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(log.makeRecord(log.name, level, __file__, 0, message, None, exc_info))


# -- shared options ----------------------------------------------------------------------------
BACKENDS = ("auto", "paddle", "onnxruntime")
BACKEND_HELP = ("inference backend; auto: ONNX Runtime when the model folder has model.onnx (export --onnx), "
                "onnxruntime is installed and the device is the CPU, else Paddle Inference (as the display "
                "chooses)")


def view_size(text: str) -> tuple[int, int] | None:
    """--view-size's value: WxH, or 'source' (None: no limit)."""
    from models.core.picture import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_view_size(p) -> None:
    """--view-size WxH|source: the size larger frames are shown and segmented at (their full
    resolution kept for recordings, snapshots and rendered videos)."""
    from models.core.picture import DEFAULT_VIEW_MAX

    p.add_argument("--view-size", type=view_size, default=DEFAULT_VIEW_MAX, metavar="WxH",
                   help="frames larger than this (a 4K source) are shown and segmented scaled down to fit it, "
                        "each plane scaled before the colour conversion; recordings, snapshots and rendered "
                        "videos keep the full resolution; 'source': every frame at its own size "
                        f"(default {DEFAULT_VIEW_MAX[0]}x{DEFAULT_VIEW_MAX[1]})")


def add_backend(p, help: str = BACKEND_HELP) -> None:
    """--backend auto|paddle|onnxruntime, default auto: the same choice wherever a model runs."""
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=help)


PRECISIONS = ("fp32", "int8")
PRECISION_HELP = ("model precision; int8: the folder's model.int8.onnx (endospine-model quantize, export --int8) "
                  "on ONNX Runtime, CPU only; its accuracy against fp32 is in the manifest (metrics.int8)")


def add_precision(p, help: str = PRECISION_HELP) -> None:
    """--precision fp32|int8, default fp32: which of the folder's models runs (int8: model.int8.onnx)."""
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help=help)


def resolve_backend(backend: str, model_dir: str | Path | None, device: str = "cpu") -> str:
    """--backend as RuntimeSettings takes it: auto -> onnxruntime when the model folder lists
    model.onnx, onnxruntime is installed and the device is the CPU, else paddle (the display's
    rule: models.core.runtime.backends.auto_backend). No model (e.g. --pred): paddle, unused."""
    if backend == "onnxruntime" and device != "cpu":
        raise EndoSpineError(f"--backend onnxruntime runs on the CPU only; use --backend paddle (or auto) "
                             f"with --device {device}")
    if backend != "auto":
        return backend
    if model_dir is None or device != "cpu":
        return "paddle"
    from models.core.runtime.backends import auto_backend
    from models.core.runtime.manifest import load_manifest

    try:
        files = load_manifest(model_dir, verify=False).files
    except EndoSpineError:  # no model here: the command says so where it checks its inputs, in its order
        return "paddle"
    return auto_backend(files, device)


DEVICES = ("cpu", "gpu", "tensorrt")


def add_runtime_options(p, profile_help: str = "endoscope profile of the images' tower (default: automatic "
                                              "field of view, no color change)") -> None:
    """--backend, --precision, --device, --threads, --profile: how a pipeline command runs an exported model."""
    add_backend(p)
    add_precision(p)
    p.add_argument("--device", default="cpu", choices=DEVICES, help="inference device (gpu, tensorrt: Paddle)")
    p.add_argument("--threads", type=positive_int, default=2, help="CPU threads")
    p.add_argument("--profile", metavar="FILE", help=profile_help)


def runtime_settings(args: argparse.Namespace, model_dir: str | Path | None):
    """RuntimeSettings from add_runtime_options' flags, --backend auto resolved for model_dir."""
    from models.core.runtime.backends import RuntimeSettings

    device = getattr(args, "device", "cpu")
    return RuntimeSettings(backend=resolve_backend(args.backend, model_dir, device), device=device,
                           threads=args.threads, profile=getattr(args, "profile", None),
                           precision=getattr(args, "precision", "fp32"))


# SOURCE strings, one entry per kind of models.core.sources.registry.SOURCE_KINDS (a test keeps them
# equal, and the README's list too): the name that help and README use, then the details.
SOURCE_KINDS = {
    "video": ("a video file", "anything FFmpeg reads; played at its own rate"),
    "stream": ("a stream URL", "rtsp://, rtsps://, rtmp://, udp://, tcp://, srt://, http://, https://"),
    "folder": ("a folder of images", "DIR[?fps=N], default 10 per second"),
    "image": ("a single image", ".png .jpg .jpeg .bmp .tif .tiff .webp"),
    "capture": ("a capture card or camera", "capture:N[?backend=&width=&height=&fps=&fourcc=&buffer=]"),
    "synthetic": ("synthetic[:SEED][?width=W&height=H]", "live frames from the scene engine"),
}


def source_help(default: str | None = None) -> str:
    """SOURCE's help: every kind, then what happens without one."""
    kinds = "; ".join(f"{name} ({details})" for name, details in SOURCE_KINDS.values())
    return kinds + (f". Default: {default}" if default else "")


class Deprecated(argparse.Action):
    """An old spelling of an option, hidden from help: a value among `accepted` is stored in the
    new option's dest with a one-line note on stderr; any other value is a usage error with `hint`."""

    def __init__(self, option_strings, dest, new: str, accepted: Sequence[str], hint: str, **kwargs):
        self.new, self.accepted, self.hint = new, tuple(accepted), hint
        kwargs.update(help=argparse.SUPPRESS, default=argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values not in self.accepted:
            parser.error(f"{option_string} {values}: {self.hint}")
        print(f"{parser.prog}: note: {option_string} {values} is deprecated here, use {self.new} {values} "
              f"({option_string} means an exported model folder everywhere else)", file=sys.stderr)
        setattr(namespace, self.dest, values)


# -- argument types ----------------------------------------------------------------------------
def number(kind: type = int, low: float | None = None, high: float | None = None, what: str | None = None):
    """An argparse type: text -> int or float within [low, high], with a plain-words error."""
    noun = what or ("a whole number" if kind is int else "a number")
    bounds = (f" in {low:g}..{high:g}" if low is not None and high is not None
              else f" >= {low:g}" if low is not None else f" <= {high:g}" if high is not None else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}{bounds}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {noun}{bounds}, got {value}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


positive_int = number(int, 1, what="a positive whole number")
non_negative_int = number(int, 0, what="a whole number")


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """'1 clip', '2 clips', '0 clips' (nouns: an irregular plural)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"
