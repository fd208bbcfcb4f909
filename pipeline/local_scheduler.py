"""``--local-scheduler`` runs with a scheduler that prunes its graph at most once a second.

Luigi's local scheduler prunes on every ``get_work``, walking every task it has seen. In
one long-lived worker nothing is ever removed (the worker stays a stakeholder of every task
it scheduled), so each task costs a walk over all earlier ones: a batch's run is quadratic
in its size however it is chunked, and profiling the official batch showed three quarters of
the time there (docs/benchmarks/scheduler.md). Pruning once a second keeps what pruning is
for -- failed tasks go back to pending after ``retry_delay``, dead workers' tasks are failed
-- at most a second late. luigid is unaffected: it does not prune on ``get_work``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import luigi.interface
import luigi.scheduler


class ThrottledPruneScheduler(luigi.scheduler.Scheduler):
    """A ``Scheduler`` whose ``prune`` runs at most once per ``interval`` seconds."""

    interval = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_prune = -math.inf

    def prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune >= self.interval:
            self._last_prune = now
            super().prune()


def _create_local_scheduler(self: Any) -> luigi.scheduler.Scheduler:
    return ThrottledPruneScheduler(prune_on_get_work=True, record_task_history=False)


def install() -> None:
    """Use it for every local-scheduler run in this process: the ``luigi`` command and
    ``luigi.build`` both create theirs through this factory (luigi 3.8.1 has no setting)."""
    luigi.interface._WorkerSchedulerFactory.create_local_scheduler = _create_local_scheduler  # type: ignore[method-assign]
