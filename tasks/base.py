"""What every stage task shares: its input annotation file, the layout of its outputs, progress.

A stage takes the task that produces its input annotation file as the ``annotations``
parameter, so stages chain in code (``Tarify(annotations=DownloadImages(...))``) while on
the command line ``--annotations FILE`` names an existing file. Outputs are the layout's
files for the input's stem (``redcaps.layout``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import luigi
from luigi.parameter import ParameterException
from luigi.task_register import TaskClassException

from redcaps import annotations as ann
from redcaps.layout import Layout, stem_of
from tasks.config import data_layout


class InDataDir(luigi.Task):
    """A task writing under ``[redcaps] data_dir``: the data dir is part of its id.

    luigid knows tasks by id only, so without it two data dirs sharing one luigid would share
    (and block: a task disabled after failures in one is refused in the other) the same
    tasks. Parameters, and so the web UI and stage chains, stay as they are; only the id's
    hash covers the data dir too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task_id = with_data_dir(self.task_id, data_layout().root)


def with_data_dir(task_id: str, root: Path) -> str:
    """Luigi's id (``Family_<params>_<hash>``) with a hash that also covers ``root``."""
    readable, _, _ = task_id.rpartition("_")
    digest = hashlib.md5(f"{task_id}\0{root}".encode()).hexdigest()[: len(task_id) - len(readable) - 1]
    return f"{readable}_{digest}"


class ExternalAnnotations(luigi.ExternalTask):
    """An annotation file that already exists (official files, a user's file)."""

    path = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path)


class AnnotationsParameter(luigi.Parameter):
    """The task producing a stage's input; from a string (command line) an existing file.

    Luigi rebuilds tasks from their serialized parameters (dynamic dependencies, other worker
    processes) and the web UI shows them, so an upstream task serializes to its chain, read
    left to right: ``MergeYear{"subreddit":"roses",...} > DownloadImages > FilterWords``. The
    chain's root is a task with its other parameters as JSON, or a JSON-quoted file path; a
    file path alone serializes to itself, so ``--annotations FILE`` works as typed.
    """

    def normalize(self, x: Any) -> luigi.Task:
        if isinstance(x, (str, os.PathLike)):
            return self.parse(os.fspath(x))
        return x

    def parse(self, x: str) -> luigi.Task:
        if _CHAIN_START.match(x):
            return _parse_chain(x)
        return ExternalAnnotations(path=os.path.abspath(x))

    def serialize(self, x: luigi.Task) -> str:
        return x.path if isinstance(x, ExternalAnnotations) else _chain(x)


_SEPARATOR = " > "
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A chain starts with a quoted path or ``Name{``; a file path never does.
_CHAIN_START = re.compile(r'"|[A-Za-z_][A-Za-z0-9_]*\{')


def _chain(task: luigi.Task) -> str:
    if isinstance(task, ExternalAnnotations):
        return json.dumps(task.path)
    upstream, params = None, {}
    for name, param in task.get_params():
        if isinstance(param, AnnotationsParameter):
            upstream = getattr(task, name)
        else:
            params[name] = param.serialize(getattr(task, name))
    element = task.get_task_family()
    if params or upstream is None:
        element += json.dumps(params, sort_keys=True, separators=(",", ":"))
    return element if upstream is None else f"{_chain(upstream)}{_SEPARATOR}{element}"


def _parse_chain(text: str) -> luigi.Task:
    """The inverse of :func:`_chain`; a malformed chain is a one-line ``ValueError``."""
    decoder = json.JSONDecoder()
    task: luigi.Task | None = None
    pos = 0
    while True:
        try:
            if task is None and text.startswith('"'):
                path, pos = decoder.raw_decode(text, 0)
                task = ExternalAnnotations(path=os.path.abspath(path))
            else:
                name = _NAME.match(text, pos)
                if name is None:
                    raise ValueError("a task name was expected")
                pos, params = name.end(), {}
                if text.startswith("{", pos):
                    params, pos = decoder.raw_decode(text, pos)
                task = _make_task(name.group(), params, task)
        except (ValueError, TaskClassException, ParameterException) as exc:
            why = str(exc).splitlines()[0]  # luigi's "not found" lists every task on more lines
            raise ValueError(f"bad task chain {text!r} at character {pos}: {why}") from None
        if pos == len(text):
            return task
        if not text.startswith(_SEPARATOR, pos):
            raise ValueError(f"bad task chain {text!r} at character {pos}: ' > ' expected")
        pos += len(_SEPARATOR)


def _make_task(family: str, params: dict[str, str], upstream: luigi.Task | None) -> luigi.Task:
    task_class = luigi.task_register.Register.get_task_cls(family)
    kwargs: dict[str, Any] = {}
    for name, param in task_class.get_params():
        if isinstance(param, AnnotationsParameter):
            if upstream is None:
                raise ValueError(f"{family} needs an upstream task or file")
            kwargs[name] = upstream
        elif name in params:
            kwargs[name] = param.parse(params[name])
    return task_class(**kwargs)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> ann.AnnotationFile:
    return ann.load(path)


def load_annotations(path: str | Path) -> ann.AnnotationFile:
    """Load (and schema-check) an annotation file, cached while it is unchanged on disk."""
    path = str(path)
    return _load_cached(path, os.stat(path).st_mtime_ns)


class StageTask(InDataDir):
    """A stage that reads one annotation file, named by its stem (``roses_2020``); its outputs
    are the layout's files for that stem."""

    annotations = AnnotationsParameter(description="Input annotation file (or the task that writes it)")

    def requires(self) -> luigi.Task:
        return self.annotations

    def complete(self) -> bool:
        """Complete when its output exists and its upstream is complete: an upstream that has
        work again (a download shard with failures to retry) makes every later stage rerun."""
        return super().complete() and self.annotations.complete()

    @property
    def input_path(self) -> Path:
        return Path(self.annotations.output().path)  # the upstream's target, whatever requires() adds

    @property
    def stem(self) -> str:
        return stem_of(self.input_path)

    @property
    def layout(self) -> Layout:
        return data_layout()

    def load_input(self) -> ann.AnnotationFile:
        return load_annotations(self.input_path)

    def report(self, message: str, percent: float | None = None) -> None:
        report_progress(self, message, percent)


def report_progress(task: luigi.Task, message: str, percent: float | None = None) -> None:
    """Progress for luigid's web UI; a no-op when run outside a worker (tests, CLI), where
    luigi leaves the callbacks unset."""
    set_message = getattr(task, "set_status_message", None)
    if callable(set_message):
        set_message(message)
    set_percent = getattr(task, "set_progress_percentage", None)
    if percent is not None and callable(set_percent):
        set_percent(round(percent, 1))


class Throttled:
    """Calls ``report(done, total)`` at most every ``interval`` seconds, and always at the end."""

    def __init__(self, report: Callable[[int, int], None], interval: float = 2.0) -> None:
        self.report, self.interval, self.last = report, interval, -math.inf

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval or done >= total:
            self.last = now
            self.report(done, max(1, total))
