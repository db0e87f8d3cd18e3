"""The one exception type that command-line tools turn into a one-line message."""


class EndoSpineError(Exception):
    """A user-facing error: bad input file, bad argument, unusable model folder.

    The message is one line and names the file (or argument) and the problem; CLIs print it
    and exit non-zero instead of showing a traceback.
    """
