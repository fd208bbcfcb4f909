"""The official release zip: sha256 check, safe extraction, nothing overwritten."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest

from redcaps.dataset.official import fetch_and_extract
from redcaps.errors import RedCapsError, UnsafeNameError
from tests.helpers import annotation_file, record


def make_zip(path, members: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def good_members() -> dict[str, bytes]:
    data = json.dumps(annotation_file([record()]).to_json()).encode()
    return {
        "LICENSE.txt": b"license",
        "TERMSOFUSE.txt": b"terms",
        "annotations/roses_2020.json": data,
        "annotations/": b"",
        "__MACOSX/._junk": b"x",
    }


def test_extracts_only_release_members_and_writes_marker(tmp_path):
    sha = make_zip(tmp_path / "r.zip", good_members())
    dest = tmp_path / "out"
    files = fetch_and_extract(str(tmp_path / "r.zip"), dest, sha256=sha, marker=dest / "done.json")
    assert files == [dest / "annotations" / "roses_2020.json"]
    assert sorted(p.name for p in dest.iterdir()) == [
        "LICENSE.txt",
        "TERMSOFUSE.txt",
        "annotations",
        "done.json",
    ]
    assert json.loads((dest / "done.json").read_text())["sha256"] == sha


def test_sha256_mismatch_is_an_error_and_writes_nothing(tmp_path):
    make_zip(tmp_path / "r.zip", good_members())
    with pytest.raises(RedCapsError, match="sha256 mismatch"):
        fetch_and_extract(str(tmp_path / "r.zip"), tmp_path / "out", sha256="0" * 64)
    assert not (tmp_path / "out").exists()


def test_zip_slip_member_is_rejected(tmp_path):
    members = good_members()
    members["annotations/../../evil_2020.json"] = b"{}"
    make_zip(tmp_path / "r.zip", members)
    with pytest.raises(RedCapsError, match="unsafe path"):
        fetch_and_extract(str(tmp_path / "r.zip"), tmp_path / "out")
    assert not (tmp_path / "evil_2020.json").exists()


def test_unsafe_annotation_name_is_rejected(tmp_path):
    members = good_members()
    members["annotations/ro ses_2020.json"] = b"{}"
    make_zip(tmp_path / "r.zip", members)
    with pytest.raises(UnsafeNameError):
        fetch_and_extract(str(tmp_path / "r.zip"), tmp_path / "out")


def test_existing_different_file_is_never_overwritten(tmp_path):
    make_zip(tmp_path / "r.zip", good_members())
    target = tmp_path / "out" / "annotations" / "roses_2020.json"
    target.parent.mkdir(parents=True)
    target.write_text("my own edits")
    with pytest.raises(RedCapsError, match="not overwriting"):
        fetch_and_extract(str(tmp_path / "r.zip"), tmp_path / "out")
    assert target.read_text() == "my own edits"


def test_not_a_zip_and_missing_file(tmp_path):
    (tmp_path / "bad.zip").write_text("nope")
    with pytest.raises(RedCapsError, match="not a readable zip"):
        fetch_and_extract(str(tmp_path / "bad.zip"), tmp_path / "out")
    with pytest.raises(RedCapsError, match="no such file"):
        fetch_and_extract(str(tmp_path / "missing.zip"), tmp_path / "out")
