"""``redcaps check-sources``: one cheap request to each outside API, to see today's state.

The APIs behind the collection change without notice (outages, new limits, new rules), and
the tests only see the sandbox's imitation. Run this before a big collection, or when one
fails strangely: per source it prints whether it answered, how fast, which rate-limit
headers it sent, whether Arctic Shift's ``after`` includes its own second, and which fields
the project reads were missing. Never run in CI: it talks to the real internet.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import requests

from redcaps.collect.credentials import Credentials, load_credentials
from redcaps.collect.sources.arctic_shift import SEARCH_PATH as ARCTIC_SHIFT_SEARCH
from redcaps.collect.sources.imgur import API_URL as IMGUR_URL
from redcaps.collect.sources.pushshift import SEARCH_PATHS
from redcaps.collect.sources.reddit_refresh import REFRESHED_FIELDS
from redcaps.net.egress import BlockedAddress
from redcaps.net.session import guarded_session
from redcaps.settings import ARCTIC_SHIFT_URL, PULLPUSH_URL, PUSHSHIFT_URL

SOURCES = ("arctic-shift", "pushshift", "pullpush", "reddit", "imgur")
#: Post fields the collection reads (rules, records, refresh); one missing is worth knowing.
POST_FIELDS = ("id", "created_utc", "subreddit", "title", "url", "score", "author", "permalink", "over_18")
IMGUR_FIELDS = ("UserRemaining", "UserReset", "ClientRemaining")
TIMEOUT = (10.0, 30.0)


@dataclass
class Check:
    """What one source answered; ``reachable`` is None when the check was skipped."""

    source: str
    reachable: bool | None
    status: str
    latency_ms: float | None = None
    rate_limit: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    after_inclusive: bool | None = None
    post_id: str | None = None

    def lines(self) -> list[str]:
        if self.reachable is None:
            return [f"{self.source}: skipped ({self.status})"]
        state = "reachable" if self.reachable else "NOT reachable"
        latency = f", {self.latency_ms:.0f} ms" if self.latency_ms is not None else ""
        out = [f"{self.source}: {state} ({self.status}{latency})"]
        headers = ", ".join(f"{k}={v}" for k, v in self.rate_limit.items()) or "none"
        out.append(f"  rate-limit headers: {headers}")
        if self.source == "arctic-shift" and self.reachable:
            meaning = {True: "inclusive", False: "exclusive", None: "unknown (no post at the boundary)"}
            out.append(f"  after: {meaning[self.after_inclusive]}")
        if self.reachable:
            out.append(f"  missing fields: {', '.join(self.missing) or 'none'}")
        return out


def _rate_limit_headers(headers: Any) -> dict[str, str]:
    return {
        k: v for k, v in headers.items() if k.lower().startswith("x-ratelimit") or k.lower() == "retry-after"
    }


def _timed_get(session: requests.Session, url: str, **kwargs: Any) -> tuple[requests.Response, float]:
    began = time.monotonic()
    resp = session.get(url, timeout=TIMEOUT, **kwargs)
    return resp, (time.monotonic() - began) * 1000


def _posts(resp: requests.Response) -> list[dict[str, Any]] | None:
    try:
        data = resp.json().get("data")
    except (ValueError, AttributeError):
        return None
    return [p for p in data if isinstance(p, dict)] if isinstance(data, list) else None


def _http_check(name: str, resp: requests.Response, latency: float) -> tuple[Check, list[dict[str, Any]]]:
    posts = _posts(resp) if resp.status_code == 200 else None
    check = Check(
        name, posts is not None, f"HTTP {resp.status_code}", latency, _rate_limit_headers(resp.headers)
    )
    if posts is None:
        check.status += f": {resp.text[:120]!r}" if resp.status_code != 200 else ": no data list"
        return check, []
    if not posts:
        check.missing = ["(no post returned to check)"]
    else:
        check.missing = [f for f in POST_FIELDS if f not in posts[0]]
        check.post_id = str(posts[0].get("id") or "") or None
    return check, posts


def check_arctic_shift(session: requests.Session, base_url: str, subreddit: str, after: int) -> Check:
    """The oldest post after ``after``; then its own second asked for with ``after`` = that
    second (and ``before`` the next): the post comes back only if ``after`` is inclusive."""
    url = base_url.rstrip("/") + ARCTIC_SHIFT_SEARCH
    resp, latency = _timed_get(
        session, url, params={"subreddit": subreddit, "after": after, "sort": "asc", "limit": 1}
    )
    check, posts = _http_check("arctic-shift", resp, latency)
    if posts and "created_utc" in posts[0]:
        second = int(float(posts[0]["created_utc"]))
        params = {"subreddit": subreddit, "after": second, "before": second + 1, "sort": "asc", "limit": 100}
        boundary = _posts(session.get(url, params=params, timeout=TIMEOUT))
        if boundary is not None:
            check.after_inclusive = any(p.get("id") == posts[0].get("id") for p in boundary)
    return check


def check_search(
    session: requests.Session, name: str, base_url: str, subreddit: str, after: int, token: str | None
) -> Check:
    """One oldest-first page of one post, with the flavour's own sort parameters."""
    if name == "pushshift" and not token:
        return Check(name, None, "no PUSHSHIFT_TOKEN")
    sort = (
        {"sort": "created_utc", "order": "asc"}
        if name == "pushshift"
        else {"sort": "asc", "sort_type": "created_utc"}
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    params = {"subreddit": subreddit, "after": after, "size": 1, **sort}
    resp, latency = _timed_get(
        session, base_url.rstrip("/") + SEARCH_PATHS[name], params=params, headers=headers
    )
    return _http_check(name, resp, latency)[0]


def check_reddit(credentials: Credentials, post_id: str | None) -> Check:
    """One ``reddit.info`` call (PRAW) for a post the archives returned."""
    if credentials.reddit is None:
        return Check("reddit", None, credentials.problems.get("reddit") or "no Reddit credentials")
    import prawcore

    from redcaps.collect.sources.reddit_refresh import make_reddit

    reddit = make_reddit(credentials.reddit)
    began = time.monotonic()
    try:
        found = list(reddit.info(fullnames=[f"t3_{post_id or '1'}"]))
    except prawcore.exceptions.PrawcoreException as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return Check("reddit", False, f"{type(exc).__name__}" + (f" (HTTP {status})" if status else ""))
    latency = (time.monotonic() - began) * 1000
    limits = {
        f"x-ratelimit-{k.split('_')[0]}": str(v) for k, v in reddit.auth.limits.items() if v is not None
    }
    check = Check("reddit", True, "info() answered", latency, limits)
    if not found:
        check.missing = ["(no post returned to check)"]
    else:
        check.missing = [f for f in REFRESHED_FIELDS if f not in vars(found[0])]
    return check


def check_imgur(session: requests.Session, credentials: Credentials, base_url: str) -> Check:
    """``GET /3/credits``: the quotas, which cost no quota."""
    if credentials.imgur is None:
        return Check("imgur", None, credentials.problems.get("imgur") or "no Imgur client id")
    auth = {"Authorization": f"Client-ID {credentials.imgur.client_id}"}
    resp, latency = _timed_get(session, base_url.rstrip("/") + "/3/credits", headers=auth)
    check = Check("imgur", resp.status_code == 200, f"HTTP {resp.status_code}", latency)
    check.rate_limit = _rate_limit_headers(resp.headers)
    try:
        data = resp.json().get("data")
    except (ValueError, AttributeError):
        data = None
    if resp.status_code != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else resp.text[:120]
        check.reachable, check.status = False, f"{check.status}: {error!r}"
        return check
    check.missing = [f for f in IMGUR_FIELDS if f not in data]
    return check


def check_sources(
    sources: tuple[str, ...] = SOURCES,
    *,
    credentials: Credentials | None = None,
    subreddit: str = "pics",
    after: int = int(dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc).timestamp()),
    arctic_shift_url: str = ARCTIC_SHIFT_URL,
    pushshift_url: str = PUSHSHIFT_URL,
    pullpush_url: str = PULLPUSH_URL,
    imgur_url: str = IMGUR_URL,
    token: str | None = None,
    report: Callable[[Check], None] | None = None,
) -> list[Check]:
    """Check each of ``sources`` in order; Reddit is asked about the post an archive returned."""
    credentials = credentials or load_credentials(None)
    session = guarded_session()  # no retries: each probe reports what the API answered first
    checks: list[Check] = []
    for name in sources:
        try:
            if name == "arctic-shift":
                check = check_arctic_shift(session, arctic_shift_url, subreddit, after)
            elif name in ("pushshift", "pullpush"):
                url = pushshift_url if name == "pushshift" else pullpush_url
                check = check_search(
                    session, name, url, subreddit, after, token if name == "pushshift" else None
                )
            elif name == "reddit":
                check = check_reddit(credentials, next((c.post_id for c in checks if c.post_id), None))
            else:
                check = check_imgur(session, credentials, imgur_url)
        except (requests.RequestException, BlockedAddress) as exc:
            check = Check(name, False, type(exc).__name__)
        checks.append(check)
        if report is not None:
            report(check)
    return checks


@click.command("check-sources")
@click.option(
    "--source", "sources", multiple=True, type=click.Choice(SOURCES), help="Repeatable [default: all]"
)
@click.option(
    "-c",
    "--credentials",
    type=click.Path(dir_okay=False),
    default=None,
    help="Reddit/Imgur keys [default: ./credentials.json if present]; the environment works too.",
)
@click.option("--subreddit", default="pics", show_default=True, help="Subreddit the probe queries ask for")
@click.option(
    "--after", "after_date", default="2020-01-01", show_default=True, help="Probe date (YYYY-MM-DD)"
)
@click.option("--arctic-shift-url", default=ARCTIC_SHIFT_URL, show_default=True)
@click.option("--pushshift-url", default=PUSHSHIFT_URL, show_default=True, help="Token: $PUSHSHIFT_TOKEN")
@click.option("--pullpush-url", default=PULLPUSH_URL, show_default=True)
def check_sources_command(
    sources: tuple[str, ...],
    credentials: str | None,
    subreddit: str,
    after_date: str,
    arctic_shift_url: str,
    pushshift_url: str,
    pullpush_url: str,
) -> None:
    """One cheap request to each outside API (live): reachable, latency, rate-limit headers,
    Arctic Shift's `after` semantics, missing fields. Exits 1 if a checked source failed."""
    try:
        day = dt.datetime.strptime(after_date, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise click.BadParameter("expected YYYY-MM-DD", param_hint="--after") from None
    checks = check_sources(
        sources or SOURCES,
        credentials=load_credentials(credentials or "./credentials.json"),
        subreddit=subreddit,
        after=int(day.timestamp()),
        arctic_shift_url=arctic_shift_url,
        pushshift_url=pushshift_url,
        pullpush_url=pullpush_url,
        token=os.environ.get("PUSHSHIFT_TOKEN"),
        report=lambda check: click.echo("\n".join(check.lines())),
    )
    if any(c.reachable is False for c in checks):
        raise SystemExit(1)
