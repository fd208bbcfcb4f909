"""YAML batch configs: many subreddit-years and the settings for the run, checked up front.

```yaml
name: pets                     # optional; names the batch's summary file
subreddits: [cats, dogs]       # every subreddit here gets every year below
years: 2019-2020               # a list [2019, 2020], a range "2019-2020", or date_range
runs:                          # optional extra entries with their own years
  - {subreddit: roses, years: [2017, 2018], first_year: 2008}
settings:                      # luigi.cfg sections for this run
  images: {resize: 384}
  filters: {enabled: "words,nsfw"}
```

``first_year`` folds earlier years into the first listed year's file, as the official
``*_2017`` files hold 2008-2017. Every problem is reported with its place in the file, and
nothing runs until the whole file is valid.

A config may come from someone else, so loading it is bounded: a size limit, a nesting
limit, no anchors or aliases (whose expansion is the "billion laughs" attack), strict UTF-8,
and year ranges checked at their ends before they are expanded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from redcaps.errors import RedCapsError, UnsafeNameError
from redcaps.layout import stem
from redcaps.names import check_year, normalize_subreddit, subreddit_as_typed

#: The official release's config is 28 KB; nothing legitimate comes near these.
MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_RUNS = 100_000
TOP_KEYS = {"name", "subreddits", "years", "date_range", "first_year", "runs", "settings"}
RUN_KEYS = {"subreddit", "subreddits", "years", "date_range", "first_year"}
SETTING_SECTIONS = {
    "redcaps",
    "images",
    "downloads",
    "shards",
    "collection",
    "filters",
    "filter_words",
    "filter_nsfw",
    "filter_faces",
    "host_limits",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_RANGE = re.compile(r"\s*([0-9]{1,9})\s*-\s*([0-9]{1,9})\s*")


@dataclass(frozen=True, order=True)
class YearRun:
    subreddit: str
    year: int
    first_year: int | None = None

    @property
    def stem(self) -> str:
        return stem(self.subreddit, self.year)


@dataclass
class BatchConfig:
    name: str
    runs: list[YearRun]
    settings: dict[str, dict[str, str]] = field(default_factory=dict)


def _years(value: Any, where: str) -> list[int]:
    """Sorted distinct years; a range's ends are checked before it is expanded."""
    if isinstance(value, int) and not isinstance(value, bool):
        years: Any = [value]
    elif isinstance(value, str) and "-" in value:
        match = _RANGE.fullmatch(value)
        if not match:
            raise RedCapsError(f"{where}: expected a range like 2017-2020, got {value[:40]!r}")
        start, end = int(match[1]), int(match[2])
        check_year(start, where)
        check_year(end, where)
        if start > end:
            raise RedCapsError(f"{where}: empty year range {value!r}")
        years = range(start, end + 1)
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(y, int) and not isinstance(y, bool) for y in value)
    ):
        years = value
    else:
        raise RedCapsError(f"{where}: expected a year, a list of years or a range like 2017-2020")
    for year in years:
        check_year(year, where)
    return sorted(set(years))


def _date_range(value: Any, where: str) -> list[int]:
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise RedCapsError(f"{where}: expected {{start: YEAR, end: YEAR}}")
    return _years(f"{value['start']}-{value['end']}", where)


class Problems(list):
    """Every problem of one file, so a key typo does not hide a bad year; one line each."""

    def check(self, check: Callable[..., Any], *args: Any) -> Any:
        """``check(*args)``, or ``None`` with its ``RedCapsError`` remembered."""
        try:
            return check(*args)
        except RedCapsError as exc:
            self.extend(str(exc).splitlines())
            return None

    def raise_any(self) -> None:
        if self:
            raise RedCapsError("\n".join(dict.fromkeys(self)))


def _unknown_keys(entry: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(entry) - allowed
    if unknown:
        raise RedCapsError(f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(allowed)})")


def _entry_years(entry: dict[str, Any], where: str) -> list[int]:
    if ("years" in entry) == ("date_range" in entry):
        raise RedCapsError(f"{where}: give exactly one of 'years' and 'date_range'")
    if "years" in entry:
        return _years(entry["years"], f"{where}.years")
    return _date_range(entry["date_range"], f"{where}.date_range")


def _first_year(value: Any, years: list[int], where: str) -> int:
    [first_year] = _years(value, f"{where}.first_year")
    if first_year > years[0]:
        raise RedCapsError(f"{where}.first_year: {first_year} is after the first year {years[0]}")
    return first_year


def _subreddit(name: Any, where: str) -> str:
    try:
        return normalize_subreddit(subreddit_as_typed(name) if isinstance(name, str) else name)
    except UnsafeNameError as exc:
        raise RedCapsError(f"{where}: {exc}") from None


def _entry(entry: dict[str, Any], where: str, problems: Problems) -> list[YearRun]:
    """The runs of one entry; its problems are added to ``problems`` (and give no runs)."""
    before = len(problems)
    problems.check(_unknown_keys, entry, RUN_KEYS, where)
    names = entry.get("subreddits", [entry["subreddit"]] if "subreddit" in entry else [])
    if not isinstance(names, list) or not names:
        problems.append(f"{where}: needs 'subreddit' or a non-empty 'subreddits' list")
        names = []
    subreddits = [
        problems.check(_subreddit, name, f"{where}.subreddits[{i}]") for i, name in enumerate(names)
    ]
    years = problems.check(_entry_years, entry, where)
    first_year = entry.get("first_year")
    if years and first_year is not None:
        first_year = problems.check(_first_year, first_year, years, where)
    if len(problems) > before or not years:
        return []
    if len(names) * len(years) > MAX_RUNS:
        problems.append(f"{where}: {len(names)} subreddits x {len(years)} years is over {MAX_RUNS} runs")
        return []
    return [
        YearRun(subreddit, y, first_year if y == years[0] and first_year != y else None)
        for subreddit in subreddits
        for y in years
    ]


def _settings(value: Any, where: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise RedCapsError(f"{where}: expected a mapping of luigi.cfg sections")
    problems, settings = Problems(), {}
    for section, options in value.items():
        if section not in SETTING_SECTIONS:
            problems.append(f"{where}: unknown section {section!r} (allowed: {sorted(SETTING_SECTIONS)})")
        elif not isinstance(options, dict):
            problems.append(f"{where}.{section}: expected a mapping")
        else:
            settings[section] = {
                str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in options.items()
            }
    problems.raise_any()
    return settings


def parse_batch(data: Any, name: str = "batch") -> BatchConfig:
    """The batch of a parsed YAML document; every problem in it, one line each, in one error."""
    if not isinstance(data, dict):
        raise RedCapsError(f"{name}: expected a mapping at the top level")
    problems = Problems()
    problems.check(_unknown_keys, data, TOP_KEYS, name)
    runs: list[YearRun] = []
    if "subreddits" in data:
        top = {k: data[k] for k in ("subreddits", "years", "date_range", "first_year") if k in data}
        runs += _entry(top, name, problems)
    elif "years" in data or "date_range" in data:
        problems.append(f"{name}: 'years' at the top level needs 'subreddits'")
    entries = data.get("runs", [])
    if not isinstance(entries, list):
        problems.append(f"{name}.runs: expected a list")
        entries = []
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            runs += _entry(entry, f"{name}.runs[{i}]", problems)
        else:
            problems.append(f"{name}.runs[{i}]: expected a mapping")
    if not runs and not problems:
        problems.append(f"{name}: no subreddit-years to run")
    seen: dict[str, YearRun] = {}
    for run in runs:
        if run.stem in seen and seen[run.stem] != run:
            problems.append(f"{name}: {run.stem} is listed twice with different first_year")
        seen[run.stem] = run
    batch_name = data.get("name", Path(name).stem)
    if not isinstance(batch_name, str) or not _NAME.fullmatch(batch_name):
        problems.append(f"{name}.name: {batch_name!r} must be letters, digits, '_', '-' or '.'")
    settings = problems.check(_settings, data.get("settings", {}), f"{name}.settings")
    problems.raise_any()
    return BatchConfig(batch_name, sorted(seen.values()), settings)


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses anchors and aliases, nesting deeper than ``MAX_DEPTH`` and
    duplicate keys, and reports a scalar Python cannot build (a 5000-digit int, 2020-02-30) at its place."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed", event.start_mark
            )
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A key given twice is an error at its second place (YAML's last-one-wins hides typos)."""
        seen: set[Any] = set()
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read value: {exc}", node.start_mark
            ) from None


def _yaml_error(path: Path, exc: yaml.YAMLError, text: str) -> RedCapsError:
    """``<file>:<line>:<column>: <problem>`` on one line, whatever PyYAML's multi-line text."""
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML forbids, found before parsing
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return RedCapsError(f"{path}:{line}:{column}: invalid YAML: character #x{exc.character:04x}")
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    return RedCapsError(f"{place}: invalid YAML: {problem}")


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise RedCapsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise RedCapsError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; is this a batch config?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise RedCapsError(f"{path}:{line}:{column}: not UTF-8 (byte {raw[exc.start]:#04x})") from None


def load_batch(path: str | Path) -> BatchConfig:
    """Read, bound-check and validate a batch config; every problem is one ``RedCapsError`` line."""
    path = Path(path)
    text = _read_text(path)
    try:
        loader = _BoundedLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc, text) from None
    return parse_batch(data, str(path))
