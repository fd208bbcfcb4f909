"""What every stage task shares: its input annotation file, its output paths, progress.

A stage takes the task that produces its input annotation file as the ``annotations``
parameter, so stages chain in code (``Tarify(annotations=DownloadImages(...))``) while on
the command line ``--annotations FILE`` names an existing file. Outputs are built from
the input's stem: ``<data_dir>/stages/<stage>/<stem>.json``.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import luigi

from redcaps import annotations as ann
from tasks.config import redcaps


class ExternalAnnotations(luigi.ExternalTask):
    """An annotation file that already exists (official files, a user's file)."""

    path = luigi.Parameter()

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(self.path)


class AnnotationsParameter(luigi.Parameter):
    """The task producing a stage's input; from a string (command line) an existing file.

    Luigi rebuilds tasks from their serialized parameters (dynamic dependencies, other worker
    processes), so an upstream task serializes to a JSON description of its whole chain,
    ``{"task": family, "params": {...}}``, nested as objects (not strings, which would double
    the escaping at every level). A file path serializes to itself.
    """

    def normalize(self, x: Any) -> luigi.Task:
        if isinstance(x, (str, os.PathLike)):
            return self.parse(os.fspath(x))
        return x

    def parse(self, x: str) -> luigi.Task:
        if x.lstrip().startswith("{"):
            return _build_task(json.loads(x))
        return ExternalAnnotations(path=os.path.abspath(x))

    def serialize(self, x: luigi.Task) -> str:
        description = _describe_task(x)
        return description if isinstance(description, str) else json.dumps(description, sort_keys=True)


def _describe_task(task: luigi.Task) -> str | dict[str, Any]:
    if isinstance(task, ExternalAnnotations):
        return task.path
    params: dict[str, Any] = {}
    for name, param in task.get_params():
        value = getattr(task, name)
        is_upstream = isinstance(param, AnnotationsParameter)
        params[name] = _describe_task(value) if is_upstream else param.serialize(value)
    return {"task": task.get_task_family(), "params": params}


def _build_task(description: str | dict[str, Any]) -> luigi.Task:
    if isinstance(description, str):
        return ExternalAnnotations(path=os.path.abspath(description))
    task_class = luigi.task_register.Register.get_task_cls(description["task"])
    values = description["params"]
    kwargs = {}
    for name, param in task_class.get_params():
        if name in values:
            is_upstream = isinstance(param, AnnotationsParameter)
            kwargs[name] = _build_task(values[name]) if is_upstream else param.parse(values[name])
    return task_class(**kwargs)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> ann.AnnotationFile:
    return ann.load(path)


def load_annotations(path: str | Path) -> ann.AnnotationFile:
    """Load (and schema-check) an annotation file, cached while it is unchanged on disk."""
    path = str(path)
    return _load_cached(path, os.stat(path).st_mtime_ns)


class StageTask(luigi.Task):
    """A stage that reads one annotation file, named by its stem (``roses_2020``)."""

    annotations = AnnotationsParameter(description="Input annotation file (or the task that writes it)")
    stage: ClassVar[str] = "stage"

    def requires(self) -> luigi.Task:
        return self.annotations

    @property
    def input_path(self) -> Path:
        return Path(self.annotations.output().path)  # the upstream's target, whatever requires() adds

    @property
    def stem(self) -> str:
        return self.input_path.name.removesuffix(".json")

    @property
    def root(self) -> Path:
        return redcaps().root

    def stage_path(self, suffix: str = ".json") -> Path:
        return self.root / "stages" / self.stage / f"{self.stem}{suffix}"

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
