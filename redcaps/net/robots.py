"""``X-Robots-Tag`` opt-outs: does an image response ask not to be used by this crawler?

Read as img2dataset's downloader reads it (its ``disallowed_header_directives``, default the
four below): each header line is a comma-separated list of directives, optionally scoped to
one crawler as ``<user-agent token>: <directives>``; unscoped directives and those scoped to
our token count, those scoped to another crawler do not. Pass each header line separately
(urllib3's ``HTTPHeaderDict.getlist``): a joined value loses where one scope ends.
"""

from __future__ import annotations

from collections.abc import Iterable

from redcaps.settings import DISALLOWED_DIRECTIVES

#: Directives that take a value after a colon, so the colon starts no user-agent scope
#: (https://developers.google.com/search/docs/crawling-indexing/robots-meta-tag).
_VALUED = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"})


def user_agent_token(user_agent: str) -> str:
    """The product token a site scopes directives to: ``redcaps`` of ``redcaps/1.0 (+url)``."""
    words = user_agent.strip().split()
    return words[0].split("/", 1)[0].lower() if words else ""


def directives_for(header_lines: Iterable[str], token: str) -> set[str]:
    """The lower-cased directives of ``header_lines`` that apply to crawler ``token``."""
    applying: set[str] = set()
    for line in header_lines:
        scope, colon, rest = line.partition(":")
        scoped = bool(colon) and scope.strip().lower() not in _VALUED
        if scoped and scope.strip().lower() != token.lower():
            continue
        applying.update(d.strip().lower() for d in (rest if scoped else line).split(",") if d.strip())
    return applying


def opted_out(
    header_lines: Iterable[str], token: str, disallowed: Iterable[str] = DISALLOWED_DIRECTIVES
) -> str | None:
    """The first disallowed directive that applies to ``token``, or None: the image may be used."""
    applying = directives_for(header_lines, token)
    return next((d for d in (x.strip().lower() for x in disallowed) if d in applying), None)
