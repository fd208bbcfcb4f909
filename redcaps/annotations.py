"""The RedCaps annotation file: an explicit schema, strict loading, atomic saving.

A file is ``{"info": {...}, "annotations": [record, ...]}`` (see docs/format.md). Records stay
plain dicts so a file in the official release's exact shape round-trips unchanged (``score``
and ``crosspost_parents`` may be absent); loading checks every field and that ``image_id``
and ``subreddit`` are safe file-name tokens, so nothing downstream ever writes outside its
directory.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redcaps import FORMAT_VERSION
from redcaps.atomic import write_json
from redcaps.errors import AnnotationFormatError, UnsafeNameError
from redcaps.names import check_image_id, check_subreddit

Record = dict[str, Any]

#: field -> (accepted types, required). ``None`` in the types means JSON null is allowed.
FIELDS: dict[str, tuple[tuple[type | None, ...], bool]] = {
    "image_id": ((str,), True),
    "author": ((str, None), True),
    "url": ((str,), True),
    "raw_caption": ((str,), True),
    "caption": ((str,), True),
    "subreddit": ((str,), True),
    "score": ((int, None), False),
    "created_utc": ((int,), True),
    "permalink": ((str,), True),
    "crosspost_parents": ((list, None), False),
}

#: Keys every ``info`` block has; filters add ``<name>_filter`` blocks (see FILTER_BLOCKS).
INFO_FIELDS = ("start_date", "end_date", "url", "version")
FILTER_BLOCKS = ("word_filter", "nsfw_filter", "face_filter")
DATASET_URL = "https://redcaps.xyz"
#: What the shards' parquet ``int64`` columns hold: a number outside it fails the later writer.
INT64_RANGE = (-(2**63), 2**63 - 1)
#: Text no later writer stores: lone UTF-16 surrogates (valid JSON, but no UTF-8 encoding).
_UNSTORABLE = re.compile("[\ud800-\udfff]")


@dataclass
class AnnotationFile:
    """An annotation file in memory. ``info`` keeps every block it was loaded with."""

    info: dict[str, Any]
    annotations: list[Record] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"info": self.info, "annotations": self.annotations}


def new_info(start: dt.date, end: dt.date) -> dict[str, Any]:
    """The ``info`` block the original writes for a new file."""
    return {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "url": DATASET_URL,
        "version": FORMAT_VERSION,
    }


def _type_name(types: tuple[type | None, ...]) -> str:
    return " or ".join("null" if t is None else t.__name__ for t in types)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def field_problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for record field ``name`` (None when it is)."""
    types, _ = FIELDS[name]
    ok = False
    for t in types:
        if t is None:
            ok = ok or value is None
        elif t is int:
            # bool is an int in Python but not in the schema; 1.5e9 floats from PRAW are accepted
            # when integral, because some tools write created_utc as 1558143401.0.
            ok = ok or (isinstance(value, int) and not isinstance(value, bool))
            ok = ok or (isinstance(value, float) and value.is_integer())
        else:
            ok = ok or isinstance(value, t)
    if not ok:
        return f"expected {_type_name(types)}, got {json_type(value)}"
    return _storage_problem(value) or _content_problem(name, value)


def _storage_problem(value: Any) -> str | None:
    """Why a value of the right type cannot be written by the shards' writers (JSON, parquet)."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(t, str) and _UNSTORABLE.search(t) for t in texts):
        return "text with a lone UTF-16 surrogate (not storable as UTF-8)"
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        return f"{value:.4g} is outside the int64 range"
    return None


def _content_problem(name: str, value: Any) -> str | None:
    """Field-specific checks: URLs, safe names, list items."""
    if name == "crosspost_parents" and value is not None and not all(isinstance(x, str) for x in value):
        return "expected a list of str"
    if name == "url":
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:  # e.g. "http://[x": an unbalanced IPv6 bracket
            return f"not an http(s) URL: {value[:80]!r}"
        if parts.scheme not in ("http", "https") or not host:
            return f"not an http(s) URL: {value[:80]!r}"
    if name == "image_id":
        try:
            check_image_id(value)
        except UnsafeNameError as exc:
            return str(exc)
    if name == "subreddit":
        try:
            check_subreddit(value)
        except UnsafeNameError as exc:
            return str(exc)
    return None


def record_problems(record: Any) -> list[tuple[str, str]]:
    """Every (field, problem) of one record; empty when the record follows the schema."""
    if not isinstance(record, dict):
        return [("<record>", f"expected object, got {json_type(record)}")]
    problems = []
    for name, (_, required) in FIELDS.items():
        if name not in record:
            if required:
                problems.append((name, "missing"))
            continue
        problem = field_problem(name, record[name])
        if problem:
            problems.append((name, problem))
    return problems


def parse(obj: Any, source: str = "<memory>") -> AnnotationFile:
    """Check a decoded JSON document and wrap it; the first problem raises a one-line error."""
    if not isinstance(obj, dict):
        raise AnnotationFormatError(f"{source}: top level must be an object, got {json_type(obj)}")
    for key, kind in (("info", dict), ("annotations", list)):
        if key not in obj:
            raise AnnotationFormatError(f"{source}: missing top-level key {key!r}")
        if not isinstance(obj[key], kind):
            raise AnnotationFormatError(f"{source}: {key!r} must be {kind.__name__}")
    for index, record in enumerate(obj["annotations"]):
        problems = record_problems(record)
        if problems:
            name, problem = problems[0]
            raise AnnotationFormatError(f"{source}: record {index}: field {name!r}: {problem}")
        for name, (types, _) in FIELDS.items():  # integral floats (1558143401.0) are stored as int
            if int in types and isinstance(record.get(name), float):
                record[name] = int(record[name])
    return AnnotationFile(info=obj["info"], annotations=obj["annotations"])


def load(path: str | Path) -> AnnotationFile:
    """Load and check an annotation file, raising :class:`AnnotationFormatError` in one line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationFormatError(f"{path}: cannot read: {exc}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationFormatError(f"{path}: invalid JSON: {exc}") from None
    except RecursionError:
        raise AnnotationFormatError(f"{path}: invalid JSON: nested too deeply") from None
    return parse(obj, str(path))


def save(path: str | Path, annotations: AnnotationFile) -> None:
    """Write atomically with ``json.dump`` defaults, the byte shape of the official files."""
    write_json(path, annotations.to_json())
