"""``RedCapsError`` is a message for the user (one line that names the place): luigi's log
shows it as that line, not a traceback. Luigi logs a failed task and an error before
scheduling (a bad batch config) with ``logger.exception`` on ``luigi-interface``, and an error
in a task's ``complete()`` or ``requires()`` (a preflight problem) as a warning with the
traceback in its text; other exceptions keep their tracebacks, and the scheduler's web UI keeps
every traceback. A preflight's several problems stay one line each."""

from __future__ import annotations

import logging
import re

from redcaps import errors
from redcaps.errors import RedCapsError

#: The last line(s) of a formatted traceback: ``redcaps.<module>.<Class>: <message>``.
_RAISED = re.compile(r"\n(redcaps(?:\.\w+)*)\.(\w+): (.*)\Z", re.DOTALL)


def _one_line(headline: str, message: str) -> str:
    return "\n".join(f"{headline}: error: {line}" for line in message.splitlines() or [""])


def _formatted_redcaps_error(text: str) -> tuple[str, str] | None:
    """``(headline, message)`` when ``text`` is luigi's "<headline>:\\n<traceback>" of a RedCapsError."""
    headline, _, rest = text.partition(":\nTraceback (most recent call last):")
    match = _RAISED.search(rest.rstrip("\n"))
    if not rest or match is None:
        return None
    module, name = match.group(1), match.group(2)
    try:
        cls = getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        return None
    if not (isinstance(cls, type) and issubclass(cls, errors.RedCapsError)):
        return None
    return headline, match.group(3)


class OneLineRedCapsErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RedCapsError):
            record.msg, record.args = _one_line(record.getMessage(), str(exc)), None
            record.exc_info, record.exc_text = None, None
        elif "Traceback (most recent call last)" in str(record.msg):
            found = _formatted_redcaps_error(record.getMessage())
            if found:
                record.msg, record.args = _one_line(*found), None
        return True


def install() -> None:
    logger = logging.getLogger("luigi-interface")
    if not any(isinstance(f, OneLineRedCapsErrors) for f in logger.filters):
        logger.addFilter(OneLineRedCapsErrors())
