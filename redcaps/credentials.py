"""API credentials from ``credentials.json`` (the seed's format) or environment variables.

Nothing here ever prints a secret: ``repr`` masks them and errors name the field, not the
value. A missing or malformed file is an error only when a stage actually needs the
section (``require_reddit`` / ``require_imgur``), so runs that need no API never fail on it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from redcaps.errors import RedCapsError

ENV = {
    ("reddit", "client_id"): "REDDIT_CLIENT_ID",
    ("reddit", "client_secret"): "REDDIT_CLIENT_SECRET",
    ("reddit", "user_agent"): "REDDIT_USER_AGENT",
    ("imgur", "client_id"): "IMGUR_CLIENT_ID",
}
_SECRET = {"client_secret", "password"}


def _masked(obj: object) -> str:
    parts = []
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        shown = "***" if value and (f.name in _SECRET or f.name == "client_id") else repr(value)
        parts.append(f"{f.name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


@dataclass(frozen=True)
class RedditCredentials:
    client_id: str
    client_secret: str
    user_agent: str
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return _masked(self)


@dataclass(frozen=True)
class ImgurCredentials:
    client_id: str
    client_secret: str | None = None

    def __repr__(self) -> str:
        return _masked(self)


@dataclass
class Credentials:
    reddit: RedditCredentials | None = None
    imgur: ImgurCredentials | None = None
    problems: dict[str, str] = field(default_factory=dict)  # section -> why it is unusable
    source: str = "none"

    def require_reddit(self) -> RedditCredentials:
        if self.reddit is None:
            raise RedCapsError(
                self.problems.get("reddit", f"no Reddit credentials ({self.source}); see README")
            )
        return self.reddit

    def require_imgur(self) -> ImgurCredentials:
        if self.imgur is None:
            raise RedCapsError(
                self.problems.get("imgur", f"no Imgur credentials ({self.source}); see README")
            )
        return self.imgur


def _section(data: dict, name: str, where: str) -> dict[str, str]:
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise RedCapsError(f"{where}: section {name!r} must be an object")
    values = {k: v for k, v in section.items() if isinstance(v, str) and v and "here" not in v}
    for (sec, key), var in ENV.items():
        if sec == name and os.environ.get(var):
            values[key] = os.environ[var]
    return values


def load_credentials(path: str | Path | None) -> Credentials:
    """Read ``path`` (if it exists) and the environment; never raises, records problems."""
    data: dict = {}
    creds = Credentials(source="environment")
    if path is not None and Path(path).exists():
        creds.source = str(path)
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("top level must be an object")
        except (OSError, ValueError) as exc:
            message = f"{path}: malformed credentials file ({type(exc).__name__})"
            creds.problems = {"reddit": message, "imgur": message}
            data = {}
    for name, build, required in (
        ("reddit", RedditCredentials, ("client_id", "client_secret", "user_agent")),
        ("imgur", ImgurCredentials, ("client_id",)),
    ):
        try:
            values = _section(data, name, creds.source)
        except RedCapsError as exc:
            creds.problems[name] = str(exc)
            continue
        missing = [k for k in required if k not in values]
        if not missing:
            known = {f.name for f in fields(build)}
            setattr(creds, name, build(**{k: v for k, v in values.items() if k in known}))
        elif values and name not in creds.problems:
            creds.problems[name] = f"{creds.source}: {name} credentials lack {missing}"
    return creds
