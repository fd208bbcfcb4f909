"""Checks run before any work starts, so a newcomer's mistake is one line, not a failure an hour in.

Each check returns the problems it found, one line each; :func:`raise_problems` turns them into
one :class:`PreflightError` (one line per problem). Nothing here writes a file. The settings are
checked from the raw luigi.cfg (or batch) strings against the types of the core's dataclasses,
so a section's types are stated once, where its defaults are.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import socket
import typing
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import requests

from redcaps.collect.credentials import load_credentials
from redcaps.download.images import ImageOptions
from redcaps.errors import RedCapsError
from redcaps.filters.models import models_dir, require_model
from redcaps.names import check_subreddit
from redcaps.net.config import HttpConfig
from redcaps.net.limits import parse_host_policy
from redcaps.settings import (
    RENAMED_SETTINGS,
    SOURCES,
    CollectionSettings,
    DedupSettings,
    DownloadSettings,
    FaceSettings,
    NsfwSettings,
    Range,
    ShardSettings,
    StorageSettings,
    WordSettings,
    range_of,
)


@dataclass(frozen=True)
class PreflightSettings:
    """``network``: send one cheap request to the post source first (off for offline dump runs)."""

    network: bool = True


#: luigi.cfg sections (and a batch's ``settings``) and the dataclasses whose fields type them.
SECTION_TYPES: dict[str, tuple[type, ...]] = {
    "collection": (CollectionSettings,),
    "images": (ImageOptions, StorageSettings),
    "downloads": (DownloadSettings, HttpConfig),
    "shards": (ShardSettings,),
    "dedup": (DedupSettings,),
    "filter_words": (WordSettings,),
    "filter_nsfw": (NsfwSettings,),
    "filter_faces": (FaceSettings,),
    "preflight": (PreflightSettings,),
    "host_limits": (),  # free-form: <host suffix> = <policy>, checked by parse_host_policy
}
#: Options whose dataclass type is a plain ``str`` but that take one of a few values.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("collection", "source"): SOURCES,
    ("collection", "pushshift_flavour"): ("pushshift", "pullpush"),
    ("downloads", "host_scope"): ("machine", "global", "process"),
}
LOW_SPACE_BYTES = 2 * 2**30
REACH_TIMEOUT = (5.0, 15.0)


class PreflightError(RedCapsError):
    """One or more problems found before any work started; one line each."""


def raise_problems(problems: Iterable[str]) -> None:
    problems = list(problems)
    if problems:
        raise PreflightError("\n".join(problems))


# -- settings ------------------------------------------------------------------------------------
def _option_types(section: str) -> dict[str, tuple[Any, Range | None]]:
    """Each option of ``section``: its dataclass field's type and declared range."""
    types: dict[str, tuple[Any, Range | None]] = {}
    for cls in SECTION_TYPES.get(section, ()):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            types.setdefault(f.name, (hints[f.name], range_of(cls, f.name)))
    for (renamed_in, new), old in RENAMED_SETTINGS.items():
        if renamed_in == section and new in types:
            types[old] = types[new]  # the old name is still read
    return types


def _parse(kind: Any, text: str) -> str | None:
    """Why ``text`` is not a value of ``kind`` (a luigi.cfg string), or None."""
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        return None if text in choices else f"must be one of {', '.join(map(str, choices))}"
    if kind is bool:
        return None if text.lower() in ("true", "false") else "must be true or false"
    for number, name in ((int, "an integer"), (float, "a number")):
        if kind is number:
            try:
                number(text)
            except ValueError:
                return f"must be {name}"
    return None


def _out_of_range(kind: Any, bounds: Range | None, text: str) -> str | None:
    """Why a well-typed number is outside its declared range, or None."""
    if bounds is None or kind not in (int, float):
        return None
    value = kind(text)
    return None if value == value and value in bounds else f"must be {bounds}"  # NaN is in no range


def _networks_problem(text: str) -> str | None:
    """Why a comma list of CIDRs (``[downloads] allow_networks``) does not parse, or None."""
    for item in filter(None, (n.strip() for n in text.split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"has {item!r}, not a network (a CIDR such as 10.1.0.0/16)"
    return None


def _structured_problem(section: str, name: str, text: str) -> str | None:
    """Settings whose value has a structure of its own: host policies and CIDR lists."""
    if section == "host_limits":
        try:
            parse_host_policy(text)
        except ValueError as exc:
            return str(exc).removeprefix(f"bad host policy {text!r}: ")
    if (section, name) == ("downloads", "allow_networks"):
        return _networks_problem(text)
    return None


def check_settings(sections: Mapping[str, Mapping[str, object]], where: str = "") -> list[str]:
    """Each option of a known section whose value is not of its dataclass field's type or
    outside its declared range, as ``[images] resize: 'big' must be an integer`` (``where``
    prefixes a batch file's place)."""
    problems = []
    for section, options in sections.items():
        types = _option_types(section)
        for name, value in options.items():
            text = str(value).strip()
            place = f"{where}settings.{section}.{name}" if where else f"[{section}] {name}"
            choices = CHOICES.get((section, name))
            kind, bounds = types.get(name, (str, None))
            why = (
                (f"must be one of {', '.join(choices)}" if choices and text not in choices else None)
                or _parse(kind, text)
                or _out_of_range(kind, bounds, text)
                or _structured_problem(section, name, text)
            )
            if why:
                problems.append(f"{place}: {text!r} {why}")
    return problems


# -- names, models, data dir, credentials --------------------------------------------------------
def check_subreddits(names: Iterable[str]) -> list[str]:
    problems = []
    for name in names:
        try:
            check_subreddit(name)
        except RedCapsError as exc:
            problems.append(f"--subreddit: {exc}")
    return problems


def models_dir_text() -> str:
    return str(models_dir())


def check_models(models: Mapping[str, str]) -> list[str]:
    """``models`` maps each enabled image filter (nsfw, faces) to its ``model`` setting."""
    problems = []
    for kind, model in models.items():
        if not model:
            try:
                require_model(kind)
            except RedCapsError as exc:
                problems.append(f"[filter_{kind}] {exc}")
        elif not Path(model).expanduser().is_file():
            problems.append(f"[filter_{kind}] model: {model} is not a file")
    return problems


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_data_dir(path: str | Path) -> tuple[list[str], str]:
    """Problems with writing under ``path`` (created later, not here), and its free space."""
    path = Path(path).expanduser().absolute()
    base = _existing(path)
    if not base.is_dir():
        return [f"data dir {path}: {base} is not a directory"], ""
    if not os.access(base, os.W_OK | os.X_OK):
        return [f"data dir {path}: {base} is not writable"], ""
    free = shutil.disk_usage(base).free
    note = f"data dir {path}: {free / 2**30:.1f} GiB free"
    if free < LOW_SPACE_BYTES:
        note += " (low: a real subreddit-year can take several GiB, see README)"
    return [], note


def check_credentials(settings: CollectionSettings) -> list[str]:
    """Unusable credentials sections, and what the source itself needs."""
    path = Path(settings.credentials).expanduser() if settings.credentials else None
    creds = load_credentials(path)
    problems = [f"credentials: {why}" for why in creds.problems.values()]
    pushshift = settings.source == "pushshift" and settings.pushshift_flavour == "pushshift"
    if pushshift and not os.environ.get("PUSHSHIFT_TOKEN", "").strip():
        problems.append("[collection] source pushshift needs its token in $PUSHSHIFT_TOKEN")
    if settings.source == "dump" and not settings.dump_dir:
        problems.append(
            "the dump source needs a dump file or directory"
            " (--dump-file, --dump-dir or [collection] dump_dir)"
        )
    elif settings.source == "dump" and not Path(settings.dump_dir).expanduser().exists():
        problems.append(f"[collection] dump_dir: {settings.dump_dir} does not exist")
    return problems


# -- the source, reachable -----------------------------------------------------------------------
def source_url(settings: CollectionSettings) -> str | None:
    """The API root one request checks, or None for sources that need no network."""
    if settings.source == "arctic-shift":
        return settings.arctic_shift_url.rstrip("/") + "/"
    if settings.source == "pushshift":
        return settings.pushshift_url.rstrip("/") + "/"
    return None


def _causes(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        for arg in getattr(exc, "args", ()):
            if isinstance(arg, BaseException):
                yield from _causes(arg)
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "reason", None)


def _hint(exc: requests.RequestException, url: str) -> str:
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    via = f"HTTPS_PROXY={proxy}" if proxy else "HTTPS_PROXY is not set"
    host = urllib.parse.urlsplit(url).hostname
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"the proxy failed ({via}): is it running and reachable?"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failed ({via}): check REQUESTS_CA_BUNDLE / SSL_CERT_FILE for the proxy's CA"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"no answer within {REACH_TIMEOUT[1]:.0f} s ({via})"
    if any(isinstance(c, socket.gaierror) or "NameResolution" in type(c).__name__ for c in _causes(exc)):
        return f"name resolution failed for {host}: check DNS, or set a proxy ({via})"
    return f"connection failed ({via}): {type(exc).__name__}"


def check_reachable(settings: CollectionSettings) -> list[str]:
    """One cheap request to the source's API root: any HTTP answer means it is reachable."""
    url = source_url(settings)
    if url is None:
        return []
    try:
        requests.get(url, timeout=REACH_TIMEOUT, allow_redirects=False).close()
    except requests.RequestException as exc:
        return [f"[collection] source {settings.source} unreachable at {url}: {_hint(exc, url)}"]
    return []


def check_subreddits_exist(settings: CollectionSettings, subreddits: Iterable[str]) -> list[str]:
    """Subreddits the source says do not exist, where it can tell: Arctic Shift's
    ``/api/subreddits/search?subreddit=<name>`` answers no records for an unknown one
    (https://github.com/ArthurHeitmann/arctic_shift/blob/master/api/README.md, "Subreddits").
    Any other answer (an error, a timeout) proves nothing and is left to the run."""
    if settings.source != "arctic-shift":
        return []
    problems = []
    for name in subreddits:
        url = settings.arctic_shift_url.rstrip("/") + "/api/subreddits/search"
        try:
            resp = requests.get(url, params={"subreddit": name, "limit": 1}, timeout=REACH_TIMEOUT)
            data = resp.json().get("data") if resp.status_code == 200 else None
        except (requests.RequestException, ValueError, AttributeError):
            continue
        if data == []:
            problems.append(
                f"--subreddit {name}: Arctic Shift knows no such subreddit (misspelled? its list of "
                "subreddits is updated infrequently: [preflight] network = false skips this check)"
            )
    return problems


def check_collection(
    settings: CollectionSettings, subreddits: Iterable[str] = (), network: bool = True
) -> list[str]:
    problems = check_credentials(settings)
    if network and not problems:
        problems += check_reachable(settings) or check_subreddits_exist(settings, subreddits)
    return problems


# -- the central scheduler -----------------------------------------------------------------------
SCHEDULER_TIMEOUT = 3.0


def check_scheduler(host: str, port: int, timeout: float = SCHEDULER_TIMEOUT) -> list[str]:
    """The luigid a run without ``--local-scheduler`` talks to, reached with one TCP connect
    (luigi itself would retry for a minute and then print a traceback per attempt)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return []
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
    return [
        f"no luigid scheduler at {host}:{port} ({why}): start one with `make scheduler` (or `luigid`),"
        " or add --local-scheduler"
    ]


# -- the publish target --------------------------------------------------------------------------
def check_publish_target(url: str, options_text: str = "") -> list[str]:
    """``[redcaps] publish_to`` is writable: one small object written and deleted (a missing bucket,
    refused credentials or a missing s3fs/gcsfs extra is one line here, before any work)."""
    from redcaps import storage

    if not url:
        return []
    try:
        why = storage.Store(url, storage.parse_options(options_text)).check_writable()
    except RedCapsError as exc:
        return [str(exc)]
    return [f"[redcaps] publish_to {url}: not writable ({why})"] if why else []
