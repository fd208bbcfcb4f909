"""Small builders shared by tests (annotation records and files)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from redcaps import annotations as ann
from redcaps.filters.base import ImageScorer
from redcaps.net.limits import HostLimiter, HostPolicy


def record(
    image_id: str = "abc123", subreddit: str = "roses", created_utc: int = 1577923200, **overrides: Any
) -> dict[str, Any]:
    rec = {
        "image_id": image_id,
        "author": "someone",
        "url": f"https://i.redd.it/{image_id}.jpg",
        "raw_caption": f"A rose {image_id} [OC]",
        "caption": f"a rose {image_id}",
        "subreddit": subreddit,
        "score": 10,
        "created_utc": created_utc,
        "permalink": f"/r/{subreddit}/comments/{image_id}/a_rose/",
    }
    rec.update(overrides)
    return rec


def annotation_file(
    records: list[dict[str, Any]], start: str = "2020-01-01", end: str = "2020-12-31"
) -> ann.AnnotationFile:
    return ann.AnnotationFile(
        {"start_date": start, "end_date": end, "url": "https://redcaps.xyz", "version": "1.0"}, records
    )


def jpeg_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_images(image_dir: Path, records: list[dict[str, Any]]) -> None:
    for i, rec in enumerate(records):
        path = image_dir / rec["subreddit"] / f"{rec['image_id']}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(color=(i * 7 % 256, 100, 50)))


@contextlib.contextmanager
def luigi_settings(settings: dict[str, dict[str, str]]) -> Iterator[None]:
    """Set luigi config values for a block and restore the previous ones after."""
    import luigi

    config = luigi.configuration.get_config()
    saved = {
        (s, k): config.get(s, k) if config.has_option(s, k) else None for s in settings for k in settings[s]
    }
    for section, values in settings.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in values.items():
            config.set(section, key, value)
    luigi.task_register.Register.clear_instance_cache()
    try:
        yield
    finally:
        for (section, key), value in saved.items():
            if value is None:
                config.remove_option(section, key)
            else:
                config.set(section, key, value)
        luigi.task_register.Register.clear_instance_cache()


def as_a_new_process() -> None:
    """Forget the download manifests this process has looked at, as a new process (a new run of
    the pipeline) starts: ``tasks.download`` remembers each one's state at its first look."""
    from tasks import download

    download._first_seen.clear()


def kill_process_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started with ``start_new_session=True`` and everything it forked
    (luigi's worker forks a multiprocessing manager that outlives a killed parent)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class ScoresById(ImageScorer):
    """A model stand-in: each image scores what ``scores`` says for its id (``default`` otherwise)."""

    def __init__(self, scores: dict[str, float], model_name: str = "fake", default: float = 0.1) -> None:
        self.scores, self.model_name, self.default = scores, model_name, default

    def prepare(self, path: Path) -> str:
        return path.stem

    def score(self, batch: list[Any]) -> list[float]:
        return [self.scores.get(image_id, self.default) for image_id in batch]


def free_limiter() -> HostLimiter:
    """An API limiter that never makes a test wait (far above any sandbox API's limit)."""
    return HostLimiter({"*": HostPolicy(rate=10_000.0, burst=10_000, concurrency=4)})


def write_monthly_dumps(folder: Path, year: int = 2020) -> Path:
    """``RS_<year>-MM.zst`` for every month of ``year``: the sandbox's posts of that month, written
    the way the real dumps are (``window_log=31``)."""
    import datetime as dt

    from redcaps.collect.sources.dump import write_dump
    from redcaps.sandbox.posts import population

    def month_of(post: dict[str, Any]) -> str:
        return dt.datetime.fromtimestamp(post["created_utc"], dt.timezone.utc).strftime("%Y-%m")

    for month in range(1, 13):
        name = f"{year}-{month:02d}"
        write_dump(folder / f"RS_{name}.zst", [p for p in population() if month_of(p) == name])
    return folder
