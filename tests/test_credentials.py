"""Credentials: file and environment, errors only when needed, secrets never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redcaps.collect.credentials import load_credentials
from redcaps.errors import RedCapsError

TEMPLATE = Path(__file__).resolve().parents[1] / "credentials.template.json"
SECRET = "s3cr3t-value-do-not-print"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in (
        "REDDIT_CLIENT_ID",
        "REDDIT_CLIENT_SECRET",
        "REDDIT_USER_AGENT",
        "IMGUR_CLIENT_ID",
        "IMGUR_CLIENT_SECRET",
    ):
        monkeypatch.delenv(var, raising=False)


def test_template_parses_as_no_credentials():
    creds = load_credentials(TEMPLATE)
    assert creds.reddit is None and creds.imgur is None
    assert creds.problems == {}  # a copied, unfilled template is "no credentials", not an error
    with pytest.raises(RedCapsError, match="no Reddit credentials"):
        creds.require_reddit()


def test_file_and_env_override(tmp_path, monkeypatch):
    path = tmp_path / "credentials.json"
    path.write_text(
        json.dumps({"reddit": {"client_id": "id1", "client_secret": SECRET, "user_agent": "me: box"}})
    )
    monkeypatch.setenv("REDDIT_CLIENT_ID", "from-env")
    monkeypatch.setenv("IMGUR_CLIENT_ID", "imgur-env")
    creds = load_credentials(path)
    assert creds.require_reddit().client_id == "from-env" and creds.require_reddit().client_secret == SECRET
    assert creds.require_imgur().client_id == "imgur-env"


def test_missing_file_is_fine_until_needed(tmp_path):
    creds = load_credentials(tmp_path / "nope.json")
    assert creds.reddit is None
    with pytest.raises(RedCapsError, match="no Reddit credentials"):
        creds.require_reddit()


def test_malformed_file_fails_only_when_required_and_never_shows_secrets(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text('{"reddit": {"client_secret": "' + SECRET + '"')  # cut short
    creds = load_credentials(path)  # no error yet
    with pytest.raises(RedCapsError) as err:
        creds.require_reddit()
    assert "malformed credentials file" in str(err.value) and SECRET not in str(err.value)


def test_repr_masks_secrets(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text(
        json.dumps(
            {
                "reddit": {
                    "client_id": "id1",
                    "client_secret": SECRET,
                    "user_agent": "me: box",
                    "password": SECRET,
                }
            }
        )
    )
    creds = load_credentials(path)
    assert SECRET not in repr(creds) and SECRET not in str(creds.reddit) and "id1" not in repr(creds.reddit)


def test_incomplete_section_names_the_missing_field_only(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"reddit": {"client_secret": SECRET}}))
    creds = load_credentials(path)
    with pytest.raises(RedCapsError, match="lack client_id") as err:
        creds.require_reddit()
    assert SECRET not in str(err.value)


def test_wrong_types_are_malformed(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"reddit": ["x"], "imgur": {"client_id": 12345}}))
    creds = load_credentials(path)
    with pytest.raises(RedCapsError, match="section 'reddit' must be an object"):
        creds.require_reddit()
    with pytest.raises(RedCapsError, match="imgur.client_id must be a string"):
        creds.require_imgur()


def test_environment_alone_is_enough(monkeypatch):
    monkeypatch.setenv("REDDIT_CLIENT_ID", "id-env")
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", SECRET)
    creds = load_credentials(None)
    assert creds.require_reddit().client_secret == SECRET and creds.imgur is None
