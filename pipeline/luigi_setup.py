"""The one place the project changes Luigi, done once by the entry point (``pipeline/__init__``).

* ``[retcode]`` defaults, so a failed run exits non-zero (luigi exits 0 unless configured);
  a user's own ``[retcode]`` values win;
* the local scheduler that prunes at most once a second (``local_scheduler``);
* ``RedCapsError`` as one line in luigi's log (``messages``).
"""

from __future__ import annotations

import luigi

from pipeline import local_scheduler, messages

RETCODE_DEFAULTS = {
    "already_running": "10",
    "missing_data": "20",
    "not_run": "25",
    "task_failed": "30",
    "scheduling_error": "35",
    "unhandled_exception": "40",
}

_installed = False


def install() -> None:
    """Idempotent: importing ``pipeline`` twice (or from tests) installs once."""
    global _installed
    if _installed:
        return
    config = luigi.configuration.get_config()
    if not config.has_section("retcode"):
        config.add_section("retcode")
    for key, value in RETCODE_DEFAULTS.items():
        if not config.has_option("retcode", key):
            config.set("retcode", key, value)
    local_scheduler.install()
    messages.install()
    _installed = True
