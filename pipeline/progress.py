"""The terminal's story of a run: one progress line per running stage, then the summary.

Tasks report progress to the scheduler (``set_status_message``/``set_progress_percentage``,
``tasks.base.show_progress``); :class:`ProgressReporter` passes the same reports to a
:class:`Printer` as well, which adds a rate and an ETA. On a terminal each stage's line is
rewritten in place; otherwise (a log file, a pipe) a line is printed at most every few seconds
per stage. The command prints the root task's ``summary_text()`` at the end (``command``).
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import luigi
from luigi import worker

#: ``done/total`` in a status message: the count a rate is computed from.
_COUNT = re.compile(r"(\d+)/(\d+)")


def label(task: luigi.Task) -> str:
    """A short name for a task: its family and what it works on."""
    family = task.get_task_family()
    params = task.param_kwargs
    if "subreddit" in params and "month" in params:
        return f"{family} r/{params['subreddit']} {params['month']:%Y-%m}"
    for attr in ("stem", "shard_label"):
        try:
            value = getattr(task, attr, None)
        except Exception:  # a label must never fail a run
            value = None
        if value:
            extra = f" shard {params['shard']}" if "shard" in params else ""
            return f"{family} {value}{extra}"
    return family


@dataclass
class _Running:
    name: str
    started: float = field(default_factory=time.monotonic)
    printed: float = 0.0
    message: str = ""
    percent: float | None = None


def _duration(seconds: float) -> str:
    return str(dt.timedelta(seconds=round(seconds)))


class Printer:
    """Progress lines on ``stream`` (stderr); ``interval`` is the least time between a stage's lines
    when ``stream`` is not a terminal."""

    def __init__(self, stream: TextIO | None = None, interval: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.running: dict[str, _Running] = {}
        self.lock = threading.Lock()

    @property
    def live(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self, state: _Running) -> str:
        elapsed = time.monotonic() - state.started
        parts = [f"{state.name}: {state.message}" if state.message else state.name]
        count = _COUNT.search(state.message)
        if count and elapsed > 0 and int(count.group(1)):
            done, total = int(count.group(1)), int(count.group(2))
            rate = done / elapsed
            parts.append(f"{rate:.1f}/s")
            if done < total:
                parts.append(f"ETA {_duration((total - done) / rate)}")
        elif state.percent and 0 < state.percent < 100:
            left = elapsed * (100 - state.percent) / state.percent
            parts.append(f"{state.percent:.0f}%, ETA {_duration(left)}")
        return " · ".join(parts)

    def write(self, text: str, final: bool = False) -> None:
        if self.live:
            self.stream.write(f"\r\033[K{text}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, task_id: str, name: str) -> None:
        with self.lock:
            self.running[task_id] = _Running(name)

    def update(self, task_id: str, message: str | None = None, percent: float | None = None) -> None:
        with self.lock:
            state = self.running.get(task_id)
            if state is None:
                return
            if message is not None:
                state.message = str(message)
            if percent is not None:
                state.percent = float(percent)
            now = time.monotonic()
            if self.live or now - state.printed >= self.interval:
                state.printed = now
                self.write(self.line(state))

    def finish(self, task_id: str, ok: bool) -> None:
        with self.lock:
            state = self.running.pop(task_id, None)
            if state is None:
                return
            took = _duration(time.monotonic() - state.started)
            outcome = "done" if ok else "FAILED"
            said = f": {state.message}" if state.message else ""
            self.write(f"{outcome} {state.name}{said} ({took})", final=True)


PRINTER = Printer()


def note(text: str) -> None:
    """One line for the person running the pipeline (not a log record)."""
    if text:
        PRINTER.write(text, final=True)


class ProgressReporter(worker.TaskStatusReporter):
    """Luigi's reporter (status to the scheduler), also showing the reports on the terminal."""

    def update_status_message(self, message: str) -> None:
        super().update_status_message(message)
        PRINTER.update(self._task_id, message=message)

    def update_progress_percentage(self, percentage: float) -> None:
        super().update_progress_percentage(percentage)
        PRINTER.update(self._task_id, percent=percentage)


def _started(task: luigi.Task) -> None:
    PRINTER.start(task.task_id, label(task))


def _succeeded(task: luigi.Task) -> None:
    PRINTER.finish(task.task_id, ok=True)


def _failed(task: luigi.Task, *_: Any) -> None:
    PRINTER.finish(task.task_id, ok=False)


def install() -> None:
    """Idempotent: the reporter class luigi's worker builds, and three event handlers."""
    if worker.TaskStatusReporter is ProgressReporter:
        return
    worker.TaskStatusReporter = ProgressReporter
    luigi.Task.event_handler(luigi.Event.START)(_started)
    luigi.Task.event_handler(luigi.Event.SUCCESS)(_succeeded)
    luigi.Task.event_handler(luigi.Event.FAILURE)(_failed)
