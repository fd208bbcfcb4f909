"""One hostile post is that post's failure: a year with them runs through every stage against the
sandbox, and everything else in it is published as without them. A year whose every image
failed ends cleanly with nothing packed."""

from __future__ import annotations

import json

import luigi
import pytest

from pipeline import RedCapsYear
from redcaps import annotations as ann
from redcaps.sandbox import posts, reddit_apis
from tests.test_pipeline_year import build, cases, restore_luigi_config, set_config, tar_samples, words_only

__all__ = ["restore_luigi_config", "words_only"]  # fixtures used here

#: Cases the sandbox keeps and publishes without credentials when only the word filter runs.
LOST = {"image_gone", "imgur_deleted", "title_blocked"}
PUBLISHED_CASES = {case for case, reason in posts.CASES.items() if reason is None} - LOST


def published_ids(subreddit: str, year: int) -> set[str]:
    """What the sandbox's own case table says the year publishes (independent of the code)."""
    return {i for case, ids in cases(subreddit, year).items() if case in PUBLISHED_CASES for i in ids}


def hostile(template: dict, post_id: str, **fields: object) -> dict:
    return {**template, "id": post_id, "permalink": f"/r/sandboxcats/comments/{post_id}/", **fields}


@pytest.fixture()
def hostile_posts(sandbox_env, monkeypatch):
    """The sandbox's Arctic Shift serves sandboxcats 2020 with hostile copies of one plain post."""
    plain = posts.post_by_id(cases("sandboxcats", 2020)["image"][0])
    host, path = plain["url"].split("://", 1)[1].split("/", 1)
    extra = (
        hostile(plain, "hsurr01", title="a cat \ud800 with a NUL\x00 in it", author="x\ud800y"),
        hostile(plain, "hscore1", score=10**30),
        hostile(plain, "hftp001", url=f"ftp://{host}/{path}"),
        hostile(plain, "huser01", url=f"https://user:secret@{host}/{path}"),
        hostile(plain, "../../etc"),
        hostile(plain, "h" * 200),
    )
    everyone = (*posts.population(), *extra)
    monkeypatch.setattr(reddit_apis, "population", lambda seed=0: everyone)
    return plain


def test_hostile_posts_leave_the_rest_of_the_year_intact(hostile_posts, words_only):
    result = build(RedCapsYear(subreddit="sandboxcats", year=2020))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text

    data = words_only
    published = ann.load(data / "annotations" / "sandboxcats_2020.json")
    by_id = {r["image_id"]: r for r in published.annotations}
    assert set(by_id) == published_ids("sandboxcats", 2020) | {"hsurr01", "hscore1", "huser01"}
    assert sorted(tar_samples(data, "sandboxcats_2020")) == sorted(by_id)

    assert by_id["hsurr01"]["raw_caption"] == "a cat \ufffd with a NUL in it"
    assert by_id["hsurr01"]["author"] == "x\ufffdy"
    assert by_id["hscore1"]["score"] == 2**63 - 1
    assert by_id["huser01"]["url"] == hostile_posts["url"]
    assert all("secret" not in json.dumps(r) for r in published.annotations)
    dropped = published.info["collection"]["dropped"]
    assert dropped["unsupported_host"] >= 1 and dropped["bad_id"] == 2


def test_a_year_whose_every_image_failed_ends_cleanly(sandbox_env, words_only):
    set_config("downloads", max_bytes="10")  # every image is too large
    result = build(RedCapsYear(subreddit="sandboxcats", year=2020))
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text

    data = words_only
    assert ann.load(data / "annotations" / "sandboxcats_2020.json").annotations == []
    assert list((data / "tarfiles").glob("sandboxcats_2020_*")) == []
    summary = json.loads((data / "stages" / "year" / "sandboxcats_2020.json").read_text())
    assert summary["tars"]["samples"] == 0
