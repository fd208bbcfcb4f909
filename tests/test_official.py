"""The official release zip: sha256 check, safe extraction, nothing overwritten."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
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


def _peak_mib_of(script: str) -> tuple[str, int]:
    """Run ``script`` in a fresh interpreter: (its last line of output, its peak RSS in MiB).
    VmHWM, not ru_maxrss: the latter starts at the forking parent's peak (pytest's own)."""
    probe = (
        "import re, pathlib\n"
        'status = pathlib.Path("/proc/self/status").read_text()\n'
        'print(int(re.search(r"VmHWM:\\s*(\\d+)", status).group(1)) // 1024)'
    )
    done = subprocess.run([sys.executable, "-c", f"{script}\n{probe}"], capture_output=True, text=True)
    *lines, peak = done.stdout.split("\n")[:-1]
    return (lines[-1] if lines else done.stderr.strip().splitlines()[-1]), int(peak)


def _write_member(path, name: str, size: int, compression: int, block: bytes) -> None:
    """A zip with one member of ``size`` bytes of ``block`` repeated, written in pieces."""
    with (
        zipfile.ZipFile(path, "w", compression=compression) as zf,
        zf.open(name, "w", force_zip64=True) as dst,
    ):
        for _ in range(size // len(block)):
            dst.write(block)


EXTRACT = """
from pathlib import Path
from redcaps.dataset.official import fetch_and_extract
from redcaps.errors import RedCapsError
try:
    print(fetch_and_extract({zip!r}, Path({dest!r})))
except RedCapsError as exc:
    print("refused:", exc)
"""


def test_a_zip_bomb_is_refused_in_one_line_within_a_memory_bound(tmp_path):
    """A 300 MiB member of zeros (300 KB compressed) is refused before it is read: nothing is
    written and the extracting process stays under 150 MiB (it read the member whole before)."""
    _write_member(
        tmp_path / "bomb.zip", "annotations/roses_2020.json", 300 << 20, zipfile.ZIP_DEFLATED, bytes(1 << 20)
    )
    assert (tmp_path / "bomb.zip").stat().st_size < 2 << 20
    line, peak_mib = _peak_mib_of(EXTRACT.format(zip=str(tmp_path / "bomb.zip"), dest=str(tmp_path / "out")))
    assert line.startswith("refused: zip member annotations/roses_2020.json: compression ratio")
    assert "\n" not in line
    assert not (tmp_path / "out" / "annotations" / "roses_2020.json").exists()
    assert peak_mib < 150


def test_a_large_member_is_streamed_within_a_memory_bound(tmp_path):
    """A 200 MiB stored member is extracted whole with the process under 150 MiB."""
    size = 200 << 20
    _write_member(
        tmp_path / "big.zip", "annotations/roses_2020.json", size, zipfile.ZIP_STORED, b"x" * (1 << 20)
    )
    line, peak_mib = _peak_mib_of(EXTRACT.format(zip=str(tmp_path / "big.zip"), dest=str(tmp_path / "out")))
    assert "roses_2020.json" in line and not line.startswith("refused")
    assert (tmp_path / "out" / "annotations" / "roses_2020.json").stat().st_size == size
    assert peak_mib < 150


def test_a_member_over_the_size_cap_is_refused(tmp_path, monkeypatch):
    from redcaps.dataset import official

    monkeypatch.setattr(official, "MAX_MEMBER_BYTES", 1000)
    make_zip(tmp_path / "r.zip", {"annotations/roses_2020.json": b"[" + b" " * 2000 + b"]"})
    with pytest.raises(RedCapsError, match="over the 1000 cap"):
        fetch_and_extract(str(tmp_path / "r.zip"), tmp_path / "out")
    assert not (tmp_path / "out" / "annotations" / "roses_2020.json").exists()
