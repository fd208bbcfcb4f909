"""API credentials from ``credentials.json`` (the seed's format) or environment variables.

Both sections are optional: Arctic Shift and the dumps need no key, Reddit credentials only
refresh scores and deletions, and Imgur no longer issues client ids. So a missing or
malformed file is an error only when a stage actually needs the section
(``require_reddit`` / ``require_imgur``). Nothing here ever shows a secret: ``repr`` masks
them and error messages name fields, never values. The template's placeholder values
(``"Your client ID here"``) count as absent, so a copied template is not an error.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from redcaps.errors import RedCapsError

#: Environment variables, which override the file.
ENV = {
    ("reddit", "client_id"): "REDDIT_CLIENT_ID",
    ("reddit", "client_secret"): "REDDIT_CLIENT_SECRET",
    ("reddit", "user_agent"): "REDDIT_USER_AGENT",
    ("reddit", "username"): "REDDIT_USERNAME",
    ("reddit", "password"): "REDDIT_PASSWORD",
    ("imgur", "client_id"): "IMGUR_CLIENT_ID",
    ("imgur", "client_secret"): "IMGUR_CLIENT_SECRET",
}
_MASKED = {"client_id", "client_secret", "password"}
_PLACEHOLDER = re.compile(r"Your .* here\b.*|<username>: <device name>")


def _masked(obj: Any) -> str:
    parts = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        parts.append(f"{f.name}={'***' if value and f.name in _MASKED else repr(value)}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(frozen=True, repr=False)
class RedditCredentials:
    """A Reddit "script" or "web" app. Without username/password PRAW runs read-only
    (client-credentials grant), which is all a refresh needs."""

    client_id: str
    client_secret: str
    user_agent: str | None = None  # None: redcaps' descriptive default
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return _masked(self)


@dataclass(frozen=True, repr=False)
class ImgurCredentials:
    client_id: str
    client_secret: str | None = None

    def __repr__(self) -> str:
        return _masked(self)


_SECTIONS: dict[str, tuple[type, tuple[str, ...]]] = {
    "reddit": (RedditCredentials, ("client_id", "client_secret")),
    "imgur": (ImgurCredentials, ("client_id",)),
}


@dataclass
class Credentials:
    """What was found; ``problems`` says, per section, why it is unusable (no values)."""

    reddit: RedditCredentials | None = None
    imgur: ImgurCredentials | None = None
    problems: dict[str, str] = field(default_factory=dict)
    source: str = "environment"

    def require_reddit(self) -> RedditCredentials:
        if self.reddit is None:
            raise RedCapsError(self.problems.get("reddit") or _absent("Reddit", "REDDIT", self.source))
        return self.reddit

    def require_imgur(self) -> ImgurCredentials:
        if self.imgur is None:
            raise RedCapsError(self.problems.get("imgur") or _absent("Imgur", "IMGUR", self.source))
        return self.imgur


def _absent(service: str, prefix: str, source: str) -> str:
    return (
        f"no {service} credentials (looked in {source}): add a {service.lower()!r} section to "
        f"credentials.json or set {prefix}_CLIENT_ID"
    )


def _read_file(path: Path) -> tuple[dict[str, Any], str | None]:
    """The decoded file, or why it cannot be used (the reason never quotes the content)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return {}, f"{path}: cannot read credentials file ({type(exc).__name__})"
    except ValueError as exc:
        line = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        return {}, f"{path}: malformed credentials file (invalid JSON{line})"
    if not isinstance(data, dict):
        return {}, f"{path}: malformed credentials file (top level must be an object)"
    return data, None


def _section_values(data: dict[str, Any], name: str, where: str) -> tuple[dict[str, str], str | None]:
    raw = data.get(name)
    problem = None
    if raw is not None and not isinstance(raw, dict):
        raw, problem = {}, f"{where}: malformed credentials file (section {name!r} must be an object)"
    values: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if value is None or (isinstance(value, str) and (not value.strip() or _PLACEHOLDER.fullmatch(value))):
            continue
        if not isinstance(value, str):
            problem = f"{where}: malformed credentials file ({name}.{key} must be a string)"
            continue
        values[key] = value.strip()
    for (section, key), var in ENV.items():
        if section == name and os.environ.get(var, "").strip():
            values[key] = os.environ[var].strip()
    return values, problem


def load_credentials(path: str | Path | None) -> Credentials:
    """Read ``path`` (when given and present) and the environment. Never raises: problems
    are recorded and raised by ``require_*`` only when a stage needs that section."""
    creds = Credentials()
    data: dict[str, Any] = {}
    file_problem = None
    if path is not None and Path(path).exists():
        creds.source = f"{path} and the environment"
        data, file_problem = _read_file(Path(path))
    for name, (build, required) in _SECTIONS.items():
        values, problem = _section_values(data, name, str(path))
        missing = [key for key in required if key not in values]
        known = {f.name for f in fields(build)}
        if not missing:  # the environment can complete or replace a broken file
            setattr(creds, name, build(**{k: v for k, v in values.items() if k in known}))
        elif file_problem or problem:
            creds.problems[name] = file_problem or problem or ""
        elif values:
            creds.problems[name] = f"{creds.source}: {name} credentials lack {', '.join(missing)}"
    return creds
