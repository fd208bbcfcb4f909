"""A URL's userinfo (``user:pw@``) is never sent as ``Authorization: Basic`` to an image host."""

from __future__ import annotations

import pytest

from redcaps.net.config import strip_userinfo
from tests.test_http import _no_proxy, fetcher, server, url

__all__ = ["_no_proxy", "server"]  # fixtures used here


def test_userinfo_is_not_sent_as_credentials(server):
    plain = url(server, "/ok-userinfo")
    with_userinfo = plain.replace("http://", "http://user:secret@")
    server.headers_seen.clear()
    result = fetcher().get(with_userinfo)
    assert result.ok, result.error
    assert server.headers_seen and all("Authorization" not in h for h in server.headers_seen)


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("https://user:pw@i.redd.it/a.jpg", "https://i.redd.it/a.jpg"),
        ("https://user@i.redd.it:443/a.jpg?x=1", "https://i.redd.it:443/a.jpg?x=1"),
        ("https://a:b@c@i.redd.it/a.jpg", "https://i.redd.it/a.jpg"),
        ("https://i.redd.it/a@b.jpg", "https://i.redd.it/a@b.jpg"),
    ],
)
def test_strip_userinfo(given, sent):
    assert strip_userinfo(given) == sent
