"""The local scheduler prunes at most once a second, and in-run retries still happen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import luigi
import luigi.interface
import luigi.scheduler
import pytest

import pipeline  # noqa: F401 - installs the throttled local scheduler
from pipeline.local_scheduler import ThrottledPruneScheduler


def test_local_runs_use_the_throttled_scheduler():
    created = luigi.interface._WorkerSchedulerFactory().create_local_scheduler()
    assert isinstance(created, ThrottledPruneScheduler)


def test_prune_runs_at_most_once_per_interval(monkeypatch):
    calls = []
    monkeypatch.setattr(luigi.scheduler.Scheduler, "prune", lambda self: calls.append(1))
    scheduler = ThrottledPruneScheduler(prune_on_get_work=True, record_task_history=False)
    for _ in range(200):
        scheduler.get_work(worker="w")
    assert len(calls) == 1  # the stock local scheduler would have pruned 200 times

    scheduler.interval = 0.0
    for _ in range(5):
        scheduler.get_work(worker="w")
    assert len(calls) == 6


class FailsOnce(luigi.Task):
    """Fails on its first run, succeeds on the second (counted in a file)."""

    path = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path)

    def run(self) -> None:
        attempts = Path(self.path + ".attempts")
        attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
        if attempts.read_text() == "x":
            raise RuntimeError("first attempt fails")
        Path(self.path).write_text("ok")


@pytest.fixture()
def quick_retries() -> Iterator[None]:
    config = luigi.configuration.get_config()
    saved = {s: dict(config.items(s)) if config.has_section(s) else None for s in ("worker", "scheduler")}
    for section, key, value in [
        ("worker", "keep_alive", "true"),
        ("scheduler", "retry_delay", "0.2"),
        ("scheduler", "retry_count", "3"),
    ]:
        if not config.has_section(section):
            config.add_section(section)
        config.set(section, key, value)
    yield
    for section, values in saved.items():
        config.remove_section(section)
        if values is not None:
            config.add_section(section)
            for key, value in values.items():
                config.set(section, key, value)


@pytest.mark.timeout(60)  # without pruning the worker waits for the retry forever
def test_a_failed_task_is_retried_within_the_run(tmp_path, quick_retries):
    """Pruning is what puts a failed task back to pending: throttling must not stop it."""
    task = FailsOnce(path=str(tmp_path / "out.txt"))
    result = luigi.build([task], local_scheduler=True, detailed_summary=True, log_level="CRITICAL")
    assert result.status == luigi.LuigiStatusCode.SUCCESS_WITH_RETRY, result.summary_text
    assert (tmp_path / "out.txt.attempts").read_text() == "xx"
