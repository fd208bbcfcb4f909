"""What every stage task shares: its data dir, its place in a declared stage list, progress.

A stage's upstream is computed by ``requires()`` from its own plain parameters: ``graph``
names one of :data:`STAGE_LISTS`, and the list's root is either a file (``--annotations
FILE``; ``graph`` ``file`` or ``official``) or a collected year (``--subreddit``, ``--year``,
``--first-year``; ``graph`` ``year``, whose filters are ``[filters] enabled``). Outputs are the
layout's files for the input's stem (``redcaps.layout``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import os
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import luigi

from redcaps import annotations as ann
from redcaps import integrity
from redcaps.errors import RedCapsError
from redcaps.layout import Layout, stem_of
from redcaps.locks import holding, lock_path
from tasks.config import FiltersConfig, RedcapsConfig


class DataDirParameter(luigi.Parameter):
    """The data dir, absolute; unless given, ``[redcaps] data_dir`` (or ``--redcaps-data-dir``)."""

    def has_task_value(self, task_name: str, param_name: str) -> bool:
        return True

    def task_value(self, task_name: str, param_name: str) -> str:
        if super().has_task_value(task_name, param_name):
            return super().task_value(task_name, param_name)
        return self.normalize(RedcapsConfig().data_dir)

    def normalize(self, x: Any) -> str:
        return str(Layout.at(x).root)


class InDataDir(luigi.Task):
    """A task writing under a data dir, which is a parameter: luigid knows tasks by id only, so
    two data dirs sharing one luigid never share (or block each other's) tasks.

    Each subclass's ``run`` holds the data dir's locks for what it writes (:meth:`locks`), and
    does nothing when another run completed the task meanwhile: two runs of the same work,
    whatever their schedulers or machines, give one run's result (``redcaps.locks``)."""

    data_dir = DataDirParameter(description="Root of the dataset layout (default [redcaps] data_dir)")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in vars(cls):
            cls.run = locked(vars(cls)["run"])  # type: ignore[method-assign]

    @property
    def layout(self) -> Layout:
        return Layout.at(self.data_dir)

    def locks(self) -> list[tuple[str, bool]]:
        """``(name, shared)`` of each lock ``run`` holds, in order: its output's stem, alone."""
        return [(Path(self.output().path).stem, False)]

    @contextlib.contextmanager
    def holding_locks(self) -> Iterator[None]:
        """Hold :meth:`locks`, waiting up to ``[redcaps] lock_wait`` seconds for each."""
        wait = RedcapsConfig().lock_wait
        with contextlib.ExitStack() as stack:
            for name, shared in self.locks():
                path = lock_path(self.layout.root, name)
                lock = holding(path, self.task_id, shared=shared, wait=wait, on_wait=self.waiting)
                stack.enter_context(lock)
            yield

    def waiting(self, message: str) -> None:
        logging.getLogger("luigi-interface").warning("%s", message)
        self.show_progress(message)

    def show_progress(self, message: str, percent: float | None = None) -> None:
        show_progress(self, message, percent)


class ExternalAnnotations(luigi.ExternalTask):
    """An annotation file that already exists (official files, a user's file)."""

    path = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path)


#: The stages reading the end of every stage list (the year's Report also needs the other two).
FINAL_STAGES = ("Validate", "Tarify", "Report")
GRAPHS = ("file", "official", "year")


def stage_list(graph: str) -> tuple[str, ...]:
    """The annotation-writing stages of ``graph`` in order, by family, from its root: a file
    (``ExternalAnnotations``) or the merged year. Each stage reads the one before it; a final
    stage (and in the ``file`` graph any stage) reads the last."""
    if graph == "file":
        return ("ExternalAnnotations",)
    if graph == "official":
        return ("ExternalAnnotations", "DownloadImages")
    return ("MergeYear", "DownloadImages", *FiltersConfig().stages(), "Dedup", "Publish")


class StageTask(InDataDir):
    """A stage that reads one annotation file, named by its stem (``roses_2020``); its outputs
    are the layout's files for that stem."""

    graph = luigi.ChoiceParameter(
        choices=GRAPHS, default="file", description="Which stage list this stage is in: file, official, year"
    )
    annotations = luigi.OptionalPathParameter(
        default=None, absolute=True, description="The annotation file the file and official lists start from"
    )
    subreddit = luigi.OptionalParameter(
        default=None, description="The collected year's subreddit (year list)"
    )
    year = luigi.OptionalIntParameter(default=None, description="The collected year (year list)")
    first_year = luigi.OptionalIntParameter(default=None, description="First year folded into it (year list)")
    #: The family whose place in the stage list this task takes (a shard takes its file's).
    position: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        collected = self.graph == "year"
        if collected and (self.annotations or not self.subreddit or self.year is None):
            raise RedCapsError(f"{self}: the year list needs --subreddit and --year, not --annotations")
        if not collected and (self.annotations is None or self.subreddit or self.year or self.first_year):
            raise RedCapsError(f"{self}: the {self.graph} list needs --annotations FILE (and no year)")

    def upstream(self) -> luigi.Task:
        """The task writing this stage's input: the one before it in its stage list."""
        stages = stage_list(self.graph)
        family = self.position or self.get_task_family()
        if family in stages:
            before = stages[stages.index(family) - 1]
        elif self.graph == "file" or family in FINAL_STAGES:
            before = stages[-1]
        else:
            raise RedCapsError(f"{family} is not a stage of the {self.graph} list {list(stages)}")
        if before == "ExternalAnnotations":
            return ExternalAnnotations(path=str(self.annotations))
        return self.clone(luigi.task_register.Register.get_task_cls(before))

    def requires(self) -> luigi.Task:
        return self.upstream()

    def complete(self) -> bool:
        """Complete when its artefacts are intact (present, of their recorded size, small JSON
        parses) and its upstream is complete: an upstream that has work again (a download shard
        with failures to retry, a truncated file) makes every later stage rerun."""
        return integrity.all_intact(self.layout.root, self.artefacts()) and self.upstream().complete()

    def artefacts(self) -> list[Path]:
        """The files this stage writes that a rerun must find whole: by default, its output."""
        return [Path(self.output().path)]

    def record_artefacts(self) -> None:
        """Record the artefacts' sizes and hashes, once they are written (the run's last step)."""
        integrity.record(self.layout.root, self.artefacts())

    @property
    def input_path(self) -> Path:
        return Path(self.upstream().output().path)

    @property
    def stem(self) -> str:
        return stem_of(self.input_path)

    def load_input(self) -> ann.AnnotationFile:
        return load_annotations(self.input_path)

    def locks(self) -> list[tuple[str, bool]]:
        """The stem's lock, alone; a task doing one part of a stage (a download shard) shares it
        with the other parts and holds its own output's lock alone."""
        if self.position:
            return [(self.stem, True), (f"{self.stem}.{Path(self.output().path).stem}", False)]
        return [(self.stem, False)]


#: What ``_next`` gives once a generator ``run`` has returned.
_END = object()


def locked(run: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``run`` holding the task's locks, skipped when another run did the task meanwhile (see
    :func:`_done_meanwhile`). A generator ``run`` (dynamic dependencies) holds them only while
    its own code runs, never while the tasks it yields run, and stops when another run wrote
    its outputs meanwhile."""
    if inspect.isgeneratorfunction(run):

        @functools.wraps(run)
        def locked_steps(task: InDataDir) -> Iterator[Any]:
            return _locked_steps(task, run)

        return locked_steps

    @functools.wraps(run)
    def locked_run(task: InDataDir) -> Any:
        with task.holding_locks():
            return None if _done_meanwhile(task) else run(task)

    return locked_run


def _locked_steps(task: InDataDir, run: Callable[[Any], Generator[Any, Any, None]]) -> Iterator[Any]:
    """No completeness check first: luigi calls such a ``run`` again from the top once the
    tasks it yielded are done, when its own (old) output may look complete."""
    steps = run(task)
    try:
        with task.holding_locks():
            step = _next(steps, None)
        while step is not _END:
            sent = yield step
            with task.holding_locks():
                step = _next(steps, sent)
    finally:
        steps.close()


def _next(steps: Generator[Any, Any, None], sent: Any) -> Any:
    try:
        return steps.send(sent)
    except StopIteration:
        return _END


def _done_meanwhile(task: luigi.Task) -> bool:
    """Complete, with every output at least as new as every input: another run did it since
    this one scheduled it. (A task rerun because its upstream was redone has an input newer
    than its outputs, and runs.)"""
    outputs = [st for st in _states(_paths(task.output())) if st]
    inputs = [st for st in _states(_paths(task.input())) if st]
    if not outputs or not task.complete():
        return False
    if inputs and min(st[1] for st in outputs) < max(st[1] for st in inputs):
        return False
    _log_done(task)
    return True


def _log_done(task: luigi.Task) -> None:
    logging.getLogger("luigi-interface").info("%s: done by another run meanwhile", task)


def _paths(targets: Any) -> list[str]:
    return [t.path for t in luigi.task.flatten(targets) if isinstance(t, luigi.LocalTarget)]


def _states(paths: list[str]) -> list[tuple[int, int, int] | None]:
    """``(inode, mtime_ns, size)`` of each path, ``None`` for a missing one."""
    states: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            states.append(None)
            continue
        states.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return states


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> ann.AnnotationFile:
    return ann.load(path)


def save_if_changed(path: str | Path, records: ann.AnnotationFile) -> None:
    """Save ``records`` unless ``path`` holds them already: a file another run wrote stays as
    it is, so later stages see no newer input and are not redone (:func:`_done_meanwhile`)."""
    if not (os.path.exists(path) and load_annotations(path).to_json() == records.to_json()):
        ann.save(path, records)


def load_annotations(path: str | Path) -> ann.AnnotationFile:
    """Load (and schema-check) an annotation file, cached while it is unchanged on disk."""
    path = str(path)
    return _load_cached(path, os.stat(path).st_mtime_ns)


def show_progress(task: luigi.Task, message: str, percent: float | None = None) -> None:
    """Progress for luigid's web UI; a no-op when run outside a worker (tests, CLI), where
    luigi leaves the callbacks unset."""
    set_message = getattr(task, "set_status_message", None)
    if callable(set_message):
        set_message(message)
    set_percent = getattr(task, "set_progress_percentage", None)
    if percent is not None and callable(set_percent):
        set_percent(round(percent, 1))


class Throttled:
    """Calls ``show(done, total)`` at most every ``interval`` seconds, and always at the end."""

    def __init__(self, show: Callable[[int, int], None], interval: float = 2.0) -> None:
        self.show, self.interval, self.last = show, interval, -math.inf

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval or done >= total:
            self.last = now
            self.show(done, max(1, total))
