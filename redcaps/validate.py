"""``validate`` that really validates: every problem of a file, each with its place.

The original only checked that a few keys exist (its timestamp check was dead code). Here
raw decoded JSON is walked in full, so one run lists every problem instead of stopping at
the first like :func:`redcaps.annotations.parse`. Errors are what breaks the format or
its promises (types, safe names, unique ids, dates inside ``info``, matching subreddit);
warnings are what the official release itself may lack (filter blocks), what only tools
add (unknown record keys), and empty captions (counted once per file).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from redcaps import annotations as ann
from redcaps.collect.captions import empty_captions
from redcaps.errors import RedCapsError, UnsafeNameError
from redcaps.layout import split_stem

Severity = Literal["error", "warning"]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_THRESHOLD_BLOCKS = ("nsfw_filter", "face_filter")
_TOP_LEVEL = ("info", "annotations")


@dataclass(frozen=True)
class Problem:
    """One finding; ``where`` names the place (``info.end_date``, ``record 3 (image_id 'x')``)."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


def _error(where: str, message: str) -> Problem:
    return Problem("error", where, message)


def _warning(where: str, message: str) -> Problem:
    return Problem("warning", where, message)


def duplicate_ids(records: Iterable[Any]) -> list[tuple[str, int, int]]:
    """``(image_id, first position, repeated position)`` for every repeat of an ``image_id``, in
    file order. Ids name image files and tar members, so a repeat would overwrite one sample."""
    first: dict[str, int] = {}
    repeats = []
    for index, record in enumerate(records):
        image_id = record.get("image_id") if isinstance(record, dict) else None
        if isinstance(image_id, str):
            if image_id in first:
                repeats.append((image_id, first[image_id], index))
            first.setdefault(image_id, index)
    return repeats


def check_unique_ids(records: Iterable[Any], source: str) -> None:
    """Raise a one-line :class:`RedCapsError` naming the first repeated ``image_id`` and both places."""
    repeats = duplicate_ids(records)
    if repeats:
        image_id, first, again = repeats[0]
        more = f" ({len(repeats) - 1} more repeats)" if len(repeats) > 1 else ""
        raise RedCapsError(
            f"{source}: duplicate image_id {image_id!r} at records {first} and {again}{more};"
            " ids must be unique (run `redcaps validate` for all problems)"
        )


def iso_date(value: Any) -> dt.date | None:
    """``YYYY-MM-DD`` as a date, else None (``fromisoformat`` alone also takes ``20190101``)."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    """A JSON number (bool is an int in Python but not in JSON); NaN and infinities are not."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def filter_block_problems(block: str, value: Any) -> list[Problem]:
    """Problems of one ``info.<x>_filter`` block (merge uses this to refuse malformed inputs)."""
    where = f"info.{block}"
    if not isinstance(value, dict):
        return [_error(where, f"must be an object, got {ann.json_type(value)}")]
    problems = []
    removed = value.get("num_removed")
    if "num_removed" not in value:
        problems.append(_error(f"{where}.num_removed", "missing"))
    elif isinstance(removed, bool) or not isinstance(removed, int) or removed < 0:
        problems.append(_error(f"{where}.num_removed", f"must be a non-negative int, got {removed!r}"))
    if "model" not in value:
        problems.append(_error(f"{where}.model", "missing"))
    elif not isinstance(value["model"], str):
        problems.append(_error(f"{where}.model", f"must be a string, got {ann.json_type(value['model'])}"))
    if block in _THRESHOLD_BLOCKS:
        threshold = value.get("confidence_threshold")
        if "confidence_threshold" not in value:
            problems.append(_error(f"{where}.confidence_threshold", "missing"))
        elif not _is_number(threshold) or not 0 <= threshold <= 1:
            problems.append(
                _error(f"{where}.confidence_threshold", f"must be a number in [0, 1], got {threshold!r}")
            )
    return problems


def _info_problems(info: dict[str, Any]) -> list[Problem]:
    problems = [_error(f"info.{key}", "missing") for key in ann.INFO_FIELDS if key not in info]
    for key in ("start_date", "end_date"):
        if key in info and iso_date(info[key]) is None:
            problems.append(_error(f"info.{key}", f"not a YYYY-MM-DD date: {info[key]!r}"))
    start, end = iso_date(info.get("start_date")), iso_date(info.get("end_date"))
    if start and end and start > end:
        problems.append(_error("info", f"start_date {start} is after end_date {end}"))
    if "url" in info and not isinstance(info["url"], str):
        problems.append(_error("info.url", f"must be a string, got {ann.json_type(info['url'])}"))
    if "version" in info and not (isinstance(info["version"], str) or _is_number(info["version"])):
        problems.append(_error("info.version", f"must be a string or number, got {info['version']!r}"))
    for block in ann.FILTER_BLOCKS:
        if block in info:
            problems += filter_block_problems(block, info[block])
        else:
            problems.append(_warning(f"info.{block}", "missing: this filter has not been applied"))
    return problems


def _window(info: dict[str, Any]) -> tuple[int, int] | None:
    """Epoch seconds from ``start_date`` 00:00:00 to ``end_date`` 23:59:59 UTC, if both are valid."""
    start, end = iso_date(info.get("start_date")), iso_date(info.get("end_date"))
    if not start or not end or start > end:
        return None
    first = dt.datetime.combine(start, dt.time(), dt.timezone.utc)
    after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    return int(first.timestamp()), int(after.timestamp()) - 1


def _period(text: str) -> tuple[dt.date, dt.date]:
    """First and last day of ``YYYY`` or ``YYYY-MM`` (the period part of a file name)."""
    year, _, month = text.partition("-")
    if not month:
        return dt.date(int(year), 1, 1), dt.date(int(year), 12, 31)
    first = dt.date(int(year), int(month), 1)
    return first, (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)


def _file_name_problems(file_name: str, info: dict[str, Any]) -> tuple[list[Problem], str | None]:
    """(problems, subreddit the name promises). A name that does not follow the scheme is a warning."""
    name = Path(file_name).name
    try:
        subreddit, period = split_stem(name)
    except UnsafeNameError:
        return [_warning("file", f"name {name!r} is not <subreddit>_<YYYY>[-MM].json")], None
    try:
        first, last = _period(period)
    except ValueError:
        return [_warning("file", f"name {name!r} has an impossible month")], subreddit.lower()
    start, end = iso_date(info.get("start_date")), iso_date(info.get("end_date"))
    if start and end and (last < start or first > end):
        message = f"name {name!r} says {period} but info covers {start}..{end}"
        return [_warning("file", message)], subreddit.lower()
    return [], subreddit.lower()


def _utc(seconds: float) -> str:
    try:
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat()
    except (OverflowError, OSError, ValueError):
        return "out of range"


@dataclass
class _Context:
    """What checking one record needs from the rest of the file."""

    window: tuple[int, int] | None
    subreddit: str | None
    dates: str
    first_of_repeat: dict[int, int] = field(default_factory=dict)


def _record_where(index: int, record: Any) -> str:
    image_id = record.get("image_id") if isinstance(record, dict) else None
    return f"record {index}" + (f" (image_id {image_id!r})" if isinstance(image_id, str) else "")


def _record_problems(index: int, record: Any, ctx: _Context) -> list[Problem]:
    where = _record_where(index, record)
    if not isinstance(record, dict):
        return [_error(where, f"expected an object, got {ann.json_type(record)}")]
    problems = [_error(where, f"field {name!r}: {message}") for name, message in ann.record_problems(record)]
    unknown = sorted(set(record) - set(ann.FIELDS))
    if unknown:
        problems.append(_warning(where, f"unknown fields {unknown}"))
    if index in ctx.first_of_repeat:
        problems.append(_error(where, f"duplicate image_id (first at record {ctx.first_of_repeat[index]})"))
    problems += _subreddit_problems(where, record.get("subreddit"), ctx.subreddit)
    created = record.get("created_utc")
    if ctx.window and _is_number(created) and not ctx.window[0] <= created <= ctx.window[1]:
        problems.append(
            _error(where, f"created_utc {created} ({_utc(created)}) is outside info dates {ctx.dates}")
        )
    permalink = record.get("permalink")
    if isinstance(permalink, str) and not permalink.startswith("/r/"):
        problems.append(_error(where, f"permalink {permalink[:60]!r} does not start with /r/"))
    return problems


def _subreddit_problems(where: str, subreddit: Any, expected: str | None) -> list[Problem]:
    if not isinstance(subreddit, str):
        return []  # the schema check already reported it
    problems = []
    if subreddit != subreddit.lower():
        problems.append(_error(where, f"subreddit {subreddit!r} is not lowercase"))
    if expected and subreddit.lower() != expected:
        problems.append(_error(where, f"subreddit {subreddit!r} does not match the file name ({expected!r})"))
    return problems


def validate(annotations: ann.AnnotationFile | dict[str, Any], file_name: str | None = None) -> list[Problem]:
    """Every problem of a file, in file order. Takes raw decoded JSON too, so nothing stops early.

    With ``file_name`` (``<subreddit>_<YYYY>[-MM].json``) records must be of that subreddit.
    """
    data = annotations.to_json() if isinstance(annotations, ann.AnnotationFile) else annotations
    if not isinstance(data, dict):
        return [_error("file", f"top level must be an object, got {ann.json_type(data)}")]
    problems = [_error(key, "missing top-level key") for key in _TOP_LEVEL if key not in data]
    problems += [_warning(key, "unknown top-level key") for key in data if key not in _TOP_LEVEL]
    info = data.get("info", {})
    if not isinstance(info, dict):
        problems.append(_error("info", f"must be an object, got {ann.json_type(info)}"))
        info = {}
    elif "info" in data:
        problems += _info_problems(info)
    subreddit = None
    if file_name:
        name_problems, subreddit = _file_name_problems(file_name, info)
        problems += name_problems
    records = data.get("annotations", [])
    if not isinstance(records, list):
        return [*problems, _error("annotations", f"must be a list, got {ann.json_type(records)}")]
    ctx = _Context(_window(info), subreddit, f"{info.get('start_date')}..{info.get('end_date')}")
    ctx.first_of_repeat = {again: first for _, first, again in duplicate_ids(records)}
    for index, record in enumerate(records):
        problems += _record_problems(index, record, ctx)
    return problems + _empty_caption_problems(records)


def _empty_caption_problems(records: list[Any]) -> list[Problem]:
    """One warning counting the empty captions: valid (RedCaps v1 has them), but no text to train on."""
    empty = empty_captions(records)
    if not empty:
        return []
    shown = ", ".join(map(str, empty[:5])) + (", ..." if len(empty) > 5 else "")
    return [
        _warning(
            "annotations",
            f"{len(empty)} of {len(records)} captions are empty (records {shown});"
            " kept as RedCaps v1 keeps them ([captions] drop_empty drops them at collection)",
        )
    ]


def validate_file(path: str | Path) -> list[Problem]:
    """Problems of the file at ``path``; an unreadable or non-JSON file is one error, never an exception."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [_error("file", f"cannot read: {exc.strerror or exc}")]
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return [_error("file", f"invalid JSON: {exc}")]
    return validate(data, path.name)
