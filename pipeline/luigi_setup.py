"""The one place the project changes Luigi, done once by the entry point (``pipeline/__init__``).

* ``[retcode]`` defaults, so a failed run exits non-zero (luigi exits 0 unless configured);
  a user's own ``[retcode]`` values win;
* the local scheduler that prunes at most once a second (``local_scheduler``);
* ``RedCapsError`` as one line in luigi's log (``messages``);
* the ``luigi`` command checked before scheduling and ended by the summary (``command``);
* a terminal that tells the story (``progress``): ``[core] log_level`` defaults to WARNING, so
  a run shows one progress line per running stage and its summary instead of luigi's DEBUG
  log; ``--log-level DEBUG`` (or ``[core] log_level``) still gives everything.
"""

from __future__ import annotations

import luigi

from pipeline import command, local_scheduler, messages, progress

RETCODE_DEFAULTS = {
    "already_running": "10",
    "missing_data": "20",
    "not_run": "25",
    "task_failed": "30",
    "scheduling_error": "35",
    "unhandled_exception": "40",
}

#: Options set unless the user's luigi.cfg sets them.
CORE_DEFAULTS = {"log_level": "WARNING"}

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
    if not config.has_section("core"):
        config.add_section("core")
    for key, value in CORE_DEFAULTS.items():
        if not config.has_option("core", key):
            config.set("core", key, value)
    local_scheduler.install()
    command.install()
    messages.install()
    progress.install()
    _installed = True
