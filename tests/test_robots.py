"""X-Robots-Tag opt-outs read as img2dataset reads them (redcaps.net.robots)."""

from __future__ import annotations

import pytest

from redcaps.net.config import default_user_agent
from redcaps.net.robots import DISALLOWED_DIRECTIVES, directives_for, opted_out, user_agent_token


def test_our_token_is_the_product_name_of_our_user_agent():
    assert user_agent_token(default_user_agent()) == "redcaps"
    assert user_agent_token("img2dataset/1.47 (+https://github.com/rom1504/img2dataset)") == "img2dataset"
    assert user_agent_token("") == ""


def test_default_disallowed_directives_are_img2datasets():
    assert set(DISALLOWED_DIRECTIVES) == {"noai", "noimageai", "noindex", "noimageindex"}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["noai"], "noai"),
        (["NoImageAI"], "noimageai"),
        (["nofollow, noindex"], "noindex"),
        (["redcaps: noimageindex"], "noimageindex"),
        (["RedCaps:noai"], "noai"),
        (["otherbot: noai", "noimageai"], "noimageai"),
    ],
)
def test_unscoped_and_our_scoped_directives_opt_out(lines, expected):
    assert opted_out(lines, "redcaps") == expected


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["otherbot: noai"],
        ["otherbot: noai, noindex", "googlebot: noimageindex"],
        ["nofollow, noarchive"],
        ["unavailable_after: 25 Jun 2010 15:00:00 PST"],
        ["max-image-preview: large"],
    ],
)
def test_other_bots_directives_and_harmless_ones_do_not(lines):
    assert opted_out(lines, "redcaps") is None


def test_the_disallowed_list_can_be_changed_or_emptied():
    assert opted_out(["noindex"], "redcaps", disallowed=["noai"]) is None
    assert opted_out(["noai"], "redcaps", disallowed=[]) is None
    assert opted_out(["nofollow"], "redcaps", disallowed=["NoFollow"]) == "nofollow"


def test_valued_directives_are_not_scopes():
    assert directives_for(["max-snippet: 20, noai"], "redcaps") == {"max-snippet: 20", "noai"}
