"""``validate`` that really validates: every problem of a file, each with its place.

Checks the schema of ``info`` and every record (types, safe names), unique ``image_id``,
``created_utc`` inside ``info.start_date .. end_date`` (the whole end day, UTC), subreddit
lowercase and matching the file name, http(s) URLs, ``/r/`` permalinks, and well-formed
filter blocks. Missing filter blocks and unknown keys are warnings: official files have
no unknown keys, tool-made files may carry more ``info``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from redcaps import annotations as ann
from redcaps.errors import UnsafeNameError
from redcaps.names import split_stem

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _info_problems(info: Any) -> tuple[list[Problem], tuple[int, int] | None]:
    if not isinstance(info, dict):
        return [Problem("error", "info", "must be an object")], None
    problems = []
    for key in ann.INFO_FIELDS:
        if key not in info:
            problems.append(Problem("error", f"info.{key}", "missing"))
    start, end = _date(info.get("start_date")), _date(info.get("end_date"))
    for key, value in (("start_date", start), ("end_date", end)):
        if key in info and value is None:
            problems.append(Problem("error", f"info.{key}", f"not an ISO date: {info[key]!r}"))
    if start and end and start > end:
        problems.append(Problem("error", "info", f"start_date {start} is after end_date {end}"))
    version = info.get("version")
    if "version" in info and (isinstance(version, bool) or not isinstance(version, (str, int, float))):
        problems.append(Problem("error", "info.version", "must be a string or number"))
    for block in ann.FILTER_BLOCKS:
        if block not in info:
            problems.append(Problem("warning", f"info.{block}", "missing: this filter has not been applied"))
        else:
            problems += _filter_problems(block, info[block])
    window = None
    if start and end and start <= end:
        first = dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc)
        last = dt.datetime(end.year, end.month, end.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
        window = (int(first.timestamp()), int(last.timestamp()) - 1)
    return problems, window


def _filter_problems(block: str, value: Any) -> list[Problem]:
    where = f"info.{block}"
    if not isinstance(value, dict):
        return [Problem("error", where, "must be an object")]
    problems = []
    removed = value.get("num_removed")
    if isinstance(removed, bool) or not isinstance(removed, int) or removed < 0:
        problems.append(
            Problem("error", f"{where}.num_removed", f"must be a non-negative int, got {removed!r}")
        )
    if not isinstance(value.get("model"), str):
        problems.append(Problem("error", f"{where}.model", "must be a string"))
    if block != "word_filter":
        threshold = value.get("confidence_threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            problems.append(
                Problem(
                    "error", f"{where}.confidence_threshold", f"must be a number in [0, 1], got {threshold!r}"
                )
            )
    return problems


def _record_where(index: int, record: Any) -> str:
    image_id = record.get("image_id") if isinstance(record, dict) else None
    return f"record {index}" + (f" (image_id {image_id!r})" if isinstance(image_id, str) else "")


def validate(annotations: ann.AnnotationFile | dict[str, Any], file_name: str | None = None) -> list[Problem]:
    """Every problem of a decoded file (raw JSON dicts accepted, so nothing stops early)."""
    data = annotations.to_json() if isinstance(annotations, ann.AnnotationFile) else annotations
    if not isinstance(data, dict):
        return [Problem("error", "file", "top level must be an object")]
    problems: list[Problem] = []
    for key in ("info", "annotations"):
        if key not in data:
            problems.append(Problem("error", key, "missing top-level key"))
    info_problems, window = _info_problems(data.get("info", {}))
    problems += info_problems if "info" in data else []
    records = data.get("annotations", [])
    if not isinstance(records, list):
        return [*problems, Problem("error", "annotations", "must be a list")]

    expected_subreddit = None
    if file_name:
        try:
            expected_subreddit = split_stem(file_name)[0]
        except UnsafeNameError:
            problems.append(
                Problem("warning", "file", f"name {Path(file_name).name!r} is not <subreddit>_<year>.json")
            )
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        where = _record_where(index, record)
        problems += [
            Problem("error", where, f"field {name!r}: {msg}") for name, msg in ann.record_problems(record)
        ]
        if not isinstance(record, dict):
            continue
        unknown = set(record) - set(ann.FIELDS)
        if unknown:
            problems.append(Problem("warning", where, f"unknown fields {sorted(unknown)}"))
        image_id = record.get("image_id")
        if isinstance(image_id, str):
            if image_id in seen:
                problems.append(
                    Problem("error", where, f"duplicate image_id (first at record {seen[image_id]})")
                )
            else:
                seen[image_id] = index
        subreddit = record.get("subreddit")
        if isinstance(subreddit, str):
            if subreddit != subreddit.lower():
                problems.append(Problem("error", where, f"subreddit {subreddit!r} is not lowercase"))
            if expected_subreddit and subreddit != expected_subreddit.lower():
                problems.append(
                    Problem(
                        "error",
                        where,
                        f"subreddit {subreddit!r} does not match the file name ({expected_subreddit!r})",
                    )
                )
        created = record.get("created_utc")
        checkable = window and isinstance(created, (int, float)) and not isinstance(created, bool)
        if checkable and not window[0] <= created <= window[1]:  # type: ignore[index]
            when = dt.datetime.fromtimestamp(created, dt.timezone.utc).isoformat()
            problems.append(Problem("error", where, f"created_utc {created} ({when}) is outside info dates"))
        permalink = record.get("permalink")
        if isinstance(permalink, str) and not permalink.startswith("/r/"):
            problems.append(Problem("error", where, f"permalink {permalink[:60]!r} does not start with /r/"))
    return problems


def validate_file(path: str | Path) -> list[Problem]:
    """Problems of the file at ``path``; an unreadable or non-JSON file is one error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [Problem("error", str(path), f"cannot read: {exc.strerror or exc}")]
    except (ValueError, UnicodeDecodeError) as exc:
        return [Problem("error", str(path), f"invalid JSON: {exc}")]
    return validate(data, path.name)
