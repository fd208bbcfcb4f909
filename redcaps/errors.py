"""Exceptions that end a job with a one-line message (the CLI prints ``error: <message>``)."""


class RedCapsError(Exception):
    """Base class: bad input or a condition the user must fix. Never a bug."""


class UnsafeNameError(RedCapsError, ValueError):
    """A subreddit or image id that cannot safely become a file name."""


class AnnotationFormatError(RedCapsError):
    """An annotation file that does not follow the schema."""


class DiskFullError(RedCapsError):
    """No space (or quota) left while writing an output; the message names the path and free space.

    Deliberately not an ``OSError``: code that contains one image's I/O failure must not
    swallow a full disk, which stops the run."""
