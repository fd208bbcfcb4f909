"""Exceptions that end a job with a one-line message (the CLI prints ``error: <message>``)."""


class RedCapsError(Exception):
    """Base class: bad input or a condition the user must fix. Never a bug."""


class UnsafeNameError(RedCapsError, ValueError):
    """A subreddit or image id that cannot safely become a file name."""


class AnnotationFormatError(RedCapsError):
    """An annotation file that does not follow the schema."""
