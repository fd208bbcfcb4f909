"""``redcaps check-sources`` against the sandbox (it never runs against the internet in CI)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from redcaps.cli.main import main
from redcaps.collect import check_sources
from redcaps.collect.credentials import load_credentials
from redcaps.sandbox import reddit_apis

SECRETS = {
    "REDDIT_CLIENT_ID": reddit_apis.REDDIT_CLIENT_ID,
    "REDDIT_CLIENT_SECRET": reddit_apis.REDDIT_CLIENT_SECRET,
    "IMGUR_CLIENT_ID": reddit_apis.IMGUR_CLIENT_ID,
    "PUSHSHIFT_TOKEN": reddit_apis.PUSHSHIFT_TOKEN,
}


@pytest.fixture()
def keys(apis, monkeypatch):
    for var, value in SECRETS.items():
        monkeypatch.setenv(var, value)
    return apis


def run(tmp_path, *args: str):
    missing = str(tmp_path / "no-credentials.json")  # never the developer's own file
    return CliRunner().invoke(main, ["check-sources", "--subreddit", "sandboxcats", "-c", missing, *args])


def block(output: str, source: str) -> str:
    """The lines ``check-sources`` printed for one source."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{source}:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("inclusive", [True, False], ids=["after-inclusive", "after-exclusive"])
def test_every_source_checked_with_credentials(keys, tmp_path, inclusive):
    keys.arctic_after_inclusive = inclusive
    result = run(tmp_path)
    assert result.exit_code == 0, result.output
    for source in check_sources.SOURCES:
        assert block(result.output, source).startswith(f"{source}: reachable (")
        assert "missing fields: none" in block(result.output, source)
    arctic = block(result.output, "arctic-shift")
    assert f"after: {'inclusive' if inclusive else 'exclusive'}" in arctic
    assert "X-RateLimit-Remaining=" in arctic and " ms)" in arctic
    assert "X-RateLimit-ClientRemaining=" in block(result.output, "imgur")
    assert "x-ratelimit-remaining=" in block(result.output, "reddit")
    assert "rate-limit headers: none" in block(result.output, "pullpush")
    assert len(keys.arctic_queries) == 2  # cheap: a probe and its boundary second
    assert keys.reddit_info_calls == [[f"t3_{_first_post_id(keys)}"]]  # Reddit asked about the probe's post
    assert not any(secret in result.output for secret in SECRETS.values())


def _first_post_id(api) -> str:
    from redcaps.sandbox.posts import population

    after = int(api.arctic_queries[0]["after"])
    cats = [p for p in population() if p["subreddit"] == "SandboxCats"]
    return next(p["id"] for p in cats if p["created_utc"] >= after)


def test_without_credentials_the_keyed_sources_are_skipped(apis, tmp_path):
    result = run(tmp_path)
    assert result.exit_code == 0, result.output
    assert "pushshift: skipped (no PUSHSHIFT_TOKEN)" in result.output
    assert block(result.output, "reddit").startswith("reddit: skipped (")
    assert block(result.output, "imgur").startswith("imgur: skipped (")
    assert apis.reddit_info_calls == [] and apis.imgur_calls == []


def test_a_failing_source_is_shown_and_the_exit_code_says_so(keys, tmp_path):
    keys.imgur_blocked_country = "GB"
    result = run(tmp_path, "--source", "imgur", "--source", "pullpush")
    assert result.exit_code == 1
    assert "imgur: NOT reachable (HTTP 403: 'Banned Country Attempt (GB)'" in result.output
    assert block(result.output, "pullpush").startswith("pullpush: reachable")
    assert "arctic-shift" not in result.output  # only the sources asked for


def test_a_field_the_project_reads_but_did_not_get_is_named(apis, monkeypatch):
    monkeypatch.setattr(check_sources, "POST_FIELDS", (*check_sources.POST_FIELDS, "media_kind"))
    checks = check_sources.check_sources(
        ("arctic-shift",), credentials=load_credentials(None), subreddit="sandboxcats"
    )
    assert checks[0].reachable and checks[0].missing == ["media_kind"]
    assert "  missing fields: media_kind" in checks[0].lines()
