"""The one exception type that command-line tools turn into a one-line message."""


class EndoSpineError(Exception):
    """A user-facing error: bad input file, bad argument, unusable model folder.

    The message is one line and names the file (or argument) and the problem; CLIs print it
    and exit non-zero instead of showing a traceback.
    """


def one_line(exc: BaseException) -> str:
    """An exception as one line for a person: an EndoSpineError's own message (it is written for
    people), anything else prefixed with its type (a library's error says little without it)."""
    lines = str(exc).strip().splitlines()
    if isinstance(exc, EndoSpineError):
        return lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
