"""The terminal's story of a run: one progress line per running stage, then the summary.

Tasks report progress to the scheduler (``set_status_message``/``set_progress_percentage``,
``tasks.base.show_progress``); :class:`ProgressReporter` passes the same reports to a
:class:`Printer` as well, which adds a rate and an ETA. On a terminal each stage's line is
rewritten in place; otherwise (a log file, a pipe) a line is printed at most every few seconds
per stage. The command prints the root task's ``summary_text()`` at the end (``command``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import luigi
from luigi import worker

#: ``done/total things`` in a status message: the count a rate is computed from ("chunk 1/3:"
#: counts no things, so it gets no rate).
_COUNT = re.compile(r"(\d+)/(\d+) [a-z]")
#: What a line gives up first when it is too wide: the detail after a message's ``;``.
_DETAIL = re.compile(r";[^;]*$")


def subject(task: luigi.Task) -> str:
    """What a task works on: ``r/roses 2020-01``, ``roses_2020 shard 3`` (empty if nothing)."""
    params = task.param_kwargs
    if "subreddit" in params and "month" in params:
        return f"r/{params['subreddit']} {params['month']:%Y-%m}"
    for attr in ("stem", "shard_label"):
        try:
            value = getattr(task, attr, None)
        except Exception:  # a label must never fail a run
            value = None
        if value:
            return f"{value} shard {params['shard']}" if "shard" in params else str(value)
    return ""


def label(task: luigi.Task) -> str:
    """A short name for a task: its family and what it works on."""
    return " ".join(filter(None, [task.get_task_family(), subject(task)]))


def fit(head: str, tail: list[str], width: int) -> str:
    """``head · tail...`` in ``width`` columns: without the head's ``; detail``, then the head
    cut short with an ellipsis; the rate and ETA (``tail``) stay."""
    line = " · ".join([head, *tail])
    if len(line) <= width:
        return line
    head = _DETAIL.sub("", head)
    room = width - len(" · ".join(["", *tail]))
    if len(head) > room:
        head = head[: max(0, room - 1)] + "…"
    return " · ".join([head, *tail])[:width]


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

    @property
    def width(self) -> int:
        """The terminal's columns, less one: a line that fills the last column wraps on some."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns - 1
        except (AttributeError, OSError, ValueError):
            return shutil.get_terminal_size().columns - 1

    def line(self, state: _Running, width: int | None = None) -> str:
        """The state's line with a rate and an ETA, fitted into ``width`` columns if given."""
        elapsed = time.monotonic() - state.started
        head = f"{state.name}: {state.message}" if state.message else state.name
        parts: list[str] = []
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
        return fit(head, parts, width) if width else " · ".join([head, *parts])

    def write(self, text: str, final: bool = False) -> None:
        """On a terminal a line rewritten in place (fitted by ``line``: it must not wrap), else a new line."""
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
                self.write(self.line(state, self.width if self.live else None))

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


#: What each running task of this process works on, by task id: its web-UI status names it.
SUBJECTS: dict[str, str] = {}


class ProgressReporter(worker.TaskStatusReporter):
    """Luigi's reporter (status to the scheduler), also showing the reports on the terminal.
    In luigid's web UI the status message starts with the task's subject (``roses_2020 shard
    3: 50/200 images``), as every task of one family looks alike there."""

    def update_status_message(self, message: str) -> None:
        about = SUBJECTS.get(self._task_id)
        super().update_status_message(f"{about}: {message}" if about else message)
        PRINTER.update(self._task_id, message=message)

    def update_progress_percentage(self, percentage: float) -> None:
        super().update_progress_percentage(percentage)
        PRINTER.update(self._task_id, percent=percentage)


def _started(task: luigi.Task) -> None:
    SUBJECTS[task.task_id] = subject(task)
    PRINTER.start(task.task_id, label(task))


def _succeeded(task: luigi.Task) -> None:
    SUBJECTS.pop(task.task_id, None)
    PRINTER.finish(task.task_id, ok=True)


def _failed(task: luigi.Task, *_: Any) -> None:
    SUBJECTS.pop(task.task_id, None)
    PRINTER.finish(task.task_id, ok=False)


def install() -> None:
    """Idempotent: the reporter class luigi's worker builds, and three event handlers."""
    if worker.TaskStatusReporter is ProgressReporter:
        return
    worker.TaskStatusReporter = ProgressReporter
    luigi.Task.event_handler(luigi.Event.START)(_started)
    luigi.Task.event_handler(luigi.Event.SUCCESS)(_succeeded)
    luigi.Task.event_handler(luigi.Event.FAILURE)(_failed)
