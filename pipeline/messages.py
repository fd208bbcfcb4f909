"""``RedCapsError`` is a message for the user (one line that names the place): luigi's log
shows it as that line, not a traceback. Luigi logs both a failed task and an error before
scheduling (a bad batch config) with ``logger.exception`` on ``luigi-interface``; other
exceptions keep their tracebacks, and the scheduler's web UI keeps every traceback."""

from __future__ import annotations

import logging

from redcaps.errors import RedCapsError


class OneLineRedCapsErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RedCapsError):
            record.msg, record.args = f"{record.getMessage()}: error: {exc}", None
            record.exc_info, record.exc_text = None, None
        return True


def install() -> None:
    logger = logging.getLogger("luigi-interface")
    if not any(isinstance(f, OneLineRedCapsErrors) for f in logger.filters):
        logger.addFilter(OneLineRedCapsErrors())
